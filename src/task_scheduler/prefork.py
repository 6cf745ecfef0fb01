"""Several server processes on one port (`SCHEDULER_WORKERS` > 1), forked from one parent.

The parent imports the application once, then forks; it runs no event loop, no thread and holds
no database connection, so a fork copies nothing that could be half-used. Each child binds its own
listening socket with SO_REUSEPORT, so the kernel spreads connections over the processes by a hash
of the client's address and port, instead of whichever process wakes first on one shared socket.

The parent supervises, one slot per child:

| event in the parent                 | what it does                                               |
|-------------------------------------|------------------------------------------------------------|
| SIGTERM or SIGINT                   | SIGTERM to every child (a graceful stop), then waits       |
| a child exits while stopping        | reaped; the parent exits 0 when every child exited 0       |
| a child dies after it served        | restarted after `RESTART_DELAY_SECONDS`                    |
| a child dies before it served       | restarted with backoff; `MAX_START_FAILURES` in a row stop |
|                                     | everything and the parent exits `STARTUP_FAILURE`          |

A child learns of its parent's death (SIGKILL) through PR_SET_PDEATHSIG and stops gracefully.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from task_scheduler.config import Settings
from task_scheduler.logs import configure_logging, log_event

logger = logging.getLogger(__name__)

STARTUP_FAILURE = 3  # uvicorn's exit code when the lifespan fails: the same as one process
MAX_START_FAILURES = 3
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_WATCHED = {signal.SIGCHLD, *_STOP_SIGNALS}
_PR_SET_PDEATHSIG = 1
# Imported once in the parent, so a child starts without importing anything big.
_PRELOAD = (
    "uvloop",
    "uvicorn.loops.uvloop",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.httptools_impl",
    "task_scheduler.app",
)


@dataclasses.dataclass
class _Slot:
    """One child process's place: restarted in place when its process dies."""

    index: int
    pid: int | None = None
    ready_fd: int | None = None  # read end of a pipe the child writes one byte to once serving
    start_failures: int = 0
    restart_at: float | None = None


def serve_forked(settings: Settings, options: dict[str, Any], *, workers: int) -> int:
    """Run `workers` children until a stop signal; returns the parent's exit code."""
    for module in _PRELOAD:
        importlib.import_module(module)
    port = _probe_port(settings.host, settings.port)
    gc.collect()
    gc.freeze()  # what the parent built stays shared with the children (copy-on-write)
    log_event(logger, "server.forking", host=settings.host, port=port, workers=workers)
    return _Parent(settings, options, port, workers).run()


