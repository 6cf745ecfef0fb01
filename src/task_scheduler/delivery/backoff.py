"""Retry delays: exponential backoff with full jitter (sleep = random(0, min(cap, base * 2^(n-1))))."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The largest delay after failed attempt number `attempt` (1-based)."""
    exponent = min(max(attempt - 1, 0), 62)  # beyond 2**62 every realistic cap has been reached
    return float(min(cap, base * (2**exponent)))


def retry_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter spreads retries of many timers that failed together (AWS architecture blog)."""
    return rand() * backoff_ceiling(attempt, base=base, cap=cap)


class RetryBackoff:
    """The waits of a loop that retries an operation after failures: `first`, then doubling up
    to `cap`; a success starts over. One helper for every hand-written retry loop."""

    def __init__(self, *, first: float, cap: float) -> None:
        self._first = first
        self._cap = cap
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; returns how long to wait before the next try."""
        self.failures += 1
        return backoff_ceiling(self.failures, base=self._first, cap=self._cap)

    def succeeded(self) -> None:
        self.failures = 0
