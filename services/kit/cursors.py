"""Page cursors of the list operations (`listUsers`, `listNotifications`): a position in a
list ordered by (created_at, id), as the contracts' `Cursor` parameter describes it.

A cursor is the position's instant (microseconds since the Unix epoch, 8 bytes, big-endian)
and id (16 bytes), in base64url: exactly 32 characters of `[A-Za-z0-9_-]`. Every such string
decodes to a position, so a cursor that fits the contract's pattern is always accepted: one
the service issued continues where its page ended, any other continues after the position it
names. A cursor grants nothing; it only says where to continue.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

# The contracts' `Cursor` pattern; the routes declare it on their query parameter.
CURSOR_PATTERN: Final = "^[A-Za-z0-9_-]{32}$"
_CURSOR: Final = re.compile(r"[A-Za-z0-9_-]{32}")

_LAYOUT: Final = struct.Struct(">Q16s")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
# Instants past the last one a datetime holds (year 9999) name the end of the list.
_LAST: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    """The cursor of a position: 32 base64url characters."""
    micros = max(0, (created_at - _EPOCH) // _MICROSECOND)
    return base64.urlsafe_b64encode(_LAYOUT.pack(micros, id_.bytes)).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names. Every string that fits `CURSOR_PATTERN` names one; any
    other raises `ValueError` (the routes refuse those with 422 before calling this)."""
    if not _CURSOR.fullmatch(cursor):
        raise ValueError("a cursor is 32 base64url characters")
    micros, id_bytes = _LAYOUT.unpack(base64.urlsafe_b64decode(cursor))
    return _EPOCH + min(micros, _LAST) * _MICROSECOND, uuid.UUID(bytes=id_bytes)
