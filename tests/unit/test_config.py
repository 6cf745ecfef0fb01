"""Settings: environment names, and the refusal to start with values that contradict each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from task_scheduler import config
from task_scheduler.config import AUTO_WORKERS_MAX, TEN_YEARS_SECONDS, Settings
from task_scheduler.cpus import usable_cpus


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the process environment; start every test from none of ours."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("SCHEDULER_", "OTEL_")) or upper in ("DATABASE_URL", "HOST", "PORT"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.max_horizon_seconds == TEN_YEARS_SECONDS
    assert settings.lease_seconds > settings.request_timeout_seconds
    assert settings.backoff_cap_seconds >= settings.backoff_base_seconds
    assert settings.connect_timeout_seconds <= settings.request_timeout_seconds
    assert settings.instance_id


def test_ten_years_include_leap_days() -> None:
    assert TEN_YEARS_SECONDS == 3653 * 86400


def test_every_setting_has_a_description() -> None:
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_instance_ids_differ_between_instances() -> None:
    assert Settings().instance_id != Settings().instance_id


def test_conventional_names_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/timers")
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9000")
    settings = Settings()
    assert settings.database_url == "postgresql://u:p@db:5432/timers"
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000


def test_other_settings_use_the_scheduler_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("SCHEDULER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SCHEDULER_LOG_FORMAT", "json")
    monkeypatch.setenv("SCHEDULER_LEASE_SECONDS", "90.5")
    monkeypatch.setenv("SCHEDULER_INSTANCE_ID", "node-a")
    monkeypatch.setenv("SCHEDULER_DATA_DIR", "/var/lib/scheduler")
    monkeypatch.setenv("MAX_ATTEMPTS", "99")  # without the prefix: not ours
    settings = Settings()
    assert settings.max_attempts == 7
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "json"
    assert settings.lease_seconds == 90.5
    assert settings.instance_id == "node-a"
    assert settings.data_dir == Path("/var/lib/scheduler")


def test_unknown_scheduler_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULER_NO_SUCH_SETTING", "1")
    assert Settings().max_attempts == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "70000"),
        ("PORT", "http"),
        ("SCHEDULER_MAX_ATTEMPTS", "0"),
        ("SCHEDULER_MAX_ATTEMPTS", "101"),
        ("SCHEDULER_LOG_LEVEL", "VERBOSE"),
        ("SCHEDULER_LOG_FORMAT", "xml"),
        ("SCHEDULER_REQUEST_TIMEOUT_SECONDS", "0"),
        ("SCHEDULER_MAX_REQUEST_BODY_BYTES", "10"),
        ("SCHEDULER_INSTANCE_ID", ""),
    ],
)
def test_invalid_environment_values_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_seconds": 30.0, "request_timeout_seconds": 30.0}, "LEASE_SECONDS"),
        ({"lease_seconds": 10.0, "request_timeout_seconds": 30.0}, "LEASE_SECONDS"),
        ({"backoff_base_seconds": 10.0, "backoff_cap_seconds": 9.99}, "BACKOFF_CAP_SECONDS"),
        (
            {"connect_timeout_seconds": 5.01, "request_timeout_seconds": 5.0, "lease_seconds": 60},
            "CONNECT_TIMEOUT_SECONDS",
        ),
    ],
)
def test_contradictory_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate(values)


def test_contradictions_are_refused_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCHEDULER_LEASE_SECONDS", "20")
    monkeypatch.setenv("SCHEDULER_REQUEST_TIMEOUT_SECONDS", "25")
    with pytest.raises(ValidationError, match="LEASE_SECONDS"):
        Settings()


@pytest.mark.parametrize(
    "values",
    [
        {"lease_seconds": 30.001, "request_timeout_seconds": 30.0},
        {"backoff_base_seconds": 10.0, "backoff_cap_seconds": 10.0},
        {"connect_timeout_seconds": 5.0, "request_timeout_seconds": 5.0},
    ],
)
def test_boundary_values_are_accepted(values: dict[str, Any]) -> None:
    settings = Settings.model_validate(values)
    for name, value in values.items():
        assert getattr(settings, name) == value


@pytest.mark.parametrize(
    ("value", "count"), [("1", 1), ("2", 2), ("auto", min(usable_cpus(), AUTO_WORKERS_MAX)), ("64", 64)]
)
def test_workers_is_a_number_or_auto(monkeypatch: pytest.MonkeyPatch, value: str, count: int) -> None:
    monkeypatch.setenv("SCHEDULER_WORKERS", value)
    assert Settings().worker_count == count


def test_workers_default_to_one_per_usable_cpu_at_most_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes on 2 cores: creates x1.05, delivery x1.49 (docs/performance.md)."""
    monkeypatch.delenv("SCHEDULER_WORKERS", raising=False)
    assert Settings().workers == "auto"
    monkeypatch.setattr(config, "usable_cpus", lambda: 2)
    assert Settings().worker_count == 2
    monkeypatch.setattr(config, "usable_cpus", lambda: 64)
    assert Settings().worker_count == AUTO_WORKERS_MAX == 4
    monkeypatch.setattr(config, "usable_cpus", lambda: 1)
    assert Settings().worker_count == 1


@pytest.mark.parametrize("value", ["0", "65", "many", "-1"])
def test_workers_refuses_other_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SCHEDULER_WORKERS", value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u:hunter2pw@[::1/db", "cannot be read as a URL"),
        ("postgresql://u:hunter2pw@host:abc/db", "cannot be read as a URL"),
        ("%%%", "cannot be read as a URL"),
        ("postgresql://u:hunter2pw@host:99999/db", "has the port 99999, outside 1-65535"),
        ("mysql://u:hunter2pw@host/db", "must be a PostgreSQL URL"),
    ],
)
def test_a_malformed_database_url_is_refused_by_name_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    """Regression: these were tracebacks at start (ValueError, ArgumentError); and no refusal
    may print the URL, which carries the password."""
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert f"DATABASE_URL {problem}" in str(refused.value)
    assert "hunter2pw" not in str(refused.value)


def test_a_data_dir_that_cannot_be_made_is_refused_by_name(tmp_path: Path) -> None:
    """Regression: a file where SCHEDULER_DATA_DIR points (or a parent that cannot be written)
    was a FileExistsError traceback at the embedded PostgreSQL's start."""
    from task_scheduler.db import DatabaseUnusable, EmbeddedPostgres

    occupied = tmp_path / "a-file"
    occupied.write_text("")
    with pytest.raises(DatabaseUnusable, match=r"cannot use SCHEDULER_DATA_DIR .*a-file.* File exists"):
        EmbeddedPostgres(occupied).start()
