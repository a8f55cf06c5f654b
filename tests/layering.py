"""A small import-rule engine: which project module imports what, and which imports break a rule.

`Project.scan(root, packages)` reads every `.py` file of the given top-level packages and
records each import statement, wherever it stands (module level, inside a function, under
`if TYPE_CHECKING:`). Each imported name is resolved to the project module it refers to, the
longest module it spells: `from harness.lint import findings` is an import of the submodule
`harness.lint.findings`, `from harness.lint import Finding` one of the package `harness.lint`.
Relative imports are resolved against the importer's package. Names outside the scanned
packages are kept as written (`fastapi.routing`) and marked external; so is a name in a scanned
package that no file defines (an import left dangling), but marked internal.

The checks below take a `Project` and return `Violation`s, each printed as
`importer (file:line) imports imported: rule`. Pure standard library: it must run anywhere the
tests run, before anything else is importable.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One imported name: who imports it, where, and what it resolves to."""

    importer: str
    path: Path
    line: int
    imported: str
    internal: bool

    @property
    def top(self) -> str:
        """The top-level package or module of the imported name (`fastapi` for fastapi.x)."""
        return self.imported.partition(".")[0]


@dataclass(frozen=True, order=True)
class Violation:
    """An import that breaks a rule."""

    importer: str
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.importer} ({self.path}:{self.line}) imports {self.imported}: {self.rule}"


def within(module: str, package: str) -> bool:
    """Is `module` the package (or module) `package`, or inside it?"""
    return module == package or module.startswith(package + ".")


