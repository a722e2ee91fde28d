"""What every console route shares: the signed-in check, the admin check, the log filter from a URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from imagegate.console.render import page
from imagegate.console.session import Viewer, current_viewer
from imagegate.db.log_queries import LogFilter
from imagegate.errors import InvalidRequest

DEFAULT_DAYS = 30
MAX_DAYS = 366


class Redirect(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def signed_in(request: Request) -> Viewer:
    viewer = await current_viewer(request)
    if viewer is None:
        raise Redirect(RedirectResponse("/console/login", status_code=303))
    return viewer


async def admin_only(request: Request) -> Viewer:
    """The viewer, if an admin; anyone else gets a 403 page (checked here, never only in the menu)."""
    viewer = await signed_in(request)
    if not viewer.is_admin:
        raise Redirect(page(request, "error.html", viewer, status=403, message_key="forbidden"))
    return viewer


def days_param(request: Request) -> int:
    try:
        days = int(request.query_params.get("days", DEFAULT_DAYS))
    except ValueError:
        days = DEFAULT_DAYS
    return min(MAX_DAYS, max(1, days))


def log_filter(request: Request, viewer: Viewer, *, days: int | None = None) -> LogFilter:
    """Filters from the query string; a non-admin is always limited to their own key."""
    params = request.query_params

    def text(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value[:200] or None

    # Whole UTC days, so charts read the day summaries (see imagegate.db.log_stats).
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1) if days else None
    key = text("key") if viewer.is_admin else viewer.principal.key_id
    status = text("status")
    if status is not None:
        try:
            LogFilter(status=status).conditions()
        except InvalidRequest:
            status = None
    return LogFilter(key_id=key, model=text("model"), status=status, size=text("size"), since=since)
