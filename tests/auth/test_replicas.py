"""Two auth service processes on one PostgreSQL database, as two replicas behind a load
balancer: the login limits are one limit, not one per process."""

from __future__ import annotations

import secrets

import httpx
import pytest

from harness.stack.faults import ServiceProcess
from services.kit.tokens import SigningKey
from tests.e2e.support import free_ports

pytestmark = pytest.mark.postgres

PASSWORD = "correct-horse-battery-staple"


async def test_two_auth_processes_on_one_postgresql_share_the_login_limits(
    postgres_url: str,
) -> None:
    environment = {
        "ACCORD_ENV": "local",
        "AUTH_DATABASE_URL": postgres_url,
        "AUTH_SIGNING_KEY": SigningKey.generate().to_pem().decode(),
        "AUTH_SERVICE_API_KEY": secrets.token_urlsafe(32),
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
        "AUTH_ARGON2_PARALLELISM": "1",
        "AUTH_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": "4",
        "AUTH_ACCESS_LOG": "false",
    }
    one_port, two_port = free_ports(2)
    one = ServiceProcess("auth", environment, one_port)
    two = ServiceProcess("auth", {**environment, "AUTH_MIGRATE_ON_START": "false"}, two_port)
    async with one, two, httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            f"{one.url}/api/v1/auth/register",
            json={"email": "replicated@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        answers = []
        for attempt in range(6):
            replica = (one, two)[attempt % 2]
            response = await http.post(
                f"{replica.url}/api/v1/auth/login",
                json={"email": "replicated@example.com", "password": "wrong-wrong-wrong"},
            )
            answers.append(response.status_code)
        right_password = await http.post(
            f"{two.url}/api/v1/auth/login",
            json={"email": "replicated@example.com", "password": PASSWORD},
        )

    assert answers == [401, 401, 401, 401, 429, 429]
    assert right_password.status_code == 429
