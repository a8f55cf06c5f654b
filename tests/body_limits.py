"""What the request-body limit tests share: oversized bodies (declared or chunked) that count
what the server pulls, and a raw HTTP/1.1 client of a real uvicorn server that shows the 413
arriving while the client could still send (so the body was never read whole)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

LIMIT = 64 * 1024
TWO_MB = 2 * 1024 * 1024
PAYLOAD_TOO_LARGE = "https://accord.example/problems/payload-too-large"
# A bound on waiting for a server that never answers, not an assertion about speed.
PATIENCE_SECONDS = 30.0


def padded_json(value: Mapping[str, Any], size: int) -> bytes:
    """`value` as JSON, padded with spaces to `size` bytes: still a valid body for the route,
    so only its size can be why it is refused."""
    text = json.dumps(value).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


class CountedBody:
    """A request body sent in chunks (no `Content-Length` unless the request declares one),
    counting how many bytes the server has pulled."""

    def __init__(self, body: bytes, chunk: int = 8 * 1024) -> None:
        self.body = body
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.pulled += len(piece)
            yield piece


def assert_payload_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PAYLOAD_TOO_LARGE
    assert problem["status"] == 413
    assert problem["title"] == "Payload too large"


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[int]:
    """`app` served by uvicorn on a free port of 127.0.0.1, in this event loop (its lifespan
    is the caller's); the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"uvicorn:{port}")
    try:
        deadline = asyncio.get_running_loop().time() + PATIENCE_SECONDS
        while not server.started:
            if task.done() or asyncio.get_running_loop().time() > deadline:
                raise AssertionError("uvicorn did not start serving")
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task
        listener.close()


@dataclass(frozen=True)
class RawAnswer:
    """A response read off the socket, and how much of the body had been sent by then."""

    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    still_sending: bool

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == "application/problem+json"
        problem: dict[str, Any] = json.loads(self.body)
        return problem


async def post_raw(
    port: int,
    path: str,
    body: bytes,
    *,
    chunked: bool,
    headers: Mapping[str, str] | None = None,
    send_before_reading: int = LIMIT + 16 * 1024,
) -> RawAnswer:
    """POST `body` over a raw connection, but send only its first `send_before_reading` bytes
    before reading the answer; then check that the connection still takes more body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{extra}{framing}\r\n\r\n".encode()
        )
        sent = 0
        while sent < min(send_before_reading, len(body)):
            piece = body[sent : sent + 4096]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        status, response_headers, content = await asyncio.wait_for(
            _read_response(reader), PATIENCE_SECONDS
        )
        still_sending = False
        if sent < len(body):
            piece = body[sent : sent + 4096]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            still_sending = True
        return RawAnswer(status, response_headers, content, sent, still_sending)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    content = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, content
