"""OpenTelemetry traces: off (no-op) without an endpoint; spans for requests, nested, when on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imagegate import tracing
from tests.conftest import LiveGateway

sdk = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


@pytest.fixture
def exporter() -> Iterator[object]:
    memory = sdk.InMemorySpanExporter()
    assert tracing.setup(exporter=memory)
    yield memory
    tracing.shutdown()


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert not tracing.setup()
    with tracing.span("nothing", model="demo"):
        pass


def test_spans_nest_and_each_request_has_one(exporter: object, gateway: LiveGateway) -> None:
    with tracing.span("outer", model="demo"), tracing.span("inner", channel="demo"):
        pass
    gateway.client().images.generate(model="demo", prompt="fox", size="1024x1024")
    spans = {span.name: span for span in exporter.get_finished_spans()}  # type: ignore[attr-defined]
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert spans["inner"].attributes["channel"] == "demo"
    assert spans["images.generations"].attributes["http.method"] == "POST"


def test_a_request_traces_route_then_routing_attempt_then_provider(
    exporter: object, gateway: LiveGateway
) -> None:
    gateway.client().images.generate(model="demo", prompt="fox", size="1024x1024")
    spans = {span.name: span for span in exporter.get_finished_spans()}  # type: ignore[attr-defined]
    route, attempt, call = spans["images.generations"], spans["routing.attempt"], spans["provider"]
    assert attempt.parent.span_id == route.context.span_id
    assert call.parent.span_id == attempt.context.span_id
    assert (attempt.attributes["channel"], call.attributes["provider"]) == ("demo", "demo")
    assert attempt.context.trace_id == route.context.trace_id == call.context.trace_id
