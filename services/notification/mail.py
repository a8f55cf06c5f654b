"""`EmailSender` adapters: SMTP (aiosmtplib; plain, STARTTLS or implicit TLS, optional login)
and a recording sender that keeps what it was given (tests, runs without a mail server).

Each email is one `multipart/alternative` message (plain text, then HTML) whose Message-ID is
built from the event id, so a copy re-sent after a crash can be recognised as the same mail.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Literal

import aiosmtplib

from services.notification.domain import EmailDeliveryError, OutgoingEmail

TlsMode = Literal["none", "starttls", "tls"]


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server, and whom the emails are from."""

    host: str
    port: int
    tls: TlsMode
    from_address: str
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    validate_certs: bool = True


def build_message(email: OutgoingEmail, from_address: str) -> EmailMessage:
    """The MIME message for `email`: text and HTML alternatives, stable Message-ID."""
    _, address = parseaddr(from_address)
    domain = address.rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{email.reference}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class SmtpEmailSender:
    """Sends each email over its own SMTP connection (aiosmtplib)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        # EHLO names this host; `socket.getfqdn()` (aiosmtplib's default) may wait on DNS.
        self._local_hostname = socket.gethostname() or "localhost"

    def _client(self, timeout: float) -> aiosmtplib.SMTP:
        config = self.config
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == "tls",
            # False, not None: "none" must never upgrade (or fail) opportunistically.
            start_tls=config.tls == "starttls",
            validate_certs=config.validate_certs,
            username=config.username,
            password=config.password,
            timeout=timeout,
            local_hostname=self._local_hostname,
        )

    async def send(self, email: OutgoingEmail) -> None:
        message = build_message(email, self.config.from_address)
        client = self._client(self.config.timeout)
        try:
            # The timeout bounds each SMTP command; this bounds the whole conversation, so that
            # a claim's lease (a few times this) never lapses while a send is still under way.
            async with asyncio.timeout(self.config.timeout * 2):
                async with client:
                    await client.send_message(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise EmailDeliveryError(
                f"the SMTP server {self.config.host}:{self.config.port} did not accept the "
                f"email: {type(error).__name__}: {error}"
            ) from error

    async def ping(self) -> bool:
        client = self._client(timeout=2.0)
        try:
            async with asyncio.timeout(3.0):
                await client.connect()
                try:
                    await client.noop()
                finally:
                    await client.quit()
        except Exception:
            client.close()
            return False
        return True


class RecordingEmailSender:
    """Keeps every email it is given in `sent`; set `failure` to make it refuse them."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.failure: Exception | None = None

    async def send(self, email: OutgoingEmail) -> None:
        if self.failure is not None:
            raise EmailDeliveryError(f"the recording sender refuses: {self.failure}")
        self.sent.append(email)

    async def ping(self) -> bool:
        return self.failure is None
