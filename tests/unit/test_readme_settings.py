"""The README's configuration table lists every setting with its real default and description."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from task_scheduler.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(name: str) -> str:
    """A setting's variable: its first alias (DATABASE_URL, OTEL_*), else SCHEDULER_<NAME>."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"SCHEDULER_{name.upper()}"


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
