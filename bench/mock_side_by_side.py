"""`accord mock` beside Prism: the same requests to `prism mock` and to `accord mock` on each
contract, and where their answers differ.

Not a test, and Prism is not a dependency: run it with `python -m bench.mock_side_by_side`.
It installs `@stoplight/prism-cli` with npm into `.accord/prism/` the first time (the npm
registry must be reachable; `--prism PATH` names an installed `prism` instead), serves each
contract with both mocks on free ports, sends every request of `REQUESTS` to both, and prints
two lines per request (each mock's status, media type and the start of its body), marking a
differing status or body, and for a validation problem the `errors` each mock names.

What it showed (2026-12-02, Prism 5): the statuses agree on every request. Prism answers a
body that is not JSON with its own `{"error": …}` in `application/json`, which the contract
does not describe; Accord answers the contract's 400 `malformed-request` problem. Prism
answers every 422 with the contract's example problem whatever the violation (a bad `userId`
in the path is reported at `/body/phone`); Accord's `errors` point at the actual violations.
Problems from Accord also carry this request's `detail` and `instance`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPOSITORY = Path(__file__).resolve().parent.parent
USER_ID = "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10"
BEARER = {"Authorization": "Bearer not-checked-by-a-mock"}
JSON = {"Content-Type": "application/json"}
ACCORD = "from harness.cli import app; app()"


@dataclass(frozen=True)
class Probe:
    """One request, and what it is meant to show."""

    service: str
    method: str
    path: str
    why: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


REQUESTS = [
    Probe("auth", "GET", f"/api/v1/auth/users/{USER_ID}/roles", "an example", {"X-API-Key": "k"}),
    Probe("auth", "GET", "/.well-known/jwks.json", "an example with a required header"),
    Probe("auth", "GET", f"/api/v1/auth/users/{USER_ID}/roles", "no credential at all"),
    Probe(
        "auth", "POST", "/api/v1/auth/login", "a body missing a field", JSON, {"email": "a@b.co"}
    ),
    Probe(
        "auth",
        "POST",
        "/api/v1/auth/login",
        "a body that is not JSON",
        JSON,
        "{not json",
    ),
    Probe(
        "auth",
        "POST",
        "/api/v1/auth/register",
        "Prefer: code=409",
        {**JSON, "Prefer": "code=409"},
        {"email": "ada@example.com", "password": "correct-horse-battery-staple"},
    ),
    Probe("user", "GET", f"/api/v1/users/{USER_ID}", "an example", BEARER),
    Probe("user", "GET", "/api/v1/users/not-a-uuid", "a path parameter of the wrong form", BEARER),
    Probe(
        "user",
        "GET",
        f"/api/v1/users/{USER_ID}",
        "Prefer: code=404",
        {**BEARER, "Prefer": "code=404"},
    ),
    Probe("notification", "GET", "/api/v1/notifications?limit=0", "a query out of range", BEARER),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prism_binary(given: str | None) -> str:
    if given:
        return given
    prefix = REPOSITORY / ".accord" / "prism"
    binary = prefix / "node_modules" / ".bin" / "prism"
    if not binary.exists():
        npm = shutil.which("npm") or sys.exit("npm is needed to install Prism (or pass --prism)")
        print(f"installing @stoplight/prism-cli into {prefix} …", file=sys.stderr)
        subprocess.run(  # noqa: S603 - npm, with fixed arguments
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                "@stoplight/prism-cli@5",
            ],
            check=True,
        )
    return str(binary)


@contextlib.contextmanager
def serving(command: list[str], port: int) -> Iterator[str]:
    process = subprocess.Popen(  # noqa: S603 - our own commands
        command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=1)
                break
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def send(url: str, probe: Probe) -> httpx.Response:
    content = probe.body if isinstance(probe.body, str) else None
    body = None if isinstance(probe.body, str) else probe.body
    return httpx.request(
        probe.method, url + probe.path, headers=probe.headers, json=body, content=content
    )


def describe(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").split(";")[0]
    try:
        detail = json.dumps(response.json())[:80]
    except ValueError:
        detail = response.text[:80]
    return f"{response.status_code} {kind} {detail}"


def parsed(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def errors(response: httpx.Response) -> str:
    try:
        return json.dumps(response.json().get("errors"))[:160]
    except (ValueError, AttributeError):
        return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prism", help="an installed prism binary")
    options = parser.parse_args()
    prism = prism_binary(options.prism)
    for service in ("auth", "user", "notification"):
        contract = REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"
        prism_port, accord_port = free_port(), free_port()
        with (
            serving([prism, "mock", str(contract), "-p", str(prism_port)], prism_port) as p_url,
            serving(
                [sys.executable, "-c", ACCORD, "mock", service, "--port", str(accord_port)],
                accord_port,
            ) as a_url,
        ):
            for probe in (probe for probe in REQUESTS if probe.service == service):
                theirs, ours = send(p_url, probe), send(a_url, probe)
                status = "" if theirs.status_code == ours.status_code else "  <- status differs"
                body = "" if parsed(theirs) == parsed(ours) else "  <- body differs"
                print(f"{service} {probe.method} {probe.path} — {probe.why}")
                print(f"   prism : {describe(theirs)}")
                print(f"   accord: {describe(ours)}{status}{body}")
                if body and "errors" in ours.text:
                    print(f"   prism errors : {errors(theirs)}")
                    print(f"   accord errors: {errors(ours)}")


if __name__ == "__main__":
    main()
