"""The kit's request-body limit: a body over the limit is answered 413 with a problem before the
app reads it (a declared length without reading a byte, a chunked body as soon as it passes the
limit); a body within the limit reaches the route whole."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from services.kit.http import BodyLimitMiddleware, install_problem_handlers
from tests.body_limits import (
    LIMIT,
    PAYLOAD_TOO_LARGE,
    TWO_MB,
    CountedBody,
    assert_payload_too_large,
    post_raw,
    serving,
)


class Echo:
    """An app whose one route counts the requests it handled and answers the body's size."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.handled = 0
        self.app = FastAPI()
        install_problem_handlers(self.app)
        self.app.add_middleware(BodyLimitMiddleware, max_body_bytes=limit)

        @self.app.post("/echo")
        async def echo(request: Request) -> dict[str, int]:
            self.handled += 1
            return {"size": len(await request.body())}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://service"
        )


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    echo = Echo()
    body = CountedBody(b"x" * TWO_MB)
    async with echo.client() as client:
        response = await client.post("/echo", content=body, headers={"Content-Length": str(TWO_MB)})

    assert_payload_too_large(response)
    detail = f"The request body is larger than the limit of {LIMIT} bytes."
    assert response.json()["detail"] == detail
    assert response.json()["instance"] == "/echo"
    assert body.pulled == 0
    assert echo.handled == 0


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    echo = Echo()
    body = CountedBody(b"x" * TWO_MB, chunk=4096)
    async with echo.client() as client:
        response = await client.post("/echo", content=body)

    assert_payload_too_large(response)
    assert LIMIT < body.pulled <= LIMIT + 4096
    assert echo.handled == 0


@pytest.mark.parametrize("size", [0, 1, 1000, LIMIT])
async def test_a_body_within_the_limit_reaches_the_route_whole(size: int) -> None:
    echo = Echo()
    async with echo.client() as client:
        declared = await client.post("/echo", content=b"y" * size)
        chunked = await client.post("/echo", content=CountedBody(b"y" * size, chunk=1000))

    assert declared.json() == {"size": size}
    assert chunked.json() == {"size": size}
    assert echo.handled == 2


async def test_the_limit_is_the_one_configured() -> None:
    echo = Echo(limit=10)
    async with echo.client() as client:
        within = await client.post("/echo", content=b"0123456789")
        over = await client.post("/echo", content=b"0123456789!")

    assert within.json() == {"size": 10}
    assert_payload_too_large(over)
    assert "limit of 10 bytes" in over.json()["detail"]


async def test_requests_without_a_body_pass_untouched() -> None:
    echo = Echo()

    @echo.app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    async with echo.client() as client:
        response = await client.get("/ping")

    assert response.json() == {"status": "ok"}


async def test_a_real_server_answers_a_declared_length_over_the_limit_before_any_body() -> None:
    echo = Echo()
    async with serving(echo.app) as port:
        answer = await post_raw(port, "/echo", b"x" * TWO_MB, chunked=False, send_before_reading=0)

    assert answer.status == 413
    assert answer.problem()["type"] == PAYLOAD_TOO_LARGE
    assert answer.sent == 0
    assert answer.still_sending
    assert echo.handled == 0


async def test_a_real_server_answers_a_chunked_body_over_the_limit_while_it_is_sent() -> None:
    echo = Echo()
    async with serving(echo.app) as port:
        answer = await post_raw(port, "/echo", b"x" * TWO_MB, chunked=True)

    assert answer.status == 413
    assert answer.problem()["type"] == PAYLOAD_TOO_LARGE
    assert answer.sent < TWO_MB
    assert answer.still_sending
    assert echo.handled == 0


async def test_a_real_server_keeps_serving_bodies_within_the_limit() -> None:
    echo = Echo()
    async with (
        serving(echo.app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        refused = await client.post("/echo", content=b"x" * TWO_MB)
        accepted = await client.post("/echo", content=b"x" * LIMIT)

    assert_payload_too_large(refused)
    assert accepted.json() == {"size": LIMIT}
    assert echo.handled == 1
