"""Property-based requests from the OpenAPI documents of /v1 and /admin: no input makes a 500.

Schemathesis generates bodies, paths and query strings from each operation's schema (valid ones
and, in its coverage phase, near-misses) and sends them to a live gateway with the demo provider.
Bounded: at most 25 generated examples per operation, derandomized (the same cases every run).
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from imagegate.api.admin import admin_openapi_schema
from imagegate.api.openapi_v1 import v1_openapi
from imagegate.app import create_app
from imagegate.settings import load_settings
from tests.conftest import ADMIN_KEY, LiveGateway, ServerThread, free_port

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
BOUNDED = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    port = free_port()
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    gateway_settings = load_settings(data_dir=data_dir, port=port, admin_key=ADMIN_KEY, log_level="WARNING")
    server = ServerThread(create_app(gateway_settings), port)
    server.start()
    yield LiveGateway(settings=gateway_settings, url=f"http://127.0.0.1:{port}")
    server.stop()


def _document(gateway: LiveGateway, path: str) -> dict[str, Any]:
    response = requests.get(f"{gateway.url}{path}", timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _aim_at_demo_models(document: dict[str, Any]) -> dict[str, Any]:
    """Generated model names would all be unknown (a 404 before any real work): name the demo models
    (and one unknown), so requests reach the pipeline; keep n small so a run stays seconds long."""
    document = copy.deepcopy(document)
    for name in ("ImageFields", "JsonEditBody", "ChatCompletionBody"):
        properties = document["components"]["schemas"][name]["properties"]
        properties["model"] = {"enum": ["demo", "demo-chat", "no-such-model"]}
        properties["n"] = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 2}, {"type": "null"}]}
    return document


def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """The documents the gateway serves, built from the code (schemathesis needs them at import)."""
    app = create_app(load_settings(data_dir=Path(tempfile.gettempdir()) / "imagegate-openapi-only"))
    return v1_openapi(), admin_openapi_schema(app)


V1_DOCUMENT, ADMIN_DOCUMENT = _documents()
v1 = schemathesis.openapi.from_dict(_aim_at_demo_models(V1_DOCUMENT))
admin = schemathesis.openapi.from_dict(ADMIN_DOCUMENT)


def test_the_served_documents_are_the_tested_ones(live: LiveGateway) -> None:
    assert _document(live, "/v1/openapi.json") == json.loads(json.dumps(V1_DOCUMENT))
    assert _document(live, "/admin/openapi.json") == json.loads(json.dumps(ADMIN_DOCUMENT))


@pytest.mark.slow  # the demo provider really draws the images: up to ~10 s for an operation
@v1.parametrize()
@BOUNDED
def test_v1_never_answers_500(case: Any, live: LiveGateway) -> None:
    case.call_and_validate(base_url=live.url, headers=AUTH, checks=[not_a_server_error], timeout=60)


@admin.parametrize()
@BOUNDED
def test_admin_never_answers_500(case: Any, live: LiveGateway) -> None:
    case.call_and_validate(base_url=live.url, headers=AUTH, checks=[not_a_server_error], timeout=60)
