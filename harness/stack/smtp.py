"""The SMTP sink of the local stack: an SMTP server (aiosmtpd) that keeps every message it
receives, readable as JSON at `GET /api/messages` and as a web page (the mailbox) that shows
each message as its recipient would see it and updates itself from that JSON."""

from __future__ import annotations

import email
import email.policy
import html
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from importlib import resources
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from harness.stack.console import add_console
from services.kit.tracing import SpanStore

LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the sink received it."""

    id: int
    received_at: str
    mail_from: str
    recipients: list[str]
    subject: str
    text: str | None
    html: str | None
    links: list[str] = field(default_factory=list)


class Mailbox:
    """Every message received, in order; safe to read while the SMTP thread writes."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._ids = itertools.count(1)
        self._clock = clock or (lambda: datetime.now(UTC))

    def add(self, mail_from: str, recipients: list[str], raw: bytes) -> ReceivedMail:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        text = text_part.get_content() if text_part is not None else None
        markup = html_part.get_content() if html_part is not None else None
        links = list(dict.fromkeys(LINK.findall(text or "") + LINK.findall(markup or "")))
        with self._lock:
            mail = ReceivedMail(
                id=next(self._ids),
                received_at=self._clock().astimezone(UTC).isoformat(timespec="milliseconds"),
                mail_from=mail_from,
                recipients=recipients,
                subject=str(parsed.get("Subject", "")),
                text=text,
                html=markup,
                links=links,
            )
            self._messages.append(mail)
        return mail

    def all(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        self.mailbox.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on `host:port` whose messages land in `mailbox`; it can be stopped and
    started again (to show that mail waits while the server is down) and keeps its mailbox."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.mailbox = Mailbox()
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(_Handler(self.mailbox), hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def mail_app(
    mailbox: Mailbox, auth_url: str | None = None, *, spans: SpanStore | None = None
) -> FastAPI:
    """The sink's HTTP face: `GET /api/messages` (JSON), `DELETE /api/messages`, and the
    mailbox at `/`: each message's HTML part as its recipient would see it (in a sandboxed
    frame: no scripts, links open in a new tab), its text part one click away, times in the
    reader's time zone, new messages added in place as `/api/messages` reports them.

    With `auth_url`, it also stands in for the front end the emails link to, through the auth
    service's API. Mail scanners open links to look at them, so opening one spends nothing:
    `/verify-email?token=…` shows a button, and only its POST confirms the address;
    `/reset-password?token=…` checks the token without spending it (`checkPasswordReset`)
    and shows the new-password form only when the token is still usable.

    It is the local console too: the event flow at `/events` and each trace at
    `/traces/{traceId}`, from `spans` (the stack's span store; an empty one when None), with
    their JSON under `/api/` (`harness/stack/console.py`).
    """
    app = FastAPI(title="Accord SMTP sink", docs_url=None, redoc_url=None, openapi_url=None)
    add_console(app, spans if spans is not None else SpanStore())

    async def call_auth(path: str, body: dict[str, str]) -> tuple[int, str]:
        import httpx

        if auth_url is None:
            return 503, "this mailbox was started without the auth service's URL"
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{auth_url}{path}", json=body)
        if response.status_code < 300:
            return response.status_code, "done"
        try:
            problem = response.json()
            return response.status_code, str(problem.get("detail") or problem.get("title"))
        except ValueError:
            return response.status_code, response.text

    async def form_field(request: Request, name: str) -> str:
        from urllib.parse import parse_qs

        return parse_qs((await request.body()).decode()).get(name, [""])[0]

    @app.get("/verify-email", response_class=HTMLResponse)
    async def verify_form(token: str = "") -> str:
        return SIMPLE.format(
            title="Email verification",
            body=(
                "<p>Confirm that this is your email address.</p>"
                '<form method=post action="/verify-email">'
                f'<input type=hidden name=token value="{html.escape(token)}">'
                "<button>Confirm my email address</button></form>"
            ),
        )

    @app.post("/verify-email", response_class=HTMLResponse)
    async def verify_email(request: Request) -> str:
        status, detail = await call_auth(
            "/api/v1/auth/email-verification/confirm", {"token": await form_field(request, "token")}
        )
        outcome = "Your email address is verified." if status < 300 else f"Not verified: {detail}"
        return SIMPLE.format(title="Email verification", body=html.escape(outcome))

    @app.get("/reset-password", response_class=HTMLResponse)
    async def reset_form(token: str = "") -> str:
        status, detail = await call_auth("/api/v1/auth/password-reset/check", {"token": token})
        if 400 <= status < 500:
            return SIMPLE.format(
                title="Password reset",
                body=html.escape(
                    "This link is already used or expired (or not valid): ask for a new "
                    "password-reset email."
                ),
            )
        if status >= 300:
            return SIMPLE.format(
                title="Password reset",
                body=html.escape(f"The link cannot be checked now; try again later. ({detail})"),
            )
        return SIMPLE.format(
            title="Choose a new password",
            body=(
                '<form method=post action="/reset-password">'
                f'<input type=hidden name=token value="{html.escape(token)}">'
                "<input type=password name=password minlength=12 required "
                'placeholder="at least 12 characters"> <button>Reset</button></form>'
            ),
        )

    @app.post("/reset-password", response_class=HTMLResponse)
    async def reset_password(request: Request) -> str:
        status, detail = await call_auth(
            "/api/v1/auth/password-reset/confirm",
            {
                "token": await form_field(request, "token"),
                "newPassword": await form_field(request, "password"),
            },
        )
        outcome = "Your password was changed." if status < 300 else f"Not changed: {detail}"
        return SIMPLE.format(title="Password reset", body=html.escape(outcome))

    @app.get("/api/messages")
    async def messages() -> list[dict[str, Any]]:
        return [asdict(mail) for mail in mailbox.all()]

    @app.delete("/api/messages", status_code=204)
    async def clear() -> None:
        mailbox.clear()

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        messages = [asdict(mail) for mail in mailbox.all()]
        # A JSON data block for the script; "<" escaped so that no text ends the element.
        initial = json.dumps(messages).replace("<", "\\u003c")
        return HTMLResponse(
            PAGE.format(count=len(messages), initial=initial),
            headers={"content-security-policy": MAILBOX_POLICY},
        )

    @app.get("/mailbox.js")
    async def mailbox_script() -> Response:
        return Response(
            MAILBOX_SCRIPT, media_type="text/javascript", headers={"cache-control": "no-cache"}
        )

    return app


SIMPLE = """<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>
<meta name=referrer content=no-referrer>
<style>body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; }}</style>
</head><body><h1>{title}</h1><div>{body}</div>
<p><a href="/">back to the mailbox</a></p></body></html>
"""

# The mailbox runs its own script only; an email's HTML is shown in a frame without scripts,
# and its styles (inline, as emails have them) are allowed, its images only when inline.
MAILBOX_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; form-action 'none'"
)

MAILBOX_SCRIPT = (resources.files("harness.stack") / "mailbox.js").read_text(encoding="utf-8")

PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>Accord mail ({count})</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<meta name=referrer content=no-referrer><link rel=icon href="data:,">
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
  padding: 0 1rem; color: #222; }}
[hidden] {{ display: none !important; }}
article {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem 1rem; margin: 1rem 0; }}
article.new {{ animation: arrived 2s ease-out; }}
@keyframes arrived {{ from {{ background: #fff6c8; }} to {{ background: transparent; }} }}
article h2 {{ margin: .75rem 0 0; font-size: 1.2rem; }}
.meta, .status {{ color: #666; font-size: 13px; }}
.views button {{ font: inherit; font-size: 13px; padding: 2px 10px; border: 1px solid #999;
  background: #fff; cursor: pointer; }}
.views button:first-child {{ border-radius: 4px 0 0 4px; }}
.views button:last-child {{ border-radius: 0 4px 4px 0; border-left: 0; }}
.views button[aria-pressed=true] {{ background: #333; color: #fff; border-color: #333; }}
.views button:disabled {{ color: #aaa; cursor: default; }}
iframe {{ display: block; width: 100%; height: 28rem; border: 1px solid #ddd;
  border-radius: 4px; margin-top: .75rem; resize: vertical; overflow: auto; background: #fff; }}
pre.text {{ white-space: pre-wrap; margin-top: .75rem; }}
.empty {{ color: #666; }}
.status.failing {{ color: #a00; }}
</style></head>
<body><h1>Accord mail</h1>
<p class=meta><span id=count>{count} messages</span> · JSON at
<a href="/api/messages">/api/messages</a> · new mail appears here as it arrives ·
<a href="/events">events and traces</a>
<span id=status class=status role=status></span></p>
<noscript><p>This page needs JavaScript to show the messages; they are also at
<a href="/api/messages">/api/messages</a>.</p></noscript>
<p id=empty class=empty hidden>No mail yet.</p>
<div id=messages></div>
<script type=application/json id=initial>{initial}</script>
<script src="/mailbox.js"></script>
</body></html>
"""
