"""What a key may do, end to end on SQLite and PostgreSQL: models, expiry, enabled, IPs, rate limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import openai
import pytest

from tests.billing.accounts import PRICED_DEMO, make_group, make_key, update_key
from tests.conftest import GatewayFactory, LiveGateway
from tests.db.conftest import database_url

__all__ = ["database_url"]  # the module-scoped SQLite/PostgreSQL fixture, used by every test here


@pytest.fixture
def gw(make_gateway: GatewayFactory, database_url: str) -> LiveGateway:
    return make_gateway(database_url=database_url, **PRICED_DEMO)


def generate(gateway: LiveGateway, secret: str, model: str = "demo") -> None:
    gateway.client(secret).images.generate(model=model, prompt="a red fox")


def test_a_model_the_key_may_not_use_is_403(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url, models=["gpt-image-1"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        generate(gw, secret)
    assert caught.value.code == "model_not_allowed"


def test_a_model_the_group_may_not_use_is_403_on_images_and_chat(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    make_group(url, "images-only", models=["gpt-image-1"])
    _, secret = make_key(url, group="images-only")
    with pytest.raises(openai.PermissionDeniedError):
        generate(gw, secret)
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(secret).chat.completions.create(
            model="demo-chat", messages=[{"role": "user", "content": "a fox"}]
        )


def test_key_and_group_model_lists_combine(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    make_group(url, "demo-team", models=["demo", "demo-chat", "gpt-image-1"])
    _, secret = make_key(url, group="demo-team", models=["demo", "gpt-image-2"])
    generate(gw, secret)
    listed = {model.id for model in gw.client(secret).models.list()}
    assert "demo" in listed and "gpt-image-2" not in listed and "demo-chat" not in listed


def test_an_expired_key_is_401(gw: LiveGateway) -> None:
    _, secret = make_key(
        gw.settings.resolved_database_url, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        generate(gw, secret)
    assert caught.value.code == "api_key_expired"


def test_a_disabled_key_stops_working_within_the_cache_ttl(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url)
    gw.client(secret).models.list()
    update_key(url, key.id, enabled=False)
    deadline = time.monotonic() + 10
    while True:
        try:
            gw.client(secret).models.list()
        except openai.AuthenticationError as error:
            assert error.code == "api_key_disabled"
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    update_key(url, key.id, enabled=True)
    time.sleep(gw.settings.key_cache_ttl_s + 0.1)
    gw.client(secret).models.list()


@pytest.mark.parametrize(("allowlist", "allowed"), [(["10.0.0.0/8", "::1"], False), (["127.0.0.0/8"], True)])
def test_the_ip_allowlist(gw: LiveGateway, allowlist: list[str], allowed: bool) -> None:
    _, secret = make_key(gw.settings.resolved_database_url, ip_allowlist=allowlist)
    if allowed:
        generate(gw, secret)
        return
    with pytest.raises(openai.PermissionDeniedError) as caught:
        generate(gw, secret)
    assert caught.value.code == "ip_not_allowed"


def test_the_key_rpm_limit_is_429_with_retry_after(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url, rpm=2)
    client = gw.client(secret)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_the_group_rpm_applies_to_keys_without_their_own(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    make_group(url, "slow", rpm=1)
    _, grouped = make_key(url, group="slow")
    _, own = make_key(url, group="slow", rpm=5)
    gw.client(grouped).models.list()
    with pytest.raises(openai.RateLimitError):
        gw.client(grouped).models.list()
    for _ in range(3):
        gw.client(own).models.list()
