"""`task-scheduler timers create | get | list | cancel | retry | import`: an operator's client of a
running service, over its HTTP API (never the database).

Output is a readable table, or with `--json` the API's JSON as it came (one document). Exit codes:
0 done, 1 the API or the network said no (the error goes to stderr), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, Field, ValidationError

from task_scheduler.errors import ErrorDetail
from task_scheduler.timers.models import TimerStatus
from task_scheduler.timers.schemas import TimerBatchCreated, TimerCreated, TimerPage, TimerView

DEFAULT_URL = "http://127.0.0.1:8080"
REQUEST_TIMEOUT_SECONDS = 60.0
# POST /timers/batch takes at most 1,000 timers, in a body under the service's default 1 MiB limit.
BATCH_MAX_TIMERS = 1000
BATCH_MAX_BYTES = 1_000_000
IMPORT_CONCURRENCY = 3
LIST_MAX_PAGE = 1000
URL_COLUMN_WIDTH = 60

M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """A failure the command reports on stderr as `task-scheduler: <message>`, exiting 1."""


class ApiError(ClientError):
    """The service answered with an error status (its JSON error envelope, when it sent one)."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        problems: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        # Every (field, message) the service listed; the first is `field`/`message`.
        self.problems = list(problems) or [(field, message)]


class Unreachable(ClientError):
    """No answer from the service; `maybe_sent` when the request may have arrived all the same."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class _FieldProblem(BaseModel):
    field: str | None = None
    message: str


class _ErrorWithDetails(ErrorDetail):
    details: list[_FieldProblem] = Field(default_factory=list)


class _ErrorEnvelope(BaseModel):
    error: _ErrorWithDetails


@dataclass(frozen=True)
class ApiResponse:
    status: int
    text: str
    url: str

    def model(self, model: type[M]) -> M:
        try:
            return model.model_validate_json(self.text)
        except ValidationError:
            raise ClientError(
                f"unexpected answer from {self.url} (HTTP {self.status}): is this a task-scheduler service?"
            ) from None


class ApiClient:
    """The service's HTTP API: one method, errors raised as ApiError or Unreachable."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        url = self._base_url + path
        sent_headers = {**self._auth, **(headers or {})}
        if body is not None:
            sent_headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=body, params=list(params), headers=sent_headers
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            reason = "connection refused; is the service running?" if refused else exc.strerror or str(exc)
            raise Unreachable(
                f"cannot connect to {self._base_url} ({reason}) (set --url or TASK_SCHEDULER_URL)",
                maybe_sent=False,
            ) from None
        except TimeoutError:
            raise Unreachable(
                f"no answer from {self._base_url} within {REQUEST_TIMEOUT_SECONDS:g} s", maybe_sent=True
            ) from None
        except aiohttp.ClientError as exc:
            raise Unreachable(
                f"request to {url} failed: {exc or type(exc).__name__}", maybe_sent=True
            ) from None
        if status >= 400:
            raise _api_error(status, text)
        return ApiResponse(status=status, text=text, url=url)


def _api_error(status: int, text: str) -> ApiError:
    try:
        error = _ErrorEnvelope.model_validate_json(text).error
    except ValidationError:
        # Not the service's envelope: a proxy's page, or not this service at all.
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        snippet = " ".join(text.split())[:200] or "(empty answer)"
        return ApiError(status=status, code=phrase.lower().replace(" ", "_"), message=snippet)
    return ApiError(
        status=status,
        code=error.code,
        message=error.message,
        field=error.field,
        problems=[(p.field, p.message) for p in error.details],
    )


# Argument types: a bad value is a usage error (exit 2) with argparse's message.


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http:// or https:// URL (from --url or TASK_SCHEDULER_URL)"
        )
    return value


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: str) -> dict[str, int]:
    """`1h30m45s`, `90m`, `2d`, or plain seconds (`5445`) as the API's hours/minutes/seconds."""
    text = value.replace(" ", "").lower()
    if text.isdigit():
        return {"hours": 0, "minutes": 0, "seconds": int(text)}
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 1h30m45s, 90m, 45s or 5445")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return {"hours": days * 24 + hours, "minutes": minutes, "seconds": seconds}


def _rfc3339(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an RFC 3339 time with an offset, e.g. 2026-12-24T18:00:00+01:00"
        )
    return value


