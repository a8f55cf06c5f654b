"""The pages the emails link to (`harness/stack/smtp.py` `mail_app`), in a headless Chromium
against the auth service, both served by uvicorn: opening a link spends nothing, because mail
scanners open links too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.async_api import Page

from generated.events import models as events
from harness.stack.smtp import Mailbox, mail_app
from services.auth.app import build_adapters, create_app
from services.auth.settings import Settings
from tests.auth.conftest import PASSWORD, Bus, Clock
from tests.browser import chromium_page, serving

pytestmark = pytest.mark.browser

NEW_PASSWORD = "an-entirely-new-passphrase"
E = TypeVar("E")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the pages, not the database."""
    return f"sqlite:///{tmp_path / 'auth.db'}"


class Site:
    """The auth service and the mailbox pages, both served for real, and a client of them."""

    def __init__(self, auth: str, mail: str, http: httpx.AsyncClient, bus: Bus) -> None:
        self.auth = auth
        self.mail = mail
        self.http = http
        self.bus = bus

    async def register(self, email: str) -> str:
        response = await self.http.post(
            f"{self.auth}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        access: str = response.json()["accessToken"]
        return access

    async def email_verified(self, access: str) -> bool:
        me = await self.http.get(
            f"{self.auth}/api/v1/auth/me", headers={"authorization": f"Bearer {access}"}
        )
        assert me.status_code == 200, me.text
        verified: bool = me.json()["emailVerified"]
        return verified

    async def published(self, kind: type[E], seconds: float = 10.0) -> E:
        deadline = asyncio.get_running_loop().time() + seconds
        while not (found := [event for event in self.bus.events() if isinstance(event, kind)]):
            assert asyncio.get_running_loop().time() < deadline, f"no {kind.__name__} arrived"
            await asyncio.sleep(0.01)
        return found[-1]

    async def verification_link(self, access: str) -> str:
        requested = await self.http.post(
            f"{self.auth}/api/v1/auth/email-verification",
            headers={"authorization": f"Bearer {access}"},
        )
        assert requested.status_code == 202, requested.text
        event = await self.published(events.EmailVerificationRequestedPayload)
        return f"{self.mail}/verify-email?token={event.verificationToken}"

    async def reset_link(self, email: str) -> tuple[str, str]:
        requested = await self.http.post(
            f"{self.auth}/api/v1/auth/password-reset", json={"email": email}
        )
        assert requested.status_code == 202, requested.text
        token = (await self.published(events.PasswordResetRequestedPayload)).resetToken
        return token, f"{self.mail}/reset-password?token={token}"

    async def login(self, email: str, password: str) -> int:
        response = await self.http.post(
            f"{self.auth}/api/v1/auth/login", json={"email": email, "password": password}
        )
        return response.status_code


@pytest.fixture
async def site(settings: Settings, bus: Bus, clock: Clock) -> AsyncIterator[Site]:
    adapters = replace(build_adapters(settings, clock=clock), publisher=bus.publisher())
    async with (
        serving(create_app(settings, adapters=adapters)) as auth,
        serving(mail_app(Mailbox(), auth)) as mail,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Site(auth, mail, http, bus)


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with chromium_page() as page:
        yield page


async def test_opening_the_verification_link_verifies_nothing_until_the_button_is_clicked(
    site: Site, page: Page
) -> None:
    access = await site.register("ada@example.com")
    link = await site.verification_link(access)

    await page.goto(link)  # as a mail scanner would, then the person
    await page.goto(link)
    verified_on_load = await site.email_verified(access)
    await page.get_by_role("button", name="Confirm my email address").click()
    await page.get_by_text("Your email address is verified.").wait_for()

    assert verified_on_load is False
    assert await site.email_verified(access) is True


async def test_a_used_reset_link_says_already_used_on_load_and_shows_no_form(
    site: Site, page: Page
) -> None:
    await site.register("ada@example.com")
    token, link = await site.reset_link("ada@example.com")
    spent = await site.http.post(
        f"{site.auth}/api/v1/auth/password-reset/confirm",
        json={"token": token, "newPassword": NEW_PASSWORD},
    )
    assert spent.status_code == 204

    await page.goto(link)

    assert "already used" in await page.inner_text("body")
    assert await page.locator("form").count() == 0
    assert await page.locator("input[type=password]").count() == 0


async def test_a_fresh_reset_link_shows_the_form_and_submitting_it_sets_the_password(
    site: Site, page: Page
) -> None:
    await site.register("ada@example.com")
    _, link = await site.reset_link("ada@example.com")

    await page.goto(link)  # as a mail scanner would, then the person
    await page.goto(link)
    await page.locator("input[type=password]").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Reset").click()
    await page.get_by_text("Your password was changed.").wait_for()

    assert await site.login("ada@example.com", NEW_PASSWORD) == 200
    assert await site.login("ada@example.com", PASSWORD) == 401
