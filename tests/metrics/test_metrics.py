"""GET /metrics: access, §12's metrics with their types, labels only from config, and workers."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from imagegate import metrics
from tests.admin.helpers import wait_for_log
from tests.billing.accounts import PRICED_DEMO
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, openai_channel
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.serve_process import ServeProcess

# §12's metrics and their types. The parser names a counter family without its `_total`.
EXPECTED = {
    "imagegate_requests": "counter",
    "imagegate_request_duration_seconds": "histogram",
    "imagegate_time_to_first_byte_seconds": "histogram",
    "imagegate_upstream_attempts": "counter",
    "imagegate_channel_up": "gauge",
    "imagegate_images": "counter",
    "imagegate_cost_usd": "counter",
    "imagegate_in_flight_requests": "gauge",
    "imagegate_tasks": "gauge",
}


def scrape(url: str, key: str | None = ADMIN_KEY) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str, name: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    return sum(s.value for s in samples(text, name) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_every_spec_metric_is_there_with_its_type_after_traffic(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**PRICED_DEMO)  # demo ships free; a price makes the cost metric move
    before = scrape(gateway.url)
    client = gateway.client()
    raw = client.images.with_raw_response.generate(model="demo", prompt="a fox", size="1024x1024", n=2)
    raw.parse()
    client.models.list()
    httpx.get(f"{gateway.url}/files/20200101/{'0' * 64}.png")
    task = httpx.post(
        f"{gateway.url}/v1/images/generations/async",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Prefer": "wait=30"},
        json={"model": "demo", "prompt": "a fox", "size": "1024x1024"},
        timeout=60,
    )
    assert task.status_code == 200 and task.json()["status"] == "completed"
    charged = float(wait_for_log(gateway, raw.headers["x-request-id"])["cost_usd"])
    charged += float(wait_for_log(gateway, task.json()["id"])["cost_usd"])

    text = scrape(gateway.url)
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, kind in EXPECTED.items():
        assert types.get(name) == kind, name

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("imagegate_requests_total", endpoint="images.generations", model="demo", status="200") == 1
    assert delta("imagegate_requests_total", endpoint="models", status="200", model="none") == 1
    assert delta("imagegate_requests_total", endpoint="files", status="404") == 1
    assert delta("imagegate_request_duration_seconds_count", endpoint="images.generations") == 1
    assert delta("imagegate_time_to_first_byte_seconds_count", endpoint="images.generations") == 1
    # The task's run counts too, though no HTTP request carries it.
    assert delta("imagegate_upstream_attempts_total", channel="demo", outcome="success") == 2
    assert delta("imagegate_images_total", model="demo") == 3  # the request's n, and the task's
    assert charged > 0
    assert delta("imagegate_cost_usd_total", model="demo") == pytest.approx(charged)
    assert value(text, "imagegate_channel_up", channel="demo") == 1
    assert value(text, "imagegate_tasks", status="completed") == 1  # counted from the database
    assert value(text, "imagegate_tasks", status="queued") == 0
    # The scrape itself is in flight while the body is made.
    assert value(text, "imagegate_in_flight_requests") >= 1


def test_label_values_never_come_from_the_client(gateway: LiveGateway) -> None:
    scrape(gateway.url)  # the middleware has seen the catalog
    probe = f"zz{secrets.token_hex(8)}"
    with pytest.raises(openai.NotFoundError):
        gateway.client().images.generate(model=probe, prompt="x")
    httpx.get(f"{gateway.url}/v1/{probe}")
    httpx.get(f"{gateway.url}/files/{probe}/x.png")
    metrics.record_images(probe, 1)
    metrics.record_images("demo", 1)
    metrics.record_cost(probe, 1)
    metrics.record_upstream_attempt(probe, None)
    metrics.set_channel_up(probe, True)
    text = scrape(gateway.url)
    assert probe not in text
    assert value(text, "imagegate_images_total", model="unknown") >= 1
    assert value(text, "imagegate_requests_total", endpoint="other", status="404") >= 1


def test_metrics_need_an_admin_key_unless_public(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    user_key = gateway.create_key("viewer")
    refused = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {user_key}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    public = make_gateway(metrics_public=True)
    assert "imagegate_requests_total" in scrape(public.url, key=None)


@pytest.mark.slow
def test_two_workers_report_the_sum_of_both(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")  # must be cleaned away
    server = ServeProcess(
        {"IMAGEGATE_ADMIN_KEY": ADMIN_KEY, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        tmp_path / "data",
        workers=2,
    )
    try:
        server.wait_ready()
        # New connections spread over both workers; keep going until both have answered some.
        sent = 0
        deadline = time.monotonic() + 60
        while len({path.name.split("_")[-1] for path in folder.glob("counter_*.db")}) < 2:
            assert time.monotonic() < deadline, "requests never reached the second worker"
            for _ in range(10):
                assert httpx.get(f"{server.url}/healthz").status_code == 200
                sent += 1
        # A worker writes counter_<pid>.db on its first request: both answered some, so only the
        # sum over both workers reaches every request sent (plus wait_ready's one /readyz).
        text = scrape(server.url)
        assert value(text, "imagegate_requests_total", endpoint="health", status="200") == sent + 1
    finally:
        server.stop()


def test_a_failing_channel_counts_its_attempts_and_goes_down(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gateway = make_gateway(
        breaker_failures=1,
        channels=[openai_channel(upstream, ["gpt-image-2"], timeout_s=10)],
    )
    before = scrape(gateway.url)
    assert value(before, "imagegate_channel_up", channel="fake-openai") == 1
    upstream.fail_status = 500
    with pytest.raises(openai.APIStatusError):
        gateway.client().images.generate(model="gpt-image-2", prompt="fox")
    text = scrape(gateway.url)
    name = "imagegate_upstream_attempts_total"
    failed = value(text, name, channel="fake-openai", outcome="upstream_error")
    assert failed - value(before, name, channel="fake-openai", outcome="upstream_error") == 1
    assert value(text, "imagegate_channel_up", channel="fake-openai") == 0
    assert value(text, "imagegate_channel_up", channel="demo") == 1
