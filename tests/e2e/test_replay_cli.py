"""`accord up --record FILE` and `accord replay FILE` together: a real run of the platform is
recorded, then replayed into it with duplicates, shuffling and crashes, as a user would from
two terminals."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from services.kit.aws import BusLocation
from services.kit.events import encode
from tests import factories
from tests.e2e.support import StartStack
from tests.e2e.test_stack import Client, eventually

pytestmark = pytest.mark.emulator


async def accord(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "accord"),  # the installed command, as a user runs it
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_recorded_run_replays_into_the_stack_with_no_difference_from_a_clean_one(
    start_stack: StartStack, tmp_path: Path
) -> None:
    recording = tmp_path / "run.jsonl"
    stack = await start_stack(record=recording)
    async with httpx.AsyncClient(timeout=10) as http:
        client = Client(stack, http)
        for name in ("ada", "bob"):
            await client.register(f"{name}@example.com")

    async def both_recorded() -> bool:
        return len(lines(recording)) >= 2

    await eventually(both_recorded)
    recorded = lines(recording)
    assert [line["attributes"]["eventType"] for line in recorded] == ["user.created"] * 2  # type: ignore[index]

    code, out, err = await accord(
        "replay",
        str(recording),
        "--endpoint",
        stack.endpoint,
        "--state",
        str(stack.config.state),
        "--duplicates",
        "3",
        "--shuffle",
        "--crash-rate",
        "0.5",
        "--seed",
        "7",
        "--format",
        "json",
    )

    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["ok"] is True
    assert (summary["events"], summary["sent"]) == (2, 6 + summary["crashes"])
    assert summary["duplicatesAbsorbed"] == 4 + summary["crashes"]
    assert summary["deadLettered"] == []
    assert summary["finalStateDiffs"] == []


async def test_replaying_a_file_that_is_not_a_stream_names_the_line(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(services=())
    stream = tmp_path / "broken.jsonl"
    stream.write_text('{"attributes": {}, "body": "{}"}\nnot json\n')

    code, _, err = await accord("replay", str(stream), "--endpoint", stack.endpoint)

    assert code == 2
    assert "broken.jsonl:2" in err


async def test_a_crash_rate_of_one_is_refused_before_anything_is_published(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(services=())
    stream = tmp_path / "one.jsonl"
    event = encode(factories.user_created())
    stream.write_text(json.dumps({"attributes": dict(event.attributes), "body": event.body}) + "\n")

    code, _, err = await accord(
        "replay", str(stream), "--endpoint", stack.endpoint, "--crash-rate", "1"
    )

    assert code == 2
    assert "crash" in err
    sqs = BusLocation("endpoint", stack.endpoint).sqs()
    url = sqs.get_queue_url(QueueName="accord-user-service")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
