"""`EventPublisher` on AWS SNS (or an emulator): the `accord-user-events` channel of
`contracts/asyncapi/auth-service.yaml`.

`publish_batch` sends up to ten messages in one `PublishBatch` call, each entry with exactly the
message attributes a single `Publish` gives it (`message_attributes`), so that the
subscriptions' filter policies see the same thing either way. SNS answers for each entry: the
ones it lists as `Failed`, or does not list at all, were not accepted, and only those are
reported as failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from services.kit.bus import PUBLISH_BATCH_MAX
from services.kit.events import Event, Message, encode

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import PublishBatchRequestEntryTypeDef

# SNS refuses a PublishBatch whose messages and attributes add up to more than 256 KiB.
PUBLISH_BATCH_BYTES = 262_144


class TopicNotFoundError(LookupError):
    """The topic to publish to does not exist (run `accord provision`)."""


class PublishRefusedError(RuntimeError):
    """SNS did not accept one entry of a `PublishBatch` (its `Failed` answer, or none)."""

    def __init__(self, code: str, reason: str, *, sender_fault: bool) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.sender_fault = sender_fault


def message_attributes(message: Message) -> dict[str, Any]:
    """The SNS message attributes of `message`, all strings, the same for Publish and each
    PublishBatch entry: the subscriptions' filter policies match on them."""
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in message.attributes.items()
    }


def _size(message: Message) -> int:
    """What a message counts against the PublishBatch size limit: body and attributes."""
    attributes = sum(
        len(name.encode()) + len(value.encode()) + len(b"String")
        for name, value in message.attributes.items()
    )
    return len(message.body.encode()) + attributes


def batches(messages: Sequence[Message]) -> list[list[int]]:
    """The indexes of `messages` grouped into PublishBatch calls: at most ten each, and at most
    256 KiB together (a message larger than that goes alone, for SNS to refuse)."""
    groups: list[list[int]] = []
    size = 0
    for index, message in enumerate(messages):
        message_size = _size(message)
        if (
            not groups
            or len(groups[-1]) >= PUBLISH_BATCH_MAX
            or size + message_size > (PUBLISH_BATCH_BYTES)
        ):
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += message_size
    return groups


class SnsEventPublisher:
    """Publishes events to one SNS topic with their message attributes, one at a time or ten
    to a `PublishBatch` call."""

    def __init__(self, client: SNSClient, topic: str) -> None:
        self.client = client
        self.topic = topic
        self._arn: str | None = topic if topic.startswith("arn:") else None

    def topic_arn(self) -> str:
        """The topic's ARN; a bare name is looked up once (it is never created here)."""
        if self._arn is None:
            suffix = f":{self.topic}"
            for page in self.client.get_paginator("list_topics").paginate():
                for topic in page.get("Topics", []):
                    if topic["TopicArn"].endswith(suffix):
                        self._arn = topic["TopicArn"]
                        return self._arn
            raise TopicNotFoundError(
                f"SNS topic {self.topic!r} does not exist; create it with `accord provision`"
            )
        return self._arn

    async def publish(self, event: Event) -> None:
        await self.publish_message(encode(event))

    async def publish_message(self, message: Message) -> None:
        await asyncio.to_thread(self._publish, message)

    def _publish(self, message: Message) -> None:
        self.client.publish(
            TopicArn=self.topic_arn(),
            Message=message.body,
            MessageAttributes=message_attributes(message),
        )

    async def publish_batch(self, messages: Sequence[Message]) -> list[Exception | None]:
        """`BatchPublisher`: one `PublishBatch` call for up to ten messages (more, or more than
        256 KiB, are sent in several calls, one after the other)."""
        return await asyncio.to_thread(self._publish_batch, list(messages))

    def _publish_batch(self, messages: list[Message]) -> list[Exception | None]:
        outcomes: list[Exception | None] = [None] * len(messages)
        for group in batches(messages):
            for index, outcome in zip(group, self._publish_group(messages, group), strict=True):
                outcomes[index] = outcome
        return outcomes

    def _publish_group(self, messages: list[Message], group: list[int]) -> list[Exception | None]:
        entries: list[PublishBatchRequestEntryTypeDef] = [
            {
                "Id": str(index),
                "Message": messages[index].body,
                "MessageAttributes": message_attributes(messages[index]),
            }
            for index in group
        ]
        try:
            answer = self.client.publish_batch(
                TopicArn=self.topic_arn(), PublishBatchRequestEntries=entries
            )
        except Exception as error:  # the call as a whole: no entry was accepted
            return [error] * len(group)
        accepted = {entry["Id"] for entry in answer.get("Successful", []) if "Id" in entry}
        refused = {
            entry["Id"]: PublishRefusedError(
                entry.get("Code", "Failed"),
                entry.get("Message", "refused"),
                sender_fault=bool(entry.get("SenderFault")),
            )
            for entry in answer.get("Failed", [])
        }
        outcomes: list[Exception | None] = []
        for index in group:
            entry_id = str(index)
            if entry_id in refused:
                outcomes.append(refused[entry_id])
            elif entry_id in accepted:
                outcomes.append(None)
            else:
                outcomes.append(
                    PublishRefusedError(
                        "NoAnswer", "SNS answered nothing for this entry", sender_fault=False
                    )
                )
        return outcomes
