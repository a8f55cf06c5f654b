"""The pytest plugin `accord verify` loads into the pytest process it starts.

It keeps only the conformance suite (`-m contract` does the selecting; `ACCORD_VERIFY_SERVICES`
and `ACCORD_VERIFY_LAYERS`, comma-separated, narrow it further), and writes one JSON object per
line to the file named by `ACCORD_VERIFY_EVENTS`:

- `{"kind": "collecting", "nodeid", "tests"}` as each module is collected (`tests` is how many
  items it holds before selection);
- `{"kind": "collected", "tests": [{"nodeid", "service", "layer"}, ...]}` once;
- `{"kind": "started", "nodeid"}` before each test;
- `{"kind": "result", "nodeid", "outcome", "cases", "seconds", "reason"}` after each test
  (`seconds` counts set-up, call and tear-down), where
  `outcome` is passed, failed or skipped and `cases` is what the test recorded with
  `record_property("cases", N)` (1 if nothing);
- `{"kind": "error", "nodeid", "reason"}` for a module that fails to collect;
- `{"kind": "finished", "exitstatus"}` at the end.

A test's service and layer come from its `conformance(service, layer)` marker; a contract test
without one is counted under its directory (`tests/<service>/...`) and the layer "other".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import pytest

from harness.conformance.verify import EVENTS_VARIABLE, LAYERS_VARIABLE, SERVICES_VARIABLE

UNCLASSIFIED_LAYER = "other"
MAX_REASON = 4000


def where(item: pytest.Item) -> tuple[str, str]:
    """The service and layer `accord verify` counts the test under."""
    marker = item.get_closest_marker("conformance")
    if marker is not None:
        service, layer = marker.args
        return str(service), str(layer)
    parts = Path(str(item.path)).parts
    service = parts[parts.index("tests") + 1] if "tests" in parts[:-1] else "platform"
    return service, UNCLASSIFIED_LAYER


def _wanted(variable: str) -> set[str] | None:
    value = os.environ.get(variable, "").strip()
    return {part.strip() for part in value.split(",") if part.strip()} or None


class VerifyReporter:
    """Writes the suite's progress as JSON lines for the `accord verify` process to read."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._where: dict[str, tuple[str, str]] = {}
        self._pending: dict[str, tuple[str, str]] = {}  # the outcome until the tear-down
        self._seconds: dict[str, float] = {}

    def _emit(self, **event: Any) -> None:
        self._stream.write(json.dumps(event) + "\n")
        self._stream.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        services, layers = _wanted(SERVICES_VARIABLE), _wanted(LAYERS_VARIABLE)
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            service, layer = where(item)
            chosen = (services is None or service in services) and (
                layers is None or layer in layers
            )
            (kept if chosen else dropped).append(item)
            if chosen:
                self._where[item.nodeid] = (service, layer)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        tests = [
            {"nodeid": item.nodeid, "service": service, "layer": layer}
            for item in session.items
            for service, layer in [self._where.get(item.nodeid, where(item))]
        ]
        self._emit(kind="collected", tests=tests)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._emit(kind="error", nodeid=report.nodeid, reason=_reason(report))
        elif report.nodeid.endswith(".py"):  # a module: say where collection has got to
            self._emit(kind="collecting", nodeid=report.nodeid, tests=len(report.result))

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._emit(kind="started", nodeid=nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # One result per test, sent after its tear-down: properties recorded by fixtures
        # (schemathesis's case counts) are only in the tear-down's report, and a tear-down
        # that fails fails the test.
        self._seconds[report.nodeid] = self._seconds.get(report.nodeid, 0.0) + report.duration
        if report.when == "setup":
            if not report.passed:
                self._pending[report.nodeid] = _outcome(report), _reason(report)
            return
        if report.when == "call":
            outcome = _outcome(report)
            reason = _reason(report) if outcome != "passed" else ""
            self._pending[report.nodeid] = outcome, reason
            return
        outcome, reason = self._pending.pop(report.nodeid, ("passed", ""))
        if report.failed and outcome != "failed":
            outcome, reason = "failed", _reason(report)
        cases = dict(report.user_properties).get("cases", 1)
        assert isinstance(cases, int), f"{report.nodeid}: recorded cases {cases!r}"
        self._emit(
            kind="result",
            nodeid=report.nodeid,
            outcome=outcome,
            cases=cases,
            seconds=round(self._seconds.pop(report.nodeid, 0.0), 3),
            reason=reason,
        )

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self._emit(kind="finished", exitstatus=int(exitstatus))


def _outcome(report: pytest.TestReport) -> str:
    return "skipped" if report.skipped else report.outcome


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = report.longreprtext
    return text if len(text) <= MAX_REASON else "…" + text[-MAX_REASON:]


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(EVENTS_VARIABLE)
    if not path:
        raise pytest.UsageError(f"{EVENTS_VARIABLE} is not set: run this plugin via accord verify")
    stream = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
    config.stash[_STREAM] = stream
    config.pluginmanager.register(VerifyReporter(stream), "accord-verify-reporter")


def pytest_unconfigure(config: pytest.Config) -> None:
    stream = config.stash.get(_STREAM, None)
    if stream is not None:
        stream.close()


_STREAM = pytest.StashKey[IO[str]]()
