"""`GET /api/v1/me` through the gateway, against its three calls made directly: the fan-out makes
an overview take about as long as its slowest call, not their sum.

Not a test: run it with `python -m bench.gateway_bench [--requests N] [--warm-up W]
[--latency MS]`. The platform is `accord up`'s (moto, provisioning, migrations, SQLite, in this
process), with the auth, user and gateway services each in a uvicorn process of its own
(`ServiceProcess`, as `accord serve` runs them), configured from the stack's environment. One
user is registered, its profile created by the user service's consumer, and given an address.

Each of N rounds (after W rounds of warm-up) makes, with the same access token and over
keep-alive connections:

- *gateway*: `GET /api/v1/me` on the gateway (which makes the three calls below, concurrently);
- *direct*: `getCurrentAccount` on the auth service, `getUserProfile` and `listAddresses` on
  the user service, one after the other; their *sum* and their *max* per round;
- *at once*: the same three calls made concurrently by this process, each over a connection of
  its own: the least any fan-out can take on this machine (its cores shared by every process).

It prints p50 and p99 of each (milliseconds) and the gateway's as a ratio to the sum, to the max
and to the three at once: a fan-out close to the max, not the sum, is the goal. Every answer
must be 200 (a complete overview for the gateway), or the run fails.

On one machine the three calls take a millisecond or two each, less than the gateway's own work
(verifying the token, three HTTP clients' requests, composing); `--latency MS` puts a
`FaultyProxy` adding MS to every request in front of the auth and user services, for the gateway
and the direct calls alike, as a network between services would, which is where the fan-out
shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.project import Project
from harness.stack.faults import FaultyProxy, ServiceProcess
from harness.stack.up import INFRASTRUCTURE_PORTS, Stack, StackConfig

REPOSITORY = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 (a benchmark account)
HOME = {
    "label": "Home",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
ENV = {
    "ACCORD_ENV": "local",
    "AUTH_ARGON2_TIME_COST": "1",
    "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
    "AUTH_ARGON2_PARALLELISM": "1",
    "USER_CONSUMER_WAIT_SECONDS": "1",
}


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


# --- a keep-alive HTTP/1.1 client with as little overhead as one can have -----------------------


class Connection:
    """One keep-alive connection to a service; `get` answers (status, body, seconds)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parsed = httpx.URL(url)
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        return cls(reader, writer)

    async def get(self, path: str, token: str) -> tuple[int, bytes, float]:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode("ascii")
        started = time.perf_counter()
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await self._reader.readexactly(length)
        return int(lines[0].split()[1]), body, time.perf_counter() - started

    async def close(self) -> None:
        self._writer.close()


# --- the platform ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    urls: dict[str, str]
    user_id: str
    token: str


@asynccontextmanager
async def platform(state: Path, latency: float = 0.0) -> AsyncIterator[Platform]:
    """The stack with auth, user and gateway each in its own process, and one user with a
    profile and an address. With `latency` (seconds), the auth and user services are reached
    through a `FaultyProxy` that adds it to every request, by the gateway and by the direct
    calls alike, as a network between the services would."""
    project = Project.load(REPOSITORY)
    parts = [entry.name for entry in project.services] + list(INFRASTRUCTURE_PORTS)
    ports = dict(zip(parts, free_ports(len(parts)), strict=True))
    config = StackConfig(project=project, ports=ports, state_dir=state, services=(), extra_env=ENV)
    stack = Stack(config, lambda line: None)
    await stack.start()
    async with AsyncExitStack() as processes:
        try:
            urls = {name: config.url(name) for name in ("auth", "user", "gateway")}
            env = dict(stack.env)
            for name in ("auth", "user"):
                await processes.enter_async_context(
                    ServiceProcess(name, stack.env, config.ports[name])
                )
                if latency > 0:
                    proxy = FaultyProxy.to(urls[name], latency=latency)
                    await processes.enter_async_context(proxy)
                    urls[name] = proxy.endpoint
                    env[f"GATEWAY_{name.upper()}_SERVICE_URL"] = proxy.endpoint
            await processes.enter_async_context(
                ServiceProcess("gateway", env, config.ports["gateway"])
            )
            async with httpx.AsyncClient(timeout=10) as http:
                email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
                registered = await http.post(
                    f"{urls['auth']}/api/v1/auth/register",
                    json={"email": email, "password": PASSWORD},
                )
                registered.raise_for_status()
                tokens = registered.json()
                user_id, token = tokens["userId"], tokens["accessToken"]
                headers = {"Authorization": f"Bearer {token}"}
                profile = f"{urls['user']}/api/v1/users/{user_id}"
                deadline = time.monotonic() + 30
                while (await http.get(profile, headers=headers)).status_code != 200:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the user service made no profile within 30 s")
                    await asyncio.sleep(0.1)
                added = await http.post(f"{profile}/addresses", json=HOME, headers=headers)
                added.raise_for_status()
            yield Platform(urls, user_id, token)
        finally:
            await processes.aclose()
            await stack.stop()


