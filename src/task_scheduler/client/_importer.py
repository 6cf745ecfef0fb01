"""`timers import`: JSON lines sent through POST /timers/batch, a few batches at a time; a rejected
batch is reported by its line numbers and the others go on."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from task_scheduler.client._api import ApiClient
from task_scheduler.client._errors import ApiError, ClientError, Unreachable
from task_scheduler.client._output import print_result
from task_scheduler.client._terminal import safe

# POST /timers/batch takes at most 1,000 timers, in a body under the service's default 1 MiB limit.
BATCH_MAX_TIMERS = 1000
BATCH_MAX_BYTES = 1_000_000
IMPORT_CONCURRENCY = 3


@dataclass
class _Chunk:
    lines: list[int]
    items: list[bytes]

    @property
    def span(self) -> str:
        return f"lines {self.lines[0]}-{self.lines[-1]}" if len(self.lines) > 1 else f"line {self.lines[0]}"


@dataclass
class _Tally:
    created: int = 0
    failed: int = 0
    unknown: int = 0


class _Progress:
    """done/total and rate on stderr: one redrawn line on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._every = 0.1 if self.tty else 5.0
        self._last = self.started
        self._shown = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, done: int, created: int) -> None:
        now = time.monotonic()
        if now - self._last < self._every and done < self.total:
            return
        self._last = now
        percent = 100 * done // self.total if self.total else 100
        line = (
            f"{done}/{self.total} lines ({percent}%), {created / max(now - self.started, 1e-6):.0f} timers/s"
        )
        if self.tty:
            self._shown = line
            self.stream.write(f"\r\x1b[K{line}")
        else:
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def say(self, message: str) -> None:
        """A message line that does not garble the progress line."""
        clear = "\r\x1b[K" if self.tty and self._shown else ""
        self.stream.write(f"{clear}task-scheduler: {safe(message)}\n")
        if clear:
            self.stream.write(self._shown)
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


async def run_import(api: ApiClient, args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(_read_source, args.file)
    raw_lines = data.split(b"\n")
    progress = _Progress(sum(1 for line in raw_lines if line.strip()), sys.stderr)
    tally = _Tally()
    chunks = _chunks(raw_lines, progress, tally)
    not_sent = await _send(api, chunks, progress, tally)
    progress.close()
    if not_sent:
        count = sum(len(chunk.items) for chunk in not_sent)
        tally.failed += count
        progress.say(f"{count} timers not sent (lines {not_sent[0].lines[0]}-{not_sent[-1].lines[-1]})")
    seconds = progress.elapsed()
    rate = tally.created / seconds if seconds > 0 else 0.0
    summary = {"created": tally.created, "failed": tally.failed, "unknown": tally.unknown}
    unknown = f", unknown {tally.unknown}" if tally.unknown else ""
    print_result(
        args,
        document=json.dumps({**summary, "seconds": round(seconds, 3), "per_second": round(rate, 1)}),
        render=lambda: print(
            f"created {tally.created}, failed {tally.failed}{unknown} in {seconds:.2f} s ({rate:.0f} timers/s)"
        ),
    )
    return 1 if tally.failed or tally.unknown else 0


def _read_source(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as source:
            return source.read()
    except OSError as exc:
        raise ClientError(f"cannot read {name}: {exc.strerror}") from None


def _chunks(raw_lines: Sequence[bytes], progress: _Progress, tally: _Tally) -> list[_Chunk]:
    """The JSON objects, in batches the service takes; a line that is not one is reported and counted."""
    chunks: list[_Chunk] = []
    current = _Chunk([], [])
    size = 0
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            progress.say(f"line {number}: not valid JSON ({reason})")
            tally.failed += 1
            continue
        if not isinstance(item, dict):
            progress.say(f"line {number}: not a JSON object")
            tally.failed += 1
            continue
        if current.items and (
            len(current.items) == BATCH_MAX_TIMERS or size + len(line) + 1 > BATCH_MAX_BYTES
        ):
            chunks.append(current)
            current, size = _Chunk([], []), 0
        current.lines.append(number)
        current.items.append(line)
        size += len(line) + 1
    if current.items:
        chunks.append(current)
    return chunks


async def _send(api: ApiClient, chunks: Sequence[_Chunk], progress: _Progress, tally: _Tally) -> list[_Chunk]:
    """Sends the chunks, IMPORT_CONCURRENCY at a time, until done or the service is gone; returns
    the chunks not sent."""
    pending = iter(chunks)
    unreachable: list[Unreachable] = []

    async def send(chunk: _Chunk) -> None:
        try:
            response = await api.create_timers(timers=chunk.items)
        except ApiError as exc:
            tally.failed += len(chunk.items)
            first, *others = exc.problems
            detail = _item_problem(chunk, *first) + (f" (and {len(others)} more)" if others else "")
            progress.say(f"{chunk.span} not created: {exc.status} {exc.code}: {detail}")
        except Unreachable as exc:
            unreachable.append(exc)
            if exc.maybe_sent:
                tally.unknown += len(chunk.items)
                progress.say(f"{chunk.span}: outcome unknown, they may have been created: {exc}")
            else:
                tally.failed += len(chunk.items)
                progress.say(f"{chunk.span} not created: {exc}")
        else:
            tally.created += len(response.parse().timers)
        progress.update(tally.created + tally.failed + tally.unknown, tally.created)

    async def worker(chunks: Iterator[_Chunk]) -> None:
        # Workers share one iterator, so each chunk is sent once; none starts once the service is gone.
        while not unreachable:
            chunk = next(chunks, None)
            if chunk is None:
                return
            await send(chunk)

    await asyncio.gather(*(worker(pending) for _ in range(IMPORT_CONCURRENCY)))
    return list(pending)


def _item_problem(chunk: _Chunk, field: str | None, message: str) -> str:
    """`timers.7.url: ...` from the API as `line 1503: url: ...` in the file."""
    match = re.fullmatch(r"timers\.(\d+)(?:\.(.+))?", field or "")
    if match is None or int(match[1]) >= len(chunk.lines):
        return message
    rest = message.removeprefix(f"{field}: ") if field else message
    return f"line {chunk.lines[int(match[1])]}: {match[2] + ': ' if match[2] else ''}{rest}"
