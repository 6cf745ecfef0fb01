"""The W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/), parsed and
written without OpenTelemetry: a timer keeps one, and a malformed one is ignored, never an error.

    version "-" trace-id "-" parent-id "-" trace-flags      00-<32 hex>-<16 hex>-<2 hex>

Lower-case hex only; version ff, an all-zero trace-id or parent-id are invalid. A later version
may append fields after a `-`: its first four are read, the rest ignored (the spec's rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_VERSION_00_LENGTH = 55
# Longer than any header a real tracer sends; read no further into a hostile one.
MAX_LENGTH = 512
# Where the server span leaves its own traceparent in the ASGI scope, for the routes that keep it
# with a timer (absent when tracing is off).
SCOPE_KEY = "task_scheduler.traceparent"


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One span's identity as W3C Trace Context carries it."""

    trace_id: int  # 128 bits, never 0
    span_id: int  # 64 bits (the header's parent-id), never 0
    flags: int  # 8 bits; bit 0: sampled

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def header(self) -> str:
        """The value of a version-00 `traceparent` header naming this span."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The span a `traceparent` header names; None when absent or malformed."""
    if value is None or len(value) > MAX_LENGTH:
        return None
    if isinstance(value, bytes):
        if not value.isascii():
            return None
        value = value.decode("ascii")
    value = value.strip(" \t")  # optional whitespace around an HTTP header's value
    match = _FIELDS.match(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex = match.groups()
    if version == "ff":
        return None
    if version == "00" and len(value) != _VERSION_00_LENGTH:
        return None
    if len(value) > _VERSION_00_LENGTH and value[_VERSION_00_LENGTH] != "-":
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id=trace_id, span_id=span_id, flags=int(flags_hex, 16))
