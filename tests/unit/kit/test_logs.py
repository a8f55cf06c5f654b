"""JSON log lines (`services/kit/logs.py`): the fields, the current trace, and no secret."""

from __future__ import annotations

import json
import logging

from services.kit.logs import JsonLines, redact
from services.kit.tracing import continuing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def line(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("accord.user", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    decoded: dict[str, object] = json.loads(JsonLines().format(record))
    return decoded


def test_a_json_line_carries_the_current_trace_and_the_event_it_is_about() -> None:
    with continuing(f"00-{TRACE}-00f067aa0ba902b7-01"):
        logged = line("handled %s", "user.created", event_type="user.created", outcome="handled")

    assert logged["message"] == "handled user.created"
    assert (logged["level"], logged["logger"]) == ("INFO", "accord.user")
    assert (logged["trace_id"], logged["span_id"]) == (TRACE, "00f067aa0ba902b7")
    assert (logged["event_type"], logged["outcome"]) == ("user.created", "handled")


def test_no_email_token_or_password_survives_a_log_line() -> None:
    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    text = (
        f"ada.lovelace+x@example.co.uk sent Bearer {jwt} with token=vt_{'a' * 43} "
        f'and {{"password": "correct-horse", "refreshToken": "rf_{"b" * 43}"}}'
    )

    scrubbed = redact(text)

    for secret in ("ada.lovelace", "example.co.uk", jwt, "vt_aaaa", "correct-horse", "rf_bbbb"):
        assert secret not in scrubbed
    assert line("%s", text)["message"] == scrubbed
