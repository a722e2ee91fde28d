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


#: What ``span`` gives when tracing is off: one shared no-op, so a request builds nothing.
_NO_SPAN = contextlib.nullcontext()


def span(name: str, **attributes: str | int | float | bool) -> contextlib.AbstractContextManager[Any]:
    """A span around the block, child of the current one; nothing at all when tracing is off."""
    if _tracer is None:
        return _NO_SPAN
    manager: contextlib.AbstractContextManager[Any] = _tracer.start_as_current_span(
        name, attributes=attributes
    )
    return manager


class OpenSpan:
    """A span started now and ended by hand, never made the current one.

    Async generators (a routing attempt, a provider's stream) resume in whatever task consumes
    them; a span attached to the context there could not be detached cleanly. These spans take
    their parent when they start and are ended explicitly instead.
    """

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def child(self, name: str, **attributes: str | int | float | bool) -> OpenSpan:
        if self._span is None or _tracer is None:
            return _OFF
        from opentelemetry import trace

        parent = trace.set_span_in_context(self._span)
        return OpenSpan(_tracer.start_span(name, context=parent, attributes=attributes))

    def end(self, error: str | None = None) -> None:
        if self._span is None:
            return
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()


_OFF = OpenSpan()


def start(name: str, **attributes: str | int | float | bool) -> OpenSpan:
    """An :class:`OpenSpan`, child of the current span; a no-op when tracing is off."""
    if _tracer is None:
        return _OFF
    return OpenSpan(_tracer.start_span(name, attributes=attributes))
