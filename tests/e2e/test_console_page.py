"""The console's event-flow and trace pages (`harness/stack/console.py`), in a headless Chromium
against the whole platform: after a registration, `/events` shows `user.created` reaching the user
service, live, and its trace links the register request to the profile's creation."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import expect

from tests.browser import chromium_page
from tests.e2e.support import StartStack
from tests.e2e.test_stack import PASSWORD

pytestmark = pytest.mark.emulator


async def test_the_console_shows_a_registrations_event_reaching_the_user_service_and_its_trace(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    console = stack.config.url("mail")

    async with chromium_page() as page:
        await page.goto(f"{console}/events")  # open before the registration: it updates live
        async with httpx.AsyncClient(timeout=10) as http:
            registered = await http.post(
                f"{stack.config.url('auth')}/api/v1/auth/register",
                json={"email": f"ada-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
            )
        assert registered.status_code == 201, registered.text

        event = page.locator("article.event[data-event-type='user.created']")
        await expect(event).to_have_count(1, timeout=20_000)
        await expect(event.locator("li[data-hop=written][data-service=auth]")).to_have_count(1)
        await expect(event.locator("li[data-hop=published][data-service=auth]")).to_have_count(1)
        await expect(event.locator("li[data-hop=delivered][data-service=user]")).to_have_count(
            1, timeout=20_000
        )
        await expect(event.locator("li[data-hop=handled][data-service=user]")).to_have_count(
            1, timeout=20_000
        )
        await expect(event.locator("h2")).to_contain_text("user.created → user")

        await event.locator("a.trace").click()
        await page.wait_for_url(f"{console}/traces/*")
        register = page.locator(".span[data-service=auth][data-name=registerUser]")
        profile = page.locator(".span[data-service=user][data-name='process user.created']")
        await expect(register).to_have_count(1, timeout=10_000)
        await expect(profile).to_have_count(1, timeout=10_000)

        # The waterfall's rows name their parents: from the profile's creation up to the request.
        parents = {
            row["span"]: row["parent"]
            for row in await page.eval_on_selector_all(
                ".span",
                "rows => rows.map(r => ({span: r.dataset.spanId, parent: r.dataset.parentId}))",
            )
        }
        ancestor = await profile.get_attribute("data-span-id")
        register_id = await register.get_attribute("data-span-id")
        chain = []
        while ancestor in parents:
            chain.append(ancestor)
            ancestor = parents[ancestor]
        assert register_id in chain
        assert await page.locator(".span .bar").count() == len(parents)
