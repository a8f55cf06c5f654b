"""`accord verify`: run the conformance suite (the tests marked `contract`) and sum it up per
service and layer.

The suite runs in its own pytest process (the project's `tests/`, `-m contract`) with
`harness.conformance.plugin` loaded; the plugin writes JSON lines that `run` reads as they come, so
the caller can draw progress, and folds into a `Summary`: for each service, one `Tally` per
layer (pacts, schemathesis, contract-code, rbac) with tests passed, failed and skipped and the
test cases they ran.

Before it starts, `run` checks that the test libraries the suite imports (the `dev` extra) are
installed, and says how to install them if not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.project import Project

# How `accord verify` talks to its plugin in the pytest process (harness/conformance/plugin.py).
EVENTS_VARIABLE = "ACCORD_VERIFY_EVENTS"
SERVICES_VARIABLE = "ACCORD_VERIFY_SERVICES"
LAYERS_VARIABLE = "ACCORD_VERIFY_LAYERS"

# The layers as `accord verify` names them everywhere: its tables, its JSON, `--layer`, and the
# `conformance(service, layer)` markers.
LAYERS = ("pacts", "schemathesis", "contract-code", "rbac")
# Other spellings that name a layer, once lower-cased and without spaces: the earlier names
# and the README's headings ("contract ↔ code", "RBAC").
LAYER_ALIASES = {
    "pact": "pacts",
    "contract↔code": "contract-code",
    "contract_code": "contract-code",
    "contractcode": "contract-code",
}
POLL_SECONDS = 0.1

# What the conformance suite imports beyond the project's own dependencies, module →
# distribution: the test libraries of the `dev` extra in pyproject.toml.
TEST_DEPENDENCIES = {
    "pytest": "pytest",
    "pytest_asyncio": "pytest-asyncio",
    "xdist": "pytest-xdist",
    "pact": "pact-python",
    "schemathesis": "schemathesis",
    "hypothesis": "hypothesis",
}
INSTALL_TEST_DEPENDENCIES = "python3 -m pip install -e '.[dev]'"


class VerifyError(Exception):
    """The suite could not be run at all (no tests directory, pytest missing, ...)."""


def layer_name(text: str) -> str | None:
    """The layer `text` names (`pacts`, `Pact`, `contract ↔ code`, `RBAC`...), or None."""
    key = "".join(str(text).lower().split())
    return key if key in LAYERS else LAYER_ALIASES.get(key)


def layer_spellings(layers: Iterable[str]) -> list[str]:
    """Every spelling of `layers` a test's marker may use (the plugin compares them as is)."""
    return [
        spelling
        for layer in layers
        for spelling in (layer, *(alias for alias, name in LAYER_ALIASES.items() if name == layer))
    ]


def importable(module: str) -> bool:
    """Whether `module` can be imported, found without importing it (the suite's libraries are
    slow to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_test_dependencies() -> list[str]:
    """The distributions in `TEST_DEPENDENCIES` this interpreter cannot import."""
    return [
        distribution for module, distribution in TEST_DEPENDENCIES.items() if not importable(module)
    ]


def require_test_dependencies(project: Project) -> None:
    """Raise `VerifyError` saying what to install when the suite's test libraries are missing."""
    missing = missing_test_dependencies()
    if missing:
        raise VerifyError(
            f"the conformance suite needs {', '.join(missing)}, not installed here\n"
            f"install the test dependencies: cd {project.root} && {INSTALL_TEST_DEPENDENCIES}"
        )


@dataclass
class Tally:
    """What one layer of one service's conformance ran, and how it went."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    cases: int = 0
    seconds: float = 0.0

    @property
    def tests(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def ok(self) -> bool:
        return self.failed == 0


@dataclass(frozen=True)
class Failure:
    nodeid: str
    service: str
    layer: str
    reason: str


@dataclass
class Summary:
    """Tallies by service and layer, the failures, and how long the run took."""

    tallies: dict[str, dict[str, Tally]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    collected: int = 0
    exitstatus: int | None = None
    seconds: float = 0.0
    # The project's services (`[[tool.accord.service]]`), in the order the tables list them.
    order: tuple[str, ...] = ()

    def tally(self, service: str, layer: str) -> Tally:
        return self.tallies.setdefault(service, {}).setdefault(layer, Tally())

    @property
    def ok(self) -> bool:
        """Every test passed (or was skipped), at least one ran, and pytest agreed."""
        return not self.failures and self.collected > 0 and self.exitstatus == 0

    def services(self) -> list[str]:
        """The services with a tally: the project's in registry order, then any other."""
        known = [name for name in self.order if name in self.tallies]
        return known + sorted(set(self.tallies) - set(self.order))

    def layers(self, service: str) -> list[str]:
        present = self.tallies.get(service, {})
        return [name for name in LAYERS if name in present] + sorted(set(present) - set(LAYERS))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "services": {
                service: {
                    layer: {
                        "ok": tally.ok,
                        "passed": tally.passed,
                        "failed": tally.failed,
                        "skipped": tally.skipped,
                        "cases": tally.cases,
                        "seconds": round(tally.seconds, 1),
                    }
                    for layer in self.layers(service)
                    for tally in [self.tallies[service][layer]]
                }
                for service in self.services()
            },
            "failures": [failure.__dict__ for failure in self.failures],
        }


