"""What the scenarios share: the body they create timers with, the row each returns, and how a
row tells correctness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.harness import Delivered

BODY = {"hours": 1, "url": "http://example.com/webhook"}


@dataclass
class Row:
    scenario: str
    figure: str
    target: str
    met: bool
    correctness: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def correctness(delivered: Delivered) -> str:
    return f"lost {delivered.lost}, duplicates {delivered.duplicates}, early {delivered.early}"
