"""Usable CPUs: the affinity mask, lowered by a cgroup's CPU quota (a container's `--cpus`), read
from cgroup file trees made here (v2 nested, v1, unlimited, unreadable)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from task_scheduler.cpus import cgroup_cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def _tree(tmp_path: Path, files: dict[str, str], self_cgroup: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(self_cgroup)
    return root, proc


def test_v2_quota_of_an_ancestor_counts(tmp_path: Path) -> None:
    """The smallest quota on the way up from the process's cgroup (a systemd slice's, here)."""
    root, proc = _tree(
        tmp_path,
        {
            "system.slice/cpu.max": "150000 100000\n",
            "system.slice/app.service/cpu.max": "max 100000\n",
        },
        "0::/system.slice/app.service\n",
    )
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) == 1.5
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == min(AFFINITY, 2)  # 1.5 rounds up


def test_v2_container_root(tmp_path: Path) -> None:
    """In a container the namespace root is the container's cgroup (`--cpus 1`)."""
    root, proc = _tree(tmp_path, {"cpu.max": "100000 100000\n"}, "0::/\n")
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == 1


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root, proc = _tree(
        tmp_path,
        {"cpu/docker/abc/cpu.cfs_quota_us": "50000\n", "cpu/docker/abc/cpu.cfs_period_us": "100000\n"},
        "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n",
    )
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) == 0.5
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == 1  # never 0


@pytest.mark.parametrize(
    "files",
    [
        {},  # no cgroup file system
        {"cpu.max": "max 100000\n"},
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
        {"cpu.max": "garbage\n"},
        {"cpu.max": "0 100000\n"},
        {"cpu/cpu.cfs_quota_us": "100000\n"},  # no period
    ],
)
def test_no_quota_leaves_the_affinity(tmp_path: Path, files: dict[str, str]) -> None:
    root, proc = _tree(tmp_path, files, "1:cpu:/\n0::/\n")
    assert cgroup_cpu_quota(cgroup_root=root, proc_cgroup=proc) is None
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == AFFINITY


def test_a_large_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root, proc = _tree(tmp_path, {"cpu.max": "6400000 100000\n"}, "0::/\n")
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == AFFINITY


def test_unreadable_proc_file(tmp_path: Path) -> None:
    root = tmp_path / "none"
    assert usable_cpus(cgroup_root=root, proc_cgroup=tmp_path / "missing") == AFFINITY


def test_this_machine() -> None:
    assert 1 <= usable_cpus() <= AFFINITY