class _Parent:
    def __init__(self, settings: Settings, options: dict[str, Any], port: int, workers: int) -> None:
        self.settings = settings
        self.options = options
        self.port = port
        self.slots = [_Slot(index) for index in range(workers)]
        self.stopping = False
        self.exit_code = 0
        # Never wait forever on a child that ignores SIGTERM: its own graceful limits plus a margin.
        self.stop_within = float(options["timeout_graceful_shutdown"]) + settings.shutdown_grace_seconds + 30
        self.stop_deadline: float | None = None

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)  # received below with sigtimedwait
        try:
            for slot in self.slots:
                self._fork(slot)
            while not self.stopping or any(slot.pid is not None for slot in self.slots):
                info = signal.sigtimedwait(_WATCHED, self._wait_seconds())
                if info is not None and info.si_signo in _STOP_SIGNALS:
                    self._stop(f"signal {signal.Signals(info.si_signo).name}")
                self._reap()
                self._restart_due()
                if self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
                    self._kill_left_over()
        finally:
            for slot in self.slots:
                _close(slot.ready_fd)
        return self.exit_code

    def _wait_seconds(self) -> float:
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        if self.stop_deadline is not None:
            due.append(self.stop_deadline)
        # SIGCHLD wakes the loop; the timeout is a backstop should a signal be coalesced.
        return max(0.0, min([*due, time.monotonic() + 1.0]) - time.monotonic())

    def _fork(self, slot: _Slot) -> None:
        sock = _reuseport_socket(self.settings.host, self.port)
        ready_read, ready_write = os.pipe()
        if threading.active_count() != 1:  # a thread's locks would be copied half-held
            raise RuntimeError("the server parent must not run threads before it forks")
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_read)
            os._exit(_child(self.settings, self.options, sock, ready_write, parent_pid=parent_pid))
        sock.close()  # the child's alone: when it dies, the kernel hashes new connections to the others
        os.close(ready_write)
        os.set_blocking(ready_read, False)
        slot.pid, slot.ready_fd, slot.restart_at = pid, ready_read, None
        log_event(logger, "server.worker_started", pid=pid, worker=slot.index)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._exited(slot, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: _Slot, code: int) -> None:
        # Imported late: prometheus-client reads PROMETHEUS_MULTIPROC_DIR when first imported.
        from prometheus_client import multiprocess

        served = _read_ready(slot.ready_fd)
        _close(slot.ready_fd)
        pid, slot.pid, slot.ready_fd = slot.pid, None, None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        if self.stopping:
            level = logging.INFO if code == 0 else logging.ERROR
            log_event(logger, "server.worker_stopped", level, pid=pid, worker=slot.index, exit_code=code)
            if code != 0:
                self.exit_code = self.exit_code or 1
            return
        slot.start_failures = 0 if served else slot.start_failures + 1
        log_event(
            logger,
            "server.worker_died",
            logging.ERROR,
            pid=pid,
            worker=slot.index,
            exit_code=code,
            served=served,
            start_failures=slot.start_failures,
        )
        if slot.start_failures >= MAX_START_FAILURES:
            self.exit_code = STARTUP_FAILURE
            self._stop("workers keep failing at start")
            return
        delay = min(RESTART_DELAY_SECONDS * 2 ** max(0, slot.start_failures - 1), MAX_RESTART_DELAY_SECONDS)
        slot.restart_at = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not self.stopping and slot.restart_at is not None and slot.restart_at <= now:
                self._fork(slot)

    def _stop(self, reason: str) -> None:
        if not self.stopping:
            log_event(logger, "server.stopping", reason=reason)
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.stop_within
        # Always SIGTERM: a second SIGINT would make uvicorn skip the lifespan's graceful shutdown.
        for slot in self.slots:
            slot.restart_at = None
            if slot.pid is not None:
                _signal(slot.pid, signal.SIGTERM)

    def _kill_left_over(self) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                log_event(logger, "server.worker_killed", logging.ERROR, pid=slot.pid, worker=slot.index)
                _signal(slot.pid, signal.SIGKILL)
        self.exit_code = self.exit_code or 1
        self.stop_deadline = None


def _child(
    settings: Settings, options: dict[str, Any], sock: socket.socket, ready_fd: int, *, parent_pid: int
) -> int:
    """Build and serve the app in a forked child; returns its exit code (never raises)."""
    try:
        _stop_with_parent(parent_pid)
        return _serve_child(settings, options, sock, ready_fd)
    except SystemExit as exc:  # uvicorn's sys.exit(STARTUP_FAILURE) when the lifespan fails
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logger.exception("server worker crashed", extra={"action": "server.worker_crashed"})
        return 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()


def _serve_child(settings: Settings, options: dict[str, Any], sock: socket.socket, ready_fd: int) -> int:
    import uvicorn

    from task_scheduler.app import create_app

    # Leases are fenced by owner: every process needs its own, even under one configured name.
    settings = settings.model_copy(update={"instance_id": f"{settings.instance_id}-{os.getpid()}"})
    configure_logging(settings.log_level, settings.log_format, settings.instance_id)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # listening now: tell the parent this child served
                os.write(ready_fd, b"1")
            os.close(ready_fd)

    server = _Server(uvicorn.Config(create_app(settings), **options))

    def stop(_signum: int, _frame: object) -> None:
        """Before uvicorn's own handlers: stop as soon as started. After: uvicorn re-raises the
        stop signal once it has shut down gracefully, and the process exits 0, not "killed"."""
        server.should_exit = True

    for sig in _STOP_SIGNALS:
        signal.signal(sig, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)  # blocked in the parent since before the fork
    server.run(sockets=[sock])
    return 0


def _stop_with_parent(parent_pid: int) -> None:
    """SIGTERM (a graceful stop) when the parent dies, even by SIGKILL: no orphan keeps serving."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        raise SystemExit(1)


def _probe_port(host: str, port: int) -> int:
    """Fail like a single process would if the port is taken (SO_REUSEPORT alone would share it
    with any other process of this user), and resolve port 0 to the one all children bind."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))  # without SO_REUSEPORT: fails if anyone listens there
        bound: int = probe.getsockname()[1]
        return bound


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """Bound, not listening: uvicorn listens once the child's app has started, so the kernel
    hashes connections only to processes that can serve them."""
    sock = socket.socket(_family(host))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _read_ready(fd: int | None) -> bool:
    if fd is None:
        return False
    try:
        return os.read(fd, 1) == b"1"
    except BlockingIOError:
        return False


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited: reaped on the next turn
        os.kill(pid, sig)


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
