"""Who may call an operation of the auth service is what its contract says, through the
generated router: in a copy of the project, tightening `deactivateUser` to admins only and
running `accord generate` refuses the account's owner, with no service file touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPOSITORY, edit

CONTRACT = "contracts/openapi/auth-service.yaml"
# Everything the app needs, not the virtual environment, the history or the caches.
LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"
)

# Run in the copy (PYTHONPATH): the copy's auth app, on SQLite, with the lifespan entered; an
# owner and an admin each deactivate an account; the statuses and problems are printed.
CALLERS = """
import asyncio, json, sys
from pathlib import Path

import httpx

import services.auth.api
from services.auth.app import create_app
from services.auth.grants import grant_role
from services.auth.settings import Settings

ROOT, WORKSPACE = Path(sys.argv[1]), Path(sys.argv[2])
assert Path(services.auth.api.__file__).is_relative_to(ROOT), services.auth.api.__file__


async def main() -> None:
    settings = Settings(
        environment="local",
        database_url=f"sqlite:///{WORKSPACE / 'auth.db'}",
        signing_key_path=WORKSPACE / "signing-key.pem",
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:

            async def register(email: str) -> dict[str, str]:
                body = {"email": email, "password": "correct-horse-battery-staple"}
                response = await http.post("/api/v1/auth/register", json=body)
                assert response.status_code == 201, response.text
                return response.json()

            async def deactivate(caller: dict[str, str], user_id: str) -> dict[str, object]:
                response = await http.post(
                    f"/api/v1/auth/users/{user_id}/deactivate",
                    headers={"Authorization": "Bearer " + caller["accessToken"]},
                )
                problem = response.json() if response.content else None
                return {"status": response.status_code, "problem": problem}

            owner = await register("owner@example.com")
            other = await register("other@example.com")
            admin = await register("admin@example.com")
            await grant_role(settings.database_url, "admin@example.com", "admin")
            print(json.dumps({
                "owner": await deactivate(owner, owner["userId"]),
                "admin": await deactivate(admin, other["userId"]),
            }))


asyncio.run(main())
"""


def copy_project(destination: Path) -> Path:
    shutil.copytree(REPOSITORY, destination, ignore=LEFT_OUT)
    return destination


def environment(root: Path) -> dict[str, str]:
    """This environment with the copy first on the path and no auth settings of its own."""
    variables = {**os.environ, "PYTHONPATH": str(root), "ACCORD_ENV": "local"}
    return {name: value for name, value in variables.items() if not name.startswith("AUTH_")}


def callers(root: Path, run: str) -> dict[str, Any]:
    """Who got what from `deactivateUser`, asked of the copy's own auth app."""
    workspace = root.parent / run
    workspace.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CALLERS, str(root), str(workspace)],
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answers


def fingerprints(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_tightening_an_operations_security_in_the_contract_refuses_the_owner_with_no_service_code_changed(  # noqa: E501
    tmp_path: Path,
) -> None:
    root = copy_project(tmp_path / "project")
    services = fingerprints(root / "services")
    server = (root / "generated/auth/server.py").read_text(encoding="utf-8")
    before = callers(root, "before")

    edit(
        root / CONTRACT,
        # deactivateUser's (its 204 tells it from getAccount's)
        "      x-owner-parameter: userId\n      responses:\n        '204'",
        "      responses:\n        '204'",
    )
    generated = subprocess.run(
        [sys.executable, "-c", "from harness.cli import app; app()", "generate", "--root", root],
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    after = callers(root, "after")

    assert before["owner"] == {"status": 204, "problem": None}
    assert after["owner"]["status"] == 403
    assert after["owner"]["problem"]["type"].endswith("/forbidden")
    assert after["owner"]["problem"]["detail"] == "This operation requires the admin role."
    assert before["admin"] == after["admin"] == {"status": 204, "problem": None}
    assert (root / "generated/auth/server.py").read_text(encoding="utf-8") != server
    assert fingerprints(root / "services") == services
