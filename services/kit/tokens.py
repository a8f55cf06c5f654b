"""Access tokens: EdDSA (Ed25519) JWTs, issued by the auth service and verified locally by every
other service.

The contract is `contracts/openapi/auth-service.yaml`: a token's header names its signing key
(`kid`), the auth service publishes its public keys at `/.well-known/jwks.json` (`getJwks`),
and the claims are `iss`, `aud`, `sub`, `iat`, `exp` and `roles` (the issuer adds `nbf` and
`jti`). No secret is shared: verifiers need only the public key set, which `JwksKeySource`
fetches once, caches, and fetches again (rate-limited) when it meets an unknown `kid`.

A verifier also refuses a token whose lifetime (`exp - iat`) is longer than the auth service
ever issues (`max_lifetime`, plus the leeway): a token that lives until the year 9999 is not
an access token, even if the real key signed it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALGORITHM: Final = "EdDSA"
# The allow-list handed to PyJWT. It is a constant, never derived from a token's header
# (RFC 8725 §3.1), so `alg: none`, HS256 and RS256 tokens cannot choose how they are checked.
ALLOWED_ALGORITHMS: Final = [ALGORITHM]
REQUIRED_CLAIMS: Final = ["iss", "aud", "sub", "exp", "iat", "roles"]
# Far above any token we issue; caps the work an unauthenticated caller can make us do.
MAX_TOKEN_LENGTH: Final = 8192
# How far the verifier's clock may be from the issuer's. The auth service keeps a rotated-out
# key published for the access-token lifetime plus this much (`services/auth/keyring.py`).
DEFAULT_LEEWAY: Final = timedelta(seconds=30)
# The auth service's default access-token lifetime (AUTH_ACCESS_TOKEN_TTL_SECONDS).
DEFAULT_MAX_LIFETIME: Final = timedelta(seconds=900)

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def now_utc() -> datetime:
    return datetime.now(UTC)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _thumbprint(x: str) -> str:
    # RFC 7638 §3.2: the required members of an OKP key (RFC 8037 §2), in lexicographic order,
    # without whitespace.
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url_encode(hashlib.sha256(members.encode("utf-8")).digest())


class SigningKey:
    """An Ed25519 private key that signs access tokens, named by its RFC 7638 thumbprint."""

    __slots__ = ("_private_key", "_x", "kid")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._x = _b64url_encode(_raw_public_bytes(private_key.public_key()))
        self.kid = _thumbprint(self._x)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key; anything else is a `ValueError`."""
        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # TypeError: the key is encrypted. The cause stays chained; the message never
            # repeats the input, which is secret.
            raise ValueError(
                "not an unencrypted PKCS#8 PEM Ed25519 private key "
                f"({type(exc).__name__} while loading it)"
            ) from exc
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ValueError(
                "expected an Ed25519 private key, got "
                f"{type(private_key).__name__.removesuffix('PrivateKey')} "
                "(access tokens are signed with EdDSA only)"
            )
        return cls(private_key)

    def to_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self._x,
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def sign(self, payload: dict[str, Any]) -> str:
        """Encode `payload` as a JWT signed with this key, its `kid` in the header."""
        return jwt.encode(
            payload,
            self._private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.kid, "typ": "JWT"},
        )

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The key stored at `path`, or a new one written there (mode 0600) if there is none."""
    if path.exists():
        return SigningKey.from_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    # mkstemp creates the file with mode 0600; the key is complete on disk before it gets its
    # name. `link` (unlike `replace`) refuses to overwrite, so when two processes start at once
    # both end up with the key that won.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.to_pem())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return SigningKey.from_pem(path.read_bytes())
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
    return key


def jwks(*keys: SigningKey) -> dict[str, list[dict[str, str]]]:
    """The JSON Web Key Set publishing `keys` (several during a rotation)."""
    return {"keys": [key.public_jwk() for key in keys]}


@dataclass(frozen=True)
class AccessTokenClaims:
    """What a verified access token says: who, with which roles, for whom, until when."""

    subject: str
    roles: tuple[str, ...]
    issuer: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    # `jti` is not among the contract's required claims; tokens from `TokenIssuer` carry one.
    token_id: str | None


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed access token, with its lifetime in seconds and its claims."""

    token: str
    expires_in: int
    claims: AccessTokenClaims


