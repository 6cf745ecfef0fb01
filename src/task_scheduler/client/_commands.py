"""`task-scheduler timers create | get | list | cancel | retry | replay | bulk | bulk-status |
bulk-cancel | import`: the sub-commands, each a builder of its arguments and a coroutine that runs
it against the API; and what the `schedules` commands share with them (the group, the run, the
delivery flags, the listing)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TextIO, TypeVar, cast

from pydantic import ValidationError

from task_scheduler.client._api import LIST_MAX_PAGE, ApiClient, ApiResponse, TimerCreateBody, TimerFilter
from task_scheduler.client._arguments import (
    IMPORT_DESCRIPTION,
    add_bulk_arguments,
    add_create_arguments,
    add_import_arguments,
    add_job_id_argument,
    add_list_arguments,
    add_replay_arguments,
    add_timer_id_argument,
    common_arguments,
    duration_seconds,
)
from task_scheduler.client._errors import ClientError
from task_scheduler.client._importer import run_import
from task_scheduler.client._output import (
    print_answer,
    print_pairs,
    print_result,
    print_timer_table,
    time_left,
    when,
)
from task_scheduler.client._terminal import TerminalWriter, safe
from task_scheduler_client import BulkFilter, BulkJob, SchedulePage, TimerCreated, TimerPage, TimerView


def add_timers_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `timers ...` on the main parser's subcommands."""
    add_command_group(
        commands,
        "timers",
        help="create, inspect and import timers on a running service",
        subcommands=_SUBCOMMANDS,
    )


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[ApiClient, argparse.Namespace], Awaitable[int]]
    description: str | None = None


def add_command_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    subcommands: Mapping[str, Subcommand],
) -> None:
    """`task-scheduler <name> <subcommand> ...`; each parsed command carries its coroutine as `run`."""
    group_cmd = commands.add_parser(name, help=help)
    group = group_cmd.add_subparsers(dest=f"{name}_command", required=True)
    common = common_arguments()
    for sub_name, command in subcommands.items():
        parser = group.add_parser(
            sub_name, parents=[common], help=command.help, description=command.description
        )
        command.add_arguments(parser)
        parser.set_defaults(run=command.run)


