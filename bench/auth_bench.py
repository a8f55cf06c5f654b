"""Auth service benchmark: registration throughput against raw Argon2id, and `GET /me` latency
during a login storm.

Not a test: run it with `python bench/auth_bench.py [--registrations N] [--storm-seconds S]`.
The service runs as `services.auth.main.serve` in its own process (uvicorn on a free port,
SQLite in a temporary directory, the default Argon2id parameters); the load comes from httpx
clients in this process.

1. Registrations per second, as a ratio to raw Argon2id hashes per second with the same
   parameters, measured in the same run through the service's own hasher (same parameters,
   same number of hashes in flight, same thread priority) without HTTP or a database.
   Rounds alternate, so drift in the machine's load hits both alike. Goal: ≥ 0.8.
2. `GET /me` p50/p99 latency, sampled one request at a time from this process, while a
   separate process logs in as fast as 16 clients can. Goal: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from services.auth.passwords import Argon2PasswordHasher
from services.auth.settings import Settings, cpu_count

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 (benchmark accounts)
REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_service(database_url: str | None) -> Iterator[str]:
    """The auth service in a subprocess; yields its base URL once it is ready."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="accord-auth-bench-") as directory:
        env = {
            **os.environ,
            "ACCORD_ENV": "local",
            "AUTH_DATABASE_URL": database_url or f"sqlite:///{directory}/auth.db",
            "AUTH_SIGNING_KEY_PATH": f"{directory}/signing-key.pem",
            "AUTH_ACCESS_LOG": "false",
            # One client address does all the work here; these limits are for attackers.
            "AUTH_REGISTRATIONS_PER_ADDRESS": "1000000",
            "AUTH_LOGIN_FAILURES_PER_ADDRESS": "1000000",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-c",
                f"from services.auth.main import serve; serve({port}, '127.0.0.1')",
            ],
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    error = server.stderr.read().decode() if server.stderr else ""
                    raise SystemExit(f"the auth service did not start:\n{error}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            server.wait(10)


# --- 1. registrations vs raw hashes ----------------------------------------------------------


async def raw_hashes_per_second(hasher: Argon2PasswordHasher, count: int) -> float:
    """Hashes per second through the service's hasher: its pool, concurrency and priority."""
    started = time.perf_counter()
    await asyncio.gather(*(hasher.hash(f"{PASSWORD}-{n}") for n in range(count)))
    return count / (time.perf_counter() - started)


async def registrations_per_second(url: str, count: int, in_flight: int) -> tuple[float, int]:
    """Registrations per second with `in_flight` clients at once, and how many failed."""
    emails = iter(f"bench-{uuid.uuid4().hex}@example.com" for _ in range(count))
    failures = 0
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal failures
            for email in emails:
                response = await client.post(
                    "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
                )
                failures += response.status_code != 201

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return count / (time.perf_counter() - started), failures


# --- 2. /me latency during a login storm -----------------------------------------------------


def sample(url: str, path: str, token: str, seconds: float) -> list[float]:
    """Latencies of `GET path`, one request at a time (5 ms apart) for `seconds`."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get(path, headers=headers)  # connect outside the measurement
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
            time.sleep(0.005)
    return latencies


def run_login_storm(
    url: str, emails: list[str], seconds: float, in_flight: int, result: Connection
) -> None:
    """The storm's process: its own interpreter, so it shares no GIL with the sampler."""
    result.send(asyncio.run(login_storm(url, emails, seconds, in_flight)))


async def login_storm(url: str, emails: list[str], seconds: float, in_flight: int) -> int:
    logins = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(index: int) -> None:
            nonlocal logins
            email = emails[index % len(emails)]
            while time.monotonic() < deadline:
                response = await client.post(
                    "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                if response.status_code != 200:
                    raise RuntimeError(f"login answered {response.status_code}: {response.text}")
                logins += 1

        await asyncio.gather(*(worker(n) for n in range(in_flight)))
    return logins


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--registrations", type=int, default=60, help="per round (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--storm-clients", type=int, default=16)
    parser.add_argument("--database", help="a postgresql:// URL instead of a temporary SQLite")
    options = parser.parse_args()

    settings = Settings()
    hasher = Argon2PasswordHasher.from_settings(settings)
    in_flight = hasher.max_concurrency
    parameters = hasher.parameters
    print(
        f"Argon2id t={parameters.time_cost} m={parameters.memory_cost} KiB "
        f"p={parameters.parallelism}; {cpu_count()} CPUs; {in_flight} hashes in flight"
    )

    with running_service(options.database) as url:
        raw_rates, registration_rates, failed = [], [], 0
        for round_number in range(1, options.rounds + 1):
            raw = asyncio.run(raw_hashes_per_second(hasher, options.registrations))
            # Twice as many clients as hash slots keep the service's slots busy.
            rate, failures = asyncio.run(
                registrations_per_second(url, options.registrations, 2 * in_flight)
            )
            raw_rates.append(raw)
            registration_rates.append(rate)
            failed += failures
            print(
                f"  round {round_number}: raw Argon2id {raw:6.1f} hashes/s, "
                f"registrations {rate:6.1f}/s"
            )
        raw_rate = statistics.mean(raw_rates)
        registration_rate = statistics.mean(registration_rates)
        print(
            f"registrations: {registration_rate:.1f}/s vs raw Argon2id {raw_rate:.1f} hashes/s "
            f"→ ratio {registration_rate / raw_rate:.2f} (goal ≥ 0.80)"
            + (f"; {failed} registrations FAILED" if failed else "")
        )

        emails = [f"storm-{n}-{uuid.uuid4().hex[:8]}@example.com" for n in range(8)]
        for email in emails:
            httpx.post(
                f"{url}/api/v1/auth/register",
                json={"email": email, "password": PASSWORD},
                timeout=30,
            ).raise_for_status()
        token: Any = httpx.post(
            f"{url}/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD}, timeout=30
        ).json()["accessToken"]

        floor = sample(url, "/health/live", token, 2)
        idle = sample(url, "/api/v1/auth/me", token, 2)
        receiver, sender = multiprocessing.get_context("spawn").Pipe(duplex=False)
        storm_process = multiprocessing.get_context("spawn").Process(
            target=run_login_storm,
            args=(url, emails, options.storm_seconds, options.storm_clients, sender),
        )
        storm_process.start()
        time.sleep(1)  # the storm is under way before sampling starts
        storm = sample(url, "/api/v1/auth/me", token, options.storm_seconds - 2)
        logins = receiver.recv()
        storm_process.join()
        hasher.close()

    ms = 1000.0
    print(
        f"GET /health/live idle: p50 {percentile(floor, 0.5) * ms:5.1f} ms, "
        f"p99 {percentile(floor, 0.99) * ms:5.1f} ms (client + HTTP floor)"
    )
    print(
        f"GET /me idle:          p50 {percentile(idle, 0.5) * ms:5.1f} ms, "
        f"p99 {percentile(idle, 0.99) * ms:5.1f} ms ({len(idle)} requests)"
    )
    print(
        f"GET /me login storm:   p50 {percentile(storm, 0.5) * ms:5.1f} ms, "
        f"p99 {percentile(storm, 0.99) * ms:5.1f} ms ({len(storm)} requests; "
        f"{logins / options.storm_seconds:.1f} logins/s from {options.storm_clients} clients) "
        "(goal p99 < 50 ms)"
    )


if __name__ == "__main__":
    main()
