"""Tracing's cost, measured in rounds of paired runs: the same run with tracing off (as installed)
and on (OTEL_EXPORTER_OTLP_ENDPOINT pointing at bench.otlp_sink, a lean local collector in its own
process), the order rotating each round so that the machine's drift falls on every arm. With
BENCH_TRACING_BASELINE=<a checkout's src> a third arm runs that code (e.g. the commit before
tracing) with the same settings as off: off against it is the cost of tracing when off.

Two figures per run: the rate, and the service process's CPU time per operation (its utime+stime
from /proc, the span export thread included), which a machine shared with other work disturbs far
less than the rate. Each figure is the median over the rounds, each ratio the median of the
rounds' ratios to off."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import BODY, Row
from bench.harness import (
    ONE_PROCESS,
    Delivered,
    Receiver,
    closed_loop,
    connect,
    due_times,
    fresh_database,
    start_service,
)
from tests.support.processes import ServiceProcess, free_port

ROUNDS = 3
# A traceparent as an instrumented client sends it (on creates, and kept with the fired timers).
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_TICKS = os.sysconf("SC_CLK_TCK")

Measure = Callable[[str, dict[str, str]], Awaitable[dict[str, Any]]]


class OtlpSink:
    """bench.otlp_sink in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.otlp_sink", "--port", str(self.port)])

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await self.spans()
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise TimeoutError("the OTLP sink did not start")

    async def spans(self) -> int:
        async with aiohttp.ClientSession() as session, session.get(f"{self.endpoint}/count") as response:
            return int(await response.text())

    async def wait_for(self, count: int, within: float = 15.0) -> None:
        """Until `count` spans arrived (the batch processor exports every 5 s at most)."""
        deadline = time.monotonic() + within
        while await self.spans() < count and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def cpu_seconds(proc: ServiceProcess) -> float:
    """The process's user + system CPU time so far."""
    assert proc.process is not None
    fields = Path(f"/proc/{proc.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15


def _arms(sink: OtlpSink) -> dict[str, dict[str, str]]:
    off = {"OTEL_SDK_DISABLED": "true"}  # whatever the caller's environment says
    arms = {"off": off, "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SDK_DISABLED": "false"}}
    baseline = os.environ.get("BENCH_TRACING_BASELINE")
    if baseline:
        arms["baseline"] = {**off, "PYTHONPATH": baseline}
    return arms


async def _rounds(measure: Measure, sink: OtlpSink) -> dict[str, list[dict[str, Any]]]:
    arms = _arms(sink)
    names = list(arms)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(ROUNDS):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            runs[name].append(await measure(f"{i}-{name}", arms[name]))
    return runs


def _summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": runs}
    for key in ("per_second", "cpu_us_per_op"):
        for arm, results in runs.items():
            summary[f"{arm}_{key}"] = statistics.median(r[key] for r in results)
            if arm != "off":
                ratios = [b[key] / a[key] for a, b in zip(runs["off"], results, strict=True) if a[key]]
                summary[f"{arm}_{key}_ratio"] = round(statistics.median(ratios), 3) if ratios else 0.0
    return summary


# On costs what it costs (reported, see docs/performance.md); off must cost nothing.
_TARGET = "every span exported; off: CPU within 10% of the baseline arm (when run)"


def _off_as_before(s: dict[str, Any]) -> bool:
    """Off against the baseline arm (the code before tracing), when it ran: within 10% of CPU."""
    ratio = s.get("baseline_cpu_us_per_op_ratio")
    return ratio is None or 0.9 <= 1 / ratio <= 1.1


def _figure(s: dict[str, Any], unit: str) -> str:
    text = (
        f"CPU per {unit}: off {s['off_cpu_us_per_op']:.0f} / on {s['on_cpu_us_per_op']:.0f} µs"
        f" (x{s['on_cpu_us_per_op_ratio']}); rate off {s['off_per_second']:,} / on {s['on_per_second']:,}/s"
        f" (x{s['on_per_second_ratio']})"
    )
    if "baseline_cpu_us_per_op" in s:
        text += (
            f"; baseline {s['baseline_cpu_us_per_op']:.0f} µs, {s['baseline_per_second']:,}/s"
            f" (off/baseline CPU x{1 / s['baseline_cpu_us_per_op_ratio']:.3f})"
        )
    return text


