"""The docs pages of each service (`harness/stack/docs.py`), rendered from the contract files:
the AsyncAPI page at `/docs/events` (markdown rendered, messages linked and with their message
attributes) and Swagger UI at `/docs` (no raw markdown in its server dropdown). Over plain HTTP,
then in a headless Chromium."""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, expect

from harness.authoring.contracts import Resolver
from harness.stack.docs import asyncapi_page, docs_app, inline_refs, markdown_plain
from tests.browser import chromium_page, serving
from tests.conftest import REPOSITORY

CONTRACTS = REPOSITORY / "contracts"
SERVICES = ("auth-service", "user-service", "notification-service")


def contract(path: Path) -> dict[str, Any]:
    """A contract with its `$ref`s followed."""
    resolver = Resolver()
    data: dict[str, Any] = inline_refs(resolver, path, resolver.document(path).data)
    return data


def declared_attributes(service: str) -> dict[str, list[str]]:
    """Each message its AsyncAPI document carries, with the message attributes it declares."""
    declared: dict[str, list[str]] = {}
    for channel in (contract(CONTRACTS / "asyncapi" / f"{service}.yaml")["channels"]).values():
        for message in (channel.get("messages") or {}).values():
            declared[message["name"]] = list((message.get("headers") or {}).get("properties", {}))
    return declared


class Anchors(HTMLParser):
    """The ids of a page and the links within it (`href="#…"`)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.fragments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        href = values.get("href") or ""
        if tag == "a" and href.startswith("#"):
            self.fragments.append(href[1:])


def docs_for(service: str) -> FastAPI:
    """A service's docs mounted at `/docs`, as `accord up` mounts them."""
    app = FastAPI()
    app.mount(
        "/docs",
        docs_app(
            CONTRACTS / "openapi" / f"{service}.yaml", CONTRACTS / "asyncapi" / f"{service}.yaml"
        ),
    )
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        return await http.get(path)


def test_markdown_becomes_the_words_a_reader_sees() -> None:
    assert markdown_plain("Local development (`accord up`).") == "Local development (accord up)."
    assert markdown_plain("**Staging**, see [the runbook](https://example.com/r)\nfor *keys*") == (
        "Staging, see the runbook for keys"
    )
    assert markdown_plain("one\n\ntwo") == "one two"


@pytest.mark.parametrize("service", SERVICES)
async def test_swagger_ui_is_given_server_descriptions_without_markdown(service: str) -> None:
    app = docs_for(service)
    shown = (await get(app, "/docs/swagger-ui.json")).json()
    verbatim = (await get(app, "/docs/openapi.json")).json()
    page = await get(app, "/docs/")
    original = Resolver().document(CONTRACTS / "openapi" / f"{service}.yaml").data

    assert verbatim == original  # the contract as it is, as JSON
    assert '"/docs/swagger-ui.json"' in page.text
    assert shown["paths"] == original["paths"]
    for server, before in zip(shown["servers"], original["servers"], strict=True):
        assert server["url"] == before["url"]
        assert server["description"] == markdown_plain(before["description"])
        assert "`" not in server["description"]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_link_within_an_event_page_leads_to_a_section_of_it(service: str) -> None:
    page = await get(docs_for(service), "/docs/events")
    anchors = Anchors()
    anchors.feed(page.text)

    assert page.status_code == 200
    assert set(anchors.fragments) <= anchors.ids
    for name in declared_attributes(service):
        assert f"message-{name}" in anchors.ids
        assert anchors.fragments.count(f"message-{name}") >= 3  # contents, channel, operation


async def test_the_event_page_links_the_docs_of_every_service() -> None:
    services = {
        "auth": "http://127.0.0.1:3001/docs",
        "user": "http://127.0.0.1:3002/docs",
    }
    app = FastAPI()
    app.mount(
        "/docs",
        docs_app(
            CONTRACTS / "openapi/user-service.yaml",
            CONTRACTS / "asyncapi/user-service.yaml",
            services=services,
        ),
    )

    events = await get(app, "/docs/events")
    swagger = await get(app, "/docs/")

    assert '<a href="/docs/">HTTP API (Swagger UI)</a>' in events.text
    for url in services.values():
        assert f'<a href="{url}/">API</a>' in events.text
        assert f'<a href="{url}/events">events</a>' in events.text
        assert f'<a href="{url}/">API</a>' in swagger.text


