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
_provider: Any = None


def setup(service_name: str = "imagegate", exporter: Any = None) -> bool:
    """Start exporting spans when the extra is installed and an OTLP endpoint is set.

    ``exporter`` (an OpenTelemetry ``SpanExporter``) replaces OTLP, e.g. an in-memory one in tests.
    The provider is this module's own, not the global one, so nothing else in the process changes.
    """
    global _tracer, _provider
    if _tracer is not None:
        return True
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor: Any = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = SimpleSpanProcessor(exporter)
    except ImportError:
        return False
    _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("imagegate")
    return True


def shutdown() -> None:
    """Flush and stop exporting; spans are no-ops again."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextlib.contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[None]:
    """A span around the block, child of the current one; nothing at all when tracing is off."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield
