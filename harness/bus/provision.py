"""`accord provision`: create on SNS/SQS what the AsyncAPI bindings declare.

Topics come from the channels' `sns` bindings; queues, dead-letter queues and redrive policies
from the receive operations' `sqs` bindings; subscriptions (raw delivery, filter policies) from
their `sns` consumers. Applying is idempotent: what exists as declared is left alone, what
differs is updated, and each resource is reported as created, updated or unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.authoring.contracts import Resolver, iter_contract_files
from harness.project import Project
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType


class TopologyError(ValueError):
    """The AsyncAPI bindings do not describe a topology that can be created."""


def topology_from_contracts(project: Project) -> Topology:
    """The topics, queues and subscriptions declared by the project's AsyncAPI documents."""
    resolver = Resolver()
    topics: dict[str, TopicSpec] = {}
    queues: dict[str, QueueSpec] = {}
    subscriptions: list[SubscriptionSpec] = []
    for path in iter_contract_files(project.contracts_dir / "asyncapi"):
        data = resolver.document(path).data
        if not isinstance(data, dict) or "asyncapi" not in data:
            continue
        channel_topics: dict[str, str] = {}
        for key, channel in (data.get("channels") or {}).items():
            sns = ((channel or {}).get("bindings") or {}).get("sns")
            if sns is not None:
                name = sns.get("name") or channel.get("address")
                topics.setdefault(name, TopicSpec(name))
                channel_topics[f"#/channels/{key}"] = name
        for op_name, operation in (data.get("operations") or {}).items():
            if (operation or {}).get("action") != "receive":
                continue
            bindings = operation.get("bindings") or {}
            where = f"{project.relative(path)}#/operations/{op_name}"
            for queue in (bindings.get("sqs") or {}).get("queues") or []:
                redrive = queue.get("redrivePolicy") or {}
                queues[queue["name"]] = QueueSpec(
                    name=queue["name"],
                    visibility_timeout=int(queue.get("visibilityTimeout", 30)),
                    receive_wait_seconds=int(queue.get("receiveMessageWaitTime", 0)),
                    retention_seconds=int(queue.get("messageRetentionPeriod", 345_600)),
                    dead_letter_queue=(redrive.get("deadLetterQueue") or {}).get("name"),
                    max_receives=int(redrive["maxReceiveCount"]) if redrive else None,
                )
            topic = channel_topics.get((operation.get("channel") or {}).get("$ref", ""))
            for consumer in (bindings.get("sns") or {}).get("consumers") or []:
                if consumer.get("protocol") != "sqs":
                    continue
                if topic is None:
                    raise TopologyError(f"{where}: its channel has no sns binding (no topic)")
                subscriptions.append(
                    SubscriptionSpec(
                        topic=topic,
                        queue=consumer["endpoint"]["name"],
                        filter_policy=dict(consumer.get("filterPolicy") or {}),
                        raw_delivery=bool(consumer.get("rawMessageDelivery", False)),
                    )
                )
    for subscription in subscriptions:
        if subscription.queue not in queues:
            raise TopologyError(f"subscription to undeclared queue {subscription.queue!r}")
    for queue in queues.values():
        if queue.dead_letter_queue is not None and queue.dead_letter_queue not in queues:
            raise TopologyError(
                f"queue {queue.name!r}: dead-letter queue {queue.dead_letter_queue!r} "
                "is not declared"
            )
    ordered = sorted(queues.values(), key=lambda q: (q.dead_letter_queue is not None, q.name))
    return Topology(tuple(topics.values()), tuple(ordered), tuple(subscriptions))


Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Change:
    """What provisioning did to one resource."""

    kind: Literal["topic", "queue", "subscription"]
    name: str
    action: Action
    detail: str = ""


