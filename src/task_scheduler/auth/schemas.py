"""Request and response models of the key and secret management API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from task_scheduler.auth.models import Role
from task_scheduler.timers import storable

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "billing service", "tenant": "acme", "role": "writer"}]},
    )

    name: str = Field(default="", max_length=200, pattern=r"^[^\x00]*$", description="What the key is for.")
    tenant: str = Field(pattern=TENANT_PATTERN, description="The tenant whose timers the key works on.")
    role: Role = Field(description="admin, writer or reader.")

    @field_validator("name")
    @classmethod
    def _storable_name(cls, value: str) -> str:
        problem = storable.text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


_KEY_EXAMPLE: JsonDict = {
    "key_id": "3f9a1c0b7d2e",
    "name": "billing service",
    "tenant": "acme",
    "role": "writer",
    "created_at": "2026-11-29T09:00:00Z",
    "revoked_at": None,
}


class KeyView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_KEY_EXAMPLE]})

    key_id: str = Field(description="Public identifier of the key (part of the key).")
    name: str
    tenant: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyView):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_KEY_EXAMPLE, "api_key": "tsk_3f9a1c0b7d2e_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"}
            ]
        }
    )

    api_key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(BaseModel):
    keys: list[KeyView]


class SecretView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"secret_id": 3, "created_at": "2026-11-29T09:00:00Z", "hint": "whsec_MfKQ…"}]
        }
    )

    secret_id: int
    created_at: datetime
    hint: str = Field(description="The first characters, to tell secrets apart.")


class SecretCreated(SecretView):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret_id": 3,
                    "created_at": "2026-11-29T09:00:00Z",
                    "hint": "whsec_MfKQ…",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    secret: str = Field(description="The whsec_ secret: shown this once; receivers verify with it.")


class SecretList(BaseModel):
    secrets: list[SecretView] = Field(
        description="Active secrets, newest first; webhooks are signed with all."
    )
