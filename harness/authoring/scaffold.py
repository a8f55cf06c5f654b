"""`accord new service NAME --contract CONTRACT`: a new service, from its OpenAPI contract, in
the layout of the others.

It writes, and never over anything that exists:

- `services/NAME/`: `settings.py` (`NAME_*` variables on the kit's settings), `app.py`
  (`create_app`: the generated router on an implementation, admitted by the kit's
  `ContractAuthenticator`), `main.py` (`accord serve NAME`), `api.py` (the implementation of
  the generated interface, each operation answering 501 with a problem until it is written);
- `tests/NAME/test_api.py`: every operation routed, each answering 501 until written;
- `generated/NAME/`: what `accord generate` writes from the contract;
- in `pyproject.toml`: the contract's `[[tool.accord.generate]]` entry, and the service's
  `[[tool.accord.service]]` entry, which makes it `accord serve NAME` and part of `accord up`.

Everything is checked and rendered before the first file is written, and what was written is
removed again should a write fail, so a refused or failed scaffold leaves the project as it was.
"""

from __future__ import annotations

import keyword
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.authoring import codegen, generate, operations
from harness.project import SERVICE_NAME, GenerateTarget, Project, ServiceEntry

TEMPLATES = "scaffold"
# Ports `accord up` gives its own parts by default (the emulator, the SMTP sink, the mailbox).
RESERVED_PORTS = {4566: "the AWS emulator", 1025: "the SMTP sink", 8025: "the mailbox"}
GENERATE_HEADER = "[[tool.accord.generate]]"
SERVICE_HEADER = "[[tool.accord.service]]"


class ScaffoldError(Exception):
    """The service cannot be scaffolded; the message says why, and nothing was written."""


@dataclass(frozen=True)
class Scaffold:
    """A new service as it will be written: every file (relative to the root) and its content,
    and the new `pyproject.toml`."""

    service: ServiceEntry
    files: dict[Path, str]
    pyproject: str


def plan(project: Project, name: str, contract: Path, port: int | None = None) -> Scaffold:
    """What scaffolding the service `name` from `contract` (an OpenAPI document in the
    project) writes; `ScaffoldError` if anything is in the way."""
    _check_name(project, name)
    relative = _check_contract(project, contract)
    port = _check_port(project, port)
    service = ServiceEntry(name=name, port=port, openapi=relative)
    target = GenerateTarget(contract=relative, module=Path("generated", name, "models.py"))
    package = Path("services", name)
    tests = Path("tests", name)
    for path in (package, tests, target.module.parent):
        if (project.root / path).exists():
            raise ScaffoldError(f"{path.as_posix()} exists already; nothing was created")
    if any(existing.contract == relative for existing in project.targets):
        raise ScaffoldError(
            f"{relative.as_posix()} is generated for another service already "
            "([[tool.accord.generate]] in pyproject.toml); nothing was created"
        )

    with_target = replace(project, targets=(*project.targets, target))
    try:
        produced = generate.generate_all(with_target).files
    except generate.GenerationError as error:
        raise ScaffoldError(f"{error}; nothing was created") from None
    files = {
        path: content for path, content in produced.items() if path.parts[:2] == ("generated", name)
    }
    api = _api(project, target, files[target.module])
    files |= _service_files(project, service, api)
    text = project.pyproject.read_text(encoding="utf-8")
    text = _add_entry(text, GENERATE_HEADER, _generate_entry(target))
    text = _add_entry(text, SERVICE_HEADER, _service_entry(service))
    return Scaffold(service, files, text)


