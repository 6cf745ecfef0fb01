"""The client library's own distribution: `uv build --wheel clients/python` makes a wheel holding
only `task_scheduler_client`; installed into a fresh virtual environment with its two dependencies
(at the lock's versions), it creates and reads a timer on a real service process and verifies the
webhook that service delivers, with none of the server's packages in that environment."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from task_scheduler.delivery.signing import generate_secret
from tests.support.polling import WAIT
from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver, running
from tests.support.wheels import ROOT, build_wheel, fresh_venv, run

pytestmark = pytest.mark.acceptance

SERVER_PACKAGES = ("task_scheduler", "aiohttp", "sqlalchemy", "fastapi", "asyncpg", "uvicorn")

CREATE = """
import json, sys
from task_scheduler_client import Client

with Client(sys.argv[1]) as api:
    created = api.create_timer(url=sys.argv[2], seconds=1, labels={"from": "wheel"})
    view = api.get_timer(created.timer_id)
print(json.dumps({"timer_id": created.timer_id, "read": view.timer_id, "labels": view.labels}))
"""

VERIFY = """
import json, sys
from task_scheduler_client import verify_webhook

delivery = json.loads(open(sys.argv[2]).read())
body = verify_webhook(sys.argv[1], delivery["headers"], delivery["body"].encode())
print(json.dumps(body))
"""


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("client-dist")
    return build_wheel(ROOT / "clients" / "python", out_dir, "task_scheduler_client-*.whl")


@pytest.fixture(scope="module")
def client_venv(client_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel, its dependencies pinned to the lock's versions."""
    return fresh_venv(tmp_path_factory.mktemp("client-venv"), client_wheel, only_constrained=True)


def test_the_client_wheel_holds_only_the_library(client_wheel: Path) -> None:
    with zipfile.ZipFile(client_wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"task_scheduler_client"}
    assert "task_scheduler_client/py.typed" in names
    tracked = run("git", "ls-files", "src/task_scheduler_client").split()
    assert sorted(name.removeprefix("src/") for name in tracked) == sorted(
        name for name in names if name.startswith("task_scheduler_client/")
    )
    requires = sorted(
        line.split(">")[0] for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    )
    assert requires == ["Requires-Dist: httpx", "Requires-Dist: pydantic"]


def test_the_environment_has_none_of_the_server_packages(client_venv: Path) -> None:
    found = run(
        client_venv / "bin" / "python",
        "-c",
        "import importlib.util, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))",
        *SERVER_PACKAGES,
        cwd=client_venv,
    )
    assert json.loads(found) == []


async def _python(venv: Path, script: str, *args: str) -> str:
    """Runs `script` with the environment's Python, outside this checkout, without blocking the loop."""
    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "python"),
        "-c",
        script,
        *args,
        cwd=venv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_the_installed_client_creates_a_timer_and_verifies_its_webhook(
    client_venv: Path, spawn: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    secret = generate_secret()
    service = spawn(SCHEDULER_WEBHOOK_SECRETS=secret)
    async with running(Receiver()) as receiver:
        await service.wait_ready()
        created = json.loads(await _python(client_venv, CREATE, service.base_url, receiver.url))
        timer_id = created["timer_id"]
        assert (created["read"], created["labels"]) == (timer_id, {"from": "wheel"})
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, within=WAIT)

    (delivery,) = receiver.deliveries
    saved = tmp_path / "delivery.json"
    saved.write_text(json.dumps({"headers": delivery.headers, "body": delivery.raw.decode()}))
    body = json.loads(await _python(client_venv, VERIFY, secret, str(saved)))
    assert (body["timer_id"], body["labels"]) == (timer_id, {"from": "wheel"})
