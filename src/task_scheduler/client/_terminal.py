"""Text from the service shown on a terminal: its control characters made visible.

Timer labels, headers, bodies, error messages and a whole `--json` document come from the service,
which stores what any writer of any tenant sent. Printed as they came, an escape sequence in a
label would run in the operator's terminal (recolour, move the cursor to overwrite what was
printed, set the window title, on some terminals write the clipboard), and a carriage return or a
bidirectional override would make a line read differently from what it holds. On a terminal,
every such character is written as its JSON escape (`\\u001b`), which keeps a JSON document the
same document; a pipe or a file gets the bytes as they came."""

from __future__ import annotations

import re
from typing import TextIO

# C0 controls but tab and newline, DEL, C1 controls, line and paragraph separators, and the
# bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """`text` with every control character written as its JSON escape."""
    return _UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


class TerminalWriter:
    """Wraps a terminal's text stream: what is written goes through `safe`; the rest is the
    stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(safe(text))
        return len(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)
