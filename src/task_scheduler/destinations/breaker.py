"""What an attempt's result tells a destination's circuit breaker, and one batch's tally of it.
Pure: tested without a database (the state changes are destinations/repository.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from task_scheduler.destinations.repository import Tally

# Failures without an answer that say the destination is down (not that the request was refused
# before it left: blocked_destination, invalid_url; nor that our own code failed: unexpected).
DOWN_ERROR_CLASSES = frozenset({"connection", "timeout", "invalid_response"})


@dataclass(frozen=True, slots=True)
class BreakerSignal:
    """One attempt's word on its destination: it answered (`up`), or it is down."""

    tenant: str
    key: str
    up: bool


def is_up(status_code: int | None, error_class: str | None) -> bool | None:
    """True: the destination answered (any status below 500, 4xx included: it is up and said no);
    False: a 5xx, a timeout, a refused or broken connection; None: the attempt says nothing of it."""
    if status_code is not None:
        return status_code < 500
    if error_class in DOWN_ERROR_CLASSES:
        return False
    return None


def tally(signals: Iterable[BreakerSignal]) -> list[Tally]:
    """Per destination, in the order the signals came: did it answer, and how many failures came
    after its last answer (consecutive failures carry over to the stored count only without one)."""
    answered: dict[tuple[str, str], bool] = {}
    trailing: dict[tuple[str, str], int] = {}
    for signal in signals:
        key = (signal.tenant, signal.key)
        if signal.up:
            answered[key] = True
            trailing[key] = 0
        else:
            answered.setdefault(key, False)
            trailing[key] = trailing.get(key, 0) + 1
    return [
        Tally(tenant, key, answered[(tenant, key)], trailing[(tenant, key)])
        for tenant, key in sorted(answered)
    ]
