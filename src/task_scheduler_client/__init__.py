"""The Python client of the Task Scheduler Service: timers, recurring schedules, API keys and
signing secrets over its HTTP API, and `verify_webhook` for the receivers of its webhooks.

    from datetime import timedelta
    from task_scheduler_client import Client

    with Client("http://127.0.0.1:8080", api_key="tsk_...") as api:
        created = api.create_timer(url="https://example.com/hook", delay=timedelta(minutes=5))
        for timer in api.list_timers(status="pending"):
            print(timer.timer_id, timer.due_at)

`AsyncClient` has the same methods for asyncio. Needs only httpx and pydantic. The modules are
private; what is public is named here.
"""

from __future__ import annotations

from task_scheduler_client._client import AsyncClient, Client
from task_scheduler_client._core import (
    DEFAULT_URL,
    MAX_PAGE_SIZE,
    ClientOptions,
    ScheduleChangeFields,
    ScheduleFields,
    ScheduleQuery,
    TimerChangeFields,
    TimerFields,
    TimerQuery,
    new_timer,
)
from task_scheduler_client._errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TaskSchedulerError,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    ValidationFailed,
    WebhookVerificationError,
)
from task_scheduler_client._models import (
    AttemptView,
    BackfillCreated,
    BulkAction,
    BulkCount,
    BulkFilter,
    BulkJob,
    BulkState,
    Catchup,
    EffectiveRetryPolicy,
    FieldProblem,
    HttpMethod,
    KeyCreated,
    KeyView,
    NewSchedule,
    NewTimer,
    NextRun,
    Overlap,
    RetryPolicy,
    Role,
    RunPage,
    RunView,
    ScheduleChanges,
    SchedulePage,
    ScheduleStatus,
    ScheduleView,
    SecretCreated,
    SecretView,
    TimerBatchCreated,
    TimerChanges,
    TimerCreated,
    TimerPage,
    TimerStatus,
    TimerView,
)
from task_scheduler_client._webhooks import verify_webhook

__all__ = [
    "DEFAULT_URL",
    "MAX_PAGE_SIZE",
    "ApiError",
    "AsyncClient",
    "AttemptView",
    "BackfillCreated",
    "BulkAction",
    "BulkCount",
    "BulkFilter",
    "BulkJob",
    "BulkState",
    "Catchup",
    "Client",
    "ClientOptions",
    "Conflict",
    "EffectiveRetryPolicy",
    "FieldProblem",
    "Forbidden",
    "HttpMethod",
    "KeyCreated",
    "KeyView",
    "NewSchedule",
    "NewTimer",
    "NextRun",
    "NotFound",
    "Overlap",
    "PreconditionFailed",
    "RateLimited",
    "RetryPolicy",
    "Role",
    "RunPage",
    "RunView",
    "ScheduleChangeFields",
    "ScheduleChanges",
    "ScheduleFields",
    "SchedulePage",
    "ScheduleQuery",
    "ScheduleStatus",
    "ScheduleView",
    "SecretCreated",
    "SecretView",
    "TaskSchedulerError",
    "TimerBatchCreated",
    "TimerChangeFields",
    "TimerChanges",
    "TimerCreated",
    "TimerFields",
    "TimerPage",
    "TimerQuery",
    "TimerStatus",
    "TimerView",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "ValidationFailed",
    "WebhookVerificationError",
    "new_timer",
    "verify_webhook",
]
