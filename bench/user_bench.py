"""`GET /api/v1/users/{userId}` with a valid token, as a ratio to a bare FastAPI endpoint, with
the service's metrics on and off.

Not a test: run it with `python -m bench.user_bench [--seconds S] [--connections C]
[--rounds R] [--database URL]`. Three uvicorn servers, one worker each, in their own processes:

- *bare*: a FastAPI app whose only route, at the same path, returns the same JSON document;
- *user*: the user service from `create_app`, verifying an EdDSA token against its key set
  (already fetched, as it is after the first request), reading the profile from its database
  (a SQLite file by default, or `--database postgresql://…`) and answering the contract's
  `Profile`, with its metrics on (as it is deployed: each request timed into the histogram
  `/metrics` answers);
- *metrics off*: the same service with `Metrics.disabled()`.

A load generator in this process keeps C keep-alive HTTP/1.1 connections busy for S seconds on
each server in turn, R rounds, alternating, and reports requests/s for each, the ratio to the
bare app (goal ≥ 0.5) and metrics on to off (goal ≥ 0.9). Every answer must be 200 with the same
body on all three, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from services.kit.tokens import SigningKey, TokenIssuer

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"


# --- the two servers (run in child processes) -------------------------------------------------


def bare_app(body: bytes) -> Any:
    from fastapi import FastAPI

    document: dict[str, Any] = json.loads(body)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/api/v1/users/{userId}")
    async def get_user_profile(userId: str) -> dict[str, Any]:  # noqa: N803
        return document

    return app


def user_app(database_url: str, key_file: Path, *, metrics: bool = True) -> Any:
    from services.kit.consumer import ConsumerOptions
    from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
    from services.kit.metrics import Metrics
    from services.kit.tokens import StaticKeySource, TokenVerifier, jwks
    from services.kit.topology import QueueSpec
    from services.user.app import Adapters, create_app
    from services.user.roles import InMemoryRolesClient
    from services.user.settings import Settings
    from services.user.storage import SqlUserStore
    from services.user.verification import CachingTokenVerifier

    key = SigningKey.from_pem(key_file.read_bytes())
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec("bench-user-service"))
    # The bench's token lives an hour (see `main`), longer than the auth service's default.
    settings = Settings(
        environment="local",
        database_url=database_url,
        queue="bench-user-service",
        access_token_max_lifetime_seconds=3600,
    )
    adapters = Adapters(
        store=SqlUserStore(database_url),
        # As `build_adapters` composes it, with the key set already fetched.
        verifier=CachingTokenVerifier(
            TokenVerifier(
                StaticKeySource(jwks(key)),
                issuer=ISSUER,
                audience=AUDIENCE,
                max_lifetime=timedelta(seconds=settings.access_token_max_lifetime_seconds),
            )
        ),
        roles=InMemoryRolesClient(),
        # A short poll, so that the server stops promptly when the bench is over.
        consumer=InMemoryEventConsumer(
            broker, "bench-user-service", ConsumerOptions(wait_seconds=0.2)
        ),
        metrics=Metrics() if metrics else Metrics.disabled(),
    )
    return create_app(settings, adapters=adapters)


def serve(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "bare":
        app = bare_app(Path(argv[2]).read_bytes())
    else:
        app = user_app(argv[2], Path(argv[3]), metrics=kind == "user")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- set-up -----------------------------------------------------------------------------------


async def seed(database_url: str, user_id: uuid.UUID) -> None:
    """A profile as the consumer would make it, with the fields a user fills in."""
    from bench import events
    from services.user import consumers
    from services.user.storage import SqlUserStore

    store = SqlUserStore(database_url)
    try:
        await store.migrate()
        handlers = consumers.event_handlers(store, lambda: datetime.now(UTC))
        await handlers["user.created"].apply(events.user_created(user_id, email="ada@example.com"))
        await store.profiles.update(
            user_id,
            {
                "display_name": "Ada Lovelace",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone": "+447700900123",
            },
            datetime.now(UTC),
        )
    finally:
        await store.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "bench.user_bench", "--serve", *args],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the {args[0]} server exited with {process.returncode}"
                ) from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {args[0]} server did not start")


# --- the load generator -----------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


async def one_connection(
    port: int, request: bytes, stop_at: float, expected: bytes, counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < stop_at:
            writer.write(request)
            status, body = await _read_response(reader)
            if status != 200 or body != expected:
                raise AssertionError(f"unexpected answer {status}: {body[:200]!r}")
            counts[0] += 1
    finally:
        writer.close()


async def load(
    port: int, request: bytes, expected: bytes, seconds: float, connections: int
) -> float:
    counts = [0]
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop_at = started + seconds
    await asyncio.gather(
        *(one_connection(port, request, stop_at, expected, counts) for _ in range(connections))
    )
    return counts[0] / (loop.time() - started)


def request_for(path: str, token: str | None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def fetch_body(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status, body = await _read_response(reader)
    finally:
        writer.close()
    if status != 200:
        raise RuntimeError(f"the user service answered {status}: {body!r}")
    return body


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None, help="default: a SQLite file")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="user-bench-") as directory:
        workdir = Path(directory)
        database_url = options.database or f"sqlite:///{workdir / 'user.db'}"
        user_id = uuid.uuid4()
        asyncio.run(seed(database_url, user_id))
        key = SigningKey.generate()
        key_file = workdir / "key.pem"
        key_file.write_bytes(key.to_pem())
        token = (
            TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(hours=1))
            .issue(str(user_id), ["user"])
            .token
        )
        path = f"/api/v1/users/{user_id}"

        user_port, off_port, bare_port = free_port(), free_port(), free_port()
        servers = [start(["user", str(user_port), database_url, str(key_file)], user_port)]
        servers.append(start(["off", str(off_port), database_url, str(key_file)], off_port))
        try:
            body = asyncio.run(fetch_body(user_port, request_for(path, token)))
            body_file = workdir / "profile.json"
            body_file.write_bytes(body)
            servers.append(start(["bare", str(bare_port), str(body_file)], bare_port))
            # The bare app serializes the same document itself; both must answer the same bytes.
            bare_body = asyncio.run(fetch_body(bare_port, request_for(path, None)))
            if json.loads(bare_body) != json.loads(body):
                raise RuntimeError("the two servers do not answer the same JSON")

            print(f"GET {path}  ({options.connections} connections, {options.seconds:g} s each)")
            print(f"database: {database_url.split('://', 1)[0]}; one uvicorn worker per server")
            if asyncio.run(fetch_body(off_port, request_for(path, token))) != body:
                raise RuntimeError("metrics on and off do not answer the same body")
            bare_rates, user_rates, off_rates = [], [], []
            asyncio.run(load(bare_port, request_for(path, None), bare_body, 1, 4))  # warm up
            asyncio.run(load(user_port, request_for(path, token), body, 1, 4))
            asyncio.run(load(off_port, request_for(path, token), body, 1, 4))
            for round_number in range(1, options.rounds + 1):
                bare = asyncio.run(
                    load(
                        bare_port,
                        request_for(path, None),
                        bare_body,
                        options.seconds,
                        options.connections,
                    )
                )
                user = asyncio.run(
                    load(
                        user_port,
                        request_for(path, token),
                        body,
                        options.seconds,
                        options.connections,
                    )
                )
                off = asyncio.run(
                    load(
                        off_port,
                        request_for(path, token),
                        body,
                        options.seconds,
                        options.connections,
                    )
                )
                bare_rates.append(bare)
                user_rates.append(user)
                off_rates.append(off)
                print(
                    f"round {round_number}: bare {bare:8.0f} req/s   user service {user:8.0f} "
                    f"req/s (ratio {user / bare:.2f})   metrics off {off:8.0f} req/s "
                    f"(ratio {off / bare:.2f})   on/off {user / off:.2f}"
                )
            bare_mean, user_mean = statistics.mean(bare_rates), statistics.mean(user_rates)
            off_mean = statistics.mean(off_rates)
            print(
                f"mean:    bare {bare_mean:8.0f} req/s   user service {user_mean:8.0f} req/s "
                f"(ratio {user_mean / bare_mean:.2f}, goal ≥ 0.5)   metrics off {off_mean:8.0f} "
                f"req/s (ratio {off_mean / bare_mean:.2f})   metrics on/off "
                f"{user_mean / off_mean:.2f} (goal ≥ 0.9)"
            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    server.kill()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main(sys.argv[1:])
