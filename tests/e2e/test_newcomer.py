"""A newcomer's first hour, as a script: a fresh clone of the project, a fresh virtual
environment, and every command the README shows, in the README's order, run as written — the
ports and URLs through the flags and variables the README names, since a test must not take
the default ports. A command that exits non-zero, or prints a traceback, fails the test with
the command and what it printed.

Two commands are run in a lighter form, and say why where they are run: the test command
collects the suite instead of running it (this test is part of that run), and the consumer
benchmark drains a few events instead of thousands.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import REPOSITORY
from tests.e2e.support import SERVICES, free_ports, port_flags, stack_ports

pytestmark = pytest.mark.emulator

README = (REPOSITORY / "README.md").read_text(encoding="utf-8")


def shell_blocks() -> list[str]:
    """Every ```sh block of the README, in order."""
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def readme_command(prefix: str) -> str:
    """The README's command line that starts with `prefix` (comments stripped)."""
    for block in shell_blocks():
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith(prefix):
                return command
    raise AssertionError(f"the README shows no command starting with {prefix!r}")


class Newcomer:
    """A shell in a fresh clone with its own virtual environment."""

    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        self.root = root
        self.ports = ports
        venv = root / ".venv"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACCORD_"))},
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_PROGRESS_BAR": "off",
            "PACT_DO_NOT_TRACK": "true",
            "AUTH": f"http://127.0.0.1:{ports['auth']}",
            "USERS": f"http://127.0.0.1:{ports['user']}",
            "MAIL": f"http://127.0.0.1:{ports['mail']}",
            "GATEWAY": f"http://127.0.0.1:{ports['gateway']}",
        }
        self.env.pop("PYTHONPATH", None)
        self.log: list[str] = []

    def run(self, command: str, *, expect: int = 0, timeout: float = 900) -> str:
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        self.log.append(f"{time.monotonic() - started:6.1f} s  {command.splitlines()[0]}")
        shown = f"$ {command}\n(exit {result.returncode})\n{output[-6000:]}"
        assert "Traceback" not in output, shown
        assert result.returncode == expect, shown
        return output

    def start(self, command: str, output: IO[bytes]) -> subprocess.Popen[bytes]:
        self.log.append(f"  (background)  {command}")
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.root,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def up_flags(self) -> str:
        return " ".join(port_flags(self.ports))


def fresh_clone(destination: Path) -> None:
    """`git clone` of the project, plus what the working tree changed and has not committed
    (so that the test also runs on a developer's uncommitted work), committed in the clone as
    its `origin/main`: a clone of the code under test, as a newcomer would get it."""
    subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(destination)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "-m", "-o", "--exclude-standard", "-z"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPOSITORY / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            (destination / name).write_bytes(source.read_bytes())
    git = ["git", "-C", str(destination), "-c", "user.name=newcomer", "-c", "user.email=n@x"]
    subprocess.run([*git, "add", "-A"], check=True)
    if subprocess.run([*git, "diff", "--cached", "--quiet"], check=False).returncode:
        subprocess.run([*git, "commit", "-q", "-m", "the working tree under test"], check=True)
        subprocess.run([*git, "update-ref", "refs/remotes/origin/main", "HEAD"], check=True)


def wait_until_ready(newcomer: Newcomer, process: subprocess.Popen[bytes], log: Path) -> None:
    started = time.monotonic()
    deadline = started + 180
    urls = [f"http://127.0.0.1:{newcomer.ports[name]}/health/ready" for name in SERVICES]
    while time.monotonic() < deadline:
        assert process.poll() is None, f"accord up exited:\n{log.read_text()[-4000:]}"
        try:
            if all(httpx.get(url, timeout=2).status_code == 200 for url in urls):
                newcomer.log.append(f"{time.monotonic() - started:6.1f} s  (until ready)")
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"accord up was not ready in time:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """Ctrl-C, as a person would; the stack must stop cleanly, without a traceback."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("accord up did not stop on Ctrl-C") from None
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    root = tmp_path_factory.mktemp("newcomer") / "accord"
    fresh_clone(root)
    person = Newcomer(root, stack_ports())
    person.run(f"{sys.executable} -m venv .venv")
    yield person
    print("\n".join(["newcomer's commands and their times:", *person.log]))


def test_every_readme_command_runs_as_written_in_a_fresh_clone(newcomer: Newcomer) -> None:
    root = newcomer.root
    # Set up, part 1: install the platform and start it.
    install, _, _ = readme_command("python3 -m pip install -e . &&").partition(" && ")
    newcomer.run(install)
    # A README command that needs the test dependencies says what to install.
    refused = newcomer.run("accord verify", expect=2)
    assert "pip install -e '.[dev]'" in refused
    up_log = root / "up.log"
    with up_log.open("wb") as output:
        stack = newcomer.start(f"accord up {newcomer.up_flags()}", output)
        try:
            wait_until_ready(newcomer, stack, up_log)
            stack_file = json.loads((root / ".accord" / "stack.json").read_text())
            assert stack_file

            # The walk-through, as a test already runs it against a stack; here in the clone.
            block = README.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end")[0]
            walkthrough = block.split("```sh\n", 1)[1].rsplit("```", 1)[0]
            newcomer.run(walkthrough)

            # Running one service, and the first admin.
            serve = readme_command("accord serve auth")
            port = free_ports(1)[0]
            serve_log = root / "serve.log"
            with serve_log.open("wb") as serve_output:
                single = newcomer.start(
                    serve.replace("--port 3001", f"--port {port}"), serve_output
                )
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        try:
                            if httpx.get(f"http://127.0.0.1:{port}/health/live").is_success:
                                break
                        except httpx.HTTPError:
                            time.sleep(0.3)
                    else:
                        raise AssertionError(serve_log.read_text()[-3000:])
                finally:
                    single.send_signal(signal.SIGINT)
                    single.wait(30)
            assert "Traceback" not in serve_log.read_text()
            grant = readme_command("accord roles grant")
            email = grant.split()[3]
            registered = httpx.post(
                f"{newcomer.env['AUTH']}/api/v1/auth/register",
                json={"email": email, "password": "correct-horse-battery-staple"},
            )
            assert registered.status_code == 201, registered.text
            assert "admin" in newcomer.run(grant)

            # The event bus.
            aws = f"http://127.0.0.1:{newcomer.ports['aws']}"
            provision = readme_command("accord provision")
            newcomer.run(provision.replace("http://127.0.0.1:4566", aws))
            newcomer.run(readme_command("accord dlq list"))
            message_id = poison_a_message(newcomer, aws)
            show = readme_command("accord dlq show")
            newcomer.run(show.replace("MESSAGE_ID", message_id))
            newcomer.run(readme_command("accord dlq redrive"))
        finally:
            stop(stack, up_log)

    # The contract loop.
    for prefix in ("accord lint", "accord generate", "accord generate --check"):
        newcomer.run(prefix)
    # Set up, part 2: the test dependencies; then `accord verify` and the test command.
    dev_install, _, _ = readme_command("python3 -m pip install -e '.[dev]'").partition(" && ")
    newcomer.run(dev_install)
    newcomer.run("accord verify --layer contract-code")
    # Collected, not run: this test is itself part of that run.
    newcomer.run("python3 -m pytest --collect-only -q")
    newcomer.run("accord diff --base origin/main")
    newcomer.run("accord check --base origin/main")
    newcomer.run("accord schemas publish")

    # Recording a run and replaying it.
    record = readme_command("accord up --record")
    replay = readme_command("accord replay")
    with up_log.open("wb") as output:
        stack = newcomer.start(f"{record} {newcomer.up_flags()}", output)
        try:
            wait_until_ready(newcomer, stack, up_log)
            registered = httpx.post(
                f"{newcomer.env['AUTH']}/api/v1/auth/register",
                json={"email": "replayed@example.com", "password": "correct-horse-battery-staple"},
            )
            assert registered.status_code == 201
            deadline = time.monotonic() + 60
            while not (root / "run.jsonl").exists() or not (root / "run.jsonl").read_text():
                assert time.monotonic() < deadline, "nothing was recorded"
                time.sleep(0.3)
            newcomer.run(replay)
        finally:
            stop(stack, up_log)
    assert (
        subprocess.run(["git", "check-ignore", "-q", "run.jsonl"], cwd=root, check=False).returncode
        == 0
    ), "run.jsonl, which the README has you create, is not git-ignored"

    # The benchmark, on a few events (the full run takes minutes and proves nothing here).
    bench = "python -m bench.consumer_throughput"
    assert f"`{bench}`" in README
    newcomer.run(f"{bench} --events 40 --chunk 20")
    newcomer.run("accord up --help")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def poison_a_message(newcomer: Newcomer, endpoint: str) -> str:
    """A message that is no event, straight into the user service's queue: the consumer
    dead-letters it with its reason, so the `dlq` commands have something to show. Its id."""
    script = (
        "import boto3, sys\n"
        "sqs = boto3.client('sqs', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='test', aws_secret_access_key='test')\n"
        "url = sqs.get_queue_url(QueueName='accord-user-service')['QueueUrl']\n"
        "sqs.send_message(QueueUrl=url, MessageBody='not an event')\n"
    )
    newcomer.run(f'python3 -c "{script}" {endpoint}')
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = UUID.findall(newcomer.run("accord dlq list accord-user-service"))
        if listed:
            return str(listed[0])
        time.sleep(0.5)
    raise AssertionError("the poison message never reached the dead-letter queue")
