"""A lean OTLP/HTTP trace sink in its own process, standing in for a collector: `POST /v1/traces`
(protobuf, plain or gzip) is decoded and its spans counted, then answered 200; `GET /count` returns
how many spans arrived.

    python -m bench.otlp_sink --port 4318
"""

from __future__ import annotations

import argparse
import gzip

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
_GZIP_MAGIC = b"\x1f\x8b"
_OK = ExportTraceServiceResponse().SerializeToString()


def application() -> web.Application:
    spans = 0

    async def export(request: web.Request) -> web.Response:
        nonlocal spans
        raw = await request.read()
        if raw[:2] == _GZIP_MAGIC:  # (aiohttp inflates a gzip Content-Encoding itself)
            raw = gzip.decompress(raw)
        message = ExportTraceServiceRequest()
        message.ParseFromString(raw)
        spans += sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)
        return web.Response(body=_OK, content_type=PROTOBUF)

    async def count(_request: web.Request) -> web.Response:
        return web.Response(text=str(spans))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", export)
    app.router.add_get("/count", count)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(application(), host="127.0.0.1", port=args.port, access_log=None, print=lambda _: None)


if __name__ == "__main__":
    main()
