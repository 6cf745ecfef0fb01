"""A stateful property test of the whole API (hypothesis `RuleBasedStateMachine`): sequences of
timer, schedule, destination, bulk, signing-secret and tenant-webhook calls on a real app WITH its
dispatcher and real receivers on 127.0.0.1 (one answering 200, one 503, one 410; and a refused
port), each call made on what earlier calls created; and the same on two instances sharing one
database, the calls going to each in turn (a cancel, an edit or a backfill on one instance while
the other claims; half as many sequences).

The other hunts send one request at a time to a fresh or seeded app; this one reaches the states
only a sequence makes (a timer retried after it failed, replayed after it was delivered, edited
with an ETag a delivery made stale; a schedule paused, edited, triggered and backfilled; a
destination paused or limited while its timers fire; a bulk job over timers changing under it).

Invariants, after every call:
- never a 5xx; every 4xx is the one error envelope, and every answer a status the operation
  documents;
- a timer's status only moves along the state machine (`ALLOWED_TRANSITIONS`, through any number
  of steps between two looks): delivered and cancelled never change again, a 200 to DELETE shows
  cancelled and a 200 to retry shows pending;
- a schedule's status is one of active, paused, ended, and ended never changes again;
and at the end of every sequence: /readyz answers 200 and a canary timer created then still
reaches the receiver (no sequence stopped the engine).

Derandomized and short in `make test` (STATEFUL_EXAMPLES sequences of at most STATEFUL_STEPS
calls, about 20 s); FUZZ_RANDOM=1 draws new sequences, and the two variables make them more and
longer (`make fuzz`: 200 random sequences of up to 80 calls, about 5 minutes). A failing
sequence is reported as found, not shrunk: replayed on a live service whose timers fire by the
clock, a shorter sequence does not fail the same way twice (hypothesis calls that flaky).

Found so far: a backfill racing the claim of its schedule's cursor run deadlocked (500), pinned in
tests/integration/schedules/test_schedule_engine.py.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    multiple,
    rule,
    run_state_machine_as_test,
)

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from task_scheduler.timers.models import ALLOWED_TRANSITIONS, TimerStatus
from tests.support.app_thread import AppThread
from tests.support.receiver import Receiver, always

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "20"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "50"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
ADMIN_KEY = "stateful-admin-key-0123456789abcdef0123456"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
OPENAPI = create_app(Settings.model_construct()).openapi()


def _reachable(status: str) -> frozenset[str]:
    """The statuses a timer in `status` may show at a later look (any number of steps between)."""
    seen = {TimerStatus(status)}
    frontier = [TimerStatus(status)]
    while frontier:
        for following in ALLOWED_TRANSITIONS[frontier.pop()]:
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    return frozenset(s.value for s in seen)


REACHABLE = {s.value: _reachable(s.value) for s in TimerStatus}
SCHEDULE_STATUSES = {"active", "paused", "ended"}
# The statuses a bulk action takes (a filter naming another one is a 422).
BULK_TAKES = {"cancel": {"pending"}, "retry": {"failed", "expired"}, "reschedule": {"pending"}}


class World:
    """The app (dispatcher included) and its receivers, shared by every sequence."""

    def __init__(
        self, app: AppThread, failing: Receiver, gone: Receiver, peers: Sequence[AppThread] = ()
    ) -> None:
        self.app = app
        # Instances on the same database, each with its dispatcher: the calls go to each in turn.
        self.apps = [app, *peers]
        self.instances = itertools.cycle(self.apps)
        # Where a timer may send: 200, 503 (retried, then failed), 410 (failed at once), refused.
        self.targets = {
            "ok": app.receiver.url,
            "unavailable": failing.url,
            "gone": gone.url,
            "refused": "http://127.0.0.1:9/hook",
        }
        self.origins = [f"http://127.0.0.1:{r.port}" for r in (app.receiver, failing, gone)]
        self.canaries = itertools.count(1)
        self.sequences = itertools.count(1)

    def send(self, method: str, template: str, path: str | None = None, **kwargs: Any) -> httpx.Response:
        """The request, checked: never a 5xx, a documented status, 4xx in the envelope."""
        path = path or template
        response = next(self.instances).request(method, path, **kwargs)
        sent = f"{method} {path} {kwargs.get('json')!r}"
        assert response.status_code < 500, f"{sent} -> {response.status_code} {response.text[:1000]}"
        documented = OPENAPI["paths"][template][method.lower()]["responses"]
        assert str(response.status_code) in documented, (
            f"{sent} -> undocumented {response.status_code} {response.text}"
        )
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/json"), (
                f"{sent} -> {response.text}"
            )
            body = response.json()
            assert set(body) == {"error"}, f"{sent} -> {response.text}"
            error = body["error"]
            for part in ("code", "message"):
                assert isinstance(error[part], str), response.text
                assert error[part], response.text
            assert "field" in error, response.text
            assert "Traceback" not in response.text
        return response

    def canary(self) -> None:
        """Nothing stopped the engine: a timer due now still reaches the receiver."""
        number = next(self.canaries)
        created = self.send(
            "POST", "/timer", json={"seconds": 0, "url": f"{self.targets['ok']}/canary/{number}"}
        )
        assert created.status_code == 201, created.text
        timer_id = created.json()["timer_id"]
        assert self.app.wait_delivered(timer_id), f"canary {number} (timer {timer_id}) was not delivered"
        ready = self.app.request("GET", "/readyz")
        assert ready.status_code == 200, ready.text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _ago(seconds: float) -> str:
    return _iso(datetime.now(UTC) - timedelta(seconds=seconds))


targets = st.sampled_from(["ok", "ok", "unavailable", "gone", "refused"])
delays = st.sampled_from([0, 0, 1, 3600])


class ApiMachine(RuleBasedStateMachine):
    """One sequence of calls; `world` is set by the test."""

    world: World

    timers = Bundle("timers")
    schedules = Bundle("schedules")
    jobs = Bundle("jobs")
    secrets = Bundle("secrets")
    subscriptions = Bundle("subscriptions")

    def __init__(self) -> None:
        super().__init__()
        self.tag = f"seq-{next(self.world.sequences)}"
        self.seen: dict[int, str] = {}  # timer id -> the status last shown
        self.schedule_seen: dict[int, str] = {}
        self.secret_ids: set[int] = set()
        self.subscription_ids: set[int] = set()

    # -- checks --------------------------------------------------------------------------------

    def observe(self, timer_id: int, status: str) -> None:
        assert status in REACHABLE, f"timer {timer_id}: unknown status {status!r}"
        before = self.seen.get(timer_id)
        if before is not None:
            assert status in REACHABLE[before], f"timer {timer_id}: {before} -> {status}"
        self.seen[timer_id] = status

    def observe_schedule(self, schedule_id: int, view: dict[str, Any]) -> None:
        assert view["schedule_id"] == schedule_id
        status = view["status"]
        assert status in SCHEDULE_STATUSES, view
        if self.schedule_seen.get(schedule_id) == "ended":
            assert status == "ended", f"schedule {schedule_id}: ended -> {status}"
        self.schedule_seen[schedule_id] = status

    def look(self, timer_id: int) -> httpx.Response:
        """GET /timer/{id}, its status observed."""
        response = self.world.send("GET", "/timer/{timer_id}", f"/timer/{timer_id}")
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["timer_id"] == timer_id
        assert view["time_left"] >= 0
        self.observe(timer_id, view["status"])
        return response

    def timer_fields(self, target: str, delay: int, **extra: Any) -> dict[str, Any]:
        return {
            "seconds": delay,
            "url": self.world.targets[target],
            "labels": {"seq": self.tag},
            "retry": {"max_attempts": 2, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1},
            **extra,
        }

    # -- timers --------------------------------------------------------------------------------

    @rule(target=timers, where=targets, delay=delays, late=st.none() | st.sampled_from([0, 0.5, 60]))
    def create_timer(self, where: str, delay: int, late: float | None) -> int:
        extra = {} if late is None else {"max_lateness_seconds": late}
        response = self.world.send("POST", "/timer", json=self.timer_fields(where, delay, **extra))
        assert response.status_code == 201, response.text
        timer_id: int = response.json()["timer_id"]
        self.look(timer_id)
        return timer_id

    @rule(target=timers, items=st.lists(st.tuples(targets, delays), min_size=1, max_size=3))
    def create_batch(self, items: list[tuple[str, int]]) -> Any:
        body = {"timers": [self.timer_fields(where, delay) for where, delay in items]}
        response = self.world.send("POST", "/timers/batch", json=body)
        assert response.status_code == 201, response.text
        return multiple(*(t["timer_id"] for t in response.json()["timers"]))

    @rule(target=timers, where=targets, key=st.sampled_from(["k1", "k2"]))
    def create_idempotent(self, where: str, key: str) -> Any:
        response = self.world.send(
            "POST",
            "/timer",
            json=self.timer_fields(where, 3600),
            headers={"Idempotency-Key": f"{self.tag}-{key}"},
        )
        # the same key again with another request is refused
        assert response.status_code in (200, 201, 422), response.text
        if response.status_code == 422:
            return multiple()
        return response.json()["timer_id"]

    @rule(timer=timers)
    def get_timer(self, timer: int) -> None:
        self.look(timer)

    @rule(timer=timers)
    def cancel(self, timer: int) -> None:
        response = self.world.send("DELETE", "/timer/{timer_id}", f"/timer/{timer}")
        assert response.status_code in (200, 409), response.text
        if response.status_code == 200:
            assert response.json()["status"] == "cancelled", response.text
            self.observe(timer, "cancelled")
        self.look(timer)

    @rule(
        timer=timers,
        stale=st.booleans(),
        change=st.sampled_from(["later", "now", "labels", "url", "cutoff", "nothing"]),
    )
    def edit(self, timer: int, stale: bool, change: str) -> None:
        before = self.look(timer)
        etag = '"1"' if stale else before.headers["etag"]
        fields: dict[str, Any] = {
            "later": {"seconds": 3600},
            "now": {"seconds": 0},
            "labels": {"labels": {"seq": self.tag, "edited": "yes"}},
            "url": {"url": self.world.targets["ok"]},
            "cutoff": {"deliver_before": _ago(1)},
            "nothing": {},
        }[change]
        response = self.world.send(
            "PATCH", "/timer/{timer_id}", f"/timer/{timer}", json=fields, headers={"If-Match": etag}
        )
        assert response.status_code in (200, 409, 412, 422), f"{before.text}: {response.text}"
        if response.status_code == 200:
            self.observe(timer, response.json()["status"])
        self.look(timer)

    @rule(timer=timers)
    def retry(self, timer: int) -> None:
        response = self.world.send("POST", "/timer/{timer_id}/retry", f"/timer/{timer}/retry")
        assert response.status_code in (200, 409), response.text
        if response.status_code == 200:
            assert response.json()["status"] == "pending", response.text
            self.observe(timer, "pending")
        self.look(timer)

    @rule(timer=timers, when=st.sampled_from([None, 0, 3600, "past"]))
    def replay(self, timer: int, when: int | str | None) -> None:
        """The copy is looked at (here and at the end), not used further: whether there is one
        depends on the clock, and what the bundles hold must depend on the draws alone."""
        body: dict[str, Any] = {}
        if when == "past":
            body = {"fire_at": _ago(60)}
        elif when is not None:
            body = {"delay_seconds": when}
        response = self.world.send("POST", "/timer/{timer_id}/replay", f"/timer/{timer}/replay", json=body)
        assert response.status_code in (201, 409), response.text
        self.look(timer)
        if response.status_code == 201:
            copy: dict[str, Any] = response.json()
            assert copy["replay_of"] == timer, copy
            self.observe(copy["timer_id"], copy["status"])

    @rule(timer=timers)
    def attempts(self, timer: int) -> None:
        response = self.world.send("GET", "/timer/{timer_id}/attempts", f"/timer/{timer}/attempts")
        assert response.status_code == 200, response.text
        numbers = [a["attempt"] for a in response.json()["attempts"]]
        assert all(n >= 1 for n in numbers), numbers

    @rule(status=st.none() | st.sampled_from([s.value for s in TimerStatus]))
    def list_timers(self, status: str | None) -> None:
        params = {"label": f"seq:{self.tag}", **({} if status is None else {"status": status})}
        response = self.world.send("GET", "/timers", params=params)
        assert response.status_code == 200, response.text
        for shown in response.json()["timers"]:
            assert status is None or shown["status"] == status, shown
            if shown["timer_id"] in self.seen:
                self.observe(shown["timer_id"], shown["status"])

    # -- schedules -----------------------------------------------------------------------------

    @rule(
        target=schedules,
        cron=st.sampled_from(["@every 1s", "@every 2s", "* * * * * *", "0 9 * * *", "*/3 * * * * *"]),
        where=targets,
        overlap=st.sampled_from(["allow", "skip", "buffer_one"]),
        catchup=st.sampled_from(["latest", "all", "none"]),
        max_runs=st.none() | st.sampled_from([1, 3]),
        start=st.sampled_from([None, "past", "future"]),
    )
    def create_schedule(
        self, cron: str, where: str, overlap: str, catchup: str, max_runs: int | None, start: str | None
    ) -> int:
        body: dict[str, Any] = {
            "cron": cron,
            "url": self.world.targets[where],
            "overlap": overlap,
            "catchup": catchup,
            "labels": {"seq": self.tag},
            "retry": {"max_attempts": 2, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1},
        }
        if max_runs is not None:
            body["max_runs"] = max_runs
        if start == "past":
            body["start_at"] = _ago(30)
        elif start == "future":
            body["start_at"] = _ago(-3)
        response = self.world.send("POST", "/schedules", json=body)
        assert response.status_code == 201, response.text
        view = response.json()
        self.observe_schedule(view["schedule_id"], view)
        schedule_id: int = view["schedule_id"]
        return schedule_id

    def schedule_call(
        self, method: str, suffix: str, schedule: int, allowed: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response:
        template = "/schedules/{schedule_id}" + suffix
        response = self.world.send(method, template, f"/schedules/{schedule}{suffix}", **kwargs)
        assert response.status_code in allowed, response.text
        return response

    def look_schedule(self, schedule: int) -> dict[str, Any]:
        response = self.schedule_call("GET", "", schedule, (200,))
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        self.observe_schedule(schedule, view)
        return view

    @rule(schedule=schedules)
    def get_schedule(self, schedule: int) -> None:
        self.look_schedule(schedule)

    @rule(schedule=schedules, action=st.sampled_from(["pause", "resume"]))
    def pause_or_resume(self, schedule: int, action: str) -> None:
        response = self.schedule_call("POST", f"/{action}", schedule, (200, 409))
        if response.status_code == 200:
            view = response.json()
            self.observe_schedule(schedule, view)
            assert (
                view["status"] == ("paused" if action == "pause" else "active") or view["status"] == "ended"
            )
        self.look_schedule(schedule)

    @rule(schedule=schedules)
    def trigger(self, schedule: int) -> None:
        response = self.schedule_call("POST", "/trigger", schedule, (201, 409))
        if response.status_code == 201:
            run = response.json()
            self.observe(run["timer_id"], run["status"])

    @rule(schedule=schedules, span=st.sampled_from([5, 120, 7200]))
    def backfill(self, schedule: int, span: int) -> None:
        body = {"from": _ago(span), "to": _ago(1)}
        response = self.schedule_call("POST", "/backfill", schedule, (201, 409, 422), json=body)
        if response.status_code == 201:
            for run in response.json()["runs"]:
                self.observe(run["timer_id"], run["status"])

    @rule(
        schedule=schedules,
        stale=st.booleans(),
        change=st.sampled_from(["cron", "url", "labels", "max_runs", "end"]),
    )
    def edit_schedule(self, schedule: int, stale: bool, change: str) -> None:
        got = self.schedule_call("GET", "", schedule, (200,))
        etag = '"1"' if stale else got.headers["etag"]
        fields: dict[str, Any] = {
            "cron": {"cron": "@every 3s"},
            "url": {"url": self.world.targets["ok"]},
            "labels": {"labels": {"seq": self.tag, "edited": "yes"}},
            "max_runs": {"max_runs": 1},
            "end": {"end_at": _ago(-2)},
        }[change]
        response = self.schedule_call(
            "PATCH", "", schedule, (200, 409, 412, 422), json=fields, headers={"If-Match": etag}
        )
        if response.status_code == 200:
            self.observe_schedule(schedule, response.json())

    @rule(schedule=schedules)
    def runs(self, schedule: int) -> None:
        response = self.schedule_call("GET", "/runs", schedule, (200,))
        for run in response.json()["runs"]:
            self.observe(run["timer_id"], run["status"])

    @rule(schedule=schedules, cancel_pending=st.booleans())
    def end_schedule(self, schedule: int, cancel_pending: bool) -> None:
        response = self.schedule_call(
            "DELETE", "", schedule, (200,), params={"cancel_pending": str(cancel_pending).lower()}
        )
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["status"] == "ended", view
        self.observe_schedule(schedule, view)

    # -- destinations --------------------------------------------------------------------------

    @rule(
        origin=st.integers(0, 2),
        change=st.sampled_from(
            [
                {"paused": True},
                {"paused": False},
                {"rate_per_second": 0.5, "burst": 1},
                {"rate_per_second": 100},
                {"parallelism": 1},
                {"rate_per_second": None, "parallelism": None},
                {},
            ]
        ),
    )
    def put_destination(self, origin: int, change: dict[str, Any]) -> None:
        key = quote(self.world.origins[origin], safe="")
        response = self.world.send("PUT", "/destinations/{key}", f"/destinations/{key}", json=change)
        assert response.status_code == (200 if change else 422), response.text
        if "paused" in change:
            assert response.json()["paused"] is change["paused"], response.text

    @rule(origin=st.integers(0, 2))
    def resume_destination(self, origin: int) -> None:
        key = quote(self.world.origins[origin], safe="")
        response = self.world.send("POST", "/destinations/{key}/resume", f"/destinations/{key}/resume")
        assert response.status_code in (200, 404), response.text

    @rule(origin=st.integers(0, 2))
    def get_destination(self, origin: int) -> None:
        key = quote(self.world.origins[origin], safe="")
        response = self.world.send("GET", "/destinations/{key}", f"/destinations/{key}")
        assert response.status_code in (200, 404), response.text
        listed = self.world.send("GET", "/destinations")
        assert listed.status_code == 200, listed.text

    # -- bulk actions --------------------------------------------------------------------------

    @rule(
        target=jobs,
        action=st.sampled_from(["cancel", "retry", "reschedule"]),
        status=st.none() | st.sampled_from(["pending", "failed", "delivered"]),
        offset=st.sampled_from([-3600, 1, 3600]),
        dry_run=st.booleans(),
    )
    def bulk(self, action: str, status: str | None, offset: int, dry_run: bool) -> Any:
        filter_: dict[str, Any] = {"labels": {"seq": self.tag}}
        if status is not None:
            filter_["status"] = status
        body: dict[str, Any] = {"action": action, "filter": filter_, "dry_run": dry_run}
        if action == "reschedule":
            body["offset_seconds"] = offset
        response = self.world.send("POST", "/timers/bulk", json=body)
        if status is not None and status not in BULK_TAKES[action]:
            assert response.status_code == 422, response.text
            assert response.json()["error"]["field"] == "filter.status", response.text
            return None
        assert response.status_code == (200 if dry_run else 202), response.text
        return None if dry_run else response.json()["job_id"]

    @rule(job=jobs)
    def get_job(self, job: int | None) -> None:
        if job is None:  # a dry run's
            return
        response = self.world.send("GET", "/timers/bulk/{job_id}", f"/timers/bulk/{job}")
        assert response.status_code == 200, response.text
        assert response.json()["state"] in ("queued", "running", "done", "failed", "cancelled"), response.text

    @rule(job=consumes(jobs))
    def cancel_job(self, job: int | None) -> None:
        if job is None:
            return
        response = self.world.send("DELETE", "/timers/bulk/{job_id}", f"/timers/bulk/{job}")
        assert response.status_code in (200, 409), response.text

    # -- the tenant: signing secrets and operational webhooks ------------------------------------

    @rule(target=secrets)
    def add_secret(self) -> int | None:
        """None when the tenant has its most (409); what the bundle holds depends on the draws."""
        response = self.world.send("POST", "/tenant/secrets")
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:
            return None
        secret_id: int = response.json()["secret_id"]
        self.secret_ids.add(secret_id)
        return secret_id

    @rule(secret=consumes(secrets))
    def remove_secret(self, secret: int | None) -> None:
        if secret is None:
            return
        self.secret_ids.discard(secret)
        response = self.world.send("DELETE", "/tenant/secrets/{secret_id}", f"/tenant/secrets/{secret}")
        assert response.status_code in (204, 404), response.text

    @rule(
        target=subscriptions,
        events=st.sampled_from([["timer.failed"], ["timer.failed", "timer.expired"], ["destination.opened"]]),
    )
    def subscribe(self, events: list[str]) -> int:
        body = {"url": f"{self.world.targets['ok']}/events", "events": events}
        response = self.world.send("POST", "/tenant/webhooks", json=body)
        assert response.status_code == 201, response.text
        webhook_id: int = response.json()["webhook_id"]
        self.subscription_ids.add(webhook_id)
        return webhook_id

    @rule(subscription=consumes(subscriptions))
    def unsubscribe(self, subscription: int) -> None:
        self.subscription_ids.discard(subscription)
        response = self.world.send(
            "DELETE", "/tenant/webhooks/{webhook_id}", f"/tenant/webhooks/{subscription}"
        )
        assert response.status_code in (204, 404), response.text

    # -- the end of a sequence -----------------------------------------------------------------

    def teardown(self) -> None:
        """Every timer looked at once more, what the sequence set up for the tenant undone (no
        series, secret or subscription outlives it), the destinations opened again, the canary."""
        for timer_id in list(self.seen):
            self.look(timer_id)
        for schedule_id in list(self.schedule_seen):
            self.end_schedule(schedule_id, cancel_pending=True)
        for secret_id in sorted(self.secret_ids):
            self.remove_secret(secret_id)
        for webhook_id in sorted(self.subscription_ids):
            self.unsubscribe(webhook_id)
        for origin in self.world.origins:
            key = quote(origin, safe="")
            self.world.send(
                "PUT",
                "/destinations/{key}",
                f"/destinations/{key}",
                json={"paused": False, "rate_per_second": None, "parallelism": None},
            )
        self.world.canary()


@pytest.fixture(params=[1, 2], ids=["one-instance", "two-instances"])
def world(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Iterator[World]:
    """The service, or two instances of it on one database (each call to the next one in turn:
    a cancel, an edit or a backfill on one while the other claims)."""
    apps = [
        AppThread(
            make_settings(
                admin_api_key=ADMIN_KEY,
                rate_limit_per_second=0,
                breaker_cooldown_seconds=0.5,
                instance_id=f"stateful-{number}",
            ),
            headers=AUTH,
        )
        for number in range(request.param)
    ]
    failing, gone = Receiver(respond=always(503)), Receiver(respond=always(410))
    for app in apps:
        app.start()
    try:
        for receiver in (failing, gone):
            apps[0].run(receiver.start())
        yield World(apps[0], failing, gone, peers=apps[1:])
    finally:
        for receiver in (failing, gone):
            apps[0].run(receiver.stop())
        for app in apps:
            app.stop()


def test_api_sequences_keep_every_invariant(world: World) -> None:
    class Machine(ApiMachine):
        pass

    Machine.world = world
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES if len(world.apps) == 1 else max(1, EXAMPLES // 2),
            stateful_step_count=STEPS,
            derandomize=not RANDOM,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            phases=[Phase.explicit, Phase.generate],
        ),
    )
