"""`accord provision` creates exactly what the AsyncAPI bindings declare, once; `accord dlq`
lists, shows and redrives dead letters on a real endpoint."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.bus.provision import topology_from_contracts
from harness.cli import app
from harness.project import Project
from services.kit.aws import BusLocation
from services.kit.events import DEAD_LETTER_REASON, Message, encode
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec
from tests import factories

pytestmark = pytest.mark.emulator
runner = CliRunner()


def test_the_topology_is_read_from_the_repository_asyncapi_bindings(repository: Project) -> None:
    topology = topology_from_contracts(repository)

    assert topology.topics == (TopicSpec("accord-user-events"),)
    assert topology.queues == (
        QueueSpec("accord-notification-service-dlq", retention_seconds=1_209_600),
        QueueSpec("accord-user-service-dlq", retention_seconds=1_209_600),
        QueueSpec(
            "accord-notification-service", 60, 20, 345_600, "accord-notification-service-dlq", 5
        ),
        QueueSpec("accord-user-service", 30, 20, 345_600, "accord-user-service-dlq", 5),
    )
    assert topology.subscriptions == (
        SubscriptionSpec(
            "accord-user-events",
            "accord-notification-service",
            {
                "eventType": [
                    "user.email.verification.requested",
                    "user.password.reset.requested",
                    "user.deactivated",
                ]
            },
        ),
        SubscriptionSpec(
            "accord-user-events",
            "accord-user-service",
            {"eventType": ["user.created", "user.deactivated"]},
        ),
    )


def provision(repository: Project, endpoint: str, prefix: str) -> str:
    result = runner.invoke(
        app,
        ["provision", "--root", str(repository.root), "--endpoint", endpoint, "--prefix", prefix],
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_provisioning_creates_exactly_what_the_contracts_declare(
    repository: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    output = provision(repository, moto_endpoint, unique_prefix)

    assert "7 created, 0 updated, 0 unchanged" in output
    location = BusLocation("endpoint", moto_endpoint)
    sns, sqs = location.sns(), location.sqs()
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"] if unique_prefix in t["TopicArn"]]
    assert [arn.rsplit(":", 1)[-1] for arn in topics] == [f"{unique_prefix}accord-user-events"]
    queues = sorted(
        url.rsplit("/", 1)[-1]
        for url in sqs.list_queues(QueueNamePrefix=unique_prefix).get("QueueUrls", [])
    )
    assert queues == sorted(
        unique_prefix + name
        for name in (
            "accord-user-service",
            "accord-user-service-dlq",
            "accord-notification-service",
            "accord-notification-service-dlq",
        )
    )
    user_queue = sqs.get_queue_url(QueueName=f"{unique_prefix}accord-user-service")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=user_queue, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{unique_prefix}accord-user-service-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "30"
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topics[0])["Subscriptions"]
    filters = {}
    for subscription in subscriptions:
        sub = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
        assert sub["Attributes"]["RawMessageDelivery"] == "true"
        filters[subscription["Endpoint"].rsplit(":", 1)[-1]] = json.loads(
            sub["Attributes"]["FilterPolicy"]
        )
    assert filters[f"{unique_prefix}accord-user-service"] == {
        "eventType": ["user.created", "user.deactivated"]
    }


def test_provisioning_twice_changes_nothing_the_second_time(
    repository: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    provision(repository, moto_endpoint, unique_prefix)

    second = provision(repository, moto_endpoint, unique_prefix)

    assert "nothing to change: all 7 resources exist as declared" in second
    assert "created" not in second
    assert "updated" not in second


def test_provisioning_repairs_a_queue_whose_settings_drifted(
    repository: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    provision(repository, moto_endpoint, unique_prefix)
    sqs = BusLocation("endpoint", moto_endpoint).sqs()
    url = sqs.get_queue_url(QueueName=f"{unique_prefix}accord-user-service")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})

    output = provision(repository, moto_endpoint, unique_prefix)

    [line] = [line for line in output.splitlines() if "updated queue" in line]
    assert line.split()[2] == f"{unique_prefix}accord-user-service"
    assert "VisibilityTimeout" in line  # (moto also forgets the queue policy: repaired too)
    assert "0 created, 1 updated, 6 unchanged" in output
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "30"


def test_provision_without_an_endpoint_is_a_clear_error(
    project_copy: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "LOCALSTACK_ENDPOINT", "ACCORD_ENV"):
        monkeypatch.delenv(name, raising=False)

    # A copy: no `accord up` runs for it (one running for the repository would be found).
    result = runner.invoke(app, ["provision", "--root", str(project_copy.root)])

    assert result.exit_code == 2
    assert "no SNS/SQS endpoint: no `accord up` is running for this project" in result.output
    assert "pass --endpoint URL" in result.output


def test_dlq_commands_list_show_and_redrive_a_dead_letter(
    repository: Project, moto_endpoint: str, unique_prefix: str
) -> None:
    provision(repository, moto_endpoint, unique_prefix)
    queue = f"{unique_prefix}accord-user-service"
    sqs = BusLocation("endpoint", moto_endpoint).sqs()
    event = factories.user_created()
    message = encode(event)
    dead = Message(message.body, {**message.attributes, DEAD_LETTER_REASON: "handler failed"})
    dlq_url = sqs.get_queue_url(QueueName=f"{queue}-dlq")["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=dead.body,
        MessageAttributes={
            k: {"DataType": "String", "StringValue": v} for k, v in dead.attributes.items()
        },
    )
    endpoint = ["--endpoint", moto_endpoint]

    listed = runner.invoke(app, ["dlq", "list", queue, *endpoint])
    shown = runner.invoke(app, ["dlq", "show", queue, sent["MessageId"], *endpoint])
    redriven = runner.invoke(app, ["dlq", "redrive", queue, *endpoint])
    after = runner.invoke(app, ["dlq", "list", queue, *endpoint])

    assert listed.exit_code == 0, listed.output
    assert sent["MessageId"] in listed.output
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["body"] == message.body
    assert json.loads(shown.output)["reason"] == "handler failed"
    assert redriven.exit_code == 0, redriven.output
    assert f"moved 1 message from {queue}-dlq to {queue}" in redriven.output
    assert "is empty" in after.output
    back = sqs.receive_message(
        QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"], MessageAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in back] == [message.body]
    assert DEAD_LETTER_REASON not in back[0]["MessageAttributes"]


def test_dlq_on_a_queue_that_does_not_exist_is_a_clear_error(
    moto_endpoint: str, unique_prefix: str
) -> None:
    result = runner.invoke(
        app, ["dlq", "list", f"{unique_prefix}nope", "--endpoint", moto_endpoint]
    )

    assert result.exit_code == 1
    assert f"queue '{unique_prefix}nope' does not exist" in result.output
