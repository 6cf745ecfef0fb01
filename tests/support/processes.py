"""Real service processes for end-to-end tests and benchmarks: start, wait ready, stop, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

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


# Under pytest-xdist (`make test`), each worker takes the ports for its service processes from a
# range of its own below the kernel's ephemeral range: two workers asking the kernel for a free
# port at the same moment could be given the same one (it is free until a service binds it), and a
# test would then start or talk to another worker's service.
_WORKER_PORTS = 400
_FIRST_WORKER_PORT = 20_000
_next_port: list[int] = []


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        first = _FIRST_WORKER_PORT + int(worker[2:]) * _WORKER_PORTS
        if not _next_port:
            _next_port.append(first)
        for _ in range(_WORKER_PORTS):
            port = _next_port[0]
            _next_port[0] = first + (port + 1 - first) % _WORKER_PORTS
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue  # in use (a service of this worker, or anything else): the next
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


class ServiceProcess:
    """`python -m task_scheduler serve` on 127.0.0.1 with its own port and log file."""

    def __init__(
        self,
        *,
        database_url: str | None,
        log_path: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """`database_url` None: the embedded PostgreSQL (in `SCHEDULER_DATA_DIR`); `command`: another
        `serve` than this interpreter's (an installed wheel's), run from the log's folder."""
        self.database_url = database_url
        self.log_path = log_path
        self.extra_env = env or {}
        self.command = command or [sys.executable, "-m", "task_scheduler", "serve"]
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **({} if self.database_url is None else {"DATABASE_URL": self.database_url}),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "SCHEDULER_LOG_FORMAT": "json",
            "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            # One process unless a test asks for more (the default, auto, forks one per CPU):
            # a test's instance is one process, as the chaos suite's and the benches' instances.
            "SCHEDULER_WORKERS": os.environ.get("SCHEDULER_WORKERS", "1"),
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=None if self.command[0] == sys.executable else self.log_path.parent,
        )
        log.close()

    async def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"service not ready after {within}s:\n{self.log_tail()}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing runs on the way out."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
