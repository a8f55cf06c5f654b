"""The parts of `accord up` on their own: port checks, the docs pages, the mailbox."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import httpx
import pytest

from harness.project import Project
from harness.stack.docs import docs_app
from harness.stack.smtp import SmtpSink, mail_app
from harness.stack.up import PortInUseError, StackConfig, check_ports
from tests.conftest import REPOSITORY


def test_a_port_in_use_is_a_clear_error_naming_the_port_and_its_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = StackConfig(project=Project.load(REPOSITORY))
        config.ports = {**config.ports, "user": port}

        with pytest.raises(PortInUseError) as refused:
            check_ports(config)

    assert str(refused.value) == (
        f"port {port} (user service) is already in use on 127.0.0.1; "
        "stop what uses it or choose another port with --user-port"
    )


def test_the_same_port_for_two_parts_is_refused() -> None:
    config = StackConfig(project=Project.load(REPOSITORY))
    config.ports = {**config.ports, "mail": config.ports["smtp"]}

    with pytest.raises(PortInUseError, match="given to both the SMTP sink and the mailbox"):
        check_ports(config)


async def test_swagger_ui_and_the_event_docs_are_served_from_the_contract_files() -> None:
    contracts = REPOSITORY / "contracts"
    app = docs_app(
        contracts / "openapi/user-service.yaml", contracts / "asyncapi/user-service.yaml"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        page = await http.get("/")
        script = await http.get("/static/swagger-ui-bundle.js")
        spec = await http.get("/openapi.json")
        events = await http.get("/events")

    assert page.status_code == 200
    assert "/docs/openapi.json" in page.text
    assert script.status_code == 200
    assert len(script.content) > 100_000  # the bundle itself, served locally
    assert spec.json()["info"]["title"] == "Accord user service"
    assert "listUsers" in spec.text
    assert events.status_code == 200
    assert "user.created" in events.text
    assert "accord-user-service" in events.text


async def test_the_mailbox_keeps_what_the_smtp_sink_receives_with_its_links() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SmtpSink("127.0.0.1", port)
    sink.start()
    try:
        message = EmailMessage()
        message["From"] = "no-reply@accord.localhost"
        message["To"] = "ada@example.com"
        message["Subject"] = "Verify your email"
        message.set_content("Open http://127.0.0.1:8025/verify-email?token=abc to verify.")
        message.add_alternative(
            '<a href="http://127.0.0.1:8025/verify-email?token=abc">verify</a>', subtype="html"
        )
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
    finally:
        sink.stop()

    app = mail_app(sink.mailbox)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        [mail] = (await http.get("/api/messages")).json()
        page = await http.get("/")

    assert mail["recipients"] == ["ada@example.com"]
    assert mail["subject"] == "Verify your email"
    assert mail["links"] == ["http://127.0.0.1:8025/verify-email?token=abc"]
    # the page carries the messages for its script, which renders them (test_mailbox_page.py)
    assert '"http://127.0.0.1:8025/verify-email?token=abc"' in page.text
