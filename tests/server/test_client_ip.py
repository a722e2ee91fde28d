"""Client IPs: forwarded headers are believed only from IMAGEGATE_TRUSTED_PROXIES (SPEC §12).

A key's IP allowlist is only as good as the address it is checked against. uvicorn's default
believes X-Forwarded-For from 127.0.0.1, so behind any same-host proxy that passes headers
through, a client could name its own address.
"""

from __future__ import annotations

import pytest
import requests

from imagegate.api.client_ip import ClientIpResolver
from tests.conftest import GatewayFactory
from tests.server.serve import served

ALLOWED = "203.0.113.7"


def _key_for(url: str, admin: str, allowlist: list[str]) -> str:
    created = requests.post(
        f"{url}/admin/keys",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "allowlisted", "ip_allowlist": allowlist},
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    secret: str = created.json()["key"]
    return secret


def _models(url: str, secret: str, **headers: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {secret}", **headers}
    return requests.get(f"{url}/v1/models", headers=headers, timeout=10)


@pytest.mark.slow
def test_imagegate_serve_ignores_x_forwarded_for_from_an_untrusted_peer(tmp_path: object) -> None:
    with served(tmp_path) as gw:  # type: ignore[arg-type]
        secret = _key_for(gw.url, "sk-test-admin-key", [f"{ALLOWED}/32"])
        spoofed = _models(gw.url, secret, **{"X-Forwarded-For": ALLOWED})
        forwarded = _models(gw.url, secret, Forwarded=f"for={ALLOWED}")
    assert spoofed.status_code == 403, spoofed.text
    assert spoofed.json()["error"]["code"] == "ip_not_allowed"
    assert "127.0.0.1" in spoofed.json()["error"]["message"]
    assert forwarded.status_code == 403


@pytest.mark.slow
def test_imagegate_serve_believes_a_trusted_proxy(tmp_path: object) -> None:
    with served(tmp_path, IMAGEGATE_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1/32") as gw:  # type: ignore[arg-type]
        secret = _key_for(gw.url, "sk-test-admin-key", [f"{ALLOWED}/32"])
        assert _models(gw.url, secret, **{"X-Forwarded-For": ALLOWED}).status_code == 200
        # The client wrote the left entry itself; the proxy appended the real one.
        smuggled = _models(gw.url, secret, **{"X-Forwarded-For": f"{ALLOWED}, 198.51.100.1"})
        assert smuggled.status_code == 403
        assert "198.51.100.1" in smuggled.json()["error"]["message"]
        # Only the configured header counts.
        assert _models(gw.url, secret, Forwarded=f"for={ALLOWED}").status_code == 403


def test_the_forwarded_header_when_chosen(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(trusted_proxies=["127.0.0.1"], forwarded_header="forwarded")
    secret = _key_for(gateway.url, "sk-test-admin-key", [f"{ALLOWED}/32"])
    assert _models(gateway.url, secret, Forwarded=f'for="{ALLOWED}:4711";proto=https').status_code == 200
    assert _models(gateway.url, secret, **{"X-Forwarded-For": ALLOWED}).status_code == 403


def test_an_untrusted_peer_is_the_client_even_with_trusted_proxies_elsewhere(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(trusted_proxies=["10.0.0.0/8"])
    secret = _key_for(gateway.url, "sk-test-admin-key", [f"{ALLOWED}/32"])
    assert _models(gateway.url, secret, **{"X-Forwarded-For": ALLOWED}).status_code == 403


@pytest.mark.parametrize(
    ("peer", "header", "value", "expected"),
    [
        ("127.0.0.1", b"x-forwarded-for", "1.1.1.1", "127.0.0.1"),  # nothing trusted by default
        ("10.0.0.2", b"x-forwarded-for", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.2", b"x-forwarded-for", "6.6.6.6, 1.1.1.1", "1.1.1.1"),
        ("10.0.0.2", b"x-forwarded-for", "6.6.6.6, 1.1.1.1, 10.0.0.9", "1.1.1.1"),  # two proxies
        ("10.0.0.2", b"x-forwarded-for", "10.0.0.7", "10.0.0.7"),  # all trusted: the leftmost
        ("10.0.0.2", b"x-forwarded-for", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", b"x-forwarded-for", "1.1.1.1:8080", "1.1.1.1"),
        ("10.0.0.2", b"x-forwarded-for", "unknown", None),
        ("10.0.0.2", b"x-forwarded-for", "", None),
        ("192.0.2.1", b"x-forwarded-for", "1.1.1.1", "192.0.2.1"),
        ("::ffff:10.0.0.2", b"x-forwarded-for", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.2", b"forwarded", "for=1.1.1.1", "10.0.0.2"),  # not the configured header
    ],
)
def test_resolver(peer: str, header: bytes, value: str, expected: str | None) -> None:
    resolver = ClientIpResolver(["10.0.0.0/8"])
    assert resolver.client_ip(peer, [(header, value.encode())]) == expected


def test_resolver_reads_forwarded_elements_and_repeated_lines() -> None:
    resolver = ClientIpResolver(["10.0.0.0/8"], header="forwarded")
    headers = [
        (b"forwarded", b'for=6.6.6.6;proto=http, for="[2001:db8::5]:1"'),
        (b"forwarded", b"for=10.0.0.3;by=10.0.0.2"),
    ]
    assert resolver.client_ip("10.0.0.2", headers) == "2001:db8::5"
    assert resolver.client_ip("10.0.0.2", [(b"forwarded", b"proto=https")]) is None


def test_a_bad_cidr_is_a_configuration_error() -> None:
    from pydantic import ValidationError

    from imagegate.settings import Settings

    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8, not-a-network")
    assert Settings(trusted_proxies="10.0.0.0/8,::1").trusted_proxies == ["10.0.0.0/8", "::1"]