def _same_json(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    return bool(json.loads(a) == json.loads(b))


class Provisioner:
    """Applies a `Topology` to SNS/SQS through boto3 clients."""

    def __init__(
        self,
        sns: SNSClient,
        sqs: SQSClient,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.sns = sns
        self.sqs = sqs
        self.on_change = on_change
        self.changes: list[Change] = []

    def _report(self, change: Change) -> None:
        self.changes.append(change)
        if self.on_change is not None:
            self.on_change(change)

    def apply(self, topology: Topology) -> list[Change]:
        topic_arns = {t.name: self._topic(t) for t in topology.topics}
        sources: dict[str, list[str]] = {}
        for subscription in topology.subscriptions:
            sources.setdefault(subscription.queue, []).append(topic_arns[subscription.topic])
        queue_arns: dict[str, str] = {}
        for queue in topology.queues:
            queue_arns[queue.name] = self._queue(queue, queue_arns, sources.get(queue.name, []))
        for subscription in topology.subscriptions:
            self._subscription(
                subscription, topic_arns[subscription.topic], queue_arns[subscription.queue]
            )
        return self.changes

    def _topic(self, topic: TopicSpec) -> str:
        suffix = f":{topic.name}"
        for page in self.sns.get_paginator("list_topics").paginate():
            for existing in page.get("Topics", []):
                if existing["TopicArn"].endswith(suffix):
                    self._report(Change("topic", topic.name, "unchanged"))
                    return existing["TopicArn"]
        arn = self.sns.create_topic(Name=topic.name)["TopicArn"]
        self._report(Change("topic", topic.name, "created"))
        return arn

    def _queue(self, queue: QueueSpec, known: dict[str, str], topic_arns: list[str]) -> str:
        desired: dict[QueueAttributeNameType, str] = {
            "VisibilityTimeout": str(queue.visibility_timeout),
            "ReceiveMessageWaitTimeSeconds": str(queue.receive_wait_seconds),
            "MessageRetentionPeriod": str(queue.retention_seconds),
        }
        if queue.dead_letter_queue is not None:
            desired["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": known[queue.dead_letter_queue],
                    "maxReceiveCount": queue.max_receives or 10,
                }
            )
        try:
            url = self.sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        except self.sqs.exceptions.QueueDoesNotExist:
            url = None
        if url is None:
            url = self.sqs.create_queue(QueueName=queue.name, Attributes=desired)["QueueUrl"]
            action: Action = "created"
            current: dict[QueueAttributeNameType, str] = {}
        else:
            action = "unchanged"
            current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get(
                "Attributes", {}
            )
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        if topic_arns:  # let the topics deliver (real SNS needs this; emulators ignore it)
            desired["Policy"] = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowAccordTopics",
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": sorted(topic_arns)}},
                        }
                    ],
                }
            )
        if action == "created":
            current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get(
                "Attributes", {}
            )
        differing = {
            key: value
            for key, value in desired.items()
            if not (
                _same_json(current.get(key), value)
                if key in ("RedrivePolicy", "Policy")
                else current.get(key) == value
            )
        }
        if differing:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=differing)
            if action == "unchanged":
                action = "updated"
        detail = ", ".join(sorted(differing)) if action == "updated" else ""
        self._report(Change("queue", queue.name, action, detail))
        return arn

    def _subscription(self, subscription: SubscriptionSpec, topic_arn: str, queue_arn: str) -> None:
        name = f"{subscription.topic} → {subscription.queue}"
        desired = {
            "RawMessageDelivery": "true" if subscription.raw_delivery else "false",
            "FilterPolicy": json.dumps(subscription.filter_policy, sort_keys=True),
            "FilterPolicyScope": "MessageAttributes",
        }
        existing_arn = None
        for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(
            TopicArn=topic_arn
        ):
            for existing in page.get("Subscriptions", []):
                if existing.get("Protocol") == "sqs" and existing.get("Endpoint") == queue_arn:
                    existing_arn = existing["SubscriptionArn"]
        if existing_arn is None:
            self.sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes=desired,
                ReturnSubscriptionArn=True,
            )
            self._report(Change("subscription", name, "created"))
            return
        current: dict[str, Any] = self.sns.get_subscription_attributes(
            SubscriptionArn=existing_arn
        ).get("Attributes", {})
        differing = [
            key
            for key, value in desired.items()
            if not (
                _same_json(current.get(key), value)
                if key == "FilterPolicy"
                else current.get(key, "false" if key == "RawMessageDelivery" else None) == value
            )
        ]
        for key in differing:
            self.sns.set_subscription_attributes(
                SubscriptionArn=existing_arn, AttributeName=key, AttributeValue=desired[key]
            )
        action: Action = "updated" if differing else "unchanged"
        self._report(Change("subscription", name, action, ", ".join(differing)))