def run_client_command(args: argparse.Namespace) -> int:
    """Runs a parsed `timers`, `schedules` or `destinations` command; returns the exit code. On a
    terminal, the service's text is shown with its control characters escaped (_terminal.py)."""
    stdout = sys.stdout
    if stdout.isatty():
        sys.stdout = cast(TextIO, TerminalWriter(stdout))
    try:
        return asyncio.run(_run(args))
    except ClientError as exc:
        print(f"task-scheduler: {safe(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("task-scheduler: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout


async def _run(args: argparse.Namespace) -> int:
    # The command's output is its own lines only: not httpx's line per request (INFO), should the
    # process have logging configured.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    async with ApiClient(base_url=args.url, api_key=args.api_key) as api:
        run: Callable[[ApiClient, argparse.Namespace], Awaitable[int]] = args.run
        return await run(api, args)


def delivery_fields(args: argparse.Namespace) -> dict[str, object]:
    """The flags of _add_delivery other than --webhook, as the API's fields (only those given)."""
    fields: dict[str, object] = {}
    if args.method:
        fields["method"] = args.method
    if args.headers:
        fields["headers"] = dict(args.headers)
    if args.body is not None:
        try:
            fields["body"] = json.loads(args.body)
        except ValueError:
            fields["body"] = args.body
    if args.labels:
        fields["labels"] = dict(args.labels)
    if args.max_lateness is not None:
        fields["max_lateness_seconds"] = args.max_lateness
    return fields


async def _create(api: ApiClient, args: argparse.Namespace) -> int:
    timer = TimerCreateBody(url=args.webhook)
    if args.delay:
        timer.update(args.delay)  # hours, minutes and seconds, zeros included
    else:
        timer["fire_at"] = args.fire_at
    timer.update(delivery_fields(args))  # type: ignore[typeddict-item]  # the keys of TimerCreateBody
    response = await api.create_timer(timer=timer, idempotency_key=args.idempotency_key)
    replayed = response.status == HTTPStatus.OK
    print_answer(args, response, lambda created: _print_created(created, replayed=replayed))
    return 0


def _print_created(created: TimerCreated, *, replayed: bool) -> None:
    rows = [("timer_id", str(created.timer_id)), ("time_left", time_left(created.time_left))]
    if created.note:
        rows.append(("note", created.note))
    if replayed:
        rows.append(("note", "idempotent replay: the timer created earlier with this key"))
    print_pairs(rows)


async def _get(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.get_timer(timer_id=args.timer_id), _print_timer)
    return 0


def _print_timer(view: TimerView) -> None:
    retry = view.retry
    replay = [("replay_of", str(view.replay_of))] if view.replay_of is not None else []
    print_pairs(
        [
            *replay,
            ("timer_id", str(view.timer_id)),
            ("status", view.status),
            ("due_at", view.due_at.isoformat()),
            ("time_left", time_left(view.time_left)),
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


async def _cancel(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.cancel_timer(timer_id=args.timer_id)
    print_answer(args, response, lambda view: print(f"timer {view.timer_id} is {view.status}"))
    return 0


async def _retry(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.retry_timer(timer_id=args.timer_id)
    print_answer(
        args,
        response,
        lambda view: print(f"timer {view.timer_id} is {view.status} again, due {when(view.due_at)}"),
    )
    return 0


async def _replay(api: ApiClient, args: argparse.Namespace) -> int:
    delay = None if args.delay is None else duration_seconds(args.delay)
    response = await api.replay_timer(timer_id=args.timer_id, delay_seconds=delay, fire_at=args.fire_at)
    print_answer(
        args,
        response,
        lambda view: print(f"timer {view.timer_id} replays timer {view.replay_of}, due {when(view.due_at)}"),
    )
    return 0


async def _bulk(api: ApiClient, args: argparse.Namespace) -> int:
    try:
        where = BulkFilter(
            status=args.status,
            labels=dict(args.labels) or None,
            due_after=args.due_after,
            due_before=args.due_before,
            host=args.host,
            error_class=args.error_class,
            destination=args.destination,
        )
    except ValidationError as exc:
        raise ClientError(f"bad filter: {exc.errors()[0]['msg']}") from None
    if args.dry_run:
        counted = await api.count_bulk(action=args.action, where=where, offset_seconds=args.offset)
        print_answer(args, counted, lambda count: print(f"{count.action} would take {count.matched} timers"))
        return 0
    response = await api.start_bulk(action=args.action, where=where, offset_seconds=args.offset)
    print_answer(args, response, _print_job)
    if not args.json:
        print(f"follow it: task-scheduler timers bulk-status {response.parse().job_id}")
    return 0


async def _bulk_status(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.get_bulk_job(job_id=args.job_id), _print_job)
    return 0


async def _bulk_cancel(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.cancel_bulk_job(job_id=args.job_id), _print_job)
    return 0


def _print_job(job: BulkJob) -> None:
    offset = [] if job.offset_seconds is None else [("offset_seconds", f"{job.offset_seconds:g}")]
    print_pairs(
        [
            ("job_id", str(job.job_id)),
            ("state", job.state),
            ("action", job.action),
            *offset,
            ("filter", json.dumps(job.filter, separators=(",", ":"))),
            ("matched", str(job.matched)),
            ("done", str(job.done)),
            ("skipped", str(job.skipped)),
            ("progress", f"timers up to id {job.last_timer_id} of {job.max_timer_id} handled"),
            ("error", job.error or "-"),
            ("created_at", job.created_at.isoformat()),
            ("updated_at", job.updated_at.isoformat()),
        ]
    )


async def _list(api: ApiClient, args: argparse.Namespace) -> int:
    where = TimerFilter(
        status=args.status, labels=dict(args.labels), due_after=args.due_after, due_before=args.due_before
    )
    return await print_listing(
        args,
        key="timers",
        one_page=lambda: api.list_timers(where=where, limit=args.limit, cursor=args.cursor),
        every_page=lambda: api.iter_timer_pages(
            where=where, page_size=args.limit or LIST_MAX_PAGE, cursor=args.cursor, max_timers=args.max
        ),
        items=lambda page: page.timers,
        render=print_timer_table,
    )


P = TypeVar("P", TimerPage, SchedulePage)
V = TypeVar("V")


async def print_listing(
    args: argparse.Namespace,
    *,
    key: str,
    one_page: Callable[[], Awaitable[ApiResponse[P]]],
    every_page: Callable[[], AsyncIterator[ApiResponse[P]]],
    items: Callable[[P], Sequence[V]],
    render: Callable[[Sequence[V]], None],
) -> int:
    """`list`: one page (with a hint when there are more), or with --all every page up to --max,
    as a table or as one JSON document `{key: [...], "next_cursor": ...}`."""
    if not args.all:
        response = await one_page()
        page = response.parse()  # checked even for --json, as with --all
        print_answer(args, response, lambda listed: render(items(listed)))
        if page.next_cursor is not None and not args.json:
            print(
                f"task-scheduler: more {key}: use --all, or --cursor {safe(page.next_cursor)}",
                file=sys.stderr,
            )
        return 0
    views: list[V] = []
    raw: list[object] = []
    cursor = args.cursor
    async for response in every_page():
        page = response.parse()
        views.extend(items(page))
        if args.json:
            raw.extend(json.loads(response.text)[key])
        cursor = page.next_cursor
    document = json.dumps({key: raw, "next_cursor": cursor}, separators=(",", ":"))
    print_result(args, document=document, render=lambda: render(views))
    if cursor is not None:
        print(f"task-scheduler: stopped at --max {args.max}, or --cursor {safe(cursor)}", file=sys.stderr)
    return 0


# In the order `timers --help` lists them.
_SUBCOMMANDS: dict[str, Subcommand] = {
    "create": Subcommand("create a timer", add_create_arguments, _create),
    "get": Subcommand("show a timer", add_timer_id_argument, _get),
    "cancel": Subcommand("cancel a pending timer", add_timer_id_argument, _cancel),
    "retry": Subcommand("send a failed or expired timer again", add_timer_id_argument, _retry),
    "replay": Subcommand(
        "send a finished timer's request again, as a new timer", add_replay_arguments, _replay
    ),
    "list": Subcommand("list timers, by due time", add_list_arguments, _list),
    "bulk": Subcommand(
        "cancel, retry or reschedule every timer a filter matches, in the background",
        add_bulk_arguments,
        _bulk,
    ),
    "bulk-status": Subcommand("show a bulk job's state and progress", add_job_id_argument, _bulk_status),
    "bulk-cancel": Subcommand("stop a queued or running bulk job", add_job_id_argument, _bulk_cancel),
    "import": Subcommand(
        "create timers from JSON lines", add_import_arguments, run_import, description=IMPORT_DESCRIPTION
    ),
}