def test_descriptions_are_markdown_and_html_in_them_stays_text(tmp_path: Path) -> None:
    document = tmp_path / "events.yaml"
    document.write_text(
        textwrap.dedent(
            """\
            asyncapi: 3.0.0
            info:
              title: Example
              version: 1.0.0
              description: |
                Sends `thing.done` (see [the guide](https://example.com/guide)).
                <script>alert(1)</script> [bad](javascript:alert(1))
            channels:
              things:
                address: things
                messages:
                  Done:
                    $ref: '#/components/messages/Done'
            operations:
              sendDone:
                action: send
                channel:
                  $ref: '#/channels/things'
                messages:
                  - $ref: '#/channels/things/messages/Done'
            components:
              messages:
                Done:
                  description: A thing is **done**.
                  headers:
                    type: object
                    allOf:
                      - properties:
                          eventType:
                            type: string
                            description: Equal to the payload's `eventType`.
                    required: [eventType]
                  payload:
                    type: object
                    properties:
                      id: {type: string, format: uuid}
                  bindings:
                    sqs:
                      bindingVersion: 0.2.0
            """
        ),
        encoding="utf-8",
    )

    page = asyncapi_page(document)
    anchors = Anchors()
    anchors.feed(page)

    assert "<code>thing.done</code>" in page
    assert '<a href="https://example.com/guide">the guide</a>' in page
    assert "<strong>done</strong>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert 'href="javascript:' not in page
    assert "message-Done" in anchors.ids  # a message without a name is anchored by its key
    assert anchors.fragments.count("message-Done") == 3
    assert "<td><code>eventType</code></td><td>required</td>" in page
    assert "Equal to the payload's <code>eventType</code>." in page
    assert "bindingVersion: 0.2.0" in page


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with chromium_page() as page:
        yield page


@pytest.mark.browser
async def test_the_event_page_renders_markdown_and_a_message_link_lands_on_the_message(
    page: Page,
) -> None:
    description = contract(CONTRACTS / "asyncapi/user-service.yaml")["info"]["description"]
    code = re.findall(r"`([^`]+)`", description)[0]
    async with serving(docs_for("user-service")) as site:
        await page.goto(f"{site}/docs/events")
        rendered = page.locator("body > .md").first.locator("code").get_by_text(code, exact=True)
        await expect(rendered.first).to_be_visible()

        operation = page.locator("#operation-receiveUserEvents")
        await operation.get_by_role("link", name="user.deactivated").click()
        message = page.locator("section[id='message-user.deactivated']")
        await expect(message).to_be_in_viewport()
        target = await page.evaluate("document.querySelector(':target').id")
        raw_markdown = f"`{code}`" in await page.inner_text("body")

    assert page.url.endswith("/docs/events#message-user.deactivated")
    assert target == "message-user.deactivated"
    assert raw_markdown is False


@pytest.mark.browser
async def test_the_link_to_the_api_docs_opens_swagger_ui_with_plain_server_descriptions(
    page: Page,
) -> None:
    original = Resolver().document(CONTRACTS / "openapi/auth-service.yaml").data
    async with serving(docs_for("auth-service")) as site:
        await page.goto(f"{site}/docs/events")
        await page.get_by_role("link", name="HTTP API (Swagger UI)").click()
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            original["info"]["title"]
        )
        servers = await page.locator(".servers select option").all_inner_texts()

    assert page.url == f"{site}/docs/"
    assert servers == [
        f"{server['url']} - {markdown_plain(server['description'])}"
        for server in original["servers"]
    ]
    assert not any("`" in server for server in servers)


@pytest.mark.browser
async def test_every_message_lists_the_message_attributes_its_contract_declares(
    page: Page,
) -> None:
    for service in SERVICES:
        declared = declared_attributes(service)
        async with serving(docs_for(service)) as site:
            await page.goto(f"{site}/docs/events")
            for name, attributes in declared.items():
                table = page.locator(f"section[id='message-{name}'] .attributes table")
                assert attributes, f"{service}: {name} declares no message attributes"
                for attribute in attributes:
                    cell = table.locator("td code", has_text=attribute).first
                    await expect(cell).to_be_visible()
            shown = await page.locator("section.message").count()
        assert shown == len(declared), service
