"""Where an Accord project lives and what `pyproject.toml` says about it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


class ProjectNotFoundError(Exception):
    """No `pyproject.toml` with an `[tool.accord]` table at or above the start directory."""


@dataclass(frozen=True)
class GenerateTarget:
    """One generated module and the contract it is generated from (paths relative to the root)."""

    contract: Path
    module: Path


@dataclass(frozen=True)
class Project:
    """An Accord project: its root directory and the settings in its `[tool.accord]` table."""

    root: Path
    targets: tuple[GenerateTarget, ...]

    @property
    def contracts_dir(self) -> Path:
        return self.root / "contracts"

    @property
    def generated_dir(self) -> Path:
        return self.root / "generated"

    def relative(self, path: Path) -> str:
        """`path` as shown to a user: relative to the root when it is inside it."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    @classmethod
    def load(cls, root: Path) -> Project:
        root = root.resolve()
        pyproject = root / "pyproject.toml"
        try:
            config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProjectNotFoundError(f"{pyproject} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ProjectNotFoundError(f"{pyproject} is not valid TOML: {error}") from None
        accord = config.get("tool", {}).get("accord")
        if not isinstance(accord, dict):
            raise ProjectNotFoundError(f"{pyproject} has no [tool.accord] table")
        targets = []
        for index, entry in enumerate(accord.get("generate", [])):
            if not isinstance(entry, dict) or not {"contract", "module"} <= entry.keys():
                raise ProjectNotFoundError(
                    f"{pyproject}: tool.accord.generate[{index}] needs 'contract' and 'module'"
                )
            targets.append(GenerateTarget(Path(entry["contract"]), Path(entry["module"])))
        return cls(root=root, targets=tuple(targets))

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project whose root is `start` or the nearest parent with `[tool.accord]`."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            pyproject = candidate / "pyproject.toml"
            if pyproject.is_file() and "[tool.accord" in pyproject.read_text(encoding="utf-8"):
                return cls.load(candidate)
        raise ProjectNotFoundError(
            f"no Accord project at or above {here}: "
            "looked for a pyproject.toml with a [tool.accord] table"
        )
