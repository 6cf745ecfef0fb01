"""Every log line names the instance, and lines inside a request carry its id."""

from __future__ import annotations

import json
import logging

import pytest

from task_scheduler.logs import bind_request_id, configure_logging, log_event, reset_request_id


def test_instance_and_request_id_on_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", instance="node-7")
    logger = logging.getLogger("task_scheduler.test")
    log_event(logger, "outside.request", timer_id=1)
    token = bind_request_id("req-42")
    try:
        log_event(logger, "inside.request", timer_id=2)
        logger.warning("plain message")
    finally:
        reset_request_id(token)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["action"] for line in lines] == ["outside.request", "inside.request", "log"]
    assert all(line["instance"] == "node-7" for line in lines)
    assert "request_id" not in lines[0]
    assert lines[1]["request_id"] == lines[2]["request_id"] == "req-42"
    assert lines[1]["timer_id"] == 2


def test_level_setting_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "console", instance="node-7")
    logger = logging.getLogger("task_scheduler.test")
    log_event(logger, "quiet.info")
    log_event(logger, "loud.warning", logging.WARNING, timer_id=3)
    err = capsys.readouterr().err
    assert "quiet.info" not in err
    assert "loud.warning" in err
    assert "timer_id=3" in err
    assert "instance=node-7" in err
