"""Text from outside (a receiver's reply, an error message) made storable in PostgreSQL `text`."""

from __future__ import annotations

import re

# NUL cannot be stored at all and lone surrogates cannot be encoded as UTF-8; the other C0
# controls (but tab, newline, return) and DEL only make trouble further on (logs, terminals).
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable_text(value: str | None, *, limit: int) -> str | None:
    """`value` cut to at most `limit` characters, with NUL, the other control characters and
    lone surrogates replaced by U+FFFD; None stays None."""
    if value is None:
        return None
    return _UNSTORABLE.sub(REPLACEMENT, value[:limit])
