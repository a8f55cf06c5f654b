"""The Prometheus alerting rules of a deployment, from the contracts: for every queue a service
consumes (its AsyncAPI receive operations, through the topology `accord provision` applies) an
alert on its dead-letter queue and one on its consumers' lag; for every service that publishes
events (through the transactional outbox) one on its oldest unpublished row; and for every
service one on its rate of 5xx answers. The series are those of `services.kit.metrics`, which
every service answers at `/metrics`; `accord deploy render --format prometheus-rules` renders
them, committed as `deploy/prometheus-rules.yml` and checked by `promtool check rules`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yaml

from harness.deploy.services import ServiceBus
from services.kit.topology import Topology

HEADER: Final = (
    "# Prometheus alerting rules, generated from the contracts by\n"
    "# `accord deploy render --format prometheus-rules`: do not edit, re-render.\n"
)


@dataclass(frozen=True)
class Thresholds:
    """When each alert fires (the defaults are the committed rules')."""

    # A dead letter is a message no consumer will handle until someone looks at it.
    dead_letters_for: str = "1m"  # the depth is sampled every 15 s
    # The 95th percentile of the messages' age when received, over 5 minutes.
    lag_seconds: int = 120
    lag_for: str = "10m"
    # The oldest outbox row not yet published to SNS.
    outbox_age_seconds: int = 300
    outbox_for: str = "5m"
    # The share of a service's answers that are 5xx, over 5 minutes.
    error_ratio: float = 0.05
    errors_for: str = "5m"


def runbook_dlq(queue: str) -> str:
    return (
        f"`accord dlq list {queue}` shows each dead letter with its reason and receive count "
        f"(`accord dlq show {queue} MESSAGE_ID` one in full); fix the cause (a consumer bug, "
        f"an invalid event from a producer, a dependency that was down), then `accord dlq "
        f"redrive {queue}` sends them back to be handled. The consumers are idempotent: a "
        f"redriven event already applied is absorbed."
    )


def _rule(alert: str, expr: str, duration: str, labels: dict[str, str], **notes: str) -> Any:
    return {"alert": alert, "expr": expr, "for": duration, "labels": labels, "annotations": notes}


def queue_rules(
    buses: tuple[ServiceBus, ...], topology: Topology, named: Topology, limits: Thresholds
) -> list[Any]:
    """The dead-letter and lag alerts of every consumed queue (`named`: as deployed, prefixed)."""
    real = {
        queue.name: deployed.name
        for queue, deployed in zip(topology.queues, named.queues, strict=True)
    }
    with_dead_letters = {q.name for q in topology.queues if q.dead_letter_queue is not None}
    rules = []
    for bus in buses:
        for declared in bus.consumes:
            queue = real[declared]
            labels = {"service": bus.service, "queue": queue}
            if declared in with_dead_letters:
                rules.append(
                    _rule(
                        "AccordDeadLetterQueueNotEmpty",
                        f'max(accord_dead_letter_queue_visible_messages{{queue="{queue}"}}) > 0',
                        limits.dead_letters_for,
                        {"severity": "warning", **labels},
                        summary=f"{queue} has dead letters",
                        description=(
                            "{{ $value }} message(s) in the dead-letter queue of "
                            f"{queue}: the {bus.service} service gave up on them (an invalid "
                            "message, no handler, or a handler that failed on every receive)."
                        ),
                        runbook=runbook_dlq(queue),
                    )
                )
            bucket = f'accord_consumer_message_age_seconds_bucket{{queue="{queue}"}}'
            rules.append(
                _rule(
                    "AccordConsumerLagHigh",
                    f"histogram_quantile(0.95, sum by (le) (rate({bucket}[5m]))) "
                    f"> {limits.lag_seconds}",
                    limits.lag_for,
                    {"severity": "warning", **labels},
                    summary=f"the {bus.service} service is behind on {queue}",
                    description=(
                        "95% of the messages received from "
                        f"{queue} in the last 5 minutes were up to {{{{ $value | humanizeDuration "
                        f"}}}} old (more than {limits.lag_seconds} s): its consumers are too "
                        "few, slow, or retrying."
                    ),
                    runbook=(
                        f'Compare `accord_queue_visible_messages{{queue="{queue}"}}` with the '
                        "handling time (`accord_consumer_handling_duration_seconds`) and the "
                        "failures (`accord_consumer_messages_failed_total`); add consumer "
                        f"processes, or see the failing ones' logs. `accord dlq list {queue}` "
                        "shows what was given up on."
                    ),
                )
            )
    return rules


def outbox_rules(buses: tuple[ServiceBus, ...], limits: Thresholds) -> list[Any]:
    """The outbox alert of every service that publishes events."""
    return [
        _rule(
            "AccordOutboxStuck",
            f'max(accord_outbox_oldest_pending_age_seconds{{service="{bus.service}"}}) '
            f"> {limits.outbox_age_seconds}",
            limits.outbox_for,
            {"severity": "critical", "service": bus.service},
            summary=f"the {bus.service} service's events are not reaching SNS",
            description=(
                f"The oldest outbox row of the {bus.service} service has waited "
                "{{ $value | humanizeDuration }} to be published to "
                f"{', '.join(bus.publishes)} (more than {limits.outbox_age_seconds} s): "
                "its relay cannot publish (SNS unreachable or refusing, credentials, "
                "throttling) or is not running. Nothing is lost: the rows stay until published."
            ),
            runbook=(
                f"See the {bus.service} service's log (`accord.outbox`) for the publish errors "
                f'and `accord_outbox_pending_rows{{service="{bus.service}"}}` for the backlog; '
                "once SNS accepts them the relay publishes every pending row by itself."
            ),
        )
        for bus in buses
        if bus.publishes
    ]


def error_rules(services: tuple[str, ...], limits: Thresholds) -> list[Any]:
    """The 5xx alert of every service."""
    rules = []
    for service in services:
        answers = f'accord_http_request_duration_seconds_count{{service="{service}"'
        failed = f'sum(rate({answers},status=~"5.."}}[5m]))'
        rules.append(
            _rule(
                "AccordHttpErrorsHigh",
                f"{failed} / sum(rate({answers}}}[5m])) > {limits.error_ratio}",
                limits.errors_for,
                {"severity": "critical", "service": service},
                summary=f"the {service} service answers many 5xx",
                description=(
                    f"{{{{ $value | humanizePercentage }}}} of the {service} service's answers "
                    f"in the last 5 minutes were 5xx (more than {limits.error_ratio:.0%}). "
                    "A 503 names an unavailable dependency (database, auth service); a 500 "
                    "is a bug."
                ),
                runbook=(
                    f"Break it down by operation: `sum by (operation, status) (rate({answers},"
                    'status=~"5.."}[5m]))`; check `/health/ready` of the service, which names '
                    "the dependency that is down, and its log for the errors."
                ),
            )
        )
    return rules


def build_rules(
    services: tuple[str, ...],
    buses: tuple[ServiceBus, ...],
    topology: Topology,
    prefix: str = "",
    limits: Thresholds | None = None,
) -> dict[str, Any]:
    """The rule groups: queues, outbox, HTTP."""
    limits = limits or Thresholds()
    named = topology.with_prefix(prefix)
    groups = [
        {"name": "accord-queues", "rules": queue_rules(buses, topology, named, limits)},
        {"name": "accord-outbox", "rules": outbox_rules(buses, limits)},
        {"name": "accord-http", "rules": error_rules(services, limits)},
    ]
    return {"groups": [group for group in groups if group["rules"]]}


def render(rules: dict[str, Any]) -> str:
    """The rules as YAML, in the order built, so that the same contracts render the same text."""
    return HEADER + yaml.safe_dump(rules, sort_keys=False, width=100, allow_unicode=True)
