from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import ServiceProcess

# Fast retries and short leases so crash recovery happens within seconds.
FAST = {
    "SCHEDULER_BACKOFF_BASE_SECONDS": "0.05",
    "SCHEDULER_BACKOFF_CAP_SECONDS": "0.2",
    "SCHEDULER_REQUEST_TIMEOUT_SECONDS": "1",
    "SCHEDULER_CONNECT_TIMEOUT_SECONDS": "1",
    "SCHEDULER_LEASE_SECONDS": "2",
    "SCHEDULER_POLL_INTERVAL_SECONDS": "0.2",
    "SCHEDULER_LOOKAHEAD_SECONDS": "1",
    "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
}


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
