"""Which email addresses the auth service takes: exactly those the contract's `Email` schema
admits (a dot-atom local part, a domain name of two labels or more, at most 254 characters),
on SQLite and PostgreSQL. Well-formed addresses on reserved or special-use domains are
addresses like any other: a login with an unknown one is 401, not 422."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from generated.auth import models as api
from generated.events import models as events
from tests.auth.conftest import PASSWORD, AuthClient, Bus
from tests.conftest import REPOSITORY

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
RESET = "/api/v1/auth/password-reset"


def _email_schema() -> dict[str, Any]:
    contract = yaml.safe_load(Path(REPOSITORY / "contracts/openapi/auth-service.yaml").read_text())
    schema: dict[str, Any] = contract["components"]["schemas"]["Email"]
    return schema


EMAIL = _email_schema()
# The pattern as Python reads it, for Hypothesis; `\Z`, because Python's `$` also matches
# before a final newline, which JSON Schema's (ECMA-262) `$` does not.
PATTERN = re.compile(EMAIL["pattern"].removesuffix("$") + r"\Z")

ADMITTED = [
    "ada@example.test",
    "ada@printer.local",
    "ada@example.invalid",
    "ada@mail.localhost",
    "Ada.Lovelace+tag@Sub.Example.COM",
    "o'brien{x}|~@example.ie",
    "ada@xn--bcher-kva.example",
    "ada@bücher.example",
    "用户@例子.广告",
    "ada@a-b--c.example",
    "ada@192.0.2.1",
]
REFUSED = [
    '"ada lovelace"@example.com',
    "ada@[192.0.2.1]",
    "ada@[IPv6:2001:db8::1]",
    "ada@localhost",
    "ada..lovelace@example.com",
    ".ada@example.com",
    "ada@-example.com",
    "ada@example-.com",
    "ada@example..com",
    "ada @example.com",
    "ada@example.com\n",
    "ada\u200b@example.com",
    "ada\u00a0@example.com",
    "ada\x00@example.com",
    "a" * 243 + "@example.com",
]


@pytest.mark.parametrize(
    "model", [api.RegisterRequest, api.LoginRequest, api.PasswordResetRequest, api.Account]
)
def test_the_models_check_the_contracts_pattern_not_a_library_s_idea_of_an_email(
    model: type[Any],
) -> None:
    field = model.model_fields["email"]

    assert "format" not in EMAIL  # the pattern is the whole definition
    assert field.annotation is str
    assert EMAIL["pattern"] in [getattr(item, "pattern", None) for item in field.metadata]
    assert EMAIL["maxLength"] in [getattr(item, "max_length", None) for item in field.metadata]


@pytest.mark.parametrize("email", ADMITTED)
def test_an_address_the_pattern_admits_is_valid_for_every_request_that_carries_one(
    email: str,
) -> None:
    assert PATTERN.search(email)
    for model in (api.RegisterRequest, api.LoginRequest):
        model.model_validate({"email": email, "password": PASSWORD})
    api.PasswordResetRequest.model_validate({"email": email})


@pytest.mark.parametrize("email", REFUSED)
def test_an_address_the_pattern_refuses_is_refused_by_the_models(email: str) -> None:
    assert not PATTERN.search(email) or len(email) > EMAIL["maxLength"]
    with pytest.raises(ValidationError):
        api.LoginRequest.model_validate({"email": email, "password": PASSWORD})


# The contract admits what the pattern matches within `maxLength`: the same two constraints.
@given(st.from_regex(PATTERN).filter(lambda email: len(email) <= EMAIL["maxLength"]))
def test_every_address_the_contract_admits_the_models_admit(email: str) -> None:
    api.LoginRequest.model_validate({"email": email, "password": PASSWORD})
    events.UserCreatedPayload.model_validate(
        {
            "eventId": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "eventType": "user.created",
            "schemaVersion": "1.0.0",
            "sequence": 1,
            "userId": "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10",
            "email": email,
            "timestamp": "2026-11-25T10:00:00Z",
            "source": "auth-service",
        }
    )


@pytest.mark.parametrize("email", ["ada@example.test", "用户@例子.广告", "o'brien{x}|~@example.ie"])
async def test_an_admitted_address_registers_logs_in_and_is_published_as_sent(
    auth: AuthClient, bus: Bus, email: str
) -> None:
    registered = await auth.http.post(REGISTER, json={"email": email, "password": PASSWORD})
    login = await auth.login(email)

    assert registered.status_code == 201, registered.text
    assert login.status_code == 200, login.text
    [event] = await bus.wait_for(1)
    assert isinstance(event, events.UserCreatedPayload)
    assert event.email == email


@pytest.mark.parametrize("email", ADMITTED)
async def test_a_login_with_an_unknown_well_formed_address_is_401_and_a_reset_202(
    auth: AuthClient, email: str
) -> None:
    login = await auth.login(email)
    reset = await auth.http.post(RESET, json={"email": email})

    assert login.status_code == 401, login.text
    assert login.json()["type"] == "https://accord.example/problems/invalid-credentials"
    assert reset.status_code == 202, reset.text


@pytest.mark.parametrize("email", REFUSED[:4])
async def test_an_address_the_contract_refuses_is_422_pointing_at_the_email(
    auth: AuthClient, email: str
) -> None:
    for path in (REGISTER, LOGIN):
        response = await auth.http.post(path, json={"email": email, "password": PASSWORD})

        assert response.status_code == 422, response.text
        assert [error["pointer"] for error in response.json()["errors"]] == ["/body/email"]


async def test_an_address_too_long_to_store_once_normalised_is_refused_with_422(
    auth: AuthClient, bus: Bus
) -> None:
    # 254 characters, within the contract's maxLength; NFC turns each U+FB2C into three.
    email = "\ufb2c" * 3 + "a" * 239 + "@example.com"
    assert len(email) == 254

    response = await auth.http.post(REGISTER, json={"email": email, "password": PASSWORD})
    login = await auth.login(email)

    assert response.status_code == 422, response.text
    assert [error["pointer"] for error in response.json()["errors"]] == ["/body/email"]
    assert login.status_code == 401
    assert await bus.settle() == []
