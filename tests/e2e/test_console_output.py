"""What `accord up` and `accord serve` print, run as a person runs them (in their own process,
stopped with Ctrl-C): every URL in the banner, one log format for both, in which a request is
one line and uvicorn's own start and stop messages do not appear; the contracts' pages at
/docs and /docs/events whichever command serves the service; a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from harness.project import Project
from services.kit.tokens import SigningKey
from tests.e2e.support import free_ports, port_flags, stack_ports

ACCORD = str(Path(sys.executable).with_name("accord"))
# services/kit/startup.py LOG_FORMAT and RequestLog, for `accord up` and `accord serve` alike.
REQUEST_LINE = r"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} accord\.{service} +{request} \(\d+ ms\)$"
UVICORN_LINES = ("uvicorn", "Started server process", "Application startup", "Shutting down")


def environment(**extra: str) -> dict[str, str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AUTH_", "USER_", "NOTIFICATION_", "AWS_", "ACCORD_"))
    }
    return {**clean, "ACCORD_ENV": "local", "COLUMNS": "300", **extra}


def wait_for(check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Until `check` holds (a bound on waiting, not a claim about speed)."""
    deadline = time.monotonic() + 120
    while not check():
        assert process.poll() is None, f"exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not there in time:\n{log.read_text()}"
        time.sleep(0.2)


def interrupt(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a person would; the exit status."""
    process.send_signal(signal.SIGINT)
    return process.wait(60)


def test_up_lists_every_url_logs_no_uvicorn_lines_and_stops_on_ctrl_c(
    project_copy: Project, tmp_path: Path
) -> None:
    flags = port_flags(stack_ports())
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [ACCORD, "up", "--root", str(project_copy.root), *flags],
            cwd=project_copy.root,
            env=environment(),
            stdout=stdout,
            stderr=stderr,
        )
        try:
            wait_for(lambda: "ready in" in out.read_text(), process, out)
            urls = json.loads((project_copy.root / ".accord" / "stack.json").read_text())
            auth = urls["services"]["auth"]["url"]
            assert httpx.get(f"{auth}/api/v1/auth/me").status_code == 401
        finally:
            status = interrupt(process)

    banner, logged = out.read_text(), err.read_text()
    assert status == 0, banner + logged
    for service in ("auth", "user", "notification"):
        for kind in ("url", "docs", "events"):
            assert urls["services"][service][kind] in banner
    assert f"{urls['mail']['url']}\n" in banner
    assert urls["mail"]["api"] in banner
    assert banner.rstrip().endswith("stopped")
    line = REQUEST_LINE.format(service="auth", request=re.escape("GET /api/v1/auth/me 401"))
    assert re.search(line, logged, flags=re.MULTILINE), logged
    for noise in (*UVICORN_LINES, "Traceback"):
        assert noise not in banner + logged


@pytest.mark.parametrize(
    ("service", "event"),
    [("auth", "user.created"), ("user", "user.created"), ("notification", "user.deactivated")],
)
def test_serve_shows_the_docs_pages_and_logs_as_accord_up_does(
    service: str, event: str, project_copy: Project, tmp_path: Path
) -> None:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = environment(
        **{f"{service.upper()}_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}"},
        AUTH_SIGNING_KEY=SigningKey.generate().to_pem().decode(),
    )
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [ACCORD, "serve", service, "--port", str(port), "--root", str(project_copy.root)],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            wait_for(lambda: f"service on {url}" in out.read_text(), process, err)
            swagger = httpx.get(f"{url}/docs/")
            spec = httpx.get(f"{url}/docs/openapi.json")
            events = httpx.get(f"{url}/docs/events")
            unknown = httpx.get(f"{url}/api/v1/no-such-thing")
        finally:
            status = interrupt(process)

    banner, logged = out.read_text(), err.read_text()
    assert status == 0, banner + logged
    assert banner.splitlines()[:3] == [
        f"✓ {service} service on {url}",
        f"    API docs  {url}/docs",
        f"    events    {url}/docs/events",
    ]
    contract = yaml.safe_load(
        (project_copy.contracts_dir / "openapi" / f"{service}-service.yaml").read_text()
    )
    assert swagger.status_code == 200
    assert "swagger-ui" in swagger.text
    assert spec.json()["info"]["title"] == contract["info"]["title"]
    assert events.status_code == 200
    assert event in events.text
    assert unknown.status_code == 404
    line = REQUEST_LINE.format(service=service, request=re.escape("GET /api/v1/no-such-thing 404"))
    assert re.search(line, logged, flags=re.MULTILINE), logged
    for noise in (*UVICORN_LINES, "Traceback"):
        assert noise not in banner + logged