class TokenIssuer:
    """Issues access tokens for one issuer and audience, signed with one key or, given a
    callable, with whichever key it names at the moment of issuing (a rotating key ring)."""

    def __init__(
        self,
        key: SigningKey | Callable[[], SigningKey],
        *,
        issuer: str,
        audience: str,
        ttl: timedelta,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        if ttl < timedelta(seconds=1):
            raise ValueError(f"the access token ttl must be at least one second, not {ttl}")
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl_seconds = int(ttl.total_seconds())
        self._clock = clock

    def issue(self, subject: str, roles: Sequence[str]) -> IssuedToken:
        if isinstance(roles, str):
            raise TypeError("roles must be a sequence of role names, not a string")
        if not subject:
            raise ValueError("the subject of an access token must not be empty")
        # NumericDate claims are whole seconds; the claims returned must match the token.
        issued_at = _aware(self._clock()).replace(microsecond=0)
        expires_at = issued_at + timedelta(seconds=self._ttl_seconds)
        claims = AccessTokenClaims(
            subject=subject,
            roles=tuple(roles),
            issuer=self._issuer,
            audience=self._audience,
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=secrets.token_urlsafe(16),
        )
        payload: dict[str, Any] = {
            "iss": claims.issuer,
            "aud": claims.audience,
            "sub": claims.subject,
            "iat": int(issued_at.timestamp()),
            "nbf": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": claims.token_id,
            "roles": list(claims.roles),
        }
        key = self._key if isinstance(self._key, SigningKey) else self._key()
        return IssuedToken(key.sign(payload), self._ttl_seconds, claims)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    return moment


class InvalidTokenError(Exception):
    """A token that must not be accepted; `reason` says why, never quoting the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySourceUnavailableError(Exception):
    """The verification keys cannot be obtained (not the caller's fault: answer 503, not 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySource(Protocol):
    """Finds the public key that verifies tokens signed under a `kid`."""

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        """The key named `kid`, or None if there is none; `KeySourceUnavailableError` if the
        keys cannot be obtained at all."""
        ...


def parse_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signature keys of a JWKS by `kid`; other kinds of key are left out.

    A document that is not a key set at all is a `ValueError`.
    """
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("not a JSON Web Key Set: no `keys` array")
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if (
            entry.get("kty") != "OKP"
            or entry.get("crv") != "Ed25519"
            or entry.get("use") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
            or not isinstance(kid, str)
            or not kid
            or not isinstance(x, str)
            or "d" in entry  # a private key has no business in a published set
            or kid in keys
        ):
            continue
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(_b64url_decode(x))
        except ValueError:
            continue
    return keys


class JwksFetcher(Protocol):
    """Fetches the JSON Web Key Set a `JwksKeySource` answers from
    (`services.kit.auth_client.AuthClient.jwks`: the auth service's `getJwks`)."""

    async def __call__(self) -> Mapping[str, Any]:
        """The set; `KeySourceUnavailableError` if it cannot be had."""
        ...


class StaticKeySource:
    """Answers from a fixed JSON Web Key Set (tests, and services given their keys up front)."""

    def __init__(self, jwks_document: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks_document)

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


class JwksKeySource:
    """Answers from a JWKS fetched on first use, cached, and fetched again (rate-limited) when
    asked for an unknown `kid`.

    The rate limit (`min_refetch_interval`, 30 s by default) is what stops a flood of tokens
    naming made-up `kid`s from turning into a flood of requests to the auth service. It would
    also refuse, for up to that long, the first tokens signed with a freshly rotated key, had
    this verifier fetched the set just before the key appeared in it. The remedy is on the
    issuing side rather than here: the auth service publishes a rotated key
    `AUTH_SIGNING_KEY_PUBLISH_AHEAD_SECONDS` (60 s) before it signs with it
    (`services/auth/keyring.py`). A verifier that fetched before the key was published then
    meets its first token at least that long after its last fetch, so the refetch is due and
    finds the key; one that fetched later already has it. Shortening the interval instead
    would only narrow the window (and weaken the limit), not close it, and would not help a
    verifier behind a cache. The publish-ahead delay must therefore exceed this interval
    (plus the second the auth service may take to notice a rotation).

    A fetched set is also used for `max_age` (5 min) at most: the next look-up after that
    fetches it again, so a key the auth service has stopped publishing (retired, or withdrawn
    after a leak) stops verifying here too. If that fetch fails, the cached set keeps answering.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        min_refetch_interval: timedelta = timedelta(seconds=30),
        max_age: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._fetch = fetch
        self._min_refetch_interval = min_refetch_interval
        self._max_age = max_age
        self._fetched_at: datetime | None = None
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._last_attempt_at: datetime | None = None
        self._last_failure = "the key set has not been fetched"
        # Counts finished fetches, so that callers who queued behind a fetch use its outcome
        # instead of starting another.
        self._completed_fetches = 0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        keys = self._keys
        if keys is not None:
            if self._stale() and self._refetch_due():
                await self._refresh()
                return self._keys.get(kid) if self._keys is not None else None
            if kid in keys:
                return keys[kid]
            if not self._refetch_due():
                return None
        await self._refresh()
        return None if self._keys is None else self._keys.get(kid)

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._clock() - fetched >= self._max_age

    def _refetch_due(self) -> bool:
        last = self._last_attempt_at
        return last is None or self._clock() - last >= self._min_refetch_interval

    async def _refresh(self) -> None:
        seen = self._completed_fetches
        async with self._lock:
            if self._completed_fetches == seen:
                await self._fetch_now()
            if self._keys is None:
                raise KeySourceUnavailableError(self._last_failure)

    async def _fetch_now(self) -> None:
        self._last_attempt_at = self._clock()
        try:
            document = await self._fetch()
            keys = parse_jwks(document)
        except Exception as exc:
            # Whatever went wrong (the fetch port should raise KeySourceUnavailableError, but
            # a bug in it is no reason to answer 401), cached keys keep answering.
            self._completed_fetches += 1
            self._last_failure = (
                exc.reason
                if isinstance(exc, KeySourceUnavailableError)
                else f"fetching the key set failed: {type(exc).__name__}: {exc}"
            )
            if self._keys is None:
                raise KeySourceUnavailableError(self._last_failure) from exc
            return
        self._completed_fetches += 1
        self._keys = keys
        self._fetched_at = self._last_attempt_at


# PyJWT's errors, most specific first, and the reason each becomes.
_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.exceptions.InvalidSubjectError, "invalid claims"),
    (jwt.exceptions.InvalidJTIError, "invalid claims"),
    (jwt.InvalidIssuedAtError, "invalid claims"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.DecodeError, "malformed token"),
)


class TokenVerifier:
    """Verifies access tokens: EdDSA signature from the key source, issuer, audience, lifetime."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: timedelta = DEFAULT_LEEWAY,
        max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        if max_lifetime <= timedelta(0):
            raise ValueError(f"the maximum token lifetime must be positive, not {max_lifetime}")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        # The longest `exp - iat` accepted: the issuer's access-token lifetime (at least).
        self._max_lifetime = max_lifetime
        self._clock = clock

    async def verify(self, token: str) -> AccessTokenClaims:
        """The claims of `token`; `InvalidTokenError` if it must be refused,
        `KeySourceUnavailableError` if the keys to decide cannot be had."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed token") from None
        # Checked before the key lookup, so that tokens which could never pass do not make the
        # key source fetch.
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError("algorithm not allowed")
        kid = header.get("kid")
        if not kid:
            raise InvalidTokenError("missing key id")
        public_key = await self._keys.key(kid)
        if public_key is None:
            raise InvalidTokenError("unknown signing key")
        try:
            payload = jwt.decode(
                token,
                public_key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": REQUIRED_CLAIMS,
                    "strict_aud": True,
                    # PyJWT reads the wall clock; the times are checked below against ours.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"missing claim {exc.claim}") from None
        except jwt.PyJWTError as exc:
            reason = next((r for kind, r in _REASONS if isinstance(exc, kind)), "invalid token")
            raise InvalidTokenError(reason) from None
        return self._claims(payload)

    def _claims(self, payload: dict[str, Any]) -> AccessTokenClaims:
        subject, roles, token_id = payload["sub"], payload["roles"], payload.get("jti")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("invalid claims")
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise InvalidTokenError("invalid claims")
        if token_id is not None and not isinstance(token_id, str):
            raise InvalidTokenError("invalid claims")
        issued_at = _numeric_date(payload["iat"])
        expires_at = _numeric_date(payload["exp"])
        not_before = _numeric_date(payload["nbf"]) if "nbf" in payload else issued_at
        now = _aware(self._clock())
        if expires_at <= now - self._leeway:
            raise InvalidTokenError("expired")
        if max(not_before, issued_at) > now + self._leeway:
            raise InvalidTokenError("not yet valid")
        if expires_at - issued_at > self._max_lifetime + self._leeway:
            raise InvalidTokenError("lifetime too long")
        return AccessTokenClaims(
            subject=subject,
            roles=tuple(roles),
            issuer=self._issuer,
            audience=self._audience,
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=token_id,
        )


def _numeric_date(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError("invalid claims")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidTokenError("invalid claims") from None
