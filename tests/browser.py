"""What the tests in a headless Chromium share: Debian's `chromium` driven by playwright (never
`playwright install`), and apps served for real by uvicorn for it to open."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("ACCORD_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1, lifespan included; its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"uvicorn:{port}")
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not server.started:
            if task.done():
                await task
                raise AssertionError("uvicorn stopped before it started serving")
            assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@asynccontextmanager
async def chromium_page(**context: Any) -> AsyncIterator[Page]:
    """A page of a fresh headless Chromium, its context made with `context` (such as `locale`
    or `timezone_id`); the test is skipped when there is no Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (as .ci/run does) "
            "or set ACCORD_TEST_CHROMIUM"
        )
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield await (await browser.new_context(**context)).new_page()
        finally:
            await browser.close()
