from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import FAST, ServiceProcess


@pytest.fixture
def spawn(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """`spawn(**env)` starts a service process on this test's database; all are stopped after."""
    started: list[ServiceProcess] = []

    def make(**env: str) -> ServiceProcess:
        proc = ServiceProcess(
            database_url=database_url,
            log_path=tmp_path / f"service-{len(started)}.log",
            env={**FAST, **env},
        )
        proc.start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.ensure_stopped()
