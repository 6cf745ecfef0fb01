"""Structured logs: one event per line with its `action` and fields, in JSON or console form."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from task_scheduler.logs import ConsoleFormatter, JsonFormatter, log_event


@pytest.fixture
def stream_logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(f"tests.logs.{uuid.uuid4().hex}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream, handler
    logger.handlers.clear()


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_event_has_action_level_and_fields(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    log_event(logger, "timer.delivered", timer_id=42, attempt=2, instance="node-a")
    (event,) = _json_lines(stream)
    assert event["action"] == "timer.delivered"
    assert event["level"] == "info"
    assert event["logger"] == logger.name
    assert event["timer_id"] == 42
    assert event["attempt"] == 2
    assert event["instance"] == "node-a"
    assert "message" not in event  # the message is the action; not repeated
    assert datetime.fromisoformat(str(event["ts"])).tzinfo is not None


def test_json_one_object_per_line_even_with_newlines_and_tracebacks(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("it\nbroke", extra={"action": "http.unhandled_error", "path": "/a\nb"})
    log_event(logger, "timer.failed", logging.WARNING, error="line1\nline2")
    first, second = _json_lines(stream)
    assert first["action"] == "http.unhandled_error"
    assert first["message"] == "it\nbroke"
    assert first["level"] == "error"
    assert first["path"] == "/a\nb"
    assert "RuntimeError: boom" in str(first["exception"])
    assert second["action"] == "timer.failed"
    assert second["level"] == "warning"
    assert second["error"] == "line1\nline2"


def test_json_plain_log_call_gets_a_default_action(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    logger.info("hello %s", "world")
    (event,) = _json_lines(stream)
    assert event["action"] == "log"
    assert event["message"] == "hello world"


def test_json_values_that_are_not_json_become_strings(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    delivery_id = uuid.UUID("0d9f6b1c-7d2e-4f6a-8b0c-1d2e3f405162")
    due_at = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)
    log_event(logger, "timer.created", delivery_id=delivery_id, due_at=due_at)
    (event,) = _json_lines(stream)
    assert event["delivery_id"] == str(delivery_id)
    assert event["due_at"] == str(due_at)


def test_console_line_is_readable(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(ConsoleFormatter())
    log_event(logger, "timer.retry_scheduled", logging.WARNING, timer_id=7, retry_in=0.5)
    line = stream.getvalue().rstrip("\n")
    assert "\n" not in line
    assert line.startswith(tuple("0123456789"))  # a time of day first
    assert "WARNING" in line
    assert "timer.retry_scheduled" in line
    assert "timer_id=7" in line
    assert "retry_in=0.5" in line
    assert not line.lstrip("0123456789:. ").startswith("{")


def test_console_plain_message_and_traceback(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(ConsoleFormatter())
    logger.info("plain message")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed", extra={"action": "http.unhandled_error"})
    text = stream.getvalue()
    assert "plain message" in text.splitlines()[0]
    assert "http.unhandled_error" in text
    assert "| failed" in text
    assert "ValueError: bad" in text


def test_log_event_respects_the_level(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    logger.setLevel(logging.WARNING)
    log_event(logger, "dispatcher.claimed", logging.DEBUG, count=3)
    log_event(logger, "timer.created", timer_id=1)
    assert stream.getvalue() == ""
    log_event(logger, "timer.failed", logging.ERROR, timer_id=1)
    assert [e["action"] for e in _json_lines(stream)] == ["timer.failed"]


@pytest.mark.parametrize(
    "created",
    [0.0, 0.5, 1.0009, 1764583200.0, 1764583200.9994, 1764583259.25, 1764583260.001, 4102444799.999],
)
def test_json_timestamp_is_the_record_time_in_utc_to_the_millisecond(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler], created: float
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "tick", (), None)
    record.created = created
    logger.handle(record)
    expected = datetime.fromtimestamp(created, UTC)
    written = datetime.fromisoformat(str(_json_lines(stream)[0]["ts"]))
    assert written.utcoffset() is not None
    assert abs((written - expected).total_seconds()) < 0.001
    assert written.replace(microsecond=0) == expected.replace(microsecond=0)


def test_a_field_named_like_a_record_attribute_never_fails_the_caller(
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    log_event(logger, "schedule.backfilled", created=3, name="x", message="m", schedule_id=7)
    (event,) = _json_lines(stream)
    assert (event["created_"], event["name_"], event["message_"], event["schedule_id"]) == (3, "x", "m", 7)
