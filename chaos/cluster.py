"""Three service processes on one database, each in a slot that a fault may empty and refill, and
the receiver process. Every process is started here and stopped here, by its PID."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.processes import ServiceProcess, free_port

# Fast recovery, realistic otherwise (the brief's values): a lease of 5 s, a request timeout of
# 2 s, retries from 0.2 s up to 2 s apart, 10 attempts; loopback allowed (the receiver is there).
SERVICE_ENV = {
    "SCHEDULER_LEASE_SECONDS": "5",
    "SCHEDULER_REQUEST_TIMEOUT_SECONDS": "2",
    "SCHEDULER_CONNECT_TIMEOUT_SECONDS": "1",
    "SCHEDULER_BACKOFF_BASE_SECONDS": "0.2",
    "SCHEDULER_BACKOFF_CAP_SECONDS": "2",
    "SCHEDULER_MAX_ATTEMPTS": "10",
    "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "SCHEDULER_SHUTDOWN_GRACE_SECONDS": "3",
}
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def clock_env(offset: str) -> dict[str, str]:
    """What the `faketime -f <offset>` wrapper sets, without the wrapper: it forks and waits, so
    its PID is not the service's, and a kill -9 of it would leave the service running."""
    if not offset:
        return {}
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": offset}


@dataclass
class Slot:
    """One place for an instance; its incarnations get ids `<name>.<n>`."""

    name: str
    clock: str = ""  # a libfaketime offset such as "+30s"; empty for the true clock
    incarnation: int = 0
    process: ServiceProcess | None = None
    ready: bool = False

    @property
    def instance_id(self) -> str:
        return f"{self.name}.{self.incarnation}"


@dataclass(frozen=True)
class Kill:
    slot: str
    instance_id: str
    pid: int
    at: float  # wall time just before SIGKILL


@dataclass
class Cluster:
    database_url: str
    workdir: Path
    clocks: tuple[str, ...] = ("", "", "")
    env: dict[str, str] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    _started: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = [Slot(name=f"i{n}", clock=clock) for n, clock in enumerate(self.clocks)]

    def _spawn(self, slot: Slot) -> ServiceProcess:
        slot.incarnation += 1
        slot.ready = False
        proc = ServiceProcess(
            database_url=self.database_url,
            log_path=self.workdir / f"service-{slot.instance_id}.log",
            env={
                **SERVICE_ENV,
                "SCHEDULER_INSTANCE_ID": slot.instance_id,
                **clock_env(slot.clock),
                **self.env,
            },
        )
        proc.start()
        self._started.append(proc)
        slot.process = proc
        return proc

    async def _ready(self, slot: Slot, proc: ServiceProcess, within: float) -> None:
        await proc.wait_ready(within=within)
        if slot.process is proc:
            slot.ready = True

    async def start(self, within: float = 90.0) -> None:
        procs = [(slot, self._spawn(slot)) for slot in self.slots]
        await asyncio.gather(*(self._ready(slot, proc, within) for slot, proc in procs))

    def ready_urls(self) -> list[str]:
        return [s.process.base_url for s in self.slots if s.ready and s.process is not None]

    def kill(self, slot: Slot) -> Kill:
        """kill -9 the slot's process (by its PID, through Popen) and wait for it to be gone."""
        proc = slot.process
        assert proc is not None
        assert proc.process is not None
        slot.ready = False
        at = time.time()
        proc.kill()
        return Kill(slot=slot.name, instance_id=slot.instance_id, pid=proc.process.pid, at=at)

    async def restart(self, slot: Slot, within: float = 90.0) -> None:
        await self._ready(slot, self._spawn(slot), within)

    def stop(self) -> None:
        """SIGTERM every process still running (graceful), SIGKILL what does not exit in time."""
        for proc in self._started:
            if proc.process is not None and proc.process.poll() is None:
                proc.process.terminate()
        deadline = time.monotonic() + 15
        for proc in self._started:
            if proc.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            proc.ensure_stopped()


class ReceiverProcess:
    """`python -m chaos.receiver` on two free loopback ports; records go to `records_path`."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self.records_path = workdir / "receiver-records.jsonl"
        self.log_path = workdir / "receiver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def _control(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaos.receiver",
                    "--port",
                    str(self.port),
                    "--control-port",
                    str(self.control_port),
                    "--records",
                    str(self.records_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, within: float = 30.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"receiver exited with {self.process.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self._control}/health") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"receiver not up after {within}s")

    async def set_mode(self, mode: str, **options: Any) -> tuple[float, float]:
        """Switch the receiver's behaviour; returns the wall times the switch began and was done."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(f"{self._control}/mode", json={"mode": mode, **options}) as response,
        ):
            response.raise_for_status()
            answer = await response.json()
        return float(answer["began"]), float(answer["done"])

    async def flush(self) -> int:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(f"{self._control}/flush") as response,
        ):
            response.raise_for_status()
            return int((await response.json())["records"])

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a helper process we started, SIGKILL if it has not exited within 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
