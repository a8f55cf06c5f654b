"""JSON logs (`ACCORD_LOG_FORMAT=json`, `accord up --log-format json`) of the README
walk-through, run against the whole platform: one JSON object per line with trace and event ids,
and not one of the walk-through's email addresses, passwords or tokens in any line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest

from services.kit.logs import JsonLines
from services.kit.startup import QUIET_LOGGERS
from tests.conftest import REPOSITORY
from tests.e2e.support import StartStack

pytestmark = pytest.mark.emulator

PASSWORDS = ("correct-horse-battery-staple", "a-brand-new-passphrase")
TOKEN_SHAPES = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.|\b(?:rf|vt|rt)_[A-Za-z0-9_-]{16,}")


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of the process, as `configure_logging(log_format="json")` writes it."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    level = root.level
    # Quiet as `accord up` makes them (`configure_logging`): the SMTP sink's own log, which
    # tells the addresses it receives for, is not the services'.
    quiet = [logging.getLogger(name) for name in (*QUIET_LOGGERS, "werkzeug", "mail.log")]
    levels = [logger.level for logger in quiet]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for logger, before in zip(quiet, levels, strict=True):
            logger.setLevel(before)


async def test_the_walkthroughs_json_logs_carry_trace_and_event_ids_and_no_secret(
    start_stack: StartStack,
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    readme = (REPOSITORY / "README.md").read_text()
    block = readme.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    script = block.strip().removeprefix("```sh").removesuffix("```")

    with json_logs() as logs:
        stack = await start_stack()
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            env={
                "PATH": "/usr/bin:/bin:/usr/local/bin",
                "AUTH": stack.config.url("auth"),
                "USERS": stack.config.url("user"),
                "MAIL": stack.config.url("mail"),
                "GATEWAY": stack.config.url("gateway"),
                "EMAIL": email,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        await asyncio.sleep(1)  # the last events' consumers log as they finish
    assert process.returncode == 0, output.decode()
    assert stack.sink is not None
    mails = stack.sink.mailbox.all()
    tokens = {
        value
        for mail in mails
        for link in mail.links
        for value in parse_qs(urlsplit(link).query).get("token", [])
    }
    assert len(tokens) == 2  # the verification and the reset token

    lines = logs.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) > 20
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
    for line in lines:
        for secret in (email, *PASSWORDS, *tokens):
            assert secret not in line
        assert "@example.com" not in line
        assert TOKEN_SHAPES.search(line) is None, line
        # Nor did the formatter have to hide any: no code logged one in the first place.
        assert "<email>" not in line
        assert "<token>" not in line

    registered = [r for r in records if r.get("operation") == "registerUser"]
    assert registered
    assert registered[0]["status"] == 201
    assert re.fullmatch(r"[0-9a-f]{32}", registered[0]["trace_id"])
    handled = [
        r
        for r in records
        if r.get("event_type") == "user.created" and r.get("outcome") == "handled"
    ]
    assert handled
    assert handled[0]["trace_id"] == registered[0]["trace_id"]
    assert uuid.UUID(handled[0]["event_id"])
