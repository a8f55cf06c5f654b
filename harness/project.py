"""Where an Accord project lives and what `pyproject.toml` says about it."""

from __future__ import annotations

import re
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


# A service's name is its package under `services/` and, upper-cased, its settings' prefix.
SERVICE_NAME = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class ServiceEntry:
    """One service of the platform, from a `[[tool.accord.service]]` entry: its package
    (`services/<name>`), the port `accord up` and `accord serve` give it, and its contracts
    (paths relative to the root; `asyncapi` is None for a service with no events)."""

    name: str
    port: int
    openapi: Path
    asyncapi: Path | None = None

    @property
    def env_prefix(self) -> str:
        """The prefix of the service's environment variables: `AUTH_` for `auth`."""
        return f"{self.name.upper()}_"


@dataclass(frozen=True)
class Project:
    """An Accord project: its root directory and the settings in its `[tool.accord]` table."""

    root: Path
    targets: tuple[GenerateTarget, ...]
    services: tuple[ServiceEntry, ...] = ()

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    def service(self, name: str) -> ServiceEntry:
        """The service called `name`; `LookupError` naming the services there are."""
        for entry in self.services:
            if entry.name == name:
                return entry
        known = ", ".join(entry.name for entry in self.services) or "none"
        raise LookupError(f"no service {name!r} in {self.pyproject.name}; the services: {known}")

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
        services = _services(accord.get("service", []), pyproject)
        return cls(root=root, targets=tuple(targets), services=services)

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


def _services(entries: object, pyproject: Path) -> tuple[ServiceEntry, ...]:
    """The `[[tool.accord.service]]` entries, each checked; `ProjectNotFoundError` naming the
    entry and what is wrong with it."""
    if not isinstance(entries, list):
        raise ProjectNotFoundError(f"{pyproject}: tool.accord.service must be an array of tables")
    services: list[ServiceEntry] = []
    for index, entry in enumerate(entries):
        where = f"{pyproject}: tool.accord.service[{index}]"
        if not isinstance(entry, dict) or not {"name", "port", "openapi"} <= entry.keys():
            raise ProjectNotFoundError(f"{where} needs 'name', 'port' and 'openapi'")
        name, port, asyncapi = entry["name"], entry["port"], entry.get("asyncapi")
        if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
            raise ProjectNotFoundError(
                f"{where}: name must be lower-case letters and digits, not {name!r}"
            )
        if any(service.name == name for service in services):
            raise ProjectNotFoundError(f"{where}: the service {name!r} is declared twice")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ProjectNotFoundError(f"{where}: port must be a number from 1 to 65535")
        taken = next((service for service in services if service.port == port), None)
        if taken is not None:
            raise ProjectNotFoundError(f"{where}: port {port} is the {taken.name} service's too")
        if not isinstance(entry["openapi"], str) or not (
            asyncapi is None or isinstance(asyncapi, str)
        ):
            raise ProjectNotFoundError(f"{where}: openapi and asyncapi must be paths")
        services.append(
            ServiceEntry(
                name=name,
                port=port,
                openapi=Path(entry["openapi"]),
                asyncapi=Path(asyncapi) if asyncapi is not None else None,
            )
        )
    return tuple(services)
