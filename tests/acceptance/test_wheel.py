"""The installable package: `uv build` makes a wheel that carries everything the service needs
(migrations, templates and static files, not only Python modules); installed into a fresh virtual
environment with the locked dependencies, its `task-scheduler serve` starts on the embedded
PostgreSQL and fires a timer end to end, without this checkout on its path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.polling import WAIT, wait_for_status
from tests.support.processes import FAST, ServiceProcess
from tests.support.receiver import Receiver, running
from tests.support.wheels import ROOT, build_wheel, fresh_venv, run

pytestmark = pytest.mark.acceptance

PACKAGE = "src/task_scheduler"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("dist"), "task_scheduler-*.whl")


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel and the lock's runtime dependencies."""
    return fresh_venv(tmp_path_factory.mktemp("venv"), wheel, only_constrained=False)


def _package_files() -> set[str]:
    """Every file git tracks in the package, as a path inside the wheel."""
    tracked = run("git", "ls-files", PACKAGE).split()
    return {name.removeprefix("src/") for name in tracked}


def test_the_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    missing = sorted(_package_files() - inside)
    assert missing == []
    assert any(name.startswith("task_scheduler/migrations/versions/") for name in inside)


def test_the_installed_package_is_imported_from_the_environment_not_the_checkout(installed: Path) -> None:
    where = run(
        installed / "bin" / "python",
        "-c",
        "import task_scheduler; print(task_scheduler.__file__)",
        cwd=installed,
    )
    assert where.strip().startswith(str(installed)), where


async def test_the_installed_wheel_serves_on_the_embedded_database_and_fires_a_timer(
    installed: Path, tmp_path: Path
) -> None:
    env = {**FAST, "SCHEDULER_DATA_DIR": str(tmp_path / "data")}
    proc = ServiceProcess(
        database_url=None,
        log_path=tmp_path / "service.log",
        env=env,
        command=[str(installed / "bin" / "task-scheduler"), "serve"],
    )
    async with running(Receiver()) as receiver:
        proc.start()
        try:
            await proc.wait_ready(within=120)
            async with httpx.AsyncClient(base_url=proc.base_url) as api:
                response = await api.post("/timer", json={"seconds": 1, "url": receiver.url})
                assert response.status_code == 201, response.text
                timer_id = response.json()["timer_id"]
                assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, within=WAIT)
                view = await wait_for_status(api, timer_id, "delivered", within=WAIT)
                assert view["status"] == "delivered"
            assert proc.terminate() == 0
        finally:
            proc.ensure_stopped()
    assert "db.embedded_started" in proc.log_path.read_text()
