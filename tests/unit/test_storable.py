"""The one definition of what may be stored (timers/storable.py), without a database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import JsonValue

from task_scheduler.timers import storable


@pytest.mark.parametrize(
    ("value", "storable_"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), True),
        (datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1), False),
        (datetime.min.replace(tzinfo=UTC), False),
        (datetime(2026, 1, 1, tzinfo=UTC), True),
    ],
)
def test_times_from_1970(value: datetime, storable_: bool) -> None:
    assert (storable.time_problem(value) is None) is storable_


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("plain", None),
        ("😀 \u202e \u00ad", None),
        ("a\x00b", storable.NUL),
        ("\ud800", storable.LONE_SURROGATE),
        ("ok \udfff", storable.LONE_SURROGATE),
    ],
)
def test_text(value: str, problem: str | None) -> None:
    assert storable.text_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, 10**30, 1e308, None, True, "😀"]}, None),
        ("\\u0000 is six characters", None),
        ({"k": math.nan}, storable.NOT_FINITE),
        ([math.inf], storable.NOT_FINITE),
        (-math.inf, storable.NOT_FINITE),
        ({"\ud800": 1}, storable.LONE_SURROGATE),
        ([{"a": "x\udc00"}], storable.LONE_SURROGATE),
        ({"k\x00": 1}, storable.NUL),
        ([["\x00"]], storable.NUL),
    ],
)
def test_json(value: JsonValue, problem: str | None) -> None:
    assert storable.json_problem(value) == problem


def test_json_text_is_what_jsonb_gets() -> None:
    assert storable.json_text({"a": ["é", 1]}) == '{"a":["é",1]}'


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/webhook",
        "https://EXAMPLE.com:8443/a?b=c#d",
        "http://bücher.example/ü",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://0x7f000001/",  # not all digits: aiohttp asks the resolver (the address policy decides)
        "http://example.com./",
    ],
)
def test_urls_aiohttp_sends(url: str) -> None:
    assert storable.url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://exa\\mple.com/", "not a valid URL"),
        ("http://exa\u00admple.com/", "not a valid URL"),
        ("http://exa\u200bmple.com/", "not a valid URL"),
        ("http://127..0.1/", "canonical IPv4"),
        ("http://127.1/", "canonical IPv4"),
        ("http://a..b.example/", "DNS name"),
        ("http://[::zz]/", "IPv6"),
        ("http://example.com:0/", "port 0"),
        ("ftp://example.com/", "http"),
        ("http:///path", "host"),
        ("http://example.com/\x00", "control"),
        ("http://\ud800.example/", "control"),
    ],
)
def test_urls_aiohttp_refuses(url: str, words: str) -> None:
    problem = storable.url_problem(url)
    assert problem is not None
    assert words in problem


def test_printable_escapes_lone_surrogates_only() -> None:
    assert storable.printable("a😀\ud800") == "a😀\\ud800"
    assert storable.printable("plain") == "plain"
