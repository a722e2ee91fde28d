"""Optional OpenTelemetry traces: route → routing attempt → provider, exported over OTLP.

Installed with ``pip install 'imagegate[otel]'`` and switched on by the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable. Without the extra (or the variable) every call here is
a no-op costing one branch, so callers never check.

    from imagegate import tracing
    with tracing.span("routing.attempt", channel=channel.name, model=model):
        ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_tracer: Any = None


def setup(service_name: str = "imagegate") -> bool:
    """Start exporting spans when the extra is installed and an OTLP endpoint is set."""
    global _tracer
    if _tracer is not None:
        return True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("imagegate")
    return True


@contextlib.contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[None]:
    """A span around the block, child of the current one; nothing at all when tracing is off."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield
