"""Tracing turned on the way an operator does it: `task-scheduler serve` with the standard OTEL_*
variables in its environment, a real OTLP receiver and a real webhook receiver; SIGTERM flushes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from tests.support.otlp_receiver import OtlpReceiver
from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver, headers_of, running

pytestmark = pytest.mark.acceptance

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


async def test_the_otel_environment_turns_tracing_on(
    spawn: Callable[..., ServiceProcess], receiver: Receiver
) -> None:
    async with running(OtlpReceiver()) as otlp:
        proc = spawn(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp.port}",
            OTEL_SERVICE_NAME="scheduler-under-test",
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        )
        await proc.wait_ready()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{proc.base_url}/timer",
                json={"seconds": 0, "url": receiver.url},
                headers={"traceparent": TRACEPARENT},
            ) as response,
        ):
            assert response.status == 201, await response.text()
            timer_id = (await response.json())["timer_id"]
        assert await receiver.wait_for(lambda: receiver.counts()[timer_id] == 1, within=15)
        # Graceful: the batch processor exports what it holds (to a receiver on this event loop,
        # so the wait runs in a thread).
        assert await asyncio.to_thread(proc.terminate) == 0

    sent = headers_of(receiver.deliveries[0])["traceparent"]
    (delivery,) = [s for s in otlp.spans if s.kind == "client"]
    assert sent == f"00-{TRACE}-{delivery.span_id}-01"
    (create,) = otlp.named("POST /timer")
    assert (create.trace_id, delivery.parent_span_id) == (TRACE, create.span_id)
    assert create.resource["service.name"] == "scheduler-under-test"
    assert set(otlp.content_encodings) == {"gzip"}  # the SDK read OTEL_EXPORTER_OTLP_COMPRESSION