def write(project: Project, scaffold: Scaffold, on_write: Callable[[Path], None]) -> None:
    """Write every file of `scaffold`, then `pyproject.toml`; `on_write` is told each path.
    If a write fails, the files written are removed again and the error is raised."""
    written: list[Path] = []
    made: list[Path] = []
    try:
        for relative, content in sorted(scaffold.files.items()):
            path = project.root / relative
            for parent in reversed(path.relative_to(project.root).parents[:-1]):
                directory = project.root / parent
                if not directory.exists():
                    directory.mkdir()
                    made.append(directory)
            with path.open("x", encoding="utf-8") as handle:  # never over an existing file
                handle.write(content)
            written.append(path)
            on_write(relative)
        project.pyproject.write_text(scaffold.pyproject, encoding="utf-8")
        on_write(Path(project.pyproject.name))
    except BaseException:
        for path in reversed(written):
            path.unlink(missing_ok=True)
        for directory in reversed(made):
            directory.rmdir()
        raise


# --- checks -------------------------------------------------------------------------------------


def _check_name(project: Project, name: str) -> None:
    if not SERVICE_NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"{name!r} cannot name a service: use lower-case letters and digits, starting with "
            "a letter (it names the package services/NAME and the settings' prefix NAME_)"
        )
    if name == "kit" or any(entry.name == name for entry in project.services):
        raise ScaffoldError(f"a service called {name!r} exists already; nothing was created")


def _check_contract(project: Project, contract: Path) -> Path:
    # A relative path is the project's (as `[[tool.accord.generate]]` writes it), else the
    # working directory's.
    path = project.root / contract
    if not path.is_file():
        path = Path.cwd() / contract
    if not path.is_file():
        raise ScaffoldError(f"{contract}: no such file")
    try:
        relative = path.resolve().relative_to(project.root)
    except ValueError:
        raise ScaffoldError(
            f"{contract} is outside the project ({project.root}): put it under contracts/openapi/"
        ) from None
    head = path.read_text(encoding="utf-8")[:4096]
    if not re.search(r"^['\"]?openapi['\"]?\s*:", head, re.MULTILINE):
        raise ScaffoldError(f"{relative.as_posix()} is not an OpenAPI document")
    return relative


def _check_port(project: Project, port: int | None) -> int:
    taken = {entry.port: f"the {entry.name} service" for entry in project.services}
    taken |= RESERVED_PORTS
    if port is None:
        port = max((entry.port for entry in project.services), default=2999) + 1
        while port in taken:
            port += 1
        return port
    if not 1 <= port <= 65535:
        raise ScaffoldError(f"--port must be from 1 to 65535, not {port}")
    if port in taken:
        raise ScaffoldError(f"port {port} is {taken[port]}'s; choose another with --port")
    return port


# --- rendering ----------------------------------------------------------------------------------


def _api(project: Project, target: GenerateTarget, models: str) -> operations.Api:
    from harness.authoring.contracts import Resolver

    reader = operations.Reader(
        project.root / target.contract, Resolver(), operations.model_classes(models)
    )
    try:
        return reader.api()
    except operations.OperationError as error:
        raise ScaffoldError(f"{target.contract.as_posix()}: {error}; nothing was created") from None


def _placeholder_path(operation: operations.Operation) -> str:
    """The operation's path with a value of the right shape for each path parameter."""
    values = {
        parameter.name: (
            "00000000-0000-4000-8000-000000000000" if parameter.annotation == "UUID" else "1"
        )
        for parameter in operation.parameters
        if parameter.location == "path"
    }
    return re.sub(r"\{([^}]+)\}", lambda match: values.get(match.group(1), "1"), operation.path)


