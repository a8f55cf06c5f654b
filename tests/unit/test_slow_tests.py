"""The test run names a test that runs long, instead of minutes of silence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPOSITORY


def test_a_long_test_is_named_while_it_runs_and_a_short_one_is_not(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import time\n\n"
        "def test_takes_a_while():\n    time.sleep(1.6)\n\n"
        "def test_is_quick():\n    assert True\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "harness.conformance.fixtures",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env={**os.environ, "ACCORD_SLOW_TEST_SECONDS": "0.5", "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "… still running test_sample.py::test_takes_a_while" in run.stdout
    assert "test_is_quick" not in run.stdout
