"""The SMTP sink of the local stack: an SMTP server (aiosmtpd) that keeps every message it
receives, readable as JSON at `GET /api/messages` and as a web page with clickable links."""

from __future__ import annotations

import email
import email.policy
import html
import itertools
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._ids = itertools.count(1)

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
                received_at=datetime.now(UTC).isoformat(),
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


def mail_app(mailbox: Mailbox, auth_url: str | None = None) -> FastAPI:
    """The sink's HTTP face: `GET /api/messages` (JSON), `DELETE /api/messages`, and `/`.

    With `auth_url`, it also stands in for the front end the emails link to, through the auth
    service's API. Mail scanners open links to look at them, so opening one spends nothing:
    `/verify-email?token=…` shows a button, and only its POST confirms the address;
    `/reset-password?token=…` checks the token without spending it (`checkPasswordReset`)
    and shows the new-password form only when the token is still usable.
    """
    app = FastAPI(title="Accord SMTP sink", docs_url=None, redoc_url=None, openapi_url=None)

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
    async def page() -> str:
        rows = "".join(_render(mail) for mail in reversed(mailbox.all()))
        return PAGE.format(count=len(mailbox.all()), rows=rows or "<p class=empty>No mail yet.</p>")

    return app


def _render(mail: ReceivedMail) -> str:
    body = html.escape(mail.text or "")
    for link in mail.links:
        escaped = html.escape(link)
        body = body.replace(escaped, f'<a href="{escaped}">{escaped}</a>')
    return (
        f"<article><h2>{html.escape(mail.subject)}</h2>"
        f"<p class=meta>#{mail.id} · to {html.escape(', '.join(mail.recipients))} · "
        f"from {html.escape(mail.mail_from)} · {html.escape(mail.received_at)}</p>"
        f"<pre>{body}</pre></article>"
    )


SIMPLE = """<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>
<meta name=referrer content=no-referrer>
<style>body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; }}</style>
</head><body><h1>{title}</h1><div>{body}</div>
<p><a href="/">back to the mailbox</a></p></body></html>
"""

PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>Accord mail ({count})</title>
<meta http-equiv=refresh content=5>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }}
article {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem; margin: 1rem 0; }}
.meta {{ color: #666; font-size: 13px; }} pre {{ white-space: pre-wrap; }}
.empty {{ color: #666; }}
</style></head>
<body><h1>Accord mail</h1><p class=meta>{count} messages · JSON at
<a href="/api/messages">/api/messages</a> · refreshes every 5 s</p>{rows}</body></html>
"""
