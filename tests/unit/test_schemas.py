"""`TimerCreate` and friends: strict whole-number durations, an absolute http(s) webhook URL,
RFC 3339 times with an offset, and the limits on headers, labels, retry policy and batches."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from task_scheduler.timers.schemas import (
    MAX_LABELS,
    MAX_URL_LENGTH,
    SERVICE_HEADERS,
    RetryPolicy,
    TimerBatch,
    TimerCreate,
    TimerUpdate,
    validate_headers,
    validate_labels,
    validate_webhook_url,
)

URL = "http://example.com/webhook"


def _error_of(data: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        TimerCreate.model_validate(data)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["type"], tuple(errors[0]["loc"])


def test_durations_default_to_zero() -> None:
    timer = TimerCreate.model_validate({"url": URL})
    assert (timer.hours, timer.minutes, timer.seconds) == (0, 0, 0)
    assert timer.total_seconds == 0


@pytest.mark.parametrize(
    ("data", "total"),
    [
        ({"hours": 4, "seconds": 1}, 14401),
        ({"hours": 1, "minutes": 30, "seconds": 45}, 5445),
        ({"minutes": 1}, 60),
        ({"seconds": 59}, 59),
        ({"minutes": 90}, 5400),
        ({"hours": 10**12, "minutes": 10**12, "seconds": 10**12}, 3661 * 10**12),
    ],
)
def test_total_seconds(data: dict[str, int], total: int) -> None:
    assert TimerCreate.model_validate({**data, "url": URL}).total_seconds == total


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
@pytest.mark.parametrize("value", [True, False, 1.0, 1.5, "1", "one", None, [1], {"n": 1}])
def test_durations_are_strict_integers(field: str, value: Any) -> None:
    assert _error_of({field: value, "url": URL}) == ("int_type", (field,))


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
def test_strictness_holds_for_json_input_too(field: str) -> None:
    for raw in ("1.0", "true", '"1"'):
        with pytest.raises(ValidationError) as info:
            TimerCreate.model_validate_json(f'{{"{field}": {raw}, "url": "{URL}"}}')
        assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
def test_negative_durations_are_rejected(field: str) -> None:
    assert _error_of({field: -1, "url": URL}) == ("greater_than_equal", (field,))


@pytest.mark.parametrize("field", ["hours", "minutes", "seconds"])
def test_absurd_durations_are_rejected_per_field(field: str) -> None:
    assert _error_of({field: 10**30, "url": URL}) == ("less_than_equal", (field,))


def test_url_is_required() -> None:
    assert _error_of({"seconds": 1}) == ("missing", ("url",))


def test_extra_fields_are_forbidden() -> None:
    assert _error_of({"url": URL, "callback": URL}) == ("extra_forbidden", ("callback",))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/webhook",
        "https://example.com/webhook?a=1&b=2#frag",
        "HTTPS://EXAMPLE.COM/",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://user:pass@example.com/",
        "http://例子.测试/hook",
        "http://example.com:65535/",
        "http://example.com:1/",
    ],
)
def test_valid_urls_are_kept_verbatim(url: str) -> None:
    assert TimerCreate.model_validate({"url": url}).url == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/file", "http"),
        ("javascript:alert(1)", "http"),
        ("mailto:someone@example.com", "http"),
        ("file:///etc/passwd", "http"),
        ("example.com/webhook", "http"),
        ("/webhook", "http"),
        ("//example.com/webhook", "http"),
        ("http://", "host"),
        ("http:///path", "host"),
        ("https://:443/", "host"),
        ("http://user@/x", "host"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:65536/", "valid URL"),
        ("http://example.com:-1/", "valid URL"),
        ("http://example.com:http/", "valid URL"),
        ("http://[::1/", "valid URL"),
        (" http://example.com/", "spaces"),
        ("http://example.com/ ", "spaces"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/a\tb", "spaces"),
        ("http://example.com/a\nb", "spaces"),
        ("http://example.com/a\rb", "spaces"),
        ("http://example.com/a\x00b", "control"),
        ("http://example.com/a\x1bb", "control"),
        ("http://example.com/a\u00a0b", "spaces"),
        ("http://example.com/a\u2028b", "spaces"),
        ("http://example.com/a\x7fb", "control"),
        ("http://example.com/a\x9bb", "control"),
    ],
)
def test_invalid_urls_are_rejected_with_a_reason(url: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        TimerCreate.model_validate({"url": url})
    (error,) = info.value.errors()
    assert error["loc"] == ("url",)
    assert fragment in error["msg"]
    # The validator and the model agree.
    with pytest.raises(ValueError, match=fragment):
        validate_webhook_url(url)


def test_url_length_limit() -> None:
    prefix = "http://example.com/"
    at_limit = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert len(at_limit) == 2048
    assert TimerCreate.model_validate({"url": at_limit}).url == at_limit
    assert _error_of({"url": at_limit + "a"}) == ("string_too_long", ("url",))


@pytest.mark.parametrize("url", ["", 123, None, ["http://example.com/"], True])
def test_url_must_be_a_non_empty_string(url: Any) -> None:
    _type, loc = _error_of({"url": url})
    assert loc == ("url",)


@pytest.mark.parametrize(
    ("data", "largest"),
    [
        ({"hours": 1, "minutes": 1, "seconds": 1}, "hours"),
        ({"minutes": 1, "seconds": 1}, "minutes"),
        ({"seconds": 1}, "seconds"),
        ({}, "seconds"),
    ],
)
def test_largest_unit_names_the_field_to_blame(data: dict[str, int], largest: str) -> None:
    assert TimerCreate.model_validate({**data, "url": URL}).largest_unit() == largest


# -- the lifecycle fields -------------------------------------------------------------------------

FIRE_AT = "2030-01-01T00:00:00+01:00"


def test_fire_at_is_read_from_rfc3339_text_as_fastapi_passes_it() -> None:
    # FastAPI validates the already-parsed JSON (python mode), not the raw JSON text.
    timer = TimerCreate.model_validate({"fire_at": FIRE_AT, "url": URL})
    assert timer.fire_at == datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert timer.reschedules


@pytest.mark.parametrize(
    ("fire_at", "kind"),
    [("2030-01-01T00:00:00", "timezone_aware"), ("2030-01-01", "value_error")],  # a date alone is no time
)
def test_fire_at_without_an_offset_is_refused(fire_at: str, kind: str) -> None:
    assert _error_of({"fire_at": fire_at, "url": URL}) == (kind, ("fire_at",))


@pytest.mark.parametrize("fire_at", [1893456000, 1893456000.5, True, [FIRE_AT]])
def test_fire_at_that_is_not_text_is_refused(fire_at: Any) -> None:
    _type, loc = _error_of({"fire_at": fire_at, "url": URL})
    assert loc == ("fire_at",)


@pytest.mark.parametrize("fire_at", ["1893456000", "1893456000.5"])
def test_fire_at_epoch_seconds_as_text_is_refused(fire_at: str) -> None:
    _type, loc = _error_of({"fire_at": fire_at, "url": URL})
    assert loc == ("fire_at",)


@pytest.mark.parametrize("unit", ["hours", "minutes", "seconds"])
def test_fire_at_with_a_duration_is_refused(unit: str) -> None:
    with pytest.raises(ValidationError, match=f"fire_at or {unit}, not both"):
        TimerCreate.model_validate({"fire_at": FIRE_AT, unit: 0, "url": URL})


def test_deliver_before_with_max_lateness_is_refused() -> None:
    with pytest.raises(ValidationError, match="deliver_before or max_lateness_seconds"):
        TimerCreate.model_validate({"deliver_before": FIRE_AT, "max_lateness_seconds": 1, "url": URL})


@pytest.mark.parametrize(
    ("data", "reschedules"),
    [
        ({}, False),
        ({"labels": {"a": "b"}}, False),
        ({"max_lateness_seconds": 5}, False),
        ({"minutes": 0}, True),
        ({"hours": 1}, True),
        ({"fire_at": FIRE_AT}, True),
    ],
)
def test_an_update_reschedules_only_when_it_says_when(data: dict[str, Any], reschedules: bool) -> None:
    assert TimerUpdate.model_validate(data).reschedules is reschedules


@pytest.mark.parametrize("name", [*sorted(SERVICE_HEADERS), "Host", "connection", "TE"])
def test_service_and_hop_by_hop_headers_are_refused_in_any_case(name: str) -> None:
    for spelled in (name, name.upper(), name.lower()):
        with pytest.raises(ValueError, match=spelled):
            validate_headers({spelled: "x"})


def test_ordinary_headers_pass() -> None:
    headers = {"Authorization": "Bearer x", "Content-Type": "text/plain", "X-A": "\tok"}
    assert validate_headers(headers) == headers
    assert validate_headers(None) is None


def test_label_limits() -> None:
    at_limit = {f"k{i}": "v" * 255 for i in range(MAX_LABELS)}
    assert validate_labels(at_limit) == at_limit
    with pytest.raises(ValueError, match=f"at most {MAX_LABELS}"):
        validate_labels({**at_limit, "one-more": "v"})
    with pytest.raises(ValueError, match="longer than 255"):
        validate_labels({"k": "v" * 256})


@pytest.mark.parametrize(
    ("base", "cap", "ok"), [(5, 5, True), (5, 60, True), (10, 5, False), (0.02, 0.01, False)]
)
def test_retry_cap_must_not_be_below_base(base: float, cap: float, ok: bool) -> None:
    data = {"backoff_base_seconds": base, "backoff_cap_seconds": cap}
    if ok:
        assert RetryPolicy.model_validate(data).backoff_cap_seconds == cap
    else:
        with pytest.raises(ValidationError, match="backoff_cap_seconds"):
            RetryPolicy.model_validate(data)


@pytest.mark.parametrize(("count", "ok"), [(0, False), (1, True), (1000, True), (1001, False)])
def test_a_batch_holds_1_to_1000_timers(count: int, ok: bool) -> None:
    data = {"timers": [{"url": URL}] * count}
    if ok:
        assert len(TimerBatch.model_validate(data).timers) == count
    else:
        with pytest.raises(ValidationError):
            TimerBatch.model_validate(data)


def test_every_character_is_judged_as_the_unicode_rule_says() -> None:
    """The ASCII fast path and the general rule (whitespace or category Cc) agree everywhere."""
    for code in range(0x300):
        ch = chr(code)
        unfit = ch.isspace() or unicodedata.category(ch) == "Cc"
        url = f"http://example.com/a{ch}b"
        if unfit:
            with pytest.raises(ValueError, match="spaces or control"):
                validate_webhook_url(url)
        else:
            assert validate_webhook_url(url) == url
