"""The CloudFormation template of `accord deploy render`: lint-clean, the AsyncAPI bindings'
subscriptions, filter policies and queues, least-privilege policies and an alarm on every
queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from harness.deploy.render import render
from harness.deploy.services import platform_services
from harness.project import Project
from tests.deploy.support import name_of, rendered, resources, target

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
# Errors, warnings and the informational checks (a stateful resource's deletion policy).
LINT = ManualArgs(include_checks=["I"], regions=REGIONS)


@pytest.fixture(scope="module")
def template(repository: Project) -> dict[str, Any]:
    return rendered(repository)


def bindings(contracts: Path) -> list[dict[str, Any]]:
    """Every receive operation's sns consumer and sqs queues, read straight from the YAML."""
    found = []
    for path in sorted((contracts / "asyncapi").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        channels = document.get("channels") or {}
        for operation in (document.get("operations") or {}).values():
            if operation["action"] != "receive":
                continue
            channel = channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]
            found.append(
                {
                    "topic": channel["bindings"]["sns"]["name"],
                    "consumers": operation["bindings"]["sns"]["consumers"],
                    "queues": operation["bindings"]["sqs"]["queues"],
                }
            )
    return found


def test_the_template_is_clean_for_cfn_lint(repository: Project) -> None:
    text = render(repository, platform_services(repository), "cloudformation")

    matches = lint(text, config=LINT)

    assert [str(match) for match in matches] == []


def test_a_prefixed_template_is_clean_for_cfn_lint(repository: Project) -> None:
    text = render(repository, platform_services(repository), "cloudformation", "staging-")

    assert [str(match) for match in lint(text, config=LINT)] == []


def test_each_subscription_has_the_filter_policy_and_raw_delivery_of_its_binding(
    repository: Project, template: dict[str, Any]
) -> None:
    declared = {
        (binding["topic"], consumer["endpoint"]["name"]): consumer
        for binding in bindings(repository.contracts_dir)
        for consumer in binding["consumers"]
    }

    subscriptions = {
        (name_of(template, s["TopicArn"]), name_of(template, s["Endpoint"])): s
        for s in resources(template, "AWS::SNS::Subscription").values()
    }

    assert declared
    assert subscriptions.keys() == declared.keys()
    for key, subscription in subscriptions.items():
        consumer = declared[key]
        assert subscription["Protocol"] == consumer["protocol"] == "sqs"
        assert subscription["FilterPolicy"] == consumer["filterPolicy"]
        assert subscription["FilterPolicyScope"] == consumer["filterPolicyScope"]
        assert subscription["RawMessageDelivery"] is consumer["rawMessageDelivery"]


def test_each_queue_has_the_retention_timeouts_and_redrive_policy_of_its_binding(
    repository: Project, template: dict[str, Any]
) -> None:
    declared = {
        queue["name"]: queue
        for binding in bindings(repository.contracts_dir)
        for queue in binding["queues"]
    }

    queues = {
        q["QueueName"]: (logical, q)
        for logical, q in resources(template, "AWS::SQS::Queue").items()
    }

    assert queues.keys() == declared.keys()
    for name, (logical, queue) in queues.items():
        binding = declared[name]
        assert queue["MessageRetentionPeriod"] == binding["messageRetentionPeriod"]
        assert queue["VisibilityTimeout"] == binding.get("visibilityTimeout", 30)
        assert template["Resources"][logical]["DeletionPolicy"] == "Retain"
        assert queue["ReceiveMessageWaitTimeSeconds"] == binding.get("receiveMessageWaitTime", 0)
        redrive = binding.get("redrivePolicy")
        if redrive is None:
            assert "RedrivePolicy" not in queue
            continue
        dead_letters = queue["RedrivePolicy"]["deadLetterTargetArn"]
        assert name_of(template, dead_letters) == redrive["deadLetterQueue"]["name"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] == redrive["maxReceiveCount"]


def test_each_subscribed_queue_lets_only_its_topic_send_to_it(template: dict[str, Any]) -> None:
    policies = resources(template, "AWS::SQS::QueuePolicy")
    subscriptions = resources(template, "AWS::SNS::Subscription").values()

    for subscription in subscriptions:
        queue = target(subscription["Endpoint"])
        (policy,) = [p for p in policies.values() if [target(q) for q in p["Queues"]] == [queue]]
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert target(statement["Resource"]) == queue
        sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert [target(source) for source in sources] == [target(subscription["TopicArn"])]


