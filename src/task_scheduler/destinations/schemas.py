"""The API's shapes of destinations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class DestinationUpdate(BaseModel):
    """What PUT /destinations/{key} sets: `paused` holds the destination's timers (pending, their
    attempts untouched) until it is unpaused or resumed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"paused": True}]})

    paused: StrictBool = Field(description="true: hold its timers; false: release them.")


class DestinationView(BaseModel):
    key: str = Field(description="The destination: a key given on create, or a URL's origin.")
    paused: bool = Field(description="Its timers are held until it is unpaused.")
    breaker_state: Literal["closed", "open", "half_open"] = Field(
        description="closed: timers go out; open: held after consecutive failures; half_open: one "
        "probe request decides."
    )
    consecutive_failures: int = Field(ge=0, description="Failures (connection, timeout, 5xx) in a row.")
    opened_at: datetime | None = Field(description="When the breaker last opened.")
    updated_at: datetime | None = Field(description="Last change; null for a destination never changed.")
    waiting: int | None = Field(
        default=None,
        description="Its pending timers due now (held, or about to go out); GET /destinations/{key} only.",
    )


class DestinationPage(BaseModel):
    destinations: list[DestinationView] = Field(
        description="The tenant's destinations that ever failed or were paused, in key order."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")
