"""`accord dlq`: inspect and redrive the dead-letter queue of a consumer's queue, on any
SQS endpoint.

The dead-letter queue is found from the source queue's redrive policy. Listing receives the
messages with a short visibility timeout and releases them at once, so it moves nothing;
redriving sends each message back to the source queue without the dead-letter attributes,
then deletes it from the dead-letter queue (a crash in between duplicates, never loses).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from services.kit.bus import DeadLetter
from services.kit.events import DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, Message
from services.kit.sqs import QueueNotFoundError, sqs_attributes, string_attributes

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

HIDE_SECONDS = 30  # long enough to page through a DLQ without seeing a message twice


class DeadLetterQueue:
    """The dead-letter queue behind one source queue."""

    def __init__(self, sqs: SQSClient, source: str) -> None:
        self.sqs = sqs
        self.source = source
        try:
            self.source_url = sqs.get_queue_url(QueueName=source)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            raise QueueNotFoundError(f"queue {source!r} does not exist") from None
        attributes = sqs.get_queue_attributes(
            QueueUrl=self.source_url, AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        if "RedrivePolicy" not in attributes:
            raise QueueNotFoundError(f"queue {source!r} has no dead-letter queue")
        arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
        self.name = arn.rsplit(":", 1)[-1]
        self.url = sqs.get_queue_url(QueueName=self.name)["QueueUrl"]

    def _receive_all(self) -> list[dict[str, Any]]:
        taken: dict[str, dict[str, Any]] = {}
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=HIDE_SECONDS,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            messages: list[dict[str, Any]] = [dict(m) for m in response.get("Messages", [])]
            fresh = [m for m in messages if m["MessageId"] not in taken]
            if not fresh:
                return list(taken.values())
            taken.update({m["MessageId"]: m for m in fresh})

    def _release(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages[start : start + 10])
                ],
            )

    @staticmethod
    def _dead_letter(raw: dict[str, Any]) -> DeadLetter:
        attributes = string_attributes(raw.get("MessageAttributes", {}))
        return DeadLetter(
            message_id=raw["MessageId"],
            message=Message(raw.get("Body", ""), attributes),
            receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "0")),
            reason=attributes.get(DEAD_LETTER_REASON),
        )

    def peek(self) -> list[DeadLetter]:
        """Every message in the dead-letter queue; none is moved."""
        raw = self._receive_all()
        self._release(raw)
        return [self._dead_letter(m) for m in raw]

    def redrive(self, message_id: str | None = None) -> list[DeadLetter]:
        """Move every message (or the one with `message_id`) back to the source queue."""
        raw = self._receive_all()
        chosen = [m for m in raw if message_id is None or m["MessageId"] == message_id]
        self._release([m for m in raw if m not in chosen])
        moved = []
        for message in chosen:
            letter = self._dead_letter(message)
            attributes = {
                k: v
                for k, v in letter.message.attributes.items()
                if k not in (DEAD_LETTER_REASON, DEAD_LETTER_SOURCE)
            }
            self.sqs.send_message(
                QueueUrl=self.source_url,
                MessageBody=letter.message.body,
                MessageAttributes=sqs_attributes(attributes),
            )
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            moved.append(letter)
        return moved