Listener = Callable[[dict[str, Any]], None]


def pytest_command(project: Project, extra: Iterable[str] = ()) -> list[str]:
    # Only `tests/contract/` holds conformance tests: collecting the whole of `tests/` would
    # import every other suite just to deselect it.
    contract = project.root / "tests" / "contract"
    return [
        sys.executable,
        "-m",
        "pytest",
        str(contract if contract.is_dir() else project.root / "tests"),
        "-m",
        "contract",
        "-p",
        "harness.conformance.plugin",
        "-q",
        "-p",
        "no:cacheprovider",
        # In one process: the plugin streams results as they come, and pytest-xdist's
        # controller would neither collect nor deselect.
        "-n",
        "0",
        *extra,
    ]


def run(
    project: Project,
    *,
    services: Iterable[str] = (),
    layers: Iterable[str] = (),
    on_event: Listener | None = None,
    extra_args: Iterable[str] = (),
) -> Summary:
    """Run the conformance suite of `project` and return its summary; `on_event` sees every
    event as it arrives (for progress)."""
    if not (project.root / "tests").is_dir():
        raise VerifyError(f"{project.relative(project.root / 'tests')}/ does not exist")
    require_test_dependencies(project)
    summary = Summary(order=tuple(entry.name for entry in project.services))
    where: dict[str, tuple[str, str]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accord-verify-") as scratch:
        events_path = Path(scratch) / "events.jsonl"
        events_path.touch()
        env = {
            **os.environ,
            EVENTS_VARIABLE: str(events_path),
            SERVICES_VARIABLE: ",".join(services),
            LAYERS_VARIABLE: ",".join(layer_spellings(layers)),
        }
        output = Path(scratch) / "pytest.log"
        with output.open("w") as log:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                pytest_command(project, extra_args),
                cwd=project.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                with events_path.open(encoding="utf-8") as events:
                    for event in _follow(events, process):
                        _fold(summary, where, event)
                        if on_event is not None:
                            on_event(event)
            finally:  # an interrupt or a bad event must not leave the suite running
                if process.poll() is None:
                    process.kill()
                returncode = process.wait()
        if summary.exitstatus is None:
            summary.exitstatus = returncode
            text = output.read_text(errors="replace").strip()
            summary.failures.append(
                Failure("pytest", "platform", "other", text or f"pytest exited {returncode}")
            )
    summary.seconds = time.perf_counter() - started
    return summary


def _follow(events: Any, process: subprocess.Popen[bytes]) -> Iterator[dict[str, Any]]:
    """Each JSON line of `events` as the process writes it, until the process has exited and
    the file is read to its end."""
    pending = ""
    while True:
        chunk = events.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
            continue
        if process.poll() is not None:
            rest = events.read()
            if not rest:
                return
            pending += rest
            continue
        time.sleep(POLL_SECONDS)


def _fold(summary: Summary, where: dict[str, tuple[str, str]], event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "collected":
        for test in event["tests"]:
            layer = layer_name(test["layer"]) or test["layer"]
            where[test["nodeid"]] = (test["service"], layer)
            summary.tally(test["service"], layer)
        summary.collected = len(event["tests"])
    elif kind == "result":
        service, layer = where.get(event["nodeid"], ("platform", "other"))
        tally = summary.tally(service, layer)
        outcome = event["outcome"]
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.seconds += event["seconds"]
        if outcome == "passed":
            tally.cases += event["cases"]
        if outcome == "failed":
            summary.failures.append(Failure(event["nodeid"], service, layer, event["reason"]))
    elif kind == "error":
        summary.failures.append(Failure(event["nodeid"], "platform", "other", event["reason"]))
    elif kind == "finished":
        summary.exitstatus = event["exitstatus"]
