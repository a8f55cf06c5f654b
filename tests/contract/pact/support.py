"""What the Pact suites share: the participants' names, the committed `pacts/` directory and the
check that keeps it current, the interactions a provider is held to, running a verifier, the
SNS message a pact's message stands for, and serving an ASGI app for a verifier."""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import uvicorn
from pact import Pact, Verifier, match
from starlette.types import ASGIApp

from services.kit.bus import EventConsumer
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Message
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.tokens import SigningKey
from services.kit.topology import Topology
from tests.conftest import REPOSITORY
from tests.contract.pact import examples

PACTS: Final = REPOSITORY / "pacts"
UPDATE_VARIABLE: Final = "ACCORD_UPDATE_PACTS"
UPDATE_COMMAND: Final = f"{UPDATE_VARIABLE}=1 pytest tests/contract/pact"

AUTH_SERVICE: Final = "auth-service"
USER_SERVICE: Final = "user-service"
NOTIFICATION_SERVICE: Final = "notification-service"
GATEWAY_SERVICE: Final = "gateway-service"

# The `type` of an interaction in a V4 pact file.
HTTP: Final = "Synchronous/HTTP"
MESSAGES: Final = "Asynchronous/Messages"

# The key Pact gives a message's content type among its metadata; not an SNS attribute.
CONTENT_TYPE_METADATA: Final = "contentType"
# What the Pact core stamps into every file it writes (its own versions): not the contract.
VOLATILE_METADATA: Final = ("pactRust", "pactPython")

# The channel of `contracts/asyncapi/user-events.yaml`, as the AsyncAPI bindings name it.
USER_EVENTS_TOPIC: Final = "accord-user-events"
# A consumer that polls often and retries at once, so a test waits for nothing.
FAST: Final = ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0))

HOST: Final = "127.0.0.1"
# `getJwks` documents the header as required; the production fetcher reads it.
JWKS_CACHE_CONTROL: Final = "public, max-age=25"

RecordProperty = Callable[[str, object], None]


def pact_between(consumer: str, provider: str) -> Pact:
    """A V4 pact between two of the services."""
    return Pact(consumer, provider).with_specification("V4")


def pact_file_name(consumer: str, provider: str) -> str:
    """The name the Pact core gives the file of a pact."""
    return f"{consumer}-{provider}.json"


# --- the committed pacts --------------------------------------------------------------------


def _comparable(document: Any) -> Any:
    if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
        metadata = {
            key: value
            for key, value in document["metadata"].items()
            if key not in VOLATILE_METADATA
        }
        return {**document, "metadata": metadata}
    return document


def _canonical(document: Any) -> list[str]:
    return json.dumps(_comparable(document), indent=2, sort_keys=True).splitlines()


def check_committed(written: Path) -> None:
    """Compare a pact file the consumer tests just wrote with its committed copy in `pacts/`,
    the Pact core's version stamps aside; with `ACCORD_UPDATE_PACTS=1`, replace the copy."""
    committed = PACTS / written.name
    if os.environ.get(UPDATE_VARIABLE) == "1":
        PACTS.mkdir(exist_ok=True)
        shutil.copyfile(written, committed)
        return
    if not committed.exists():
        pytest.fail(f"pacts/{written.name} is missing; run `{UPDATE_COMMAND}`", pytrace=False)
    expected = _canonical(json.loads(written.read_text(encoding="utf-8")))
    found = _canonical(json.loads(committed.read_text(encoding="utf-8")))
    if expected != found:
        diff = "\n".join(
            difflib.unified_diff(
                found, expected, f"pacts/{written.name}", "the consumer tests", lineterm=""
            )
        )
        pytest.fail(
            f"pacts/{written.name} is out of date; run `{UPDATE_COMMAND}`\n{diff}", pytrace=False
        )


@dataclass(frozen=True)
class HeldInteraction:
    """One interaction of a pact file: whose it is, what it is called, what kind it is."""

    pact: Path
    consumer: str
    description: str
    kind: str


def held_interactions(provider: str, kind: str, directory: Path = PACTS) -> list[HeldInteraction]:
    """The interactions of one kind that the pacts in `directory` hold `provider` to."""
    held: list[HeldInteraction] = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if document["provider"]["name"] != provider:
            continue
        held.extend(
            HeldInteraction(path, document["consumer"]["name"], item["description"], kind)
            for item in document["interactions"]
            if item["type"] == kind
        )
    return held


def held_to(verifier: Verifier, interactions: Iterable[HeldInteraction]) -> Verifier:
    """The verifier reading the pacts of `interactions` and replaying exactly those."""
    chosen = list(interactions)
    if not chosen:
        raise AssertionError("no pact holds the provider to any interaction of this kind")
    for path in sorted({item.pact for item in chosen}):
        verifier.add_source(path)
    descriptions = sorted({item.description for item in chosen})
    return verifier.filter("^(" + "|".join(re.escape(text) for text in descriptions) + ")$")


def assert_verified(verifier: Verifier) -> None:
    """Run the verifier; a failure (a bare RuntimeError from the core) shows its report."""
    try:
        verifier.verify()
    except RuntimeError as error:
        raise AssertionError(
            f"pact verification failed:\n{verifier.output(strip_ansi=True)}"
        ) from error


@dataclass(frozen=True)
class Failure:
    """One interaction that failed verification, as the verifier reports it."""

    interaction: str
    detail: str


def failed_verification(verifier: Verifier) -> list[Failure]:
    """Run a verifier that must fail; the interactions that failed, and why."""
    with pytest.raises(RuntimeError):
        verifier.verify()
    report = verifier.output(strip_ansi=True)
    _, found, section = report.partition("\nFailures:\n")
    assert found, f"the verifier failed without reporting a failed interaction:\n{report}"
    entries = re.split(r"^\d+\) Verifying a pact between ", section, flags=re.MULTILINE)[1:]
    failures = []
    for entry in entries:
        heading, _, detail = entry.partition("\n")
        failures.append(Failure(heading.partition(" - ")[2].strip(), detail))
    return failures


