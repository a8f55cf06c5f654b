"""Access tokens: issued by one key, verified against a JWKS, and every forgery refused."""

from __future__ import annotations

import ast
import asyncio
import base64
import functools
import hashlib
import hmac
import json
import stat
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit import tokens
from services.kit.tokens import (
    AccessTokenClaims,
    InvalidTokenError,
    JwksKeySource,
    KeySource,
    KeySourceUnavailableError,
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
    jwks,
    load_or_create_signing_key,
)

ISSUER = "https://auth.accord.test"
AUDIENCE = "accord"
TTL = timedelta(minutes=15)
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class FakeJwksFetch:
    """The fetch port of `JwksKeySource`: serves whatever key set it holds, counting fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.document: dict[str, Any] = jwks(*keys)
        self.fetches = 0
        self.failing = False

    def publish(self, *keys: SigningKey) -> None:
        self.document = jwks(*keys)

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        await asyncio.sleep(0)
        if self.failing:
            raise KeySourceUnavailableError("the auth service is down")
        return self.document


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def valid_payload(clock: Clock, **changes: Any) -> dict[str, Any]:
    """The claims a good token carries; a change to None removes the claim."""
    now = int(clock().timestamp())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10",
        "iat": now,
        "nbf": now,
        "exp": now + int(TTL.total_seconds()),
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def verifier_for(keys: KeySource, clock: Clock, **overrides: Any) -> TokenVerifier:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "clock": clock}
    options.update(overrides)
    return TokenVerifier(keys, **options)


async def rejection(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify(token)
    assert not token or token not in str(caught.value)
    return caught.value.reason


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def issuer(key: SigningKey, clock: Clock) -> TokenIssuer:
    return TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)


@pytest.fixture
def verifier(key: SigningKey, clock: Clock) -> TokenVerifier:
    return verifier_for(StaticKeySource(jwks(key)), clock)


# Issuing and verifying


async def test_an_issued_token_verifies_and_gives_back_its_claims(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    issued = issuer.issue("user-1", ["user", "admin"])

    claims = await verifier.verify(issued.token)

    assert claims == issued.claims
    assert claims == AccessTokenClaims(
        subject="user-1",
        roles=("user", "admin"),
        issuer=ISSUER,
        audience=AUDIENCE,
        issued_at=START,
        expires_at=START + TTL,
        token_id=issued.claims.token_id,
    )
    assert issued.expires_in == 900


def test_an_issued_token_has_an_eddsa_header_naming_its_key_and_the_documented_claims(
    issuer: TokenIssuer, key: SigningKey
) -> None:
    issued = issuer.issue("user-1", ["user"])

    header = jwt.get_unverified_header(issued.token)
    payload = jwt.decode(issued.token, options={"verify_signature": False})

    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    assert set(payload) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "roles"}
    assert payload["roles"] == ["user"]
    assert payload["exp"] - payload["iat"] == 900


def test_every_token_gets_its_own_token_id(issuer: TokenIssuer) -> None:
    token_ids = {issuer.issue("user-1", ["user"]).claims.token_id for _ in range(20)}

    assert len(token_ids) == 20


def test_roles_given_as_a_single_string_are_refused_rather_than_split_into_letters(
    issuer: TokenIssuer,
) -> None:
    with pytest.raises(TypeError):
        issuer.issue("user-1", "admin")


async def test_a_token_without_roles_verifies_with_no_roles(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    claims = await verifier.verify(issuer.issue("user-1", []).token)

    assert claims.roles == ()


async def test_a_token_without_a_token_id_verifies_as_the_contract_does_not_require_one(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    claims = await verifier.verify(key.sign(valid_payload(clock, jti=None)))

    assert claims.token_id is None


# Keys


def test_the_key_id_is_the_rfc_7638_thumbprint_of_the_public_key() -> None:
    # The Ed25519 key of RFC 8037 appendix A.1, and its thumbprint from appendix A.3.
    private = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(private))

    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert key.public_jwk()["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


def test_a_signing_key_survives_a_round_trip_through_pem(key: SigningKey) -> None:
    pem = key.to_pem()

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SigningKey.from_pem(pem).kid == key.kid
    assert SigningKey.from_pem(pem.decode("ascii")).kid == key.kid


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a key at all",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
    ],
)
def test_a_garbled_pem_is_a_clear_value_error(pem: bytes | str) -> None:
    with pytest.raises(ValueError, match="not an unencrypted PKCS#8 PEM Ed25519 private key"):
        SigningKey.from_pem(pem)


def test_an_rsa_private_key_is_refused_naming_what_it_is() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(ValueError, match="expected an Ed25519 private key, got RSA"):
        SigningKey.from_pem(pem)


def test_an_encrypted_pem_is_refused_with_a_value_error() -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )

    with pytest.raises(ValueError, match="unencrypted"):
        SigningKey.from_pem(pem)


def test_the_jwks_publishes_every_key_of_a_rotation_and_no_private_part() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()

    document = jwks(new, old)

    assert [entry["kid"] for entry in document["keys"]] == [new.kid, old.kid]
    assert document["keys"][0] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": new.public_jwk()["x"],
        "kid": new.kid,
        "use": "sig",
        "alg": "EdDSA",
    }
    assert all("d" not in entry for entry in document["keys"])


def test_a_missing_key_file_is_created_with_mode_0600_in_new_directories(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "signing.pem"

    key = load_or_create_signing_key(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.from_pem(path.read_bytes()).kid == key.kid
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_the_second_load_of_a_key_file_gives_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"

    first = load_or_create_signing_key(path)
    second = load_or_create_signing_key(path)

    assert second.kid == first.kid
    assert second.to_pem() == first.to_pem()


def test_a_garbled_key_file_is_a_value_error_and_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(b"garbage")

    with pytest.raises(ValueError, match="PEM"):
        load_or_create_signing_key(path)
    assert path.read_bytes() == b"garbage"


# Forgeries and other tokens that must be refused


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_a_token_with_alg_none_is_rejected(
    alg: str, key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": key.kid}
    token = f"{segment(header)}.{segment(valid_payload(clock))}."

    assert await rejection(verifier, token) == "algorithm not allowed"


@pytest.mark.parametrize("secret_form", ["pem", "jwk x"])
async def test_a_token_signed_hs256_with_the_public_key_is_rejected(
    secret_form: str, key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    # PyJWT refuses to HMAC with a PEM public key, so the forgery is made by hand.
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = public_pem if secret_form == "pem" else key.public_jwk()["x"].encode("ascii")
    signing_input = (
        f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}."
        f"{segment(valid_payload(clock, roles=['admin']))}"
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()

    assert await rejection(verifier, f"{signing_input}.{b64url(signature)}") == (
        "algorithm not allowed"
    )


async def test_a_token_signed_rs256_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_payload(clock), rsa_key, algorithm="RS256", headers={"kid": key.kid})

    assert await rejection(verifier, token) == "algorithm not allowed"


async def test_an_expired_token_is_rejected(
    issuer: TokenIssuer, clock: Clock, verifier: TokenVerifier
) -> None:
    token = issuer.issue("user-1", ["user"]).token
    clock.advance(TTL + timedelta(seconds=31))

    assert await rejection(verifier, token) == "expired"


async def test_a_token_just_expired_is_accepted_within_the_leeway(
    issuer: TokenIssuer, clock: Clock, verifier: TokenVerifier
) -> None:
    token = issuer.issue("user-1", ["user"]).token
    clock.advance(TTL + timedelta(seconds=29))

    assert (await verifier.verify(token)).subject == "user-1"


async def test_a_token_not_yet_valid_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    later = int(clock().timestamp()) + 120
    token = key.sign(valid_payload(clock, nbf=later))

    assert await rejection(verifier, token) == "not yet valid"


async def test_a_token_issued_in_the_future_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    later = int(clock().timestamp()) + 120
    token = key.sign(valid_payload(clock, iat=later, nbf=None))

    assert await rejection(verifier, token) == "not yet valid"


async def test_a_token_for_another_audience_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, aud="another-platform"))

    assert await rejection(verifier, token) == "wrong audience"


async def test_a_token_for_several_audiences_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, aud=[AUDIENCE, "another-platform"]))

    assert await rejection(verifier, token) == "wrong audience"


async def test_a_token_from_another_issuer_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, iss="https://evil.example"))

    assert await rejection(verifier, token) == "wrong issuer"


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "roles"])
async def test_a_token_missing_a_required_claim_is_rejected(
    claim: str, key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, **{claim: None}))

    assert await rejection(verifier, token) == f"missing claim {claim}"


@pytest.mark.parametrize(
    "changes",
    [
        {"roles": "admin"},
        {"roles": ["user", 7]},
        {"roles": {"admin": True}},
        {"sub": ""},
        {"sub": 42},
        {"exp": "tomorrow"},
        {"exp": True},
        {"iat": 1e300},
        {"jti": 5},
    ],
    ids=repr,
)
async def test_a_token_with_a_malformed_claim_is_rejected(
    changes: dict[str, Any], key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, **changes))

    assert await rejection(verifier, token) in {"invalid claims", "malformed token"}


async def test_a_token_with_an_unknown_kid_is_rejected_after_one_refetch(
    clock: Clock, key: SigningKey, issuer: TokenIssuer
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    await verifier.verify(issuer.issue("user-1", ["user"]).token)
    clock.advance(timedelta(minutes=1))
    stranger = SigningKey.generate()

    reason = await rejection(verifier, stranger.sign(valid_payload(clock)))

    assert reason == "unknown signing key"
    assert fetch.fetches == 2  # the first use, then one re-fetch for the unknown kid


async def test_an_unknown_kid_on_first_use_is_answered_from_that_first_fetch(
    clock: Clock, key: SigningKey
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    stranger = SigningKey.generate()

    assert await rejection(verifier, stranger.sign(valid_payload(clock))) == "unknown signing key"
    assert fetch.fetches == 1


async def test_a_token_without_a_kid_is_rejected(clock: Clock, verifier: TokenVerifier) -> None:
    private_key = Ed25519PrivateKey.generate()
    key = SigningKey(private_key)
    verifier = verifier_for(StaticKeySource(jwks(key)), clock)
    token = jwt.encode(valid_payload(clock), private_key, algorithm="EdDSA")

    assert await rejection(verifier, token) == "missing key id"


async def test_a_token_with_a_tampered_payload_is_rejected(
    issuer: TokenIssuer, clock: Clock, verifier: TokenVerifier
) -> None:
    header, _, signature = issuer.issue("user-1", ["user"]).token.split(".")
    forged_payload = segment(valid_payload(clock, sub="user-1", roles=["user", "admin"]))

    assert await rejection(verifier, f"{header}.{forged_payload}.{signature}") == "bad signature"


async def test_a_token_signed_by_another_key_claiming_a_known_kid_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    impostor = Ed25519PrivateKey.generate()
    token = jwt.encode(
        valid_payload(clock, roles=["admin"]), impostor, algorithm="EdDSA", headers={"kid": key.kid}
    )

    assert await rejection(verifier, token) == "bad signature"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "Bearer",
        "not-a-token",
        "a.b.c",
        "...",
        "eyJ.eyJ.",
        "eyJhbGciOiJFZERTQSJ9",
        "%%%.%%%.%%%",
        "ünïcødé.ünïcødé.ünïcødé",
        "x" * 10_000,
    ],
    ids=lambda garbage: garbage[:20] or "empty",
)
async def test_a_garbage_string_is_rejected_as_malformed(
    garbage: str, verifier: TokenVerifier
) -> None:
    assert await rejection(verifier, garbage) == "malformed token"


async def test_a_token_with_trailing_material_is_rejected(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = issuer.issue("user-1", ["user"]).token

    assert await rejection(verifier, token + ".extra") in {"malformed token", "bad signature"}


@functools.cache
def property_setup() -> tuple[SigningKey, str]:
    key = SigningKey.generate()
    issuer = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=Clock())
    return key, issuer.issue("user-1", ["user"]).token


BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), replacement=st.sampled_from(BASE64URL_ALPHABET))
def test_changing_any_single_character_of_the_signature_is_rejected(
    position: int, replacement: str
) -> None:
    key, token = property_setup()
    header, payload, signature = token.split(".")
    index = position % len(signature)
    if signature[index] == replacement:
        return
    tampered = signature[:index] + replacement + signature[index + 1 :]
    verifier = verifier_for(StaticKeySource(jwks(key)), Clock())

    with pytest.raises(InvalidTokenError):
        asyncio.run(verifier.verify(f"{header}.{payload}.{tampered}"))


@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_any_arbitrary_text_is_rejected_as_an_invalid_token(text: str) -> None:
    key, _ = property_setup()
    verifier = verifier_for(StaticKeySource(jwks(key)), Clock())

    with pytest.raises(InvalidTokenError):
        asyncio.run(verifier.verify(text))


# Key sources


def test_a_static_key_source_refuses_a_document_that_is_not_a_key_set() -> None:
    with pytest.raises(ValueError, match="JSON Web Key Set"):
        StaticKeySource({"keys": "nope"})


async def test_only_ed25519_signature_keys_are_taken_from_a_jwks(key: SigningKey) -> None:
    good = key.public_jwk()
    document = {
        "keys": [
            "not an object",
            {**good, "kid": "encryption", "use": "enc"},
            {**good, "kid": "no-use", "use": None},
            {**good, "kid": "ed448", "crv": "Ed448"},
            {**good, "kid": "x25519", "crv": "X25519"},
            {**good, "kid": "wrong-alg", "alg": "RS256"},
            {**good, "kid": "short", "x": "AAAA"},
            {**good, "kid": "not-base64", "x": "!!" * 22},
            {**good, "kid": "private", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"},
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {**good, "kid": ""},
            good,
        ]
    }

    source = StaticKeySource(document)

    assert await source.key(key.kid) is not None
    for kid in ("encryption", "no-use", "ed448", "x25519", "wrong-alg", "short", "not-base64"):
        assert await source.key(kid) is None, kid
    assert await source.key("private") is None
    assert await source.key("rsa") is None


async def test_the_key_set_is_fetched_lazily_on_first_use_and_then_cached(
    issuer: TokenIssuer, key: SigningKey, clock: Clock
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    assert fetch.fetches == 0

    for _ in range(5):
        await verifier.verify(issuer.issue("user-1", ["user"]).token)

    assert fetch.fetches == 1


async def test_after_a_key_rotation_the_new_key_is_found_after_one_refetch(
    key: SigningKey, clock: Clock
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    old_issuer = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)
    await verifier.verify(old_issuer.issue("user-1", ["user"]).token)

    new_key = SigningKey.generate()
    fetch.publish(new_key, key)
    clock.advance(timedelta(minutes=5))
    new_issuer = TokenIssuer(new_key, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)

    claims = await verifier.verify(new_issuer.issue("user-2", ["user"]).token)
    assert claims.subject == "user-2"
    assert fetch.fetches == 2
    assert (await verifier.verify(old_issuer.issue("user-1", ["user"]).token)).subject == "user-1"
    assert fetch.fetches == 2


async def test_a_flood_of_unknown_kids_causes_at_most_one_refetch_per_interval(
    key: SigningKey, clock: Clock, issuer: TokenIssuer
) -> None:
    fetch = FakeJwksFetch(key)
    source = JwksKeySource(fetch, min_refetch_interval=timedelta(seconds=30), clock=clock)
    verifier = verifier_for(source, clock)
    await verifier.verify(issuer.issue("user-1", ["user"]).token)
    clock.advance(timedelta(minutes=1))
    stranger = SigningKey.generate()

    for _ in range(100):
        header = {"alg": "EdDSA", "typ": "JWT", "kid": uuid.uuid4().hex}
        forged = f"{segment(header)}.{segment(valid_payload(clock))}.{b64url(bytes(64))}"
        assert await rejection(verifier, forged) == "unknown signing key"
        await rejection(verifier, stranger.sign(valid_payload(clock)))
    assert fetch.fetches == 2

    clock.advance(timedelta(seconds=29))
    assert await source.key(uuid.uuid4().hex) is None
    assert fetch.fetches == 2

    clock.advance(timedelta(seconds=1))
    assert await source.key(uuid.uuid4().hex) is None
    assert await source.key(uuid.uuid4().hex) is None
    assert fetch.fetches == 3


async def test_concurrent_callers_share_one_in_flight_fetch(key: SigningKey, clock: Clock) -> None:
    release = asyncio.Event()
    fetches = 0

    async def slow_fetch() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        await release.wait()
        return jwks(key)

    source = JwksKeySource(slow_fetch, clock=clock)
    callers = [asyncio.create_task(source.key(key.kid)) for _ in range(20)]
    callers += [asyncio.create_task(source.key(uuid.uuid4().hex)) for _ in range(20)]
    await asyncio.sleep(0.01)
    release.set()
    found = await asyncio.gather(*callers)

    assert fetches == 1
    assert all(public_key is not None for public_key in found[:20])
    assert all(public_key is None for public_key in found[20:])


async def test_tokens_with_a_disallowed_algorithm_do_not_make_the_key_source_fetch(
    key: SigningKey, clock: Clock
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    header = {"alg": "none", "kid": uuid.uuid4().hex}

    await rejection(verifier, f"{segment(header)}.{segment(valid_payload(clock))}.")

    assert fetch.fetches == 0


async def test_an_unreachable_key_set_with_nothing_cached_is_key_source_unavailable(
    issuer: TokenIssuer, key: SigningKey, clock: Clock
) -> None:
    fetch = FakeJwksFetch(key)
    fetch.failing = True
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)

    with pytest.raises(KeySourceUnavailableError, match="the auth service is down"):
        await verifier.verify(issuer.issue("user-1", ["user"]).token)

    # Nothing to answer from, so the next token tries again; once the set is back it verifies.
    fetch.failing = False
    assert (await verifier.verify(issuer.issue("user-1", ["user"]).token)).subject == "user-1"
    assert fetch.fetches == 2


async def test_cached_keys_keep_working_when_a_refetch_fails(
    issuer: TokenIssuer, key: SigningKey, clock: Clock
) -> None:
    fetch = FakeJwksFetch(key)
    verifier = verifier_for(JwksKeySource(fetch, clock=clock), clock)
    await verifier.verify(issuer.issue("user-1", ["user"]).token)
    fetch.failing = True
    clock.advance(timedelta(minutes=1))

    stranger = SigningKey.generate()
    assert await rejection(verifier, stranger.sign(valid_payload(clock))) == "unknown signing key"
    assert (await verifier.verify(issuer.issue("user-1", ["user"]).token)).subject == "user-1"
    assert fetch.fetches == 2


async def test_a_fetch_that_returns_no_key_set_is_key_source_unavailable(clock: Clock) -> None:
    async def fetch() -> dict[str, Any]:
        return {"error": "maintenance"}

    with pytest.raises(KeySourceUnavailableError, match="JSON Web Key Set"):
        await JwksKeySource(fetch, clock=clock).key("any")


async def test_a_fetch_that_fails_unexpectedly_is_key_source_unavailable(clock: Clock) -> None:
    async def fetch() -> dict[str, Any]:
        raise RuntimeError("bug in the adapter")

    with pytest.raises(KeySourceUnavailableError, match="RuntimeError"):
        await JwksKeySource(fetch, clock=clock).key("any")


# Fetching the key set over HTTP (the auth service's `getJwks` through the kit's client policy):
# tests/unit/kit/test_auth_client.py.


def test_the_tokens_module_imports_no_web_framework_and_no_test_library() -> None:
    tree = ast.parse(Path(tokens.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }

    assert imported - sys.stdlib_module_names == {"cryptography", "jwt"}  # HTTP: auth_client.py


# Lifetimes


YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


async def test_a_token_signed_with_the_real_key_that_expires_in_the_year_9999_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    token = key.sign(valid_payload(clock, exp=YEAR_9999))

    assert await rejection(verifier, token) == "lifetime too long"


async def test_a_token_issued_long_ago_that_is_still_unexpired_is_rejected(
    key: SigningKey, clock: Clock, verifier: TokenVerifier
) -> None:
    issued = int((clock() - timedelta(days=30)).timestamp())
    token = key.sign(valid_payload(clock, iat=issued, nbf=issued))

    assert await rejection(verifier, token) == "lifetime too long"


async def test_a_token_living_the_maximum_lifetime_plus_the_leeway_is_accepted(
    key: SigningKey, clock: Clock
) -> None:
    verifier = verifier_for(
        StaticKeySource(jwks(key)),
        clock,
        max_lifetime=timedelta(minutes=10),
        leeway=timedelta(seconds=30),
    )
    now = int(clock().timestamp())
    longest = key.sign(valid_payload(clock, exp=now + 630))
    too_long = key.sign(valid_payload(clock, exp=now + 631))

    assert (await verifier.verify(longest)).expires_at == START + timedelta(seconds=630)
    assert await rejection(verifier, too_long) == "lifetime too long"


async def test_the_default_maximum_lifetime_accepts_the_auth_services_default_tokens(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    claims = await verifier.verify(issuer.issue("user-1", ["user"]).token)

    assert claims.expires_at - claims.issued_at == tokens.DEFAULT_MAX_LIFETIME == TTL


def test_a_verifier_without_a_positive_maximum_lifetime_is_refused(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="maximum token lifetime"):
        TokenVerifier(
            StaticKeySource(jwks(key)), issuer=ISSUER, audience=AUDIENCE, max_lifetime=timedelta()
        )


async def test_an_issuer_given_a_key_provider_signs_with_the_key_it_names_at_each_issue(
    key: SigningKey, clock: Clock
) -> None:
    ring = [key]
    issuer = TokenIssuer(lambda: ring[-1], issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)
    before = issuer.issue("user-1", ["user"]).token
    ring.append(SigningKey.generate())

    after = issuer.issue("user-1", ["user"]).token

    assert jwt.get_unverified_header(before)["kid"] == key.kid
    assert jwt.get_unverified_header(after)["kid"] == ring[-1].kid
    verifier = verifier_for(StaticKeySource(jwks(*ring)), clock)
    assert (await verifier.verify(before)).subject == (await verifier.verify(after)).subject


async def test_a_key_the_auth_service_stops_publishing_stops_verifying_once_the_set_is_old(
    clock: Clock, key: SigningKey
) -> None:
    retired = SigningKey.generate()
    fetch = FakeJwksFetch(key, retired)
    source = JwksKeySource(fetch, max_age=timedelta(minutes=5), clock=clock)
    assert await source.key(retired.kid) is not None
    fetch.publish(key)  # the auth service dropped the retired key

    clock.advance(timedelta(minutes=4))
    still_cached = await source.key(retired.kid)
    clock.advance(timedelta(minutes=2))
    after_max_age = await source.key(retired.kid)
    current = await source.key(key.kid)

    assert still_cached is not None
    assert after_max_age is None
    assert current is not None
    assert fetch.fetches == 2


async def test_an_old_key_set_keeps_answering_when_the_refetch_fails(
    clock: Clock, key: SigningKey
) -> None:
    fetch = FakeJwksFetch(key)
    source = JwksKeySource(fetch, max_age=timedelta(minutes=5), clock=clock)
    assert await source.key(key.kid) is not None
    fetch.failing = True
    clock.advance(timedelta(minutes=10))

    assert await source.key(key.kid) is not None