def _header(value: str) -> tuple[str, str]:
    name, sep, header_value = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not 'Name: value'")
    return name.strip(), header_value.strip()


def _label(value: str) -> tuple[str, str]:
    key, sep, label = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not key=value")
    return key, label


def _seconds(value: str) -> int | float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds")
    return int(number) if number.is_integer() else number


def _bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            bounds = f"{low}-{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number {bounds}")
        return number

    return parse


def add_timers_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `timers ...` on the main parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=_base_url,
        default=os.environ.get("TASK_SCHEDULER_URL") or DEFAULT_URL,
        help=f"the service's base URL (default: TASK_SCHEDULER_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("TASK_SCHEDULER_API_KEY", ""),
        help="sent as 'Authorization: Bearer'; prefer TASK_SCHEDULER_API_KEY, flags show up in ps "
        "(none: protected mode serves loopback clients without a key)",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")

    timers_cmd = commands.add_parser("timers", help="create, inspect and import timers on a running service")
    timers = timers_cmd.add_subparsers(dest="timers_command", required=True)

    create = timers.add_parser("create", parents=[common], help="create a timer")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--in",
        dest="delay",
        metavar="DURATION",
        type=parse_duration,
        help="fire after 1h30m45s, 90m, 45s, 5445",
    )
    when.add_argument(
        "--at", dest="fire_at", metavar="TIME", type=_rfc3339, help="fire at an RFC 3339 time with an offset"
    )
    create.add_argument("--webhook", required=True, metavar="URL", help="the http(s) URL to call")
    create.add_argument("--method", type=str.upper, choices=["POST", "GET", "PUT", "PATCH", "DELETE"])
    create.add_argument(
        "--header",
        dest="headers",
        metavar="'NAME: VALUE'",
        type=_header,
        action="append",
        default=[],
        help="an extra webhook header; repeatable",
    )
    create.add_argument("--body", help="request body: JSON, or else sent as a string")
    create.add_argument(
        "--label",
        dest="labels",
        metavar="KEY=VALUE",
        type=_label,
        action="append",
        default=[],
        help="key=value; repeatable",
    )
    create.add_argument(
        "--max-lateness", type=_seconds, metavar="SECONDS", help="expire rather than be later"
    )
    create.add_argument(
        "--idempotency-key", metavar="KEY", help="the same key and request return the same timer"
    )

    for name, text in (
        ("get", "show a timer"),
        ("cancel", "cancel a pending timer"),
        ("retry", "send a failed or expired timer again"),
    ):
        command = timers.add_parser(name, parents=[common], help=text)
        command.add_argument("timer_id", type=_bounded_int(1), metavar="ID")

    listing = timers.add_parser("list", parents=[common], help="list timers, by due time")
    listing.add_argument("--status", choices=[status.value for status in TimerStatus])
    listing.add_argument(
        "--label",
        dest="labels",
        metavar="KEY=VALUE",
        type=_label,
        action="append",
        default=[],
        help="key=value; repeatable",
    )
    listing.add_argument(
        "--due-after", metavar="TIME", type=_rfc3339, help="due at or after this RFC 3339 time"
    )
    listing.add_argument("--due-before", metavar="TIME", type=_rfc3339, help="due before this RFC 3339 time")
    listing.add_argument(
        "--limit",
        metavar="N",
        type=_bounded_int(1, LIST_MAX_PAGE),
        help=f"timers per page (default: the API's 100, or {LIST_MAX_PAGE} with --all)",
    )
    listing.add_argument("--cursor", help="next_cursor of a previous page")
    listing.add_argument("--all", action="store_true", help="follow next_cursor through every page")
    listing.add_argument(
        "--max",
        metavar="N",
        type=_bounded_int(1),
        default=10_000,
        help="with --all, stop after this many (10000)",
    )

    importing = timers.add_parser(
        "import",
        parents=[common],
        help="create timers from JSON lines",
        description="Each line is a POST /timer body; sent in batches of up to 1,000. Blank lines are "
        "skipped. A rejected batch is reported with its lines and the others go on.",
    )
    importing.add_argument("file", metavar="FILE", help="a .jsonl file, or - for stdin")


