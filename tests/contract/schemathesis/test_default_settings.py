"""The `schemathesis` command line with its default settings, as anyone would first run it
against a service: no project configuration (not `schemathesis.toml`: no widened statuses, no
custom formats, no hooks), every phase, `--checks all`, over HTTP against the service served by
uvicorn on PostgreSQL. It finds nothing: in particular no schema-valid request that the service
rejects (ST202, `positive_data_acceptance`), so every request the contract admits is one the
service takes.

The only departure from the defaults is the budget, `--max-examples 25` (the suites' own); the
same run with the default 100 examples, from a directory without a `schemathesis.toml`, is:

    st run contracts/openapi/<service>-service.yaml --url http://127.0.0.1:<port> \\
        -H 'Authorization: Bearer <an admin's access token>' --checks all
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPOSITORY
from tests.contract.served import SERVICES, served

pytestmark = [pytest.mark.contract, pytest.mark.postgres]

MAX_EXAMPLES = 25


def schemathesis_command() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        pytest.fail("the schemathesis command line (`st`) is not installed", pytrace=False)
    return found


@pytest.mark.parametrize(
    "service",
    [pytest.param(name, marks=pytest.mark.conformance(name, "schemathesis")) for name in SERVICES],
)
def test_schemathesis_with_default_settings_finds_nothing_the_service_refuses_or_breaks(
    service: str, postgres_url: str, tmp_path: Path
) -> None:
    defaults = tmp_path / "schemathesis.toml"
    defaults.write_text("# Nothing: schemathesis's default settings.\n")
    report = tmp_path / "report.json"

    with served(service, postgres_url, tmp_path) as running:
        result = subprocess.run(
            [
                schemathesis_command(),
                "--config-file",
                str(defaults),
                "--no-color",
                "run",
                str(REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"),
                "--url",
                running.url,
                "--header",
                f"Authorization: {running.authorization}",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--report",
                "json",
                "--report-json-path",
                str(report),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    assert report.is_file(), result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(report.read_text())
    rejected = [f for f in summary["failures"] if f["code"] == "ST202"]
    assert rejected == [], result.stdout
    assert summary["failures"] == [], result.stdout
    assert summary["errors"] == [], result.stdout
    assert summary["complete"], result.stdout
    assert summary["operations"]["tested"] == summary["operations"]["total"], result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
