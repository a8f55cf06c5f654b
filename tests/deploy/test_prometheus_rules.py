"""`accord deploy render --format prometheus-rules`: the committed rules are what the contracts
render, promtool accepts them, and its rule unit tests show the alerts firing on the series the
services answer at `/metrics` (and not firing when all is well)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.project import Project
from tests.conftest import REPOSITORY

runner = CliRunner()
RULES = "deploy/prometheus-rules.yml"
PROMTOOL = os.environ.get("ACCORD_TEST_PROMTOOL") or shutil.which("promtool") or "promtool"


def render(project: Project, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app,
        ["deploy", "render", "--format", "prometheus-rules", "--root", str(project.root), *args],
    )
    return result.exit_code, result.stdout, result.stderr


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(PROMTOOL) is None:
        pytest.skip("no promtool: `apt-get install prometheus` (as .ci/run does)")
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_committed_rules_are_what_the_contracts_render(repository: Project) -> None:
    code, stdout, stderr = render(repository, "--check")

    assert (code, stderr) == (0, "")
    assert "matches the contracts" in stdout


def test_a_rules_file_that_drifted_is_named_with_the_command_that_fixes_it(
    project_copy: Project,
) -> None:
    (project_copy.root / "deploy").mkdir(exist_ok=True)
    (project_copy.root / RULES).write_text("groups: []\n", encoding="utf-8")

    code, _, stderr = render(project_copy, "--check")

    assert code == 1
    assert RULES in stderr
    assert "accord deploy render --format prometheus-rules" in stderr


def test_every_consumed_queue_gets_a_dead_letter_and_a_lag_alert_named_as_provisioned(
    repository: Project,
) -> None:
    code, stdout, _ = render(repository, "--prefix", "staging-")

    assert code == 0
    rules = [rule for group in yaml.safe_load(stdout)["groups"] for rule in group["rules"]]
    by_alert: dict[str, set[str]] = {}
    for rule in rules:
        by_alert.setdefault(rule["alert"], set()).add(
            rule["labels"].get("queue") or rule["labels"]["service"]
        )
    assert by_alert == {
        "AccordDeadLetterQueueNotEmpty": {
            "staging-accord-user-service",
            "staging-accord-notification-service",
        },
        "AccordConsumerLagHigh": {
            "staging-accord-user-service",
            "staging-accord-notification-service",
        },
        "AccordOutboxStuck": {"auth"},
        "AccordHttpErrorsHigh": {"auth", "user", "notification", "gateway"},
    }
    dead_letters = next(r for r in rules if r["alert"] == "AccordDeadLetterQueueNotEmpty")
    assert "accord dlq redrive staging-accord-" in dead_letters["annotations"]["runbook"]
    assert {rule["labels"]["severity"] for rule in rules} <= {"warning", "critical"}


def test_promtool_accepts_the_committed_rules() -> None:
    checked = promtool("check", "rules", str(REPOSITORY / RULES))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


# promtool's rule unit tests: series as the services expose them, and what should fire when.


def expected_annotations(
    rules: dict[str, Any], alert: str, label: str, **values: str
) -> dict[str, str]:
    """The annotations of the rule `alert` for `label` (its queue, else its service), with
    each template in `values` (`{{ $value | humanizeDuration }}` → `11m 0s`) expanded."""
    rule = next(
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule["alert"] == alert
        and label in (rule["labels"].get("queue"), rule["labels"]["service"])
    )
    expanded = {}
    for name, text in rule["annotations"].items():
        for template, value in values.items():
            text = text.replace(template, value)
        expanded[name] = text
    return expanded


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def test_promtool_rule_tests_fire_the_alerts_on_the_series_the_services_expose(
    tmp_path: Path,
) -> None:
    rules = yaml.safe_load((REPOSITORY / RULES).read_text(encoding="utf-8"))
    dead = "accord_dead_letter_queue_visible_messages"
    answers = "accord_http_request_duration_seconds_count"
    user_queue = "accord-user-service"
    tests = {
        "rule_files": [str(REPOSITORY / RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    series(dead, "0 0 1 1 1 1 1 1 1", queue=user_queue),
                    series(dead, "0x8", queue="accord-notification-service"),
                ],
                "alert_rule_test": [
                    # One sample above zero is not yet an alert (`for: 1m`).
                    {"eval_time": "45s", "alertname": "AccordDeadLetterQueueNotEmpty"},
                    {
                        "eval_time": "2m",
                        "alertname": "AccordDeadLetterQueueNotEmpty",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "service": "user",
                                    "queue": user_queue,
                                },
                                "exp_annotations": expected_annotations(
                                    rules,
                                    "AccordDeadLetterQueueNotEmpty",
                                    user_queue,
                                    **{"{{ $value }}": "1"},
                                ),
                            }
                        ],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    series("accord_outbox_oldest_pending_age_seconds", "0+60x12", service="auth")
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "AccordOutboxStuck"},
                    {
                        "eval_time": "11m",
                        "alertname": "AccordOutboxStuck",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "service": "auth"},
                                "exp_annotations": expected_annotations(
                                    rules,
                                    "AccordOutboxStuck",
                                    "auth",
                                    **{"{{ $value | humanizeDuration }}": "11m 0s"},
                                ),
                            }
                        ],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    series(
                        answers, "0+60x15", service="user", operation="getUserProfile", status="200"
                    ),
                    series(
                        answers, "0+30x15", service="user", operation="getUserProfile", status="503"
                    ),
                    # Another service answering well raises nothing.
                    series(answers, "0+60x15", service="auth", operation="loginUser", status="200"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "12m",
                        "alertname": "AccordHttpErrorsHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "service": "user"},
                                "exp_annotations": expected_annotations(
                                    rules,
                                    "AccordHttpErrorsHigh",
                                    "user",
                                    **{"{{ $value | humanizePercentage }}": "33.33%"},
                                ),
                            }
                        ],
                    },
                ],
            },
        ],
    }
    path = tmp_path / "rules.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")

    tested = promtool("test", "rules", str(path))

    assert tested.returncode == 0, tested.stdout + tested.stderr
