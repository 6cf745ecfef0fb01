"""`make bench` (quick, a few minutes; the service runs with its defaults, as `make run` starts it,
except rows that say "tuned") and `make bench-full` (100,000-timer bursts and recovery
with one and two processes, isolation, three instances, scale: 10,000,000 pending timers,
BENCH_SCALE_ROWS to change; bulk_cancel: 1,000,000 timers, BENCH_BULK_ROWS): real processes
on this machine, a Markdown table on stdout, JSON in bench/results/latest.json.

    python -m bench [--full] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import uvloop

from bench.common import Row
from bench.harness import postgres_server
from bench.scenarios import FULL, QUICK

RESULTS = Path(__file__).parent / "results"


async def run(names: list[str], full: bool) -> list[Row]:
    table = FULL if full else QUICK
    rows: list[Row] = []
    with postgres_server() as server_url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names or list(table):
            started = time.monotonic()
            row = await table[name](server_url, Path(tmp))
            row.details["seconds"] = round(time.monotonic() - started, 1)
            rows.append(row)
            print(f"[{name}] {row.figure} ({'met' if row.met else 'MISSED'}; {row.correctness})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the large-scale scenarios too")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names")
    args = parser.parse_args()
    rows = uvloop.run(run(args.only, args.full))
    RESULTS.mkdir(exist_ok=True)
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    (RESULTS / "latest.json").write_text(
        json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2)
    )
    print(f"\n{machine}\n")
    print("| scenario | measured | target | met | correctness |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.scenario} | {r.figure} | {r.target} | {'yes' if r.met else 'no'} | {r.correctness} |")


if __name__ == "__main__":
    main()
