"""Replaying into a stack refuses a bad adversity before it touches the stack."""

from __future__ import annotations

import pytest

from harness.replay.live import StackBus, replay_stream
from harness.replay.schedule import Adversity
from services.kit.aws import BusLocation

# Nothing listens here: the replay must fail before it connects.
NOWHERE = BusLocation("endpoint", "http://127.0.0.1:9")


async def test_a_crash_rate_of_one_is_refused_before_anything_is_published() -> None:
    bus = StackBus("accord-user-events", (("user-service-events", {}),), NOWHERE)

    with pytest.raises(ValueError, match="crash_rate"):
        await replay_stream([], bus, Adversity(crash_rate=1.0))
