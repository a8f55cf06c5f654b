"""Fixtures of the replay suites: the services' consumers as replay subjects, and the two
buses a replay runs on (the in-memory bus, and SNS/SQS on the session's moto server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.replay.buses import MemoryReplayBus, ReplayBus, SqsReplayBus
from harness.replay.subjects import NotificationServiceSubject, UserServiceSubject


@pytest.fixture
def user_service(tmp_path: Path) -> UserServiceSubject:
    return UserServiceSubject(tmp_path / "user")


@pytest.fixture
def notification_service(tmp_path: Path) -> NotificationServiceSubject:
    return NotificationServiceSubject(tmp_path / "notification")


@pytest.fixture
def sqs_bus(moto_endpoint: str, unique_prefix: str) -> SqsReplayBus:
    """Private topics and queues on the moto server, each lane removed after its run."""
    return SqsReplayBus(moto_endpoint, prefix=unique_prefix, visibility_timeout=1)


@pytest.fixture(params=["memory", pytest.param("sqs", marks=pytest.mark.emulator)])
def bus(request: pytest.FixtureRequest) -> ReplayBus:
    """The in-memory bus, and SNS/SQS on the moto server."""
    if request.param == "memory":
        return MemoryReplayBus()
    sqs: SqsReplayBus = request.getfixturevalue("sqs_bus")
    return sqs
