"""`task-scheduler destinations list | get | set | pause | unpause | resume`: a running service's
destinations (their limits, pause switch and circuit breaker), as the `timers` commands do it (a table,
or the API's JSON with --json; same errors and exit codes)."""

from __future__ import annotations

import argparse
import sys

from task_scheduler.client._api import ApiClient
from task_scheduler.client._commands import Subcommand, add_command_group
from task_scheduler.client._output import print_answer, print_pairs, print_table
from task_scheduler_client import Destination, DestinationHealth, DestinationPage


def add_destinations_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `destinations ...` on the main parser's subcommands."""
    add_command_group(
        commands,
        "destinations",
        help="limit, pause, resume and inspect destinations (circuit breakers) on a running service",
        subcommands=_SUBCOMMANDS,
    )


def _add_key(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "key", help="the destination: a URL's origin (https://example.com:443) or a given key"
    )


def _add_list(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("--limit", type=int, default=100, help="page size (1-1000, default 100)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")


async def _list(api: ApiClient, args: argparse.Namespace) -> int:
    response = await api.list_destinations(limit=args.limit, cursor=args.cursor)
    print_answer(args, response, _print_page)
    return 0


def _print_page(page: DestinationPage) -> None:
    if not page.destinations:
        print("no destinations paused, limited or failing")
    else:
        header = ("STATE", "PAUSED", "FAILURES", "OPENED_AT", "RATE", "PARALLELISM", "KEY")
        print_table(
            header,
            [
                (
                    d.breaker_state,
                    "yes" if d.paused else "no",
                    str(d.consecutive_failures),
                    d.opened_at.isoformat() if d.opened_at else "-",
                    _rate(d),
                    "-" if d.parallelism is None else str(d.parallelism),
                    d.key,
                )
                for d in page.destinations
            ],
        )
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")


def _print_destination(view: Destination) -> None:
    rows = [
        ("key", view.key),
        ("breaker_state", view.breaker_state),
        ("paused", "yes" if view.paused else "no"),
        ("consecutive_failures", str(view.consecutive_failures)),
        ("opened_at", view.opened_at.isoformat() if view.opened_at else "-"),
        ("failing_since", view.failing_since.isoformat() if view.failing_since else "-"),
        ("disabled_at", view.disabled_at.isoformat() if view.disabled_at else "-"),
        ("updated_at", view.updated_at.isoformat() if view.updated_at else "-"),
    ]
    if view.slow_start_until is not None:
        rows.append(("slow_start_until", view.slow_start_until.isoformat()))
    rows.append(("rate", _rate(view)))
    rows.append(("parallelism", "unlimited" if view.parallelism is None else str(view.parallelism)))
    if view.waiting is not None:
        rows.append(("waiting", f"{view.waiting} timers due now"))
    if view.in_flight is not None:
        rows.append(("in_flight", f"{view.in_flight} timers being fired"))
    if view.health is not None:
        rows.append(("health", _health(view.health)))
    for entry in view.history:
        rows.append(
            ("history", f"{entry.at.isoformat()} {entry.event} ({entry.consecutive_failures} failures)")
        )
    print_pairs(rows)


def _health(health: DestinationHealth) -> str:
    minutes = health.window_seconds // 60
    if not health.attempts or health.success_rate is None:
        return f"no attempts in the last {minutes} min"
    return (
        f"{health.attempts} attempts in the last {minutes} min, {health.success_rate:.1%} succeeded,"
        f" p50 {health.p50_ms:.0f} ms, p99 {health.p99_ms:.0f} ms"
    )


def _rate(view: Destination) -> str:
    if view.rate_per_second is None:
        return "unlimited"
    return f"{view.rate_per_second:g}/s burst {view.burst}"


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a number above 0") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError("a number above 0")
    return number


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number of at least 1") from None
    if number < 1:
        raise argparse.ArgumentTypeError("a whole number of at least 1")
    return number


def _add_set(command: argparse.ArgumentParser) -> None:
    _add_key(command)
    command.add_argument(
        "--rate", type=_positive, help="most requests a second, cluster-wide (0.5: 30 a minute)"
    )
    command.add_argument(
        "--burst", type=_at_least_one, help="requests at once after a quiet time (default: ceil(rate))"
    )
    command.add_argument("--parallelism", type=_at_least_one, help="most requests in flight, cluster-wide")
    command.add_argument(
        "--unlimited", action="store_true", help="lift the rate and the parallelism (before the other flags)"
    )


async def _set(api: ApiClient, args: argparse.Namespace) -> int:
    """Only the limits given change; --unlimited lifts both first, then the flags given apply."""
    limits: dict[str, float | int | None] = (
        {"rate_per_second": None, "parallelism": None} if args.unlimited else {}
    )
    if args.rate is not None:
        limits["rate_per_second"] = args.rate
    if args.burst is not None:
        limits["burst"] = args.burst
    if args.parallelism is not None:
        limits["parallelism"] = args.parallelism
    if not limits:
        print(
            "task-scheduler: destinations set: give --rate, --burst, --parallelism or --unlimited",
            file=sys.stderr,
        )
        return 2
    print_answer(args, await api.limit_destination(key=args.key, limits=limits), _print_destination)
    return 0


async def _get(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.get_destination(key=args.key), _print_destination)
    return 0


async def _pause(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.pause_destination(key=args.key, paused=True), _print_destination)
    return 0


async def _unpause(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.pause_destination(key=args.key, paused=False), _print_destination)
    return 0


async def _resume(api: ApiClient, args: argparse.Namespace) -> int:
    print_answer(args, await api.resume_destination(key=args.key), _print_destination)
    return 0


_SUBCOMMANDS: dict[str, Subcommand] = {
    "list": Subcommand("list the destinations that were paused or failed, by key", _add_list, _list),
    "get": Subcommand(
        "show a destination's limits, breaker state, waiting timers, in flight", _add_key, _get
    ),
    "set": Subcommand("limit a destination's rate and parallelism (cluster-wide)", _add_set, _set),
    "pause": Subcommand("hold a destination's timers (pending, attempts untouched)", _add_key, _pause),
    "unpause": Subcommand("release a paused destination's timers", _add_key, _unpause),
    "resume": Subcommand("unpause a destination and close its circuit breaker", _add_key, _resume),
}
