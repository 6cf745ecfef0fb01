"""W3C traceparent parsing: a valid header names a span; anything malformed is ignored (None)."""

from __future__ import annotations

import pytest

from task_scheduler.tracing.traceparent import MAX_LENGTH, TraceParent, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_header_names_its_span() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed == TraceParent(trace_id=int(TRACE, 16), span_id=int(SPAN, 16), flags=1)
    assert parsed.sampled
    assert parsed.header() == VALID


def test_bytes_and_surrounding_whitespace_are_read() -> None:
    assert parse_traceparent(VALID.encode()) == parse_traceparent(VALID)
    assert parse_traceparent(f" \t{VALID} ") == parse_traceparent(VALID)


def test_unsampled_flags_are_kept() -> None:
    parsed = parse_traceparent(f"00-{TRACE}-{SPAN}-00")
    assert parsed is not None
    assert not parsed.sampled
    assert parsed.header().endswith("-00")


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    parsed = parse_traceparent(f"01-{TRACE}-{SPAN}-01-what-comes-later")
    assert parsed == parse_traceparent(VALID)
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01") == parse_traceparent(VALID)
    assert parsed is not None
    assert parsed.header() == VALID  # written back as version 00


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        VALID.upper(),  # lower-case hex only
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{SPAN}-011",
        f"01-{TRACE}-{SPAN}-01x",  # a later version's extra fields start with '-'
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN[:-1]}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-0g",
        f"0-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01".replace("a", "\u0430"),  # a Cyrillic letter that looks like 'a'
        "00-" + "\uff14" * 32 + f"-{SPAN}-01",  # full-width digits: not hex to the spec
        f"01-{TRACE}-{SPAN}-01-" + "x" * MAX_LENGTH,  # longer than any real header
        b"\xff" * 55,
        VALID.encode() + b"\xff",
    ],
)
def test_malformed_headers_are_ignored(value: str | bytes | None) -> None:
    assert parse_traceparent(value) is None