@dataclass
class Project:
    """The modules of some top-level packages and every import they make."""

    root: Path
    packages: frozenset[str] = frozenset()
    modules: dict[str, Path | None] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    @classmethod
    def scan(cls, root: Path, packages: Iterable[str]) -> Project:
        """Read the `.py` files of `packages` (top-level package names) under `root`."""
        project = cls(root, frozenset(packages))
        files: list[tuple[str, Path]] = []
        for package in sorted(project.packages):
            base = root / package
            if (root / f"{package}.py").is_file():
                files.append((package, root / f"{package}.py"))
                continue
            project.modules[package] = None
            for path in sorted(base.rglob("*.py")):
                parts = path.relative_to(root).with_suffix("").parts
                if any(not part.isidentifier() for part in parts):
                    continue  # not importable as a module (e.g. alembic's versions/0001_x.py)
                for depth in range(1, len(parts)):
                    project.modules.setdefault(".".join(parts[:depth]), None)
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                files.append((name, path))
        for name, path in files:
            project.modules[name] = path
        for name, path in files:
            project.imports.extend(project._imports_of(name, path))
        return project

    def resolve(self, dotted: str) -> tuple[str, bool]:
        """`dotted` and whether it is in the project (a module or, if dangling, in a package).

        External names are kept as written (`fastapi.routing`); so is a name inside a project
        package that no file defines (an import left dangling by a move).
        """
        return dotted, dotted in self.modules or dotted.partition(".")[0] in self.packages

    def relative(self, path: Path) -> str:
        """`path` as written in a violation: relative to the project root when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def _imports_of(self, importer: str, path: Path) -> Iterator[Import]:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield self._import(importer, path, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = self._from_base(package, node)
                for alias in node.names:
                    name = f"{base}.{alias.name}" if alias.name != "*" else base
                    # the longest module: `from pkg import submodule` imports the submodule,
                    # `from pkg import obj` the package
                    target = name if name in self.modules else base
                    yield self._import(importer, path, node.lineno, target)

    def _import(self, importer: str, path: Path, line: int, dotted: str) -> Import:
        target, internal = self.resolve(dotted)
        return Import(importer, path, line, target, internal)

    @staticmethod
    def _from_base(package: str, node: ast.ImportFrom) -> str:
        """The absolute module a `from ... import` reads names from."""
        if node.level == 0:
            return node.module or ""
        parts = package.split(".") if package else []
        keep = len(parts) - (node.level - 1)
        if keep < 0:
            msg = f"relative import beyond the top-level package in {package!r}"
            raise ValueError(msg)
        base = parts[:keep]
        if node.module:
            base.append(node.module)
        return ".".join(base)

    def imports_from(self, importers: Callable[[str], bool]) -> Iterator[Import]:
        """The imports made by modules for which `importers(module)` holds."""
        return (imp for imp in self.imports if importers(imp.importer))

    def violation(self, imp: Import, rule: str) -> Violation:
        """`imp` reported as breaking `rule`."""
        return Violation(imp.importer, self.relative(imp.path), imp.line, imp.imported, rule)

    def graph(self, inside: str) -> dict[str, set[str]]:
        """The module graph among the project modules inside `inside` (no self-edges)."""
        edges: dict[str, set[str]] = {m: set() for m in self.modules if within(m, inside)}
        for imp in self.imports_within(inside):
            if imp.imported != imp.importer:
                edges[imp.importer].add(imp.imported)
        return edges

    def imports_within(self, inside: str) -> Iterator[Import]:
        """The imports between two project modules inside the package `inside`."""
        for imp in self.imports:
            if imp.internal and within(imp.importer, inside) and within(imp.imported, inside):
                yield imp


# --- checks ------------------------------------------------------------------------------------


def forbidden(
    project: Project,
    importers: Callable[[str], bool],
    forbids: Callable[[Import], str | None],
) -> list[Violation]:
    """Every import of a module selected by `importers` that `forbids` names a rule for."""
    found: list[Violation] = []
    for imp in project.imports_from(importers):
        rule = forbids(imp)
        if rule is not None:
            found.append(project.violation(imp, rule))
    return sorted(set(found))


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of `graph` (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _circle_violations(
    project: Project,
    node_of: Callable[[str], str],
    inside: str,
    rule: str,
) -> list[Violation]:
    graph: dict[str, set[str]] = {}
    for module, targets in project.graph(inside).items():
        source = node_of(module)
        graph.setdefault(source, set())
        graph[source].update(node_of(t) for t in targets if node_of(t) != source)
    found: list[Violation] = []
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        circle = " ↔ ".join(component)
        for imp in project.imports_within(inside):
            source, target = node_of(imp.importer), node_of(imp.imported)
            if source != target and source in members and target in members:
                found.append(project.violation(imp, f"{rule} ({circle})"))
    return sorted(set(found))


def module_circles(project: Project, inside: str) -> list[Violation]:
    """Every import that is part of an import circle among the modules inside `inside`."""
    return _circle_violations(project, lambda m: m, inside, "import circle")


def first_subpackage(inside: str) -> Callable[[str], str]:
    """Collapse a module to its first component under `inside` (`a.b.c` → `a.b` for `a`)."""
    depth = inside.count(".") + 2

    def node_of(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    return node_of


def package_circles(project: Project, inside: str) -> list[Violation]:
    """Every import that closes a circle between the sub-packages (and modules) of `inside`."""
    return _circle_violations(
        project, first_subpackage(inside), inside, "import circle between sub-packages"
    )


def ancestor_imports(project: Project, inside: str) -> list[Violation]:
    """Every import, inside `inside`, of a package that contains the importer."""

    def forbids(imp: Import) -> str | None:
        if imp.internal and imp.imported != imp.importer and within(imp.importer, imp.imported):
            return "imports the __init__ of its own ancestor package"
        return None

    return forbidden(project, lambda m: within(m, inside), forbids)


@dataclass(frozen=True)
class Layer:
    """One layer: the packages (or modules) that belong to it, listed by dotted name."""

    name: str
    packages: tuple[str, ...]


def layer_violations(project: Project, layers: Sequence[Layer], inside: str) -> list[Violation]:
    """Every import, by a module of `inside`, of a module in a layer above its own.

    `layers` lists the top layer first. A module belongs to the layer of the longest listed
    package containing it; imports within one layer are allowed. A module of `inside` that no
    layer lists (one not yet placed) may import anything but the top layer.
    """
    owners = sorted(
        ((package, rank) for rank, layer in enumerate(layers) for package in layer.packages),
        key=lambda item: len(item[0]),
        reverse=True,
    )

    def rank_of(module: str) -> int | None:
        for package, rank in owners:
            if within(module, package):
                return rank
        return None

    def forbids(imp: Import) -> str | None:
        imported_rank = rank_of(imp.imported)
        if not imp.internal or imported_rank is None:
            return None
        importer_rank = rank_of(imp.importer)
        above = layers[imported_rank].name
        if importer_rank is None:
            return (
                f"a module in no layer imports the top layer {above!r}"
                if imported_rank == 0
                else None
            )
        if imported_rank < importer_rank:
            return f"layer {layers[importer_rank].name!r} imports the higher layer {above!r}"
        return None

    return forbidden(project, lambda m: within(m, inside), forbids)
