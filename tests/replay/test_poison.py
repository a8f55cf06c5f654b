"""A poison message in the middle of a stream lands in the dead-letter queue with the reason the
kit gives, and every other event is processed as in a clean delivery."""

from __future__ import annotations

import uuid

import pytest

from harness.replay.buses import ReplayBus
from harness.replay.runner import check
from harness.replay.schedule import Adversity, PoisonKind, poison_message
from harness.replay.subjects import UserServiceSubject
from services.kit.events import DEAD_LETTER_REASON, Event, encode
from tests import factories

REASONS: dict[PoisonKind, str] = {
    "not-json": "invalid message: the body is not JSON",
    "wrong-schema": "invalid message: user.created payload does not match its schema: /eventId:",
    "unknown-type": "invalid message: unknown event type 'user.renamed'",
}


def users_stream(users: int) -> list[Event]:
    stream: list[Event] = []
    for _ in range(users):
        user = uuid.uuid4()
        stream += [factories.user_created(user, 1), factories.user_deactivated(user, 2)]
    return stream


@pytest.mark.parametrize("kind", list(REASONS))
async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_is_processed(
    user_service: UserServiceSubject, kind: PoisonKind
) -> None:
    stream = users_stream(users=4)
    poison = poison_message(kind, "user.created")

    verdict = await check(stream, user_service, Adversity(duplicates=2, poison=poison))

    assert verdict.ok, verdict.explain()  # the final state is the clean delivery's
    [letter] = verdict.dead_letters
    assert letter.message.body == poison.body
    assert letter.reason is not None
    assert letter.reason.startswith(REASONS[kind])
    assert letter.message.attributes[DEAD_LETTER_REASON] == letter.reason
    [result] = verdict.results
    assert result.schedule.stream[len(stream) // 2] == poison  # in the middle
    assert result.items_received == len(stream)


async def test_on_either_bus_a_poison_in_a_shuffled_stream_is_dead_lettered_and_nothing_else(
    user_service: UserServiceSubject, bus: ReplayBus
) -> None:
    stream = users_stream(users=3)
    poison = poison_message("not-json", "user.deactivated")

    verdict = await check(
        stream, user_service, Adversity(order="shuffled", poison=poison, seed=2), bus=bus
    )

    assert verdict.ok, verdict.explain()
    [letter] = verdict.dead_letters
    assert (letter.message.body, (letter.reason or "")[:37]) == (
        poison.body,
        "invalid message: the body is not JSON",
    )


async def test_a_poison_message_that_is_not_dead_lettered_is_reported(
    user_service: UserServiceSubject,
) -> None:
    # A valid event in the poison's place: it is processed, so the dead-letter queue stays
    # empty and the harness must say that the poison did not land there.
    stream = users_stream(users=1)
    impostor = factories.user_created()

    verdict = await check(stream, user_service, Adversity(poison=encode(impostor)))

    assert verdict.finding is not None
    assert [str(d) for d in verdict.finding.differences][-1].startswith(
        "/dead-letters/poison: clean 'user.created"
    )
