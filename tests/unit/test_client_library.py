"""task_scheduler_client without a server: it imports nothing of the server's, its models have the
fields of the OpenAPI document's schemas (drift is caught here), and its calls cover every
operation of that document."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import task_scheduler_client as library
from task_scheduler_client._core import Calls, Paging, SchedulePaging

ROOT = Path(__file__).resolve().parents[2]
OPENAPI: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "openapi.json").read_text())
SCHEMAS: dict[str, Any] = OPENAPI["components"]["schemas"]

# Refuses these imports in a fresh interpreter, then exercises the library: it must not need them.
ISOLATED = """
import sys

FORBIDDEN = ("task_scheduler", "aiohttp", "sqlalchemy", "fastapi", "asyncpg", "uvicorn", "starlette")

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"task_scheduler_client imported {name}")
        return None

sys.meta_path.insert(0, Refuse())
import task_scheduler_client as lib

lib.new_timer(url="http://example.com/", minutes=1)
lib.Client("http://127.0.0.1:1").close()
try:
    lib.verify_webhook("whsec_" + "A" * 32, {}, b"{}")
except lib.WebhookVerificationError as exc:
    print(exc.reason)
print(sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN))
"""


def test_the_library_imports_nothing_of_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED], capture_output=True, text=True, timeout=60, cwd=ROOT / "src"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["missing webhook-id header", "[]"]


# (library model, the OpenAPI schema it copies)
COPIES: list[tuple[type[BaseModel], str]] = [
    (library.NewTimer, "TimerCreate"),
    (library.TimerChanges, "TimerUpdate"),
    (library.RetryPolicy, "RetryPolicy"),
    (library.TimerCreated, "TimerCreated"),
    (library.TimerBatchCreated, "TimerBatchCreated"),
    (library.TimerView, "TimerView"),
    (library.EffectiveRetryPolicy, "EffectiveRetryPolicy"),
    (library.TimerPage, "TimerPage"),
    (library.AttemptView, "AttemptView"),
    (library._models.AttemptList, "AttemptList"),
    (library.KeyView, "KeyView"),
    (library.KeyCreated, "KeyCreated"),
    (library._models.KeyList, "KeyList"),
    (library.SecretView, "SecretView"),
    (library.SecretCreated, "SecretCreated"),
    (library._models.SecretList, "SecretList"),
    (library.FieldProblem, "FieldError"),
    (library._models.ErrorBody, "ErrorDetailWithFields"),
    (library._models.ErrorEnvelope, "ErrorResponse"),
    (library.NewSchedule, "ScheduleCreate"),
    (library.ScheduleChanges, "ScheduleUpdate"),
    (library.ScheduleView, "ScheduleView"),
    (library.NextRun, "NextRun"),
    (library.SchedulePage, "SchedulePage"),
    (library.RunView, "RunView"),
    (library.RunPage, "RunPage"),
    (library.BackfillCreated, "BackfillCreated"),
    (library.TenantWebhook, "TenantWebhookView"),
    (library.TenantWebhookList, "TenantWebhookList"),
    (library.BulkFilter, "BulkFilter"),
    (library.BulkCount, "BulkCount"),
    (library.BulkJob, "BulkJobView"),
    (library.Destination, "DestinationView"),
    (library.DestinationHealth, "DestinationHealth"),
    (library.DestinationHistoryEntry, "DestinationHistoryEntry"),
    (library.DestinationPage, "DestinationPage"),
]


@pytest.mark.parametrize(("model", "schema"), COPIES, ids=[schema for _, schema in COPIES])
def test_a_model_has_the_fields_of_its_schema(model: type[BaseModel], schema: str) -> None:
    properties = SCHEMAS[schema]["properties"]
    assert set(model.model_fields) == set(properties)
    if schema in (
        "TimerCreate",
        "TimerUpdate",
        "RetryPolicy",
        "ScheduleCreate",
        "ScheduleUpdate",
        "BulkFilter",
    ):
        return  # requests: the service's defaults stand in for what is left out
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert required <= set(SCHEMAS[schema].get("required", []))


def test_every_schema_is_copied_or_named_as_not_needed() -> None:
    literals = {
        "Role": library.Role,
        "TimerStatus": library.TimerStatus,
        "ScheduleStatus": library.ScheduleStatus,
        "Overlap": library.Overlap,
        "Catchup": library.Catchup,
        "BulkAction": library.BulkAction,
        "BulkState": library.BulkState,
    }
    inline = {
        "JsonValue",
        "KeyCreate",
        "TimerBatch",
        "ScheduleBackfill",
        "TimerReplay",
        "BulkRequest",
        "TenantWebhookCreate",
        "DestinationUpdate",
    }
    assert set(SCHEMAS) == {schema for _, schema in COPIES} | set(literals) | inline
    for name, literal in literals.items():
        assert set(literal.__args__) == set(SCHEMAS[name]["enum"]), name


def test_the_calls_cover_every_operation_of_the_api() -> None:
    timer = library.new_timer(url="http://example.com/", delay=timedelta(seconds=1.5))
    calls = [
        Calls.create_timer(timer, None),
        Calls.create_timers([timer]),
        Calls.get_timer(1),
        Calls.update_timer(1, {"minutes": 1}, '"1"'),
        Calls.cancel_timer(1),
        Calls.retry_timer(1),
        Calls.replay_timer(1, None, None),
        Calls.start_bulk("cancel", library.BulkFilter(host="example.com"), None),
        Calls.bulk_job(1),
        Calls.cancel_bulk_job(1),
        Calls.timer_attempts(1),
        Paging({}, page_size=10, cursor=None, max_timers=None).next_call(),
        Calls.list_keys(),
        Calls.create_key("acme", "writer", ""),
        Calls.revoke_key("abc"),
        Calls.list_secrets(),
        Calls.create_secret(),
        Calls.revoke_secret(1),
        Calls.list_tenant_webhooks(),
        Calls.add_tenant_webhook("http://example.com/", ["timer.failed"]),
        Calls.remove_tenant_webhook(1),
        Calls.list_destinations(None, 10),
        Calls.get_destination("abc"),
        Calls.update_destination("abc", paused=True),
        Calls.resume_destination("abc"),
        Calls.create_schedule({"cron": "@hourly", "url": "http://example.com/"}),
        Calls.get_schedule(1),
        SchedulePaging({}, page_size=10, cursor=None, max_items=None).next_schedules(),
        Calls.update_schedule(1, {"cron": "@daily"}, '"1"'),
        Calls.delete_schedule(1, True),
        Calls.pause_schedule(1),
        Calls.resume_schedule(1),
        Calls.trigger_schedule(1),
        Calls.backfill_schedule(1, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
        SchedulePaging({}, schedule_id=1, page_size=10, cursor=None, max_items=None).next_runs(),
    ]
    covered = {(call.method, re.sub(r"/(\d+|abc)(?=/|$)", "/{}", call.path)) for call in calls if call}
    operations = {
        (method.upper(), re.sub(r"\{[a-z_]+\}", "{}", path))
        for path, methods in OPENAPI["paths"].items()
        for method in methods
        if path not in ("/healthz", "/readyz", "/metrics")
    }
    assert covered == operations


def test_keywords_become_the_api_body() -> None:
    timer = library.new_timer(
        url="http://example.com/", delay=timedelta(seconds=1.5), max_lateness=timedelta(minutes=1)
    )
    assert json.loads(Calls.create_timer(timer, "k").body or b"") == {
        "url": "http://example.com/",
        "seconds": 2,
        "max_lateness_seconds": 60.0,
    }
    assert Calls.create_timer(timer, "k").headers == {"Idempotency-Key": "k"}
    generated = Calls.create_timer(timer, None).headers["Idempotency-Key"]
    assert generated != Calls.create_timer(timer, None).headers["Idempotency-Key"]
    with pytest.raises(ValueError, match="one of them"):
        library.new_timer(url="http://example.com/", delay=timedelta(seconds=1), minutes=1)


def test_schedule_keywords_become_the_api_body() -> None:
    call = Calls.create_schedule(
        {"cron": "0 9 * * 1-5", "url": "http://example.com/", "max_lateness": timedelta(minutes=2)}
    )
    assert json.loads(call.body or b"") == {
        "cron": "0 9 * * 1-5",
        "url": "http://example.com/",
        "max_lateness_seconds": 120.0,
    }
    start = datetime(2026, 11, 30, tzinfo=UTC)
    backfill = Calls.backfill_schedule(7, start, start + timedelta(days=1))
    assert json.loads(backfill.body or b"") == {
        "from": "2026-11-30T00:00:00+00:00",
        "to": "2026-12-01T00:00:00+00:00",
    }
    assert Calls.delete_schedule(7, True).params == [("cancel_pending", "true")]
    assert Calls.delete_schedule(7, False).params == []
    page = SchedulePaging(
        {"status": "paused", "labels": {"team": "ops"}}, page_size=5, cursor="c", max_items=3
    )
    assert list(page.next_schedules().params) == [  # type: ignore[union-attr]
        ("label", "team:ops"),
        ("status", "paused"),
        ("limit", "3"),
        ("cursor", "c"),
    ]


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    from task_scheduler_client._core import _retry_after

    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once


# HTTP dates whose year, day or offset no datetime holds (email.utils raises ValueError,
# OverflowError or IndexError for them), and numbers that are not a wait.
HOSTILE_RETRY_AFTER = [
    "0 JAN 10000000000 0:0",
    "Mon, 01 Jan 99999 00:00:00 GMT",
    "1 Jan 2026 00:00:00 +9999",
    "Mon, 32 Jan 2026 00:00:00 GMT",
    "nan",
    "-inf",
    "",
    ",",
]


@pytest.mark.parametrize("value", HOSTILE_RETRY_AFTER)
def test_a_retry_after_no_one_can_wait_for_is_none_or_a_wait(value: str) -> None:
    """Regression: a Retry-After of '0 JAN 10000000000 0:0' on a 429 or 503 raised OverflowError
    out of the client (a traceback from the CLI) instead of the API's error."""
    from task_scheduler_client._core import _retry_after

    seconds = _retry_after(value)
    assert seconds is None or seconds >= 0, seconds


@given(st.text() | st.sampled_from(HOSTILE_RETRY_AFTER).map(lambda v: f" {v} "))
@settings(max_examples=300, derandomize=True, database=None)
def test_any_retry_after_is_none_or_a_wait(value: str) -> None:
    from task_scheduler_client._core import _retry_after

    seconds = _retry_after(value)
    assert seconds is None or seconds >= 0, seconds
