"""Console test helpers: an admin key in the database, and a signed-in `requests` session."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import requests

from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from tests.conftest import LiveGateway


def make_key(gateway: LiveGateway, name: str = "ops", **fields: Any) -> str:
    async def create() -> str:
        engine = create_engine(gateway.settings.resolved_database_url)
        try:
            _, secret = await KeyStore(engine).create(name, **fields)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(create())


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(gateway: LiveGateway, secret: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{gateway.url}/console/login")
    answer = session.post(
        f"{gateway.url}/console/login",
        data={"key": secret, "csrf": csrf_of(form.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return session


def page_csrf(session: requests.Session, url: str) -> str:
    return csrf_of(session.get(url).text)
