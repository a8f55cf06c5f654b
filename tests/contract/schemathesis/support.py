"""What the schemathesis suites share: each contract loaded with `schemathesis.toml`, an ASGI
stand-in that forwards to the running service and counts the requests it gets, credentials
chosen per test, and the stateful phase run through the contract's links."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import hypothesis
import schemathesis
import starlette.types
from hypothesis.errors import Flaky
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.conftest import REPOSITORY

CONFIG = REPOSITORY / "schemathesis.toml"

# What schemathesis puts where a credential goes. Cases for the examples and coverage phases
# are generated while pytest collects, before any service runs (and once for all the callers a
# test is parametrized with), so the credential is only named then, and `resolve` puts in the
# caller's real one just before the request.
CALLERS_CREDENTIAL = "Bearer <the test's caller>"

RecordProperty = Callable[[str, object], None]
# The `Authorization` value of the test's caller for this case.
Credential = Callable[[Any], str]


def load_contract(service: str) -> OpenApiSchema:
    """`contracts/openapi/<service>-service.yaml`, configured by `schemathesis.toml` (its phases,
    budgets and per-operation check settings), wherever pytest runs from; every operation that
    needs a credential gets `CALLERS_CREDENTIAL`."""
    schema = schemathesis.openapi.from_path(
        REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml",
        config=SchemathesisConfig.from_path(CONFIG),
    )

    @schema.auth()
    class CallersCredential:
        """Names the caller's credential; schemathesis leaves it out of the cases that probe a
        missing or wrong one."""

        def get(self, case: Any, context: Any) -> str:
            return CALLERS_CREDENTIAL

        def set(self, case: Any, data: str, context: Any) -> None:
            if case.operation.definition.raw.get("security"):
                case.headers = {**(case.headers or {}), "Authorization": data}

    return schema


def resolve(case: Any, credential: Credential) -> None:
    """Puts the caller's credential where the case names it (and nowhere else)."""
    headers = case.headers or {}
    if headers.get("Authorization") == CALLERS_CREDENTIAL:
        case.headers = {**headers, "Authorization": credential(case)}


@contextmanager
def as_caller(case: Any, credential: Credential) -> Iterator[None]:
    """The case with the caller's credential while the block runs. Cases from the contract's
    examples and from the coverage phase are made once, at collection, and handed to the test
    of every caller, so the credential is put back to the name afterwards."""
    named = case.headers
    resolve(case, credential)
    try:
        yield
    finally:
        case.headers = named


class ServiceSlot:
    """An ASGI application that forwards to the service a fixture started, counting requests.

    schemathesis copies `schema.app` into every operation when the test is parametrized (at
    collection), so the schema gets this stand-in, and nothing is built at import time.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.app: starlette.types.ASGIApp | None = None
        self.requests = 0

    # Typed as schemathesis's ASGI client expects it (a dict scope, which Starlette accepts).
    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if self.app is None:
            raise RuntimeError(f"the {self.service} service is not running (the `service` fixture)")
        if scope["type"] == "http":
            self.requests += 1
        # schemathesis's `send` takes the dicts Starlette sends; only the annotation is narrower.
        await self.app(scope, receive, cast("starlette.types.Send", send))

    @contextmanager
    def counting(self, record_property: RecordProperty) -> Iterator[None]:
        """Records `("cases", N)` on the test: the requests the service got meanwhile."""
        before = self.requests
        try:
            yield
        finally:
            record_property("cases", self.requests - before)


def run_stateful(schema: OpenApiSchema, credential: Credential) -> Counter[str]:
    """Runs the stateful phase as `schemathesis.toml` sets it (scenarios, steps per scenario),
    every response checked, as the caller; answers how often each of the contract's links was
    followed with the values it names."""
    followed: Counter[str] = Counter()
    failures: list[Exception] = []
    machine: Any = schema.as_state_machine()

    class Workflow(machine):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            resolve(case, credential)
            super().before_call(case)

        def step(self, input: StepInput) -> StepOutput:
            transition = input.transition
            if transition is not None and not transition.is_inferred and input.is_applied:
                followed[transition.id] += 1
            try:
                output: StepOutput = super().step(input)
            except Exception as failure:
                failures.append(failure)
                raise
            return output

    configured = schema.config.get_hypothesis_settings(phase="stateful")
    try:
        # As the schemathesis CLI runs it: scenarios are generated, not replayed or shrunk.
        Workflow.run(settings=hypothesis.settings(configured, phases=[hypothesis.Phase.generate]))
    except Flaky:
        # Which links can be followed depends on what the service answered before (a second
        # registration of one email gets 409, not 201), so Hypothesis may find that a scenario
        # it replays, to try a variation or to confirm a failure, no longer draws what it drew
        # the first time. The CLI then ends the phase, failing it only on a failure met before.
        if failures:
            raise failures[0] from None
    return followed
