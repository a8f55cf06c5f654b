"""Logs as JSON lines (`ACCORD_LOG_FORMAT=json`, `accord up --log-format json`): one object per
line with `time`, `level`, `logger`, `message`, the current `trace_id` and `span_id`, and where
the line knows them the `operation` (an operationId), `event_type`, `event_id`, `outcome`,
`status` and `duration_ms`.

No secret is ever written: every message (and traceback) is scrubbed of email addresses, bearer
and JSON Web Tokens, the auth service's opaque tokens (`rf_`, `vt_`, `rt_`…) and any
`password`/`token`/`secret` field, in either format (`Redacting`), as a last line of defence
behind code that does not log them in the first place.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Final

from opentelemetry import trace

# Fields a log call may pass in `extra=` that the JSON line carries.
FIELDS: Final = ("operation", "event_type", "event_id", "outcome", "status", "duration_ms")

_SECRETS: Final = (
    # email addresses
    (re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "<email>"),
    # JSON Web Tokens (three base64url parts, the first a JSON header: `eyJ`)
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "<token>"),
    # the auth service's opaque tokens: refresh, verification, reset (`services/auth/domain.py`)
    (re.compile(r"\b(?:rf|vt|rt)_[A-Za-z0-9_-]{16,}"), "<token>"),
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+"), r"\1 <token>"),
    # `password=…`, `"token": "…"`, `secret: …`
    (
        re.compile(
            r"(?i)(\"?\b(?:\w*password|\w*token|secret|api[_-]?key|authorization)\"?\s*[=:]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s,&}]+)"
        ),
        r"\1<redacted>",
    ),
)


def redact(text: str) -> str:
    """`text` without anything that looks like an email address, a token or a password."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redacting(logging.Formatter):
    """The plain format (`<time> <logger> <message>`), scrubbed of secrets (`redact`)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object per line, scrubbed of secrets (`redact`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        trace_id = getattr(record, "trace_id", None)
        span_id = getattr(record, "span_id", None)
        if trace_id is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                trace_id = format(context.trace_id, "032x")
                span_id = format(context.span_id, "016x")
        if trace_id is not None:
            entry["trace_id"] = trace_id
            entry["span_id"] = span_id
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
