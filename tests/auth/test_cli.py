"""`accord roles grant` makes an admin from the command line; `accord serve` refuses bad
settings naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.auth.conftest import AuthClient

runner = CliRunner()


async def test_roles_grant_makes_an_admin_whose_next_token_carries_the_role(
    auth: AuthClient, database_url: str
) -> None:
    tokens = await auth.register("root@example.com")

    result = await _invoke(
        ["roles", "grant", "ROOT@example.com", "admin", "--database-url", database_url]
    )

    assert result.exit_code == 0, result.output
    assert "granted admin to ROOT@example.com" in result.output
    login = await auth.login("root@example.com")
    me = await auth.http.get(
        "/api/v1/auth/me", headers={"authorization": f"Bearer {login.json()['accessToken']}"}
    )
    assert set(me.json()["roles"]) == {"user", "admin"}
    assert tokens["userId"] == me.json()["id"]


def test_roles_grant_for_an_unknown_email_fails_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"

    result = runner.invoke(
        app, ["roles", "grant", "nobody@example.com", "admin", "--database-url", url]
    )

    assert result.exit_code == 1
    assert "no account has the email 'nobody@example.com'" in result.output


def test_roles_grant_of_an_unknown_role_fails_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"

    result = runner.invoke(
        app, ["roles", "grant", "a@example.com", "wizard", "--database-url", url]
    )

    assert result.exit_code == 1
    assert "unknown role 'wizard'" in result.output


def test_serve_with_a_bad_setting_exits_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", "mysql://nope")

    result = runner.invoke(app, ["serve", "auth", "--port", "1"])

    assert result.exit_code == 2  # as every start-up error
    assert "AUTH_DATABASE_URL" in result.output


async def _invoke(args: list[str]) -> Any:
    import asyncio

    # The command runs its own event loop: keep it off this test's loop.
    return await asyncio.to_thread(lambda: runner.invoke(app, args))