def run_timers(args: argparse.Namespace) -> int:
    """Runs a parsed `timers` command; returns the exit code."""
    try:
        return asyncio.run(_run(args))
    except ClientError as exc:
        print(f"task-scheduler: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("task-scheduler: interrupted", file=sys.stderr)
        return 130


async def _run(args: argparse.Namespace) -> int:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = ApiClient(session, base_url=args.url, api_key=args.api_key)
        return await _COMMANDS[args.timers_command](api, args)


async def _create(api: ApiClient, args: argparse.Namespace) -> int:
    request: dict[str, object] = {**(args.delay or {"fire_at": args.fire_at}), "url": args.webhook}
    if args.method:
        request["method"] = args.method
    if args.headers:
        request["headers"] = dict(args.headers)
    if args.body is not None:
        try:
            request["body"] = json.loads(args.body)
        except ValueError:
            request["body"] = args.body
    if args.labels:
        request["labels"] = dict(args.labels)
    if args.max_lateness is not None:
        request["max_lateness_seconds"] = args.max_lateness
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    response = await api.call("POST", "/timer", body=json.dumps(request).encode(), headers=headers)
    if args.json:
        print(response.text)
        return 0
    created = response.model(TimerCreated)
    rows = [("timer_id", str(created.timer_id)), ("time_left", _time_left(created.time_left))]
    if created.note:
        rows.append(("note", created.note))
    if response.status == HTTPStatus.OK:
        rows.append(("note", "idempotent replay: the timer created earlier with this key"))
    _print_pairs(rows)
    return 0


async def _get(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.call("GET", f"/timer/{args.timer_id}")
    if args.json:
        print(response.text)
        return 0
    view = response.model(TimerView)
    retry = view.retry
    _print_pairs(
        [
            ("timer_id", str(view.timer_id)),
            ("status", view.status),
            ("due_at", view.due_at.isoformat()),
            ("time_left", _time_left(view.time_left)),
            ("attempts", str(view.attempts)),
            ("url", view.url),
            ("method", view.method),
            ("headers", "; ".join(f"{k}: {v}" for k, v in sorted(view.headers.items())) or "-"),
            ("body", "- (the default JSON body)" if view.body is None else json.dumps(view.body)),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items())) or "-"),
            ("created_at", view.created_at.isoformat()),
            ("updated_at", view.updated_at.isoformat()),
            ("delivered_at", view.delivered_at.isoformat() if view.delivered_at else "-"),
            ("deliver_before", view.deliver_before.isoformat() if view.deliver_before else "-"),
            ("last_error", view.last_error or "-"),
            ("delivery_id", view.delivery_id),
            (
                "retry",
                f"{retry.max_attempts} attempts, backoff {retry.backoff_base_seconds:g}-"
                f"{retry.backoff_cap_seconds:g} s, timeout {retry.timeout_seconds:g} s",
            ),
        ]
    )
    return 0