def statements(template: dict[str, Any], logical: str) -> dict[str, dict[str, Any]]:
    policy = template["Resources"][logical]["Properties"]["PolicyDocument"]
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def named(template: dict[str, Any], references: list[Any]) -> list[str]:
    return [name_of(template, reference) for reference in references]


def test_the_auth_service_may_only_publish_to_the_topic_and_find_it(
    template: dict[str, Any],
) -> None:
    granted = statements(template, "AuthServicePolicy")

    assert granted.keys() == {"PublishEvents", "FindTopicsByName"}
    assert granted["PublishEvents"]["Action"] == "sns:Publish"
    assert named(template, granted["PublishEvents"]["Resource"]) == ["accord-user-events"]
    assert granted["FindTopicsByName"]["Action"] == "sns:ListTopics"


@pytest.mark.parametrize("service", ["user", "notification"])
def test_a_consumer_may_only_consume_its_own_queue_and_dead_letter_to_its_own_dlq(
    template: dict[str, Any], service: str
) -> None:
    granted = statements(template, f"{service.capitalize()}ServicePolicy")

    assert granted.keys() == {"ConsumeOwnQueue", "DeadLetterToOwnDeadLetterQueue"}
    consume, dead_letter = granted["ConsumeOwnQueue"], granted["DeadLetterToOwnDeadLetterQueue"]
    # What services/kit/sqs.py calls: the batch forms are authorised by the plain actions.
    assert sorted(consume["Action"]) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]
    assert named(template, consume["Resource"]) == [f"accord-{service}-service"]
    assert sorted(dead_letter["Action"]) == ["sqs:GetQueueUrl", "sqs:SendMessage"]
    assert named(template, dead_letter["Resource"]) == [f"accord-{service}-service-dlq"]


def test_the_operator_may_peek_at_remove_and_redrive_dead_letters_and_nothing_else(
    template: dict[str, Any],
) -> None:
    granted = statements(template, "OperatorPolicy")

    redrive, peek = (
        granted["FindDeadLetterQueuesAndRedrive"],
        granted["PeekAndRemoveDeadLetters"],
    )
    assert sorted(redrive["Action"]) == [
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    ]
    assert sorted(named(template, redrive["Resource"])) == [
        "accord-notification-service",
        "accord-user-service",
    ]
    assert sorted(peek["Action"]) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]
    assert sorted(named(template, peek["Resource"])) == [
        "accord-notification-service-dlq",
        "accord-user-service-dlq",
    ]
    assert len(granted) == 2


def test_every_dead_letter_queue_alarms_on_one_message_and_every_queue_on_its_oldest(
    template: dict[str, Any],
) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    watched = {(a["MetricName"], name_of(template, a["Dimensions"][0]["Value"])): a for a in alarms}

    queues = [q["QueueName"] for q in resources(template, "AWS::SQS::Queue").values()]
    for queue in queues:
        if queue.endswith("-dlq"):
            alarm = watched[("ApproximateNumberOfMessagesVisible", queue)]
            assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        else:
            alarm = watched[("ApproximateAgeOfOldestMessage", queue)]
            assert alarm["Threshold"] == {"Ref": "OldestMessageAgeThresholdSeconds"}
        assert alarm["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"
    assert len(watched) == len(queues)


def test_the_outputs_name_the_topic_the_queues_and_the_policies(
    template: dict[str, Any],
) -> None:
    outputs = {key: output["Value"] for key, output in template["Outputs"].items()}

    assert sorted(name_of(template, v) for k, v in outputs.items() if k.endswith("Url")) == sorted(
        q["QueueName"] for q in resources(template, "AWS::SQS::Queue").values()
    )
    assert outputs["AccordUserEventsTopicArn"] == {"Ref": "AccordUserEventsTopic"}
    policies = resources(template, "AWS::IAM::ManagedPolicy")
    assert {target(v) for k, v in outputs.items() if k.endswith("PolicyArn")} == policies.keys()


def test_a_prefix_renames_every_topic_queue_and_policy(repository: Project) -> None:
    template = rendered(repository, "staging-")

    names = [
        *(t["TopicName"] for t in resources(template, "AWS::SNS::Topic").values()),
        *(q["QueueName"] for q in resources(template, "AWS::SQS::Queue").values()),
        *(
            p["ManagedPolicyName"]["Fn::Sub"]
            for p in resources(template, "AWS::IAM::ManagedPolicy").values()
        ),
    ]
    assert names
    assert all(name.startswith("staging-accord-") for name in names), names
