"""The page cursors of `listUsers` and `listNotifications`: every string the contracts' `Cursor`
pattern admits names a position, and the cursor of a position gives it back."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.kit.cursors import CURSOR_PATTERN, decode_cursor, encode_cursor
from tests.conftest import REPOSITORY

CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))


@pytest.mark.parametrize("service", ["user", "notification"])
def test_the_pattern_is_the_one_the_contract_states(service: str) -> None:
    path = REPOSITORY / "contracts" / "openapi" / f"{service}-service.yaml"
    contract = yaml.safe_load(path.read_text())
    parameter = contract["components"]["parameters"]["Cursor"]

    assert parameter["schema"] == {"type": "string", "pattern": CURSOR_PATTERN}
    assert CURSOR.fullmatch(parameter["example"])


@given(
    created_at=st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
    id_=st.uuids(),
)
def test_the_cursor_of_a_position_fits_the_pattern_and_gives_the_position_back(
    created_at: datetime, id_: uuid.UUID
) -> None:
    cursor = encode_cursor(created_at, id_)

    assert CURSOR.fullmatch(cursor)
    assert decode_cursor(cursor) == (created_at, id_)


@given(st.from_regex(CURSOR, fullmatch=True))
def test_every_string_the_pattern_admits_names_a_position(cursor: str) -> None:
    created_at, id_ = decode_cursor(cursor)

    assert created_at.tzinfo is UTC
    assert datetime(1970, 1, 1, tzinfo=UTC) <= created_at
    assert isinstance(id_, uuid.UUID)


@pytest.mark.parametrize("cursor", ["", "A" * 31, "A" * 33, "A" * 31 + "+", "A" * 31 + "="])
def test_a_string_the_pattern_refuses_is_not_decoded(cursor: str) -> None:
    with pytest.raises(ValueError, match="32 base64url characters"):
        decode_cursor(cursor)