async def _cancel(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.call("DELETE", f"/timer/{args.timer_id}")
    if args.json:
        print(response.text)
        return 0
    view = response.model(TimerView)
    print(f"timer {view.timer_id} is {view.status}")
    return 0


async def _retry(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.call("POST", f"/timer/{args.timer_id}/retry")
    if args.json:
        print(response.text)
        return 0
    view = response.model(TimerView)
    print(f"timer {view.timer_id} is {view.status} again, due {_when(view.due_at)}")
    return 0


async def _list(api: ApiClient, args: argparse.Namespace) -> int:
    filters = [("label", f"{key}:{value}") for key, value in args.labels]
    for name, value in (
        ("status", args.status),
        ("due_after", args.due_after),
        ("due_before", args.due_before),
    ):
        if value is not None:
            filters.append((name, value))
    page_size: int | None = args.limit or (LIST_MAX_PAGE if args.all else None)
    cursor: str | None = args.cursor
    views: list[TimerView] = []
    raw: list[object] = []
    while True:
        params = list(filters)
        if page_size is not None:
            # Never past --max, so that next_cursor stays a valid place to resume.
            params.append(("limit", str(min(page_size, args.max - len(views)) if args.all else page_size)))
        if cursor is not None:
            params.append(("cursor", cursor))
        response = await api.call("GET", "/timers", params=params)
        page = response.model(TimerPage)
        views.extend(page.timers)
        if args.json:
            if not args.all:
                print(response.text)
                return 0
            raw.extend(json.loads(response.text)["timers"])
        cursor = page.next_cursor
        if not args.all or cursor is None or not page.timers or len(views) >= args.max:
            break
    if args.json:
        print(json.dumps({"timers": raw, "next_cursor": cursor}, separators=(",", ":")))
    else:
        _print_timer_table(views)
    if cursor is not None:
        hint = f"stopped at --max {args.max}" if args.all else "more timers: use --all"
        print(f"task-scheduler: {hint}, or --cursor {cursor}", file=sys.stderr)
    return 0


def _print_timer_table(views: Sequence[TimerView]) -> None:
    if not views:
        print("no timers")
        return
    rows = [("ID", "STATUS", "DUE_AT", "TIME_LEFT", "ATTEMPTS", "URL")]
    for view in views:
        url = view.url if len(view.url) <= URL_COLUMN_WIDTH else view.url[: URL_COLUMN_WIDTH - 3] + "..."
        rows.append(
            (
                str(view.timer_id),
                view.status,
                _when(view.due_at),
                _time_left(view.time_left),
                str(view.attempts),
                url,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _print_pairs(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def _time_left(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# `timers import`: JSON lines, sent in batches


@dataclass
class _Chunk:
    lines: list[int]
    items: list[bytes]

    @property
    def span(self) -> str:
        return f"lines {self.lines[0]}-{self.lines[-1]}" if len(self.lines) > 1 else f"line {self.lines[0]}"

    def body(self) -> bytes:
        return b'{"timers":[' + b",".join(self.items) + b"]}"


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
        self.stream.write(f"{clear}task-scheduler: {message}\n")
        if clear:
            self.stream.write(self._shown)
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _read_source(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as source:
            return source.read()
    except OSError as exc:
        raise ClientError(f"cannot read {name}: {exc.strerror}") from None


def _item_problem(chunk: _Chunk, field: str | None, message: str) -> str:
    """`timers.7.url: ...` from the API as `line 1503: url: ...` in the file."""
    match = re.fullmatch(r"timers\.(\d+)(?:\.(.+))?", field or "")
    if match is None or int(match[1]) >= len(chunk.lines):
        return message
    rest = message.removeprefix(f"{field}: ") if field else message
    return f"line {chunk.lines[int(match[1])]}: {match[2] + ': ' if match[2] else ''}{rest}"


async def _import(api: ApiClient, args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(_read_source, args.file)
    raw_lines = data.split(b"\n")
    total = sum(1 for line in raw_lines if line.strip())
    progress = _Progress(total, sys.stderr)
    tally = _Tally()
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

    pending = iter(chunks)
    unreachable: list[Unreachable] = []

    async def send(chunk: _Chunk) -> None:
        try:
            response = await api.call("POST", "/timers/batch", body=chunk.body())
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
            tally.created += len(response.model(TimerBatchCreated).timers)
        progress.update(tally.created + tally.failed + tally.unknown, tally.created)

    async def worker(chunks: Iterator[_Chunk]) -> None:
        # Workers share one iterator, so each chunk is sent once; none starts once the service is gone.
        while not unreachable:
            chunk = next(chunks, None)
            if chunk is None:
                return
            await send(chunk)

    await asyncio.gather(*(worker(pending) for _ in range(IMPORT_CONCURRENCY)))
    not_sent = list(pending)
    progress.close()
    if not_sent:
        count = sum(len(chunk.items) for chunk in not_sent)
        tally.failed += count
        progress.say(f"{count} timers not sent (lines {not_sent[0].lines[0]}-{not_sent[-1].lines[-1]})")
    seconds = progress.elapsed()
    rate = tally.created / seconds if seconds > 0 else 0.0
    if args.json:
        summary = {"created": tally.created, "failed": tally.failed, "unknown": tally.unknown}
        print(json.dumps({**summary, "seconds": round(seconds, 3), "per_second": round(rate, 1)}))
    else:
        unknown = f", unknown {tally.unknown}" if tally.unknown else ""
        print(
            f"created {tally.created}, failed {tally.failed}{unknown} in {seconds:.2f} s ({rate:.0f} timers/s)"
        )
    return 1 if tally.failed or tally.unknown else 0


_COMMANDS: dict[str, Callable[[ApiClient, argparse.Namespace], Awaitable[int]]] = {
    "create": _create,
    "get": _get,
    "list": _list,
    "cancel": _cancel,
    "retry": _retry,
    "import": _import,
}
