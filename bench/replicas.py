"""The multi-replica run's time and throughput with one and with two consumers per service.

Not a test: run it with `python -m bench.replicas [--registrations N] [--kill]`. Each run is
`harness.stack.replicas.run_replicas` (the run `tests/e2e/test_replicas.py` checks) on fresh
PostgreSQL databases (ACCORD_TEST_POSTGRES_URL, default the local server) and a moto server
in a process of its own, with two auth replicas, and first one then two user and notification
consumers. Two figures per run:

1. end to end: registrations answered by the auth replicas and made into a profile and a
   verification email, with the consumers running throughout (registrations/s);
2. consumers alone (`backlog`): the same registrations queued first, the consumers started on
   the full queues, timed from their being ready to the last profile and email.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from harness.project import Project
from harness.stack.replicas import ReplicaPlan, run_replicas

POSTGRES = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def databases() -> AsyncIterator[dict[str, str]]:
    """A fresh database per service, dropped afterwards."""
    base = POSTGRES.rpartition("/")[0]
    names = {
        service: f"accord_bench_{uuid.uuid4().hex[:10]}"
        for service in ("auth", "user", "notification")
    }
    admin = await asyncpg.connect(POSTGRES)
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield {service: f"{base}/{name}" for service, name in names.items()}
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def one(plan: ReplicaPlan) -> str:
    async with databases() as urls:
        with tempfile.TemporaryDirectory() as state:
            run = await run_replicas(
                plan, project=Project.load(ROOT), databases=urls, state_dir=Path(state)
            )
    return run.report()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=500)
    parser.add_argument("--kill", action="store_true", help="kill and restart a replica of each")
    arguments = parser.parse_args()
    for backlog in (False, True):
        for consumers in (1, 2):
            plan = ReplicaPlan(
                registrations=arguments.registrations,
                consumers=consumers,
                kill=arguments.kill and not backlog,
                backlog=backlog,
            )
            print(await one(plan), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
