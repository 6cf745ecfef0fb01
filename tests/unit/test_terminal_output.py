"""What the CLI writes on a terminal: the service's control characters made visible
(client/_terminal.py), a JSON document kept the same document."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from task_scheduler.client._terminal import TerminalWriter, safe


def test_control_characters_are_written_as_their_escapes() -> None:
    hostile = "a\x1b[2Jb\x1b]0;title\x07c\rd\u202ee\u2066f\x9bg\x7fh"
    shown = safe(hostile)
    assert shown == "a\\u001b[2Jb\\u001b]0;title\\u0007c\\u000dd\\u202ee\\u2066f\\u009bg\\u007fh"
    assert safe("tab\tand\nnewline, é 😀 ✓") == "tab\tand\nnewline, é 😀 ✓"


def test_the_writer_escapes_what_goes_through_it() -> None:
    out = io.StringIO()
    writer = TerminalWriter(out)
    print("label=\x1b[31mred", file=writer)  # type: ignore[arg-type]
    assert out.getvalue() == "label=\\u001b[31mred\n"
    assert writer.getvalue() == out.getvalue()  # type: ignore[attr-defined]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, derandomize=True, database=None)
@given(value=json_values, ascii_only=st.booleans(), indent=st.sampled_from([None, 2]))
def test_a_json_document_stays_the_same_document(value: object, ascii_only: bool, indent: int | None) -> None:
    document = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert json.loads(safe(document)) == value
