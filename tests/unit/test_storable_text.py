"""storable_text: whatever a receiver sends becomes text PostgreSQL stores, and storable text is kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from task_scheduler.delivery.storable import REPLACEMENT, storable_text

# Every code point, lone surrogates included (what a str decoded with surrogateescape can hold).
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))


def _is_storable(text: str) -> bool:
    """What PostgreSQL's UTF8 text accepts, and no invisible control but tab, newline and return."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return all(char in "\t\n\r" or (ord(char) >= 0x20 and char != "\x7f") for char in text)


def test_none_stays_none() -> None:
    assert storable_text(None, limit=10) is None


def test_nul_and_controls_are_replaced_and_tab_newline_return_kept() -> None:
    assert storable_text("abc\x00def", limit=100) == f"abc{REPLACEMENT}def"
    assert storable_text("a\x01\x1b[31m\x7fb", limit=100) == f"a{REPLACEMENT}{REPLACEMENT}[31m{REPLACEMENT}b"
    assert storable_text("a\tb\nc\r\n", limit=100) == "a\tb\nc\r\n"


def test_lone_surrogates_are_replaced() -> None:
    assert storable_text("x\ud800y\udfff", limit=100) == f"x{REPLACEMENT}y{REPLACEMENT}"
    # What bytes.decode(errors="surrogateescape") leaves of invalid UTF-8.
    assert storable_text(b"ok\xff".decode("utf-8", "surrogateescape"), limit=100) == f"ok{REPLACEMENT}"


def test_text_is_cut_to_the_limit() -> None:
    assert storable_text("é" * 2000, limit=1024) == "é" * 1024
    assert storable_text("abc", limit=0) == ""


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        storable_text("abc", limit=-1)


@given(ANY_TEXT, st.integers(min_value=0, max_value=300))
def test_any_text_becomes_storable_within_the_limit(value: str, limit: int) -> None:
    stored = storable_text(value, limit=limit)
    assert stored is not None
    assert len(stored) <= limit
    assert _is_storable(stored)


@given(ANY_TEXT, st.integers(min_value=0, max_value=300))
def test_storable_text_is_kept_as_it_is(value: str, limit: int) -> None:
    once = storable_text(value, limit=limit)
    assert storable_text(once, limit=limit) == once
    if _is_storable(value) and len(value) <= limit:
        assert once == value
