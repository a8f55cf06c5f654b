"""The two transports the bus behaviour suite runs against, behind one small interface."""

from __future__ import annotations

from typing import Protocol

from harness.bus.dlq import DeadLetterQueue
from harness.bus.provision import Provisioner
from services.kit.aws import BusLocation
from services.kit.bus import DeadLetter, EventPublisher, ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import Message
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsEventConsumer, SqsQueue, sqs_attributes
from services.kit.topology import Topology


class Bus(Protocol):
    name: str

    def provision(self, topology: Topology) -> None: ...
    def publisher(self, topic: str) -> EventPublisher: ...
    def consumer(self, queue: str, options: ConsumerOptions) -> QueueConsumer: ...
    def send_raw(self, queue: str, message: Message) -> None: ...
    async def receive_raw(self, queue: str) -> list[ReceivedMessage]: ...
    def depth(self, queue: str) -> int: ...
    def dead_letters(self, queue: str) -> list[DeadLetter]: ...
    def redrive(self, queue: str) -> int: ...


class MemoryBus:
    name = "memory"

    def __init__(self) -> None:
        self.broker = InMemoryBroker()

    def provision(self, topology: Topology) -> None:
        self.broker.apply(topology)

    def publisher(self, topic: str) -> EventPublisher:
        return InMemoryEventPublisher(self.broker, topic)

    def consumer(self, queue: str, options: ConsumerOptions) -> QueueConsumer:
        return InMemoryEventConsumer(self.broker, queue, options)

    def send_raw(self, queue: str, message: Message) -> None:
        self.broker.send(queue, message)

    async def receive_raw(self, queue: str) -> list[ReceivedMessage]:
        return self.broker.receive_now(queue, 10)

    def depth(self, queue: str) -> int:
        return self.broker.depth(queue)

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        return self.broker.dead_letters(queue)

    def redrive(self, queue: str) -> int:
        return self.broker.redrive(queue)


class MotoBus:
    name = "moto"

    def __init__(self, endpoint: str) -> None:
        self.location = BusLocation("endpoint", endpoint)
        self.sns = self.location.sns()
        self.sqs = self.location.sqs()

    def provision(self, topology: Topology) -> None:
        Provisioner(self.sns, self.sqs).apply(topology)

    def publisher(self, topic: str) -> EventPublisher:
        return SnsEventPublisher(self.sns, topic)

    def consumer(self, queue: str, options: ConsumerOptions) -> QueueConsumer:
        return SqsEventConsumer(self.sqs, queue, options)

    def send_raw(self, queue: str, message: Message) -> None:
        self.sqs.send_message(
            QueueUrl=self.sqs.get_queue_url(QueueName=queue)["QueueUrl"],
            MessageBody=message.body,
            MessageAttributes=sqs_attributes(dict(message.attributes)),
        )

    async def receive_raw(self, queue: str) -> list[ReceivedMessage]:
        return await SqsQueue(self.sqs, queue).receive(10, 1)

    def depth(self, queue: str) -> int:
        url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        return DeadLetterQueue(self.sqs, queue).peek()

    def redrive(self, queue: str) -> int:
        return len(DeadLetterQueue(self.sqs, queue).redrive())