# --- the messages -----------------------------------------------------------------------------


def assert_handled(
    pact: Pact, handle: Callable[[str | bytes | None, dict[str, object]], None]
) -> int:
    """Give every message of the pact to `handle`; fail naming each message it could not
    handle, and why. The number of messages."""
    errors = pact.verify(handle, "Async", raises=False)
    if errors:
        raise AssertionError(
            "the consumer cannot handle every message of its pact:\n"
            + "\n".join(f"- {e.description}: {type(e.error).__name__}: {e.error}" for e in errors)
        )
    return len(list(pact.interactions("Async")))


def sns_message(body: str | bytes | None, metadata: Mapping[str, object]) -> Message:
    """The SNS message a pact's message stands for: its contents as the body and its metadata
    (the pact's own content type aside) as the string message attributes."""
    if body is None:
        raise AssertionError("the pact's message has no contents")
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    attributes = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in metadata.items()
        if key != CONTENT_TYPE_METADATA
    }
    return Message(text, attributes)


@dataclass(frozen=True)
class Subscriber:
    """A service's queue on an in-memory bus provisioned from the AsyncAPI bindings (filter
    policy, dead-letter queue), with the kit's consumer running the service's handlers."""

    broker: InMemoryBroker
    topic: str
    queue: str

    async def deliver(self, message: Message) -> None:
        """Publish `message` to the topic and wait until the consumer has handled it."""
        self.broker.publish(self.topic, message)
        if self.broker.depth(self.queue) == 0:
            raise AssertionError(
                f"the filter policy of {self.queue} does not let through a message with the "
                f"attributes {dict(message.attributes)}"
            )
        await eventually(lambda: self.broker.depth(self.queue) == 0, f"{self.queue} draining")
        dead = self.broker.dead_letters(self.queue)
        if dead:
            raise AssertionError(f"the consumer dead-lettered the message: {dead[0].reason}")


@asynccontextmanager
async def subscribed(
    topology: Topology, queue: str, subscribe: Callable[[EventConsumer], None]
) -> AsyncIterator[Subscriber]:
    """`queue` of `topology` on a bus of its own, its consumer running what `subscribe` adds."""
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    broker = InMemoryBroker()
    broker.apply(topology.with_prefix(prefix))
    consumer = InMemoryEventConsumer(broker, prefix + queue, FAST)
    subscribe(consumer)
    await consumer.start()
    try:
        yield Subscriber(broker, prefix + USER_EVENTS_TOPIC, prefix + queue)
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait until `check` holds (a bound on waiting, not an assertion about speed)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await asyncio.sleep(0.005)


# --- serving ----------------------------------------------------------------------------------


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1 (its lifespan is the caller's);
    the base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    port: int = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"uvicorn:{port}")
    try:
        await eventually(lambda: server.started or task.done(), "uvicorn starting")
        if task.done():
            await task
            raise AssertionError("uvicorn stopped before it started serving")
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@dataclass(frozen=True)
class AuthClientInteractions:
    """How one consumer describes the three interactions of the kit's auth client
    (`services/kit/auth_client.py`): the roles of an admin, of an unknown user, the key set."""

    admin_roles: str
    unknown_roles: str
    key_set: str


def auth_client_pact(
    consumer: str,
    described: AuthClientInteractions,
    api_key: str,
    signing_key: SigningKey,
) -> Pact:
    """What the kit's auth client, as `consumer` runs it, needs from the auth service:
    `getUserRoles` with the service credential (an admin's roles; 404 for an unknown user)
    and `getJwks`. Every internal caller of the auth service uses that one client, so every
    consumer's pact holds the auth service to the same answers."""
    pact = pact_between(consumer, AUTH_SERVICE)
    (
        pact.upon_receiving(described.admin_roles)
        .given(examples.ADMIN_EXISTS, userId=examples.USER_ID)
        .with_request("GET", f"/api/v1/auth/users/{examples.USER_ID}/roles")
        .with_header("X-API-Key", match.str(api_key))
        .will_respond_with(200)
        .with_body(
            {
                "userId": match.uuid(examples.USER_ID),
                "roles": match.each_like(examples.role("admin"), min=1),
            },
            content_type="application/json",
        )
    )
    (
        pact.upon_receiving(described.unknown_roles)
        .given(examples.NO_SUCH_USER, userId=examples.UNKNOWN_USER_ID)
        .with_request("GET", f"/api/v1/auth/users/{examples.UNKNOWN_USER_ID}/roles")
        .with_header("X-API-Key", match.str(api_key))
        .will_respond_with(404)
    )
    jwk = signing_key.public_jwk()
    (
        pact.upon_receiving(described.key_set)
        .with_request("GET", "/.well-known/jwks.json")
        .will_respond_with(200)
        .with_header("Cache-Control", match.str(JWKS_CACHE_CONTROL))
        .with_body(
            {
                "keys": match.each_like(
                    {
                        # Pinned: a type matcher on `keys` would cascade to them.
                        "kty": examples.exactly("OKP"),
                        "crv": examples.exactly("Ed25519"),
                        "use": examples.exactly("sig"),
                        "alg": examples.exactly("EdDSA"),
                        "kid": match.str(jwk["kid"]),
                        "x": match.regex(jwk["x"], regex=examples.ED25519_PUBLIC_KEY),
                    },
                    min=1,
                )
            },
            content_type="application/json",
        )
    )
    return pact
