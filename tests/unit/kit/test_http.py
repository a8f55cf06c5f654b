"""The kit's problem handlers: a database that cannot be reached is a 503 problem with
Retry-After, whichever error the driver raised; other errors stay what they are."""

from __future__ import annotations

import socket

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.kit.database import create_engine
from services.kit.http import database_unavailable_problems, install_problem_handlers


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there once the probe is closed


def app_reading(database_url: str) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, database_unavailable_problems(7))
    engine = create_engine(database_url)

    @app.get("/read")
    async def read() -> dict[str, int]:
        async with engine.connect() as connection:
            return {"one": (await connection.execute(text("select 1"))).scalar_one()}

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug, not an outage")

    @app.get("/missing-file")
    async def missing_file() -> None:
        raise FileNotFoundError("templates/welcome.txt")

    return app


async def test_an_unreachable_database_is_a_503_problem_with_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_reading(f"postgresql://postgres@127.0.0.1:{closed_port()}/accord")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/read")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "7"
    assert response.json()["type"] == "https://accord.example/problems/dependency-unavailable"
    assert "the database cannot be reached: ConnectionRefusedError" in caplog.text


@pytest.mark.parametrize("path", ["/bug", "/missing-file"])
async def test_a_bug_is_still_a_500(path: str) -> None:
    app = app_reading(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/accord")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get(path)

    assert response.status_code == 500
    assert "a bug" not in response.text
    assert "welcome" not in response.text
