"""The adapters on their own: the Jinja2 composer, the SMTP sender against a real server, and
the auth service's role directory over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import given
from hypothesis import strategies as st

from services.kit.auth_client import AuthClient, ClientPolicy
from services.notification.api import decode_cursor, encode_cursor
from services.notification.domain import (
    EmailDeliveryError,
    NotificationType,
    OutgoingEmail,
    Position,
    RolesUnavailableError,
    action_link,
)
from services.notification.mail import SmtpConfig, SmtpEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.roles import AuthServiceRoleDirectory
from tests.notification.support import MailServer, free_port

EXPIRES = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


# --- links and templates --------------------------------------------------------------------


def test_links_put_the_token_in_the_query_under_the_base_url() -> None:
    assert (
        action_link("https://a.example/app/", NotificationType.EMAIL_VERIFICATION, "vt_a b&c")
        == "https://a.example/app/verify-email?token=vt_a+b%26c"
    )
    assert (
        action_link("http://127.0.0.1:3001", NotificationType.PASSWORD_RESET, "rt_x")
        == "http://127.0.0.1:3001/reset-password?token=rt_x"
    )


@pytest.mark.parametrize("kind", list(NotificationType))
def test_each_notification_renders_a_text_and_an_html_part_with_the_link(
    kind: NotificationType,
) -> None:
    link = action_link("https://a.example", kind, "tok_123456789012345")
    email = JinjaEmailComposer().compose(
        kind, to="ada@example.com", link=link, expires_at=EXPIRES, reference="r-1"
    )
    assert email.to == "ada@example.com"
    assert email.reference == "r-1"
    for part in (email.text, email.html):
        assert link in part
        assert "2026-11-25 10:30 UTC" in part
    assert email.html.lstrip().startswith("<!DOCTYPE html>")
    assert "<" not in email.text


def test_html_is_escaped_and_text_is_left_as_it_is() -> None:
    hostile = '"><script>alert(1)</script>@example.com'
    link = 'https://a.example/verify-email?token=a&b="c"'
    email = JinjaEmailComposer().compose(
        NotificationType.EMAIL_VERIFICATION,
        to=hostile,
        link=link,
        expires_at=EXPIRES,
        reference="r",
    )
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert 'href="https://a.example/verify-email?token=a&amp;b=&#34;c&#34;"' in email.html
    assert hostile in email.text
    assert link in email.text


# --- SMTP -----------------------------------------------------------------------------------


async def test_the_smtp_sender_delivers_a_multipart_message_with_a_stable_message_id(
    mail_server: MailServer,
) -> None:
    sender = SmtpEmailSender(
        SmtpConfig("127.0.0.1", mail_server.port, "none", "Accord <no-reply@accord.test>")
    )
    email = OutgoingEmail("ada@example.com", "Hello", "plain body\n", "<p>html body</p>\n", "ev-1")
    await sender.send(email)
    await sender.send(email)

    first, second = mail_server.messages
    assert first.mail_from == "no-reply@accord.test"
    assert first.recipients == ["ada@example.com"]
    assert first.message["Message-ID"] == second.message["Message-ID"] == "<ev-1@accord.test>"
    assert first.message["Auto-Submitted"] == "auto-generated"
    assert first.part("plain").splitlines() == ["plain body"]
    assert first.part("html").splitlines() == ["<p>html body</p>"]
    assert await sender.ping()


async def test_the_smtp_sender_reports_a_server_that_is_down() -> None:
    sender = SmtpEmailSender(
        SmtpConfig("127.0.0.1", free_port(), "none", "a@accord.test", timeout=1.0)
    )
    with pytest.raises(EmailDeliveryError, match="did not accept"):
        await sender.send(OutgoingEmail("ada@example.com", "s", "t", "h", "r"))
    assert not await sender.ping()


class _Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret", handled=False)


@pytest.fixture
def authenticating_server() -> Iterator[tuple[MailServer, _Authenticator]]:
    server = MailServer()
    authenticator = _Authenticator()
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        authenticator=authenticator,
        auth_require_tls=False,  # a test server on the loopback interface
    )
    controller.start()
    try:
        yield server, authenticator
    finally:
        controller.stop()


async def test_the_smtp_sender_logs_in_with_the_configured_credentials(
    authenticating_server: tuple[MailServer, _Authenticator],
) -> None:
    server, authenticator = authenticating_server
    good = SmtpConfig(
        "127.0.0.1", server.port, "none", "a@accord.test", username="accord", password="s3cret"
    )
    await SmtpEmailSender(good).send(OutgoingEmail("ada@example.com", "s", "t", "h", "r"))
    assert authenticator.logins == [(b"accord", b"s3cret")]
    assert len(server.messages) == 1

    bad = SmtpConfig(
        "127.0.0.1", server.port, "none", "a@accord.test", username="accord", password="nope"
    )
    with pytest.raises(EmailDeliveryError):
        await SmtpEmailSender(bad).send(OutgoingEmail("ada@example.com", "s", "t", "h", "r"))
    assert len(server.messages) == 1


# --- the auth service's roles ---------------------------------------------------------------


class AuthService:
    """`getUserRoles` as the auth service answers it, scripted per call."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def directory(auth: AuthService, **options: float) -> AuthServiceRoleDirectory:
    http = httpx.AsyncClient(transport=httpx.MockTransport(auth), base_url="http://auth.test/")
    policy = ClientPolicy(timeout=2.0, retries=1, **options)
    client = AuthClient.over(http, policy, service_api_key="service-key-0123456789")
    return AuthServiceRoleDirectory(client)


def roles_body(user_id: str, *roles: str) -> httpx.Response:
    return httpx.Response(200, json={"userId": user_id, "roles": list(roles)})


async def test_roles_come_from_the_auth_service_with_the_service_key_and_are_cached() -> None:
    user = str(uuid.uuid4())
    auth = AuthService(roles_body(user, "user", "admin"))
    roles = directory(auth)

    assert await roles.roles(user) == {"user", "admin"}
    assert await roles.roles(user) == {"user", "admin"}

    [request] = auth.requests
    assert request.url == f"http://auth.test/api/v1/auth/users/{user}/roles"
    assert request.headers["x-api-key"] == "service-key-0123456789"


async def test_an_unknown_user_has_no_roles() -> None:
    auth = AuthService(httpx.Response(404, json={"title": "Not found", "status": 404}))
    assert await directory(auth).roles(str(uuid.uuid4())) == frozenset()
    assert await directory(auth).roles("not-a-uuid") == frozenset()
    assert len(auth.requests) == 1


async def test_a_transient_failure_is_retried_once() -> None:
    user = str(uuid.uuid4())
    auth = AuthService(httpx.ConnectError("refused"), roles_body(user, "admin"))
    assert await directory(auth).roles(user) == {"admin"}
    assert len(auth.requests) == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(503),
        httpx.Response(401),
        httpx.Response(200, json={"roles": "admin"}),
    ],
    ids=["refused", "timeout", "503", "key refused", "off contract"],
)
async def test_when_the_auth_service_cannot_answer_the_roles_are_unavailable(
    answer: httpx.Response | Exception,
) -> None:
    with pytest.raises(RolesUnavailableError):
        await directory(AuthService(answer), cache_seconds=0).roles(str(uuid.uuid4()))


# --- cursors --------------------------------------------------------------------------------


@given(
    created_at=st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
    entry_id=st.uuids(),
)
def test_a_cursor_gives_back_its_position(created_at: datetime, entry_id: uuid.UUID) -> None:
    position = Position(created_at, entry_id)

    assert decode_cursor(encode_cursor(position)) == position
