"""How accounts compare emails: NFC-normalised, the domain and the local part's ASCII letters
in lower case, every other character exactly (`services.auth.domain.email_key`)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.domain import email_key
from tests.auth.conftest import AuthClient

REGISTER = "/api/v1/auth/register"


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com"),
        ("straße@example.com", "straße@example.com"),
        ("STRASSE@example.com", "strasse@example.com"),
        ("Åsa@EXAMPLE.com", "Åsa@example.com"),
        ("A\u030asa@example.com", "Åsa@example.com"),  # decomposed Å: NFC makes it one
        ("ÉLODIE@Élan.example", "Élodie@élan.example"),
    ],
)
def test_the_email_key_lowers_the_domain_and_only_ascii_letters_of_the_local_part(
    email: str, key: str
) -> None:
    assert email_key(email) == key


def test_addresses_that_only_unicode_case_folding_would_merge_have_different_keys() -> None:
    assert email_key("straße@example.com") != email_key("strasse@example.com")
    assert email_key("Åsa@example.com") != email_key("åsa@example.com")
    assert email_key("ǅ@example.com") != email_key("ǆ@example.com")


@given(st.text(max_size=30), st.text(max_size=30))
def test_the_email_key_is_idempotent_and_nfc(local: str, domain: str) -> None:
    key = email_key(f"{local}@{domain}")

    assert email_key(key) == key
    assert unicodedata.is_normalized("NFC", key)


@given(st.text(max_size=30), st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-", max_size=20))
def test_two_nfc_addresses_with_one_new_key_had_one_case_folded_key(
    local: str, domain: str
) -> None:
    # Why the migration that recomputes the keys cannot make two accounts collide: for the
    # addresses the API stores (NFC, lower-case domain) the new rule is finer than casefold.
    email = unicodedata.normalize("NFC", f"{local}@{domain}")
    assert email_key(email).casefold() == email.strip().casefold()


async def test_straße_and_strasse_are_two_accounts_each_with_its_own_password(
    auth: AuthClient,
) -> None:
    sharp = await auth.register("straße@example.com", "the-first-long-passphrase")
    double = await auth.register("strasse@example.com", "the-second-long-passphrase")

    sharp_login = await auth.login("straße@example.com", "the-first-long-passphrase")
    double_login = await auth.login("strasse@example.com", "the-second-long-passphrase")
    crossed = await auth.login("strasse@example.com", "the-first-long-passphrase")

    assert sharp["userId"] != double["userId"]
    assert sharp_login.status_code == 200
    assert sharp_login.json()["userId"] == sharp["userId"]
    assert double_login.status_code == 200
    assert double_login.json()["userId"] == double["userId"]
    assert crossed.status_code == 401


async def test_ascii_case_still_names_one_account(auth: AuthClient) -> None:
    user = await auth.register("Ada.Lovelace@Example.COM")

    again = await auth.http.post(
        REGISTER, json={"email": "ada.lovelace@example.com", "password": "another-passphrase"}
    )
    login = await auth.login("ADA.LOVELACE@EXAMPLE.COM")

    assert again.status_code == 409
    assert again.json()["type"] == "https://accord.example/problems/email-taken"
    assert login.status_code == 200
    assert login.json()["userId"] == user["userId"]
