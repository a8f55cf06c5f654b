"""`EventConsumer` on AWS SQS (or an emulator): each receiving application's queue from the
`receiveUserEvents` operation bindings of its AsyncAPI document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from services.kit.bus import ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, Message

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_VISIBILITY = 43_200  # SQS refuses a longer visibility timeout


class QueueNotFoundError(LookupError):
    """The queue to consume from does not exist, or has no dead-letter queue."""


def string_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    return {
        name: value["StringValue"]
        for name, value in attributes.items()
        if value.get("DataType", "String").startswith("String") and "StringValue" in value
    }


def sqs_attributes(attributes: dict[str, str]) -> dict[str, Any]:
    return {name: {"DataType": "String", "StringValue": v} for name, v in attributes.items()}


class SqsQueue:
    """`MessageQueue` over one SQS queue, its URL and dead-letter queue looked up once."""

    def __init__(self, client: SQSClient, name: str) -> None:
        self.client = client
        self.name = name
        self._url: str | None = None
        self._dead_letter_url: str | None = None
        self._max_receives: int | None = None

    def _resolve(self) -> str:
        if self._url is None:
            try:
                url = self.client.get_queue_url(QueueName=self.name)["QueueUrl"]
            except self.client.exceptions.QueueDoesNotExist:
                raise QueueNotFoundError(
                    f"SQS queue {self.name!r} does not exist; create it with `accord provision`"
                ) from None
            attributes = self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            if "RedrivePolicy" in attributes:
                policy = json.loads(attributes["RedrivePolicy"])
                dead_letter_name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
                self._dead_letter_url = self.client.get_queue_url(QueueName=dead_letter_name)[
                    "QueueUrl"
                ]
                self._max_receives = int(policy["maxReceiveCount"])
            self._url = url
        return self._url

    async def max_receives(self) -> int | None:
        await asyncio.to_thread(self._resolve)
        return self._max_receives

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        return await asyncio.to_thread(self._receive, max_messages, wait_seconds)

    def _receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        response = self.client.receive_message(
            QueueUrl=self._resolve(),
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=int(max(0, min(20, wait_seconds))),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt=m["ReceiptHandle"],
                message=Message(
                    m.get("Body", ""), string_attributes(m.get("MessageAttributes", {}))
                ),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in response.get("Messages", [])
        ]

    async def delete(self, receipts: Sequence[str]) -> None:
        await asyncio.to_thread(self._delete, list(receipts))

    def _delete(self, receipts: list[str]) -> None:
        url = self._resolve()
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            response = self.client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                # Not fatal: the message will be redelivered and absorbed as a duplicate.
                raise RuntimeError(f"could not delete a message: {failure.get('Message')}")

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        await asyncio.to_thread(
            self.client.change_message_visibility,
            QueueUrl=self._resolve(),
            ReceiptHandle=receipt,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY, delay_seconds)),
        )

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        await asyncio.to_thread(self._dead_letter, received, reason)

    def _dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        url = self._resolve()
        if self._dead_letter_url is None:
            raise QueueNotFoundError(f"SQS queue {self.name!r} has no dead-letter queue")
        attributes = {
            **received.message.attributes,
            DEAD_LETTER_REASON: reason[:1000],
            DEAD_LETTER_SOURCE: self.name,
        }
        self.client.send_message(
            QueueUrl=self._dead_letter_url,
            MessageBody=received.message.body or "(empty)",
            MessageAttributes=sqs_attributes(attributes),
        )
        self.client.delete_message(QueueUrl=url, ReceiptHandle=received.receipt)


class SqsEventConsumer(QueueConsumer):
    """`EventConsumer` on an SQS queue: long polling, batches, several messages in flight."""

    def __init__(
        self, client: SQSClient, queue: str, options: ConsumerOptions | None = None
    ) -> None:
        super().__init__(SqsQueue(client, queue), options)
