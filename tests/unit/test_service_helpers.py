"""The timer service's pure helpers: ETags, header redaction and list cursors."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from task_scheduler.errors import ValidationFailed
from task_scheduler.timers.repository import TimerRow
from task_scheduler.timers.service import (
    REDACTED,
    decode_cursor,
    encode_cursor,
    etag_of,
    parse_etag,
    redact_headers,
)

MOMENTS = [
    datetime(2026, 11, 29, 10, 30, 45, 123456, tzinfo=UTC),
    datetime(2026, 11, 29, 10, 30, 45, 1, tzinfo=UTC),
    datetime(2026, 11, 29, 10, 30, 45, tzinfo=UTC),
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 29, 11, 30, 45, 999999, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


# -- ETags --------------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_etag_round_trips_to_the_microsecond(moment: datetime) -> None:
    etag = etag_of(moment)
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert etag[1:-1].isdecimal()
    assert parse_etag(etag) == moment


def test_etags_of_instants_a_microsecond_apart_differ() -> None:
    moment = MOMENTS[0]
    assert etag_of(moment) != etag_of(moment + timedelta(microseconds=1))


def test_the_same_instant_in_another_offset_has_the_same_etag() -> None:
    moment = MOMENTS[0]
    assert etag_of(moment) == etag_of(moment.astimezone(timezone(timedelta(hours=-7))))


def test_etag_is_microseconds_since_the_epoch() -> None:
    assert etag_of(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == '"1000000"'


@pytest.mark.parametrize("form", ["W/{}", " {} ", "W/{} ", "{}"])
def test_parse_etag_accepts_weak_and_padded_forms(form: str) -> None:
    moment = MOMENTS[0]
    assert parse_etag(form.format(etag_of(moment))) == moment


@pytest.mark.parametrize(
    "value",
    [
        "",
        '""',
        "*",
        "W/",
        '"abc"',
        '"-1"',
        '"+1"',
        '"1.5"',
        '"1e6"',
        '"1 2"',
        '"0x10"',
        '"' + "1" * 20 + '"',  # longer than any 64-bit count
        '"' + "9" * 19 + '"',  # 19 digits, but past year 9999
        '"1", "2"',
    ],
)
def test_parse_etag_refuses_anything_else(value: str) -> None:
    assert parse_etag(value) is None


@pytest.mark.parametrize("value", ['"²"', '"1²"', '"①"'])
def test_parse_etag_refuses_non_decimal_digits(value: str) -> None:
    assert parse_etag(value) is None


# -- header redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "authorization",
        "Proxy-Authorization",
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "X-APIKEY",
        "Api-Key",
        "X-Auth-Token",
        "X-CSRF-Token",
        "X-Client-Secret",
        "X-Password",
    ],
)
def test_sensitive_header_values_are_redacted(name: str) -> None:
    assert redact_headers({name: "s3cret"}) == {name: REDACTED}


@pytest.mark.parametrize("name", ["X-Tenant", "Accept", "Content-Type", "X-Request-Id", "X-Key-Id", "X-Api"])
def test_other_header_values_are_shown(name: str) -> None:
    assert redact_headers({name: "visible"}) == {name: "visible"}


def test_redaction_keeps_names_and_order_and_leaves_the_input_alone() -> None:
    headers = {"X-Tenant": "acme", "Authorization": "Bearer t", "Accept": "*/*"}
    original = dict(headers)
    redacted = redact_headers(headers)
    assert list(redacted) == list(headers)
    assert redacted == {"X-Tenant": "acme", "Authorization": REDACTED, "Accept": "*/*"}
    assert headers == original
    assert redact_headers({}) == {}


# -- cursors ------------------------------------------------------------------------------------


def row(*, due_at: datetime, timer_id: int) -> TimerRow:
    """A TimerRow for the two columns a cursor holds; the other fields play no part."""
    values: dict[str, Any] = dict.fromkeys(f.name for f in dataclasses.fields(TimerRow))
    values.update(id=timer_id, due_at=due_at)
    return TimerRow(**values)


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
@pytest.mark.parametrize("timer_id", [1, 42, 2**63 - 1])
def test_cursor_round_trips(moment: datetime, timer_id: int) -> None:
    cursor = encode_cursor(row(due_at=moment, timer_id=timer_id))
    due, decoded_id = decode_cursor(cursor)
    assert (due, decoded_id) == (moment, timer_id)
    assert due.utcoffset() == moment.utcoffset()


def test_cursor_is_url_safe_without_padding() -> None:
    for timer_id in range(1, 40):
        cursor = encode_cursor(row(due_at=MOMENTS[0], timer_id=timer_id))
        assert "=" not in cursor
        assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a",
        "=====",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(b"null"),
        _b64(b"5"),
        _b64(b'"ab"'),
        _b64(b"[]"),
        _b64(b'["2026-11-29T10:00:00+00:00"]'),
        _b64(b'["2026-11-29T10:00:00+00:00", 1, 2]'),
        _b64(b'["2026-11-29T10:00:00", 1]'),  # naive
        _b64(b'["yesterday", 1]'),
        _b64(b'["2026-11-29T10:00:00+00:00", "1"]'),
        _b64(b'["2026-11-29T10:00:00+00:00", 1.0]'),
        _b64(b'["2026-11-29T10:00:00+00:00", null]'),
        _b64(b"[1, 1]"),
        _b64(b'[["2026-11-29T10:00:00+00:00"], 1]'),
        _b64(json.dumps({"due": "2026-11-29T10:00:00+00:00", "id": 1}).encode()),
    ],
)
def test_garbage_cursors_are_a_validation_error_naming_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_cursor(cursor)
    assert info.value.field == "cursor"
    assert "cursor" in info.value.message
