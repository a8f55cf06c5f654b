"""What an attacker can do to the auth service's answers: a real user's login during a burst of
wrong-password logins, and how long a password-reset request takes for a known and an unknown
email.

Not a test: run it with `python -m bench.security_bench [--root DIR] [--burst N] [--rounds R]`.
`--root` serves the auth service from another checkout of the project (for example a
`git worktree` of an older commit), so that the code before and after a change is measured on
one machine in one session; run it once per root and compare the figures. The service runs in
its own process (uvicorn on a free port, SQLite in a temporary directory, the default Argon2id
parameters).

1. Burst: N concurrent wrong-password logins for one account from one address (a new one each
   round), and while they are in flight, one login with the right password for another
   account from 127.0.0.2.
   Reported: the real user's latency (median over the rounds), and how many of the burst's
   logins were answered 401 (a password was checked) and 429 (refused without one).
2. Reset requests: 50 for a registered email and 50 for an unknown one, interleaved, one at a
   time; reported: the median of each and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - a test account's
REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def auth_service(root: Path, directory: Path) -> Iterator[str]:
    port = free_port()
    environment = {
        **os.environ,
        "ACCORD_ENV": "local",
        "AUTH_DATABASE_URL": f"sqlite:///{directory / 'auth.db'}",
        "AUTH_SIGNING_KEY_PATH": str(directory / "key.pem"),
        "AUTH_SIGNING_KEY_DIR": str(directory / "keys"),
        "AUTH_ACCESS_LOG": "false",
        # Many reset requests from one address and for one email are the point here.
        "AUTH_RESET_REQUESTS_PER_EMAIL": "100000",
        "AUTH_RESET_REQUESTS_PER_ADDRESS": "100000",
        "AUTH_REGISTRATIONS_PER_ADDRESS": "100000",
        "PYTHONPATH": str(root),
    }
    serve = "from services.auth.main import serve; import sys; serve(port=int(sys.argv[1]))"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", serve, str(port)],
        cwd=root,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the auth service did not start")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def client(url: str, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=120)


async def register(http: httpx.AsyncClient, email: str) -> None:
    response = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    response.raise_for_status()


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def burst_round(url: str, burst: int, attacker_address: str) -> tuple[float, int, int]:
    async with client(url, attacker_address) as attacker, client(url, "127.0.0.2") as user:
        victim, real = f"victim-{uuid.uuid4().hex}@example.com", f"real-{uuid.uuid4().hex}@x.org"
        await register(user, victim)
        await register(user, real)
        attack = [
            asyncio.create_task(login(attacker, victim, "wrong-password-guess"))
            for _ in range(burst)
        ]
        await asyncio.sleep(0.5)  # the burst is in flight
        started = time.perf_counter()
        answer = await login(user, real, PASSWORD)
        latency = time.perf_counter() - started
        answers = await asyncio.gather(*attack)
    if answer.status_code != 200:
        raise SystemExit(f"the real user's login was answered {answer.status_code}")
    statuses = [response.status_code for response in answers]
    return latency, statuses.count(401), statuses.count(429)


async def reset_timing(url: str, count: int) -> tuple[float, float]:
    async with client(url, "127.0.0.3") as http:
        known = f"known-{uuid.uuid4().hex}@example.com"
        await register(http, known)
        timings: dict[str, list[float]] = {"known": [], "unknown": []}
        for index in range(2 * count):
            kind = "known" if index % 2 == 0 else "unknown"
            email = known if kind == "known" else f"nobody-{uuid.uuid4().hex}@example.com"
            started = time.perf_counter()
            response = await http.post("/api/v1/auth/password-reset", json={"email": email})
            timings[kind].append(time.perf_counter() - started)
            if response.status_code != 202:
                raise SystemExit(f"a reset request was answered {response.status_code}")
            await asyncio.sleep(0.02)  # let a background look-up finish between requests
    return statistics.median(timings["known"]), statistics.median(timings["unknown"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPOSITORY)
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resets", type=int, default=50)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        auth_service(options.root.resolve(), Path(directory)) as url,
    ):
        rounds = [
            asyncio.run(burst_round(url, options.burst, f"127.0.1.{index}"))
            for index in range(1, options.rounds + 1)
        ]
        known, unknown = asyncio.run(reset_timing(url, options.resets))
    latencies = [latency for latency, _, _ in rounds]
    print(f"code: {options.root.resolve()}")
    print(
        f"real user's login during a {options.burst}-login burst: median "
        f"{statistics.median(latencies) * 1000:.0f} ms (rounds: "
        + ", ".join(f"{latency * 1000:.0f}" for latency in latencies)
        + " ms)"
    )
    for index, (_, checked, refused) in enumerate(rounds, 1):
        print(f"  round {index}: burst answered 401 x{checked} (hashed), 429 x{refused}")
    print(
        f"reset request, median of {options.resets} each: known {known * 1000:.2f} ms, "
        f"unknown {unknown * 1000:.2f} ms, difference {(known - unknown) * 1000:+.2f} ms"
    )


if __name__ == "__main__":
    main()
