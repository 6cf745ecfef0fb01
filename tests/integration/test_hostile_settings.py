"""Configuration is a boundary too (STYLE.md habit 13): every value a SCHEDULER_* variable accepts
must give a service that works, and every other value a clear refusal at start. Each number
setting at the edges (infinite, 1e308, 10**30, 2**63, the largest and smallest values accepted,
the smallest positive float, 1e-9): refused with an error that names the variable, or, on a
running service with its dispatcher and a real receiver, a timer is created, delivered, an
idempotent create is replayed and /readyz is 200.

Found before the bounds (config.py, MAX_SECONDS_SETTING): an infinite or 1e308-second
SCHEDULER_LEASE_SECONDS failed every claim (no timer delivered, /readyz 200), an
SCHEDULER_IDEMPOTENCY_WINDOW_SECONDS of 1e308 and a SCHEDULER_MAX_PENDING_PER_TENANT of 10**30
made every create a 500, and an SCHEDULER_RATE_LIMIT_PER_SECOND of 5e-324 every 429 a 500.

Every edge is checked against the settings; a derandomized sample of the accepted ones starts a
service in `make test` (`FUZZ_RANDOM=1` draws others; `HOSTILE_SETTING_EXAMPLES` sets how many)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from task_scheduler.config import MAX_NUMBER_SETTING, MAX_SECONDS_SETTING, MIN_SECONDS_SETTING, Settings
from tests.support.app_thread import AppThread
from tests.support.settings import TEST_SETTINGS

EXAMPLES = int(os.environ.get("HOSTILE_SETTING_EXAMPLES", "8"))
NUMERIC = sorted(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation in (int, float, "int", "float") and name not in ("port", "db_pool_size")
)
EDGES = [
    float("inf"),
    1e308,
    10**30,
    2**63,
    MAX_NUMBER_SETTING,  # the largest count accepted
    MAX_SECONDS_SETTING,  # the longest time accepted
    MIN_SECONDS_SETTING,  # the shortest
    5e-324,
    1e-9,
]
PLACEHOLDER_URL = "postgresql://postgres@127.0.0.1:5432/placeholder"


def _refusal(name: str, value: Any) -> str | None:
    """Why the test settings with `name` set to `value` are refused; None if they are not."""
    try:
        Settings.model_validate({**TEST_SETTINGS, "database_url": PLACEHOLDER_URL, name: value})
    except ValidationError as exc:
        return str(exc)
    return None


ACCEPTED = [(name, value) for name in NUMERIC for value in EDGES if _refusal(name, value) is None]


@pytest.mark.parametrize("value", EDGES, ids=str)
def test_every_edge_is_accepted_or_refused_by_name(value: Any) -> None:
    for name in NUMERIC:
        refusal = _refusal(name, value)
        assert refusal is None or name in refusal or f"SCHEDULER_{name.upper()}" in refusal, refusal


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(setting=st.sampled_from(ACCEPTED))
def test_an_accepted_setting_gives_a_working_service(
    make_settings: Callable[..., Settings], setting: tuple[str, Any]
) -> None:
    name, value = setting
    app = AppThread(make_settings(**{name: value}))
    app.start()
    try:
        created = app.request("POST", "/timer", json={"seconds": 0, "url": f"{app.receiver.url}/canary"})
        assert created.status_code == 201, created.text
        timer_id = created.json()["timer_id"]
        if name.endswith("timeout_seconds") and value < 0.1:
            # A connection or request timeout of a millisecond may expire on a busy machine, as
            # the operator asked: the timer is then failed after its attempts, never stuck.
            _settled(app, timer_id)
        else:
            assert app.wait_delivered(timer_id), f"{name}={value}: the timer was not delivered"
        key = {"Idempotency-Key": uuid.uuid4().hex}
        again = [
            app.request("POST", "/timer", json={"hours": 1, "url": f"{app.receiver.url}/i"}, headers=key)
            for _ in range(2)
        ]
        replayed = (
            201 if name == "idempotency_window_seconds" and value < 60 else 200
        )  # a short window forgets
        assert [r.status_code for r in again] == [201, replayed], [r.text for r in again]
        assert app.request("GET", "/readyz").status_code == 200
    finally:
        app.stop()


def _settled(app: AppThread, timer_id: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while (status := app.request("GET", f"/timer/{timer_id}").json()["status"]) not in (
        "delivered",
        "failed",
    ):
        assert time.monotonic() < deadline, f"timer {timer_id} is still {status}"
        time.sleep(0.05)
