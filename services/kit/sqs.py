"""`EventConsumer` on AWS SQS (or an emulator): each receiving application's queue from the
`receiveUserEvents` operation bindings of its AsyncAPI document."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from services.kit.bus import ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, Message
from services.kit.tracing import Tracing

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("accord.consumer")

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


def _sent_at(attributes: Mapping[Any, str]) -> float | None:
    """The `SentTimestamp` system attribute (epoch milliseconds) in seconds."""
    try:
        return int(attributes["SentTimestamp"]) / 1000
    except (KeyError, ValueError):
        return None


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
        """A long poll in a daemon thread of its own, so that neither a consumer's stop nor
        the process's exit waits for it: cancelled, it returns at once, and what the poll
        takes after all is made visible again (`_give_back`)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[ReceivedMessage]] = loop.create_future()
        abandoned = threading.Event()
        handed_over = threading.Lock()  # either the caller gets the messages, or they go back

        def deliver(taken: list[ReceivedMessage] | BaseException) -> None:
            if answer.cancelled():  # cancelled after the poll answered: give them back
                if isinstance(taken, list):
                    threading.Thread(target=self._give_back, args=(taken,), daemon=True).start()
            elif isinstance(taken, BaseException):
                answer.set_exception(taken)
            else:
                answer.set_result(taken)

        def poll() -> None:
            taken: list[ReceivedMessage] | BaseException
            try:
                taken = self._receive(max_messages, wait_seconds)
            except Exception as error:
                taken = error
            with handed_over:
                if not abandoned.is_set():
                    try:
                        loop.call_soon_threadsafe(deliver, taken)
                        return
                    except RuntimeError:  # the event loop has closed
                        pass
            if isinstance(taken, list):
                self._give_back(taken)

        threading.Thread(target=poll, name=f"sqs-receive:{self.name}", daemon=True).start()
        try:
            return await answer
        except asyncio.CancelledError:
            with handed_over:
                abandoned.set()
            if answer.done() and not answer.cancelled() and answer.exception() is None:
                # Answered, but cancelled before this task resumed to take the messages.
                threading.Thread(
                    target=self._give_back, args=(answer.result(),), daemon=True
                ).start()
            raise

    def _give_back(self, taken: list[ReceivedMessage]) -> None:
        """Make messages a cancelled receive took visible again at once."""
        if not taken:
            return
        try:
            self.client.change_message_visibility_batch(
                QueueUrl=self._resolve(),
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": 0}
                    for i, m in enumerate(taken)
                ],
            )
        except Exception as error:  # they come back after the visibility timeout instead
            log.warning("could not give back %d messages to %s: %s", len(taken), self.name, error)

    def _receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        response = self.client.receive_message(
            QueueUrl=self._resolve(),
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=int(max(0, min(20, wait_seconds))),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return [
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt=m["ReceiptHandle"],
                message=Message(
                    m.get("Body", ""), string_attributes(m.get("MessageAttributes", {}))
                ),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                sent_at=_sent_at(m.get("Attributes", {})),
            )
            for m in response.get("Messages", [])
        ]

    async def depths(self) -> tuple[int, int | None]:
        """Messages waiting in the queue and in its dead-letter queue (the metrics' sample)."""
        return await asyncio.to_thread(self._depths)

    def _depths(self) -> tuple[int, int | None]:
        def visible(url: str) -> int:
            attributes = self.client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            ).get("Attributes", {})
            return int(attributes.get("ApproximateNumberOfMessages", "0"))

        url = self._resolve()
        dead = None if self._dead_letter_url is None else visible(self._dead_letter_url)
        return visible(url), dead

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
        self,
        client: SQSClient,
        queue: str,
        options: ConsumerOptions | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        super().__init__(SqsQueue(client, queue), options, tracing=tracing)
