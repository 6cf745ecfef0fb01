"""OpenTelemetry traces, off unless the OTEL_* settings turn them on (README "Tracing").

`traceparent` is plain W3C Trace Context (no OpenTelemetry import); `otel` builds the tracer, the
server spans and the delivery spans, and is imported only when tracing is on.
"""
