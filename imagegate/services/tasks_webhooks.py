"""Webhooks of ended tasks (SPEC §10), signed as Standard Webhooks, retried with backoff for 24 h.

    sender = WebhookSender(store, settings)
    await sender.start()      # every `serve` process delivers what is due, whoever ran the task

When a task ends its row gets the webhook's id (``msg_…``, the same on every retry), the exact
body and a due time (``webhook_fields``). Senders claim due deliveries by pushing their due time
past the attempt's timeout, so no two processes send one at the same time; each attempt is a
row in ``task_webhook_attempts``. The signature is ``v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`` keyed with the base64-decoded part of the key's ``whsec_`` secret.
Addresses obey the SSRF rules of §8 through the same guarded resolver as image fetches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from typing import Any

import aiohttp
import orjson
from aiohttp.resolver import DefaultResolver
from yarl import URL

from imagegate.db.tasks import TaskState, TaskStore, WebhookAttempt, WebhookDue
from imagegate.errors import InvalidRequest
from imagegate.media.fetch import _GuardedResolver, is_public_address
from imagegate.settings import Settings

logger = logging.getLogger("imagegate.webhooks")

#: An answer must come within this time, or the attempt counts as failed.
ATTEMPT_TIMEOUT_S = 10.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header's value for one attempt."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def check_webhook_url(url: str, *, param: str = "webhook_url") -> str:
    """The cheap checks at submit: an http(s) URL with a host (addresses are checked at delivery)."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host or len(url) > 2000:
        raise InvalidRequest(f"Invalid value for '{param}': it must be an http or https URL.", param=param)
    return url


def webhook_fields(task: TaskState, data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The columns that schedule a task's webhook when it ends (none without a URL)."""
    if not task.webhook_url:
        return {}
    now = time.time()
    body = orjson.dumps({"type": f"image.task.{task.status}", "timestamp": int(now), "data": data}).decode()
    return {
        "webhook_state": "pending",
        "webhook_id": "msg_" + secrets.token_hex(12),
        "webhook_body": body,
        "webhook_next_at": now,
    }


class WebhookSender:
    def __init__(self, store: TaskStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        allow_private = settings.allow_private_fetch
        self._allowed = (lambda ip: True) if allow_private else is_public_address
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(DefaultResolver(), self._allowed))
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # a proxy would connect on our behalf, past the resolver check
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "imagegate-webhooks"},
        )
        self._loop = asyncio.create_task(self._run(), name="tasks-webhooks")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for job in list(self._sending):
            job.cancel()
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            try:
                due = await self.store.claim_webhooks(limit=20, lease_s=ATTEMPT_TIMEOUT_S + 20)
            except Exception:
                logger.exception("claiming webhooks failed")
                due = []
            for delivery in due:
                job = asyncio.create_task(self._deliver(delivery))
                self._sending.add(job)
                job.add_done_callback(self._sending.discard)
            if len(due) < 20:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.task_poll_s):
                        await self.wake.wait()

    async def _deliver(self, due: WebhookDue) -> None:
        started, at = time.perf_counter(), time.time()
        status: int | None = None
        error: str | None = None
        try:
            status = await self._post(due)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except _Refused as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {ATTEMPT_TIMEOUT_S:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"connection failed: {type(exc).__name__}"
        attempt = WebhookAttempt(
            due.webhook_id, due.url, at, status, error, round((time.perf_counter() - started) * 1000, 1)
        )
        delivered = error is None
        try:
            await self.store.record_attempt(due, attempt, next_at=None if delivered else self._next_at(due))
        except Exception:
            logger.exception("recording a webhook attempt failed")

    def _next_at(self, due: WebhookDue) -> float | None:
        """When to try again after attempt number ``due.attempts + 1``; None: give up."""
        schedule = self.settings.task_webhook_backoff_s
        if due.attempts >= len(schedule):
            return None
        return time.time() + schedule[due.attempts]

    async def _post(self, due: WebhookDue) -> int:
        assert self._session is not None
        url = URL(due.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise _Refused("not an http or https URL")
        with contextlib.suppress(ValueError):
            if not self._allowed(ipaddress.ip_address(url.host)):
                raise _Refused("the address is not public")
        _url, secret = await self.store.key_webhook(due.key_id)
        if secret is None:
            secret = new_secret()
            await self.store.set_key_webhook(due.key_id, secret=secret)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": due.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, due.webhook_id, timestamp, due.body),
        }
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                async with self._session.post(
                    url, data=due.body.encode(), headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    return response.status
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OSError) and "non-public" in str(exc.os_error):
                raise _Refused("the address is not public") from exc
            raise


class _Refused(Exception):
    """The URL may not be called (SSRF rules); retried like any failure, the admin sees why."""
