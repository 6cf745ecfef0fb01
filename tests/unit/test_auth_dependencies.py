"""Where the API key is read from: `Authorization: Bearer` (any case), else `X-API-Key`."""

from __future__ import annotations

import pytest

from task_scheduler.auth.dependencies import presented_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer tsk_a_b"}, "tsk_a_b"),
        ({"authorization": "bearer  tsk_a_b "}, "tsk_a_b"),
        ({"authorization": "BEARER tsk_a_b", "x-api-key": "other"}, "tsk_a_b"),
        ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"authorization": "Bearer ", "x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"authorization": "Bearer"}, None),
        ({"x-api-key": "tsk_c_d"}, "tsk_c_d"),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key
