"""What may be stored: text from outside (a receiver's reply, an exception's message) made safe for
a PostgreSQL `text` column, which holds neither NUL nor lone surrogates (they fail the whole write)."""

from __future__ import annotations

import re
from typing import overload

REPLACEMENT = "\ufffd"
# C0 controls but tab, newline and carriage return; DEL; UTF-16 surrogates (a str can hold a lone one).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@overload
def storable_text(value: str, *, limit: int) -> str: ...
@overload
def storable_text(value: None, *, limit: int) -> None: ...
def storable_text(value: str | None, *, limit: int) -> str | None:
    """`value` with every unstorable or invisible control character replaced by U+FFFD and cut to
    `limit` characters; None stays None. Idempotent: storable text comes back unchanged."""
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if value is None:
        return None
    return _UNSTORABLE.sub(REPLACEMENT, value[:limit])
