"""The template and `accord provision` come from one topology: what provisioning creates on a
moto server over HTTP is what the template declares, queue by queue and subscription by
subscription."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from services.kit.aws import BusLocation
from tests.deploy.support import name_of, rendered, resources, target

pytestmark = pytest.mark.emulator


def arn_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def test_provisioning_creates_what_the_template_declares(
    repository: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    location = BusLocation("endpoint", moto_endpoint)
    sns, sqs = location.sns(), location.sqs()
    Provisioner(sns, sqs).apply(topology_from_contracts(repository).with_prefix(unique_prefix))
    template = rendered(repository, unique_prefix)

    # The same topics and queues, by name.
    topics = {
        arn_name(t["TopicArn"]): t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if arn_name(t["TopicArn"]).startswith(unique_prefix)
    }
    assert sorted(topics) == sorted(
        t["TopicName"] for t in resources(template, "AWS::SNS::Topic").values()
    )
    urls = sqs.list_queues(QueueNamePrefix=unique_prefix).get("QueueUrls", [])
    declared = {q["QueueName"]: q for q in resources(template, "AWS::SQS::Queue").values()}
    assert sorted(url.rsplit("/", 1)[-1] for url in urls) == sorted(declared)

    # Each queue's timeouts, retention, redrive policy and who may send to it.
    policies = {
        target(p["Queues"][0]): p["PolicyDocument"]["Statement"][0]
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
    }
    for logical, queue in resources(template, "AWS::SQS::Queue").items():
        url = sqs.get_queue_url(QueueName=queue["QueueName"])["QueueUrl"]
        live = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert int(live["VisibilityTimeout"]) == queue["VisibilityTimeout"]
        assert int(live["ReceiveMessageWaitTimeSeconds"]) == queue["ReceiveMessageWaitTimeSeconds"]
        assert int(live["MessageRetentionPeriod"]) == queue["MessageRetentionPeriod"]
        if "RedrivePolicy" in queue:
            redrive = json.loads(live["RedrivePolicy"])
            wanted = queue["RedrivePolicy"]
            assert arn_name(redrive["deadLetterTargetArn"]) == name_of(
                template, wanted["deadLetterTargetArn"]
            )
            assert int(redrive["maxReceiveCount"]) == wanted["maxReceiveCount"]
        else:
            assert "RedrivePolicy" not in live
        if logical not in policies:
            assert "Policy" not in live
            continue
        (statement,) = json.loads(live["Policy"])["Statement"]
        wanted_statement: dict[str, Any] = policies[logical]
        assert statement["Principal"] == wanted_statement["Principal"]
        assert statement["Action"] == wanted_statement["Action"]
        assert arn_name(statement["Resource"]) == queue["QueueName"]
        sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert [arn_name(arn) for arn in sources] == [
            name_of(template, ref)
            for ref in wanted_statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        ]

    # Each subscription's filter policy, scope and raw delivery.
    live_subscriptions = {}
    for topic, arn in topics.items():
        for subscription in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]:
            attributes = sns.get_subscription_attributes(
                SubscriptionArn=subscription["SubscriptionArn"]
            )["Attributes"]
            live_subscriptions[(topic, arn_name(subscription["Endpoint"]))] = attributes
    declared_subscriptions = {
        (name_of(template, s["TopicArn"]), name_of(template, s["Endpoint"])): s
        for s in resources(template, "AWS::SNS::Subscription").values()
    }
    assert live_subscriptions.keys() == declared_subscriptions.keys()
    for key, wanted_subscription in declared_subscriptions.items():
        attributes = live_subscriptions[key]
        assert json.loads(attributes["FilterPolicy"]) == wanted_subscription["FilterPolicy"]
        assert attributes["FilterPolicyScope"] == wanted_subscription["FilterPolicyScope"]
        assert (attributes["RawMessageDelivery"] == "true") is wanted_subscription[
            "RawMessageDelivery"
        ]
