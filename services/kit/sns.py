"""`EventPublisher` on AWS SNS (or an emulator): the `accord-user-events` channel of
`contracts/asyncapi/auth-service.yaml`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.kit.events import Event, Message, encode

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class TopicNotFoundError(LookupError):
    """The topic to publish to does not exist (run `accord provision`)."""


class SnsEventPublisher:
    """Publishes events to one SNS topic with their message attributes."""

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
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in message.attributes.items()
            },
        )
