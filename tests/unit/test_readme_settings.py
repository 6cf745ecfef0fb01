"""The README's configuration table lists every setting with its real default and description."""

from __future__ import annotations

from pathlib import Path

from pydantic.fields import FieldInfo

from task_scheduler.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
CONVENTIONAL = {"database_url": "DATABASE_URL", "host": "HOST", "port": "PORT"}


def env_name(name: str) -> str:
    return CONVENTIONAL.get(name, f"SCHEDULER_{name.upper()}")


def default_text(name: str, field: FieldInfo) -> str:
    if name == "instance_id":
        return "host-pid-random"
    if field.default is None:
        return "(unset)"
    return str(field.default)


def settings_table() -> list[str]:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | `{default_text(name, field)}` | {field.description} |")
    return rows


def test_readme_lists_every_setting() -> None:
    readme = README.read_text().splitlines()
    expected = settings_table()
    start = readme.index(expected[0])
    assert readme[start : start + len(expected)] == expected, (
        "README configuration table is out of date; replace it with:\n" + "\n".join(expected)
    )


def test_every_setting_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
