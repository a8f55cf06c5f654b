"""The mailbox page of the SMTP sink (`harness/stack/smtp.py` `mail_app`): an email's HTML part as
its recipient sees it (sandboxed, no scripts), its text part one click away, local times, and new
mail added in place. Over plain HTTP, then in a headless Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import pytest
from playwright.async_api import Page, expect

from harness.stack.smtp import Mailbox, mail_app
from tests.browser import chromium_page, serving

RECEIVED = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
HTML_PART = """<!doctype html><html><head><title>Verify</title></head><body>
<h1 style="color: #264">Welcome to Accord, Ada</h1>
<p>Please <a href="{link}">verify your email address</a>.</p>
<script>document.body.textContent = "a script ran";</script>
</body></html>"""
TEXT_PART = "Welcome to Accord, Ada.\n\nOpen {link} to verify your email address.\n"


def deliver(
    mailbox: Mailbox,
    subject: str,
    *,
    text: str | None = None,
    markup: str | None = None,
    to: str = "ada@example.com",
) -> None:
    """Put a message into `mailbox` as the SMTP sink does when one arrives."""
    message = EmailMessage()
    message["From"] = "no-reply@accord.localhost"
    message["To"] = to
    message["Subject"] = subject
    if text is not None:
        message.set_content(text)
    if markup is not None:
        if text is None:
            message.set_content(markup, subtype="html")
        else:
            message.add_alternative(markup, subtype="html")
    mailbox.add(message["From"], [to], message.as_bytes())


def initial_messages(page: str) -> list[dict[str, object]]:
    """The messages the page carries for its script, read back from its JSON data block."""
    found = re.search(r"<script type=application/json id=initial>(.*?)</script>", page, re.S)
    assert found is not None
    data: list[dict[str, object]] = json.loads(found.group(1))
    return data


async def get(mailbox: Mailbox, path: str) -> httpx.Response:
    app = mail_app(mailbox)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        return await http.get(path)


async def test_the_mailbox_page_carries_the_messages_and_no_longer_reloads_itself() -> None:
    mailbox = Mailbox(clock=lambda: RECEIVED)
    link = "http://127.0.0.1:8025/verify-email?token=abc"
    deliver(mailbox, "Verify", text=TEXT_PART.format(link=link), markup=HTML_PART.format(link=link))

    page = await get(mailbox, "/")
    api = await get(mailbox, "/api/messages")

    assert page.status_code == 200
    assert 'http-equiv="refresh"' not in page.text
    assert "http-equiv=refresh" not in page.text
    assert initial_messages(page.text) == api.json()
    [mail] = api.json()
    assert mail["received_at"] == "2026-11-25T10:00:00.000+00:00"
    assert mail["links"] == [link]
    assert '<script src="/mailbox.js"></script>' in page.text


async def test_a_subject_cannot_end_the_data_block_of_the_page() -> None:
    mailbox = Mailbox()
    deliver(mailbox, "</script><script>alert(1)</script>", text="hello")

    page = await get(mailbox, "/")

    assert "<script>alert(1)" not in page.text
    assert initial_messages(page.text)[0]["subject"] == "</script><script>alert(1)</script>"


async def test_the_mailbox_page_runs_its_own_script_only() -> None:
    page = await get(Mailbox(), "/")
    script = await get(Mailbox(), "/mailbox.js")

    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-eval" not in policy
    assert "script-src 'self' 'unsafe-inline'" not in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/api/messages" in script.text


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    # A time zone half an hour off UTC, so that a local time cannot be the UTC one by chance.
    async with chromium_page(locale="en-GB", timezone_id="Asia/Kolkata") as page:
        yield page


@pytest.mark.browser
async def test_the_html_part_is_shown_as_the_recipient_sees_it_and_runs_no_script(
    page: Page,
) -> None:
    mailbox = Mailbox(clock=lambda: RECEIVED)
    async with serving(mail_app(mailbox)) as mail:
        link = f"{mail}/verify-email?token=abc"
        deliver(
            mailbox, "Verify", text=TEXT_PART.format(link=link), markup=HTML_PART.format(link=link)
        )
        await page.goto(mail)

        frame = page.frame_locator("article iframe")
        await expect(frame.get_by_role("heading", name="Welcome to Accord, Ada")).to_be_visible()
        body = await frame.locator("body").inner_text()
        sandbox = await page.locator("article iframe").get_attribute("sandbox")
        text_shown = await page.locator("article pre.text").is_visible()
        time = await page.locator("article time").inner_text()
        async with page.expect_popup() as opened:
            await frame.get_by_role("link", name="verify your email address").click()
        popup = await opened.value
        await expect(popup.get_by_role("button", name="Confirm my email address")).to_be_enabled()

    assert "a script ran" not in body
    assert sandbox is not None
    assert "allow-scripts" not in sandbox
    assert "allow-same-origin" not in sandbox
    assert text_shown is False
    assert "15:30:00" in time  # 10:00 UTC is 15:30 in Kolkata
    assert "2026" in time
    assert "T10:00" not in time
    assert popup.url == link  # links open in a tab of their own, outside the sandbox


@pytest.mark.browser
async def test_the_switch_shows_the_text_part_with_its_links_and_back(page: Page) -> None:
    mailbox = Mailbox()
    async with serving(mail_app(mailbox)) as mail:
        link = f"{mail}/verify-email?token=abc"
        deliver(
            mailbox, "Verify", text=TEXT_PART.format(link=link), markup=HTML_PART.format(link=link)
        )
        await page.goto(mail)
        article = page.locator("article")

        await article.get_by_role("button", name="Text").click()
        await expect(article.locator("pre.text")).to_be_visible()
        text = await article.locator("pre.text").inner_text()
        href = await article.locator("pre.text a").get_attribute("href")
        frame_hidden = await article.locator("iframe").is_hidden()
        pressed = await article.get_by_role("button", name="Text").get_attribute("aria-pressed")
        await article.get_by_role("button", name="HTML").click()
        await expect(article.locator("iframe")).to_be_visible()

    assert "Open " + link + " to verify" in text
    assert href == link
    assert frame_hidden is True
    assert pressed == "true"


@pytest.mark.browser
async def test_a_message_with_only_a_text_part_shows_it_and_offers_no_html(page: Page) -> None:
    mailbox = Mailbox()
    deliver(mailbox, "Plain", text="Just text.")
    async with serving(mail_app(mailbox)) as mail:
        await page.goto(mail)
        article = page.locator("article")

        await expect(article.locator("pre.text")).to_have_text("Just text.\n")
        await expect(article.get_by_role("button", name="HTML")).to_be_disabled()
        assert await article.locator("iframe").count() == 0


@pytest.mark.browser
async def test_a_new_message_appears_without_reloading_the_page(page: Page) -> None:
    mailbox = Mailbox()
    async with serving(mail_app(mailbox)) as mail:
        await page.goto(mail)
        await expect(page.get_by_text("No mail yet.")).to_be_visible()
        await page.evaluate("window.sameDocument = true")
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))

        deliver(mailbox, "Reset your password", text="Open http://x/reset-password?token=t")
        await expect(page.get_by_role("heading", name="Reset your password")).to_be_visible(
            timeout=10_000
        )
        deliver(mailbox, "Second", text="second")
        await expect(page.locator("article h2").first).to_have_text("Second", timeout=10_000)

        same_document = await page.evaluate("window.sameDocument === true")
        title = await page.title()
        empty_hidden = await page.get_by_text("No mail yet.").is_hidden()

    assert same_document is True
    assert page.url not in navigations  # the page itself never navigated again
    assert title == "Accord mail (2)"
    assert empty_hidden is True
