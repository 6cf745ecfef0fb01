"""Flow control's metrics keep their label cardinality bounded (metrics.destination_label)."""

from __future__ import annotations

import pytest

from task_scheduler import metrics


def test_destination_labels_run_out_into_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_labelled", set())  # the process's own labels are left alone
    keys = [f"https://label-{i}.example:443" for i in range(metrics._DESTINATION_LABELS + 5)]
    labels = [metrics.destination_label("t", key) for key in keys]
    assert labels[: metrics._DESTINATION_LABELS] == keys[: metrics._DESTINATION_LABELS]
    assert set(labels[metrics._DESTINATION_LABELS :]) == {"other"}
    assert metrics.destination_label("t", keys[0]) == keys[0]  # a key keeps its label
    assert metrics.destination_label("other-tenant", keys[0]) == "other"  # a label per (tenant, key)
