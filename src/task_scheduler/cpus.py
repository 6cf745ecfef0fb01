"""How many CPUs this process may use: its CPU affinity, and the CPU quota of its cgroup (a
container's `--cpus`, a systemd unit's CPUQuota), which `os.sched_getaffinity` does not see.

`SCHEDULER_WORKERS=auto` (the default) starts one server process per usable CPU.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(*, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The CPUs this process may run on, fewer if its cgroup's quota allows less (rounded up: a
    quota of 1.5 CPUs is 2); at least 1."""
    count = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(
    *, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The smallest CPU quota (in CPUs) on the path from this process's cgroup up to the root, or
    None when none is set or nothing can be read (no cgroup file system, another OS)."""
    quotas = [q for d in _cgroup_dirs(cgroup_root, proc_cgroup) if (q := _quota_in(d)) is not None]
    return min(quotas, default=None)


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """cgroup v2: this process's cgroup and its ancestors; v1: the cpu controller's directory."""
    dirs: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = root / "cpu"
        else:
            continue
        here = base / path.strip("/")
        while True:
            dirs.append(here)
            if here == base or base not in here.parents:
                break
            here = here.parent
    dirs.extend([root, root / "cpu"])  # a container's own namespace root
    return dirs


def _quota_in(directory: Path) -> float | None:
    """The quota set in one cgroup directory: v2 `cpu.max` ("max 100000" or "150000 100000"),
    v1 `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`."""
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return _ratio(quota, period or "100000")
    except (OSError, ValueError):
        pass
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
        return None if quota.startswith("-") else _ratio(quota, period)
    except (OSError, ValueError):
        return None


def _ratio(quota: str, period: str) -> float | None:
    q, p = int(quota), int(period)
    return q / p if q > 0 and p > 0 else None