def _service_files(project: Project, service: ServiceEntry, api: operations.Api) -> dict[Path, str]:
    name = service.name
    interface = operations.pascal(service.openapi.stem) + "Interface"
    context = {
        "name": name,
        "prefix": service.env_prefix,
        "port": service.port,
        "contract": service.openapi.as_posix(),
        "interface": interface,
        "api_class": operations.pascal(name) + "Api",
        "callers": any(scheme.prefix.startswith("Bearer") for scheme in api.schemes),
        "operations": api.operations,
        "placeholder_path": _placeholder_path,
    }
    annotations = [
        annotation
        for operation in api.operations
        for annotation in (
            operation.result,
            operation.body or "",
            *(parameter.annotation for parameter in operation.parameters),
        )
    ]
    stdlib, typing = codegen.stdlib_imports(annotations)
    if typing:
        stdlib.append(f"from typing import {', '.join(typing)}")
    text = " ".join(annotations)
    generated = [module for module in ("models", "responses") if re.search(rf"\b{module}\.", text)]
    api_imports = [
        f"from generated.{name}.server import {interface}",
        "from services.kit.http import Problem, ProblemError",
    ]
    if generated:
        api_imports.append(f"from generated.{name} import {', '.join(generated)}")
    if _secured(api):
        api_imports.append("from generated.security import Caller")
    security = (
        "from services.kit.callers import caller_security"
        if context["callers"]
        else "from services.kit.security import PUBLIC_ONLY"
    )
    app_imports = [
        f"from generated.{name} import server",
        "from services.kit import composition",
        "from services.kit.metrics import Metrics",
        "from services.kit.tracing import Tracing",
        security,
        f"from services.{name}.api import {context['api_class']}",
        f"from services.{name}.settings import Settings",
    ]
    test_imports = [
        f"from generated.{name}.server import {interface}",
        "from services.kit.http import ProblemError",
        f"from services.{name}.api import {context['api_class']}",
        f"from services.{name}.app import create_app",
        f"from services.{name}.settings import Settings",
    ]
    main_imports = [
        "from services.kit import startup",
        f"from services.{name}.app import create_app",
        f"from services.{name}.settings import load_settings",
    ]
    context |= {
        "imports": sorted(stdlib, key=_module),
        "main_imports": sorted(main_imports, key=_module),
        "api_imports": sorted(api_imports, key=_module),
        "app_imports": sorted(app_imports, key=_module),
        "test_imports": sorted(test_imports, key=_module),
    }
    render = codegen.render_template
    return {
        Path("services", name, "__init__.py"): render(f"{TEMPLATES}/init.py.jinja", **context),
        Path("services", name, "settings.py"): render(f"{TEMPLATES}/settings.py.jinja", **context),
        Path("services", name, "app.py"): render(f"{TEMPLATES}/app.py.jinja", **context),
        Path("services", name, "main.py"): render(f"{TEMPLATES}/main.py.jinja", **context),
        Path("services", name, "api.py"): render(f"{TEMPLATES}/api.py.jinja", **context),
        Path("tests", name, "__init__.py"): "",
        Path("tests", name, "test_api.py"): render(f"{TEMPLATES}/test_api.py.jinja", **context),
    }


def _module(line: str) -> str:
    """The module an import line imports from, as isort orders them."""
    return line.split()[1]


def _secured(api: operations.Api) -> bool:
    return any(operation.security for operation in api.operations)


# --- pyproject.toml -----------------------------------------------------------------------------


def _generate_entry(target: GenerateTarget) -> list[str]:
    return [f'contract = "{target.contract.as_posix()}"', f'module = "{target.module.as_posix()}"']


def _service_entry(service: ServiceEntry) -> list[str]:
    return [
        f'name = "{service.name}"',
        f"port = {service.port}",
        f'openapi = "{service.openapi.as_posix()}"',
    ]


def _add_entry(text: str, header: str, keys: list[str]) -> str:
    """`text` with a new `header` table of `keys`, after the last table of that header (at the
    end when there is none), comments and layout elsewhere untouched."""
    lines = text.splitlines()
    last = max((index for index, line in enumerate(lines) if line.strip() == header), default=None)
    if last is None:
        at = len(lines)
    else:
        at = last + 1
        while at < len(lines) and lines[at].strip() and not lines[at].startswith("["):
            at += 1
    block = ["", header, *keys] if at == len(lines) or last is not None else [header, *keys, ""]
    updated = "\n".join(lines[:at] + block + lines[at:]) + "\n"
    tomllib.loads(updated)  # still TOML
    return updated
