"""What `accord diff` reports: a change, its severity, and the rule that names it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from harness.evolution.modes import Schema, backward_violations, forward_violations
from harness.evolution.rules import Rule, Violation


class Severity(StrEnum):
    """Whether a change can break a client or consumer that was built for the old contract."""

    BREAKING = "breaking"
    NON_BREAKING = "non-breaking"


class DiffRule(StrEnum):
    """Changes to a contract beyond its schemas (schema changes use `Rule`)."""

    DOCUMENT_ADDED = "document-added"
    DOCUMENT_REMOVED = "document-removed"
    OPERATION_ADDED = "operation-added"
    OPERATION_REMOVED = "operation-removed"
    PARAMETER_ADDED = "parameter-added"
    PARAMETER_REMOVED = "parameter-removed"
    PARAMETER_REQUIRED_ADDED = "parameter-required-added"
    PARAMETER_REQUIRED_REMOVED = "parameter-required-removed"
    REQUEST_BODY_ADDED = "request-body-added"
    REQUEST_BODY_REMOVED = "request-body-removed"
    REQUEST_BODY_REQUIRED_ADDED = "request-body-required-added"
    REQUEST_BODY_REQUIRED_REMOVED = "request-body-required-removed"
    MEDIA_TYPE_ADDED = "media-type-added"
    MEDIA_TYPE_REMOVED = "media-type-removed"
    RESPONSE_STATUS_ADDED = "response-status-added"
    RESPONSE_STATUS_REMOVED = "response-status-removed"
    SECURITY_TIGHTENED = "security-tightened"
    SECURITY_RELAXED = "security-relaxed"
    MESSAGE_ADDED = "message-added"
    MESSAGE_REMOVED = "message-removed"
    COMPATIBILITY_MODE_CHANGED = "compatibility-mode-changed"
    VERSION_NOT_BUMPED = "version-not-bumped"
    CHANNEL_ADDRESS_CHANGED = "channel-address-changed"
    OPERATION_MESSAGE_ADDED = "operation-message-added"
    OPERATION_MESSAGE_REMOVED = "operation-message-removed"
    RESPONSE_HEADER_ADDED = "response-header-added"
    RESPONSE_HEADER_REMOVED = "response-header-removed"
    RESPONSE_HEADER_REQUIRED_ADDED = "response-header-required-added"
    RESPONSE_HEADER_REQUIRED_REMOVED = "response-header-required-removed"
    MAJOR_VERSION_BUMPED = "major-version-bumped"
    SUBSCRIPTION_ADDED = "subscription-added"
    SUBSCRIPTION_REMOVED = "subscription-removed"
    FILTER_POLICY_NARROWED = "filter-policy-narrowed"
    FILTER_POLICY_WIDENED = "filter-policy-widened"


@dataclass(frozen=True)
class Change:
    """One difference between a contract and its version at the base ref.

    `pointer` points into the new document, or into the old one for what was removed.
    """

    document: str
    subject: str
    rule: str
    severity: Severity
    pointer: str
    message: str
    # Whom it reaches, when the document says so: the event types it concerns (their
    # receivers are reached) and services named outright (a receiver's own subscription).
    events: tuple[str, ...] = ()
    services: tuple[str, ...] = ()

    @property
    def breaking(self) -> bool:
        return self.severity is Severity.BREAKING

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        for key in ("events", "services"):
            if data[key]:
                data[key] = list(data[key])
            else:
                del data[key]
        return data


def schema_changes(
    document: str,
    subject: str,
    old: Schema,
    new: Schema,
    *,
    breaking: list[Violation],
    safe_because: str,
    extra_breaking: dict[Rule, str] | None = None,
    event: bool = False,
) -> list[Change]:
    """Every difference the compat engine sees between two schemas, with a severity.

    `breaking` are the violations that matter for the direction data flows (computed by the
    caller with the tolerant reading); every other difference found by the strict reading in
    either direction is listed as non-breaking (`safe_because` says why), unless its rule is a
    key of `extra_breaking`, whose value explains why it breaks anyway. `event`: the subject
    is an event type, whose receivers the changes reach.
    """
    extra = extra_breaking or {}
    found = {(v.rule, v.pointer): v for v in breaking}
    events = (subject,) if event else ()
    changes = [
        Change(document, subject, v.rule.value, Severity.BREAKING, v.pointer, v.message, events)
        for v in breaking
    ]
    for violation in [
        *backward_violations(old, new, strict=True),
        *forward_violations(old, new, strict=True),
    ]:
        key = (violation.rule, violation.pointer)
        if key in found:
            continue
        found[key] = violation
        if violation.rule in extra:
            severity, message = Severity.BREAKING, extra[violation.rule]
        else:
            # The keyword and the values, as the engine found them, and why it is safe.
            severity, message = Severity.NON_BREAKING, f"{violation.message}; {safe_because}"
        changes.append(
            Change(
                document,
                subject,
                violation.rule.value,
                severity,
                violation.pointer,
                message,
                events,
            )
        )
    return changes