# --- the measurement -------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def measure(running: Platform, rounds: int, warm_up: int) -> dict[str, list[float]]:
    """Seconds per round: the gateway's overview, each direct call, their sum and their max,
    and the three made at once by this client (over connections of their own): the least a
    fan-out can take here, the machine's sharing of its cores included."""
    me = "/api/v1/me"
    direct = {
        "getCurrentAccount": ("auth", "/api/v1/auth/me"),
        "getUserProfile": ("user", f"/api/v1/users/{running.user_id}"),
        "listAddresses": ("user", f"/api/v1/users/{running.user_id}/addresses"),
    }
    connections = {name: await Connection.open(url) for name, url in running.urls.items()}
    at_once = [await Connection.open(running.urls[service]) for service, _ in direct.values()]
    samples: dict[str, list[float]] = {"gateway": [], "sum": [], "max": [], "at once": []}
    samples |= {operation: [] for operation in direct}
    try:
        for round_number in range(warm_up + rounds):
            status, body, through_gateway = await connections["gateway"].get(me, running.token)
            overview = json.loads(body)
            if status != 200 or overview.get("partial") is not False:
                raise RuntimeError(f"the gateway answered {status}: {body[:300]!r}")
            took = {}
            for operation, (service, path) in direct.items():
                status, body, took[operation] = await connections[service].get(path, running.token)
                if status != 200:
                    raise RuntimeError(f"{operation} answered {status}: {body[:300]!r}")
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    connection.get(path, running.token)
                    for connection, (_, path) in zip(at_once, direct.values(), strict=True)
                )
            )
            concurrently = time.perf_counter() - started
            if any(status != 200 for status, _, _ in answers):
                raise RuntimeError(f"a call made at once failed: {answers}")
            if round_number < warm_up:
                continue
            samples["at once"].append(concurrently)
            samples["gateway"].append(through_gateway)
            samples["sum"].append(sum(took.values()))
            samples["max"].append(max(took.values()))
            for operation, seconds in took.items():
                samples[operation].append(seconds)
    finally:
        for connection in [*connections.values(), *at_once]:
            await connection.close()
    return samples


def report(samples: dict[str, list[float]], rounds: int, latency: float) -> None:
    print(f"GET /api/v1/me through the gateway vs its three calls made directly; {rounds} rounds")
    if latency > 0:
        print(f"every request to the auth and user services crosses a {latency * 1000:g} ms link")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    names = ("gateway", "sum", "max", "at once", "getCurrentAccount", "getUserProfile")
    for name in (*names, "listAddresses"):
        values = samples[name]
        label = {
            "sum": "sum of the three",
            "max": "max of the three",
            "at once": "the three at once",
        }.get(name, name)
        print(
            f"{label:24}{percentile(values, 0.5) * 1000:10.2f}"
            f"{percentile(values, 0.99) * 1000:10.2f}{statistics.mean(values) * 1000:10.2f}"
        )
    for fraction, name in ((0.5, "p50"), (0.99, "p99")):
        gateway = percentile(samples["gateway"], fraction)
        print(
            f"{name}: gateway / sum {gateway / percentile(samples['sum'], fraction):.2f}   "
            f"gateway / max {gateway / percentile(samples['max'], fraction):.2f}   "
            f"gateway / at once {gateway / percentile(samples['at once'], fraction):.2f}"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300, help="measured rounds")
    parser.add_argument("--warm-up", type=int, default=30, help="rounds not measured")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="milliseconds added to every request to the auth and user services (default 0)",
    )
    options = parser.parse_args(argv)
    latency = options.latency / 1000

    async def run() -> dict[str, list[float]]:
        with tempfile.TemporaryDirectory(prefix="accord-gateway-bench-") as directory:
            async with platform(Path(directory) / "state", latency) as running:
                return await measure(running, options.requests, options.warm_up)

    report(asyncio.run(run()), options.requests, latency)


if __name__ == "__main__":
    main(sys.argv[1:])