async def tracing_create(server_url: str, workdir: Path, seconds: float = 5.0) -> Row:
    """POST /timer at the peak rate (64 connections, the lean load generator, a traceparent on
    each request), one run per arm and round."""
    sink = OtlpSink()
    sink.start()

    async def measure(name: str, env: dict[str, str]) -> dict[str, Any]:
        database_url = await fresh_database(server_url)
        proc = start_service(database_url, workdir, f"tracing-create-{name}", **{**ONE_PROCESS, **env})
        headers = {"traceparent": TRACEPARENT}
        try:
            await proc.wait_ready()
            url = f"{proc.base_url}/timer"
            await closed_loop(url, 64, 1.0, BODY, headers=headers)  # warm up
            spans_before, cpu_before = await sink.spans(), cpu_seconds(proc)
            result = await closed_loop(url, 64, seconds, BODY, headers=headers)
            if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:  # the export of these spans counts too
                await sink.wait_for(spans_before + result["requests"])
            result["cpu_us_per_op"] = round((cpu_seconds(proc) - cpu_before) / result["requests"] * 1e6, 1)
            result["spans_exported"] = await sink.spans() - spans_before
        finally:
            proc.terminate()
        return result

    try:
        await sink.wait_ready()
        runs = await _rounds(measure, sink)
    finally:
        sink.stop()
    s = _summary(runs)
    errors = sum(r["errors"] for results in runs.values() for r in results)
    # Every create is a span: fewer would mean the processor's queue dropped some.
    dropped = sum(max(0, r["requests"] - r["spans_exported"]) for r in runs["on"])
    return Row(
        f"tracing: POST /timer off vs on (64 clients, {ROUNDS} rounds, medians)",
        _figure(s, "create"),
        _TARGET,
        errors == 0 and dropped == 0 and _off_as_before(s),
        f"errors {errors}, spans dropped {dropped}",
        s,
    )


async def tracing_fire(server_url: str, workdir: Path, count: int = 10_000) -> Row:
    """`count` timers due at once, stored with a traceparent (where the schema has the column),
    delivered to the lean receiver; one run per arm and round."""
    sink = OtlpSink()
    sink.start()

    async def measure(name: str, env: dict[str, str]) -> dict[str, Any]:
        database_url = await fresh_database(server_url)
        receiver = Receiver(workdir)
        receiver.start()
        proc = start_service(database_url, workdir, f"tracing-fire-{name}", **{**ONE_PROCESS, **env})
        try:
            await proc.wait_ready()
            conn = await connect(database_url)
            try:
                traced = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns"
                    " WHERE table_name = 'timers' AND column_name = 'traceparent'"
                )
                spans_before, cpu_before = await sink.spans(), cpu_seconds(proc)
                await conn.execute(
                    f"INSERT INTO timers (url, due_at{', traceparent' if traced else ''})"
                    f" SELECT $1, now() + interval '3 seconds'{', $3' if traced else ''}"
                    " FROM generate_series(1, $2::int)",
                    *([receiver.url, count, TRACEPARENT] if traced else [receiver.url, count]),
                )
                await receiver.wait_for(count, within=120)
                if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
                    await sink.wait_for(spans_before + count)
                cpu = cpu_seconds(proc) - cpu_before
                spans = await sink.spans() - spans_before
                await asyncio.sleep(1.0)  # late duplicates would arrive by now
                due = await due_times(conn)
            finally:
                await conn.close()
        finally:
            proc.terminate()
            records = receiver.stop()
        delivered = Delivered.check(records, due)
        took = delivered.last_arrival - delivered.first_arrival
        return {
            "per_second": round(count / took) if took > 0 else 0,
            "cpu_us_per_op": round(cpu / count * 1e6, 1),
            "spans_exported": spans,
            "lost": delivered.lost,
            "duplicates": delivered.duplicates,
        }

    try:
        await sink.wait_ready()
        runs = await _rounds(measure, sink)
    finally:
        sink.stop()
    s = _summary(runs)
    lost = sum(r["lost"] for results in runs.values() for r in results)
    duplicates = sum(r["duplicates"] for results in runs.values() for r in results)
    dropped = sum(max(0, count - r["spans_exported"]) for r in runs["on"])
    return Row(
        f"tracing: delivery off vs on ({count:,} due at once, {ROUNDS} rounds, medians)",
        _figure(s, "delivery"),
        _TARGET,
        lost == 0 and duplicates == 0 and dropped == 0 and _off_as_before(s),
        f"lost {lost}, duplicates {duplicates}, spans dropped {dropped}",
        s,
    )
