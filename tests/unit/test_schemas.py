"""`TimerCreate`: strict whole-number durations and an absolute http(s) webhook URL."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from task_scheduler.timers.schemas import MAX_URL_LENGTH, TimerCreate, validate_webhook_url

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
