"""What every admin route shares: the admin-key check, the router factory, small wire helpers.

    router = admin_router(tags=["groups"])

    @router.get("/groups")
    async def list_groups(request: Request) -> list[GroupPublic]: ...

Every route of such a router answers 401 without a key and 403 with a key that is not the admin
key (``IMAGEGATE_ADMIN_KEY``), in OpenAI's error envelope like everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from starlette.requests import Request

from imagegate.api.deps import principal
from imagegate.domain import Principal
from imagegate.errors import InvalidRequest, NotFound, PermissionDenied

# Declares the scheme in the OpenAPI document (the docs page's "Authorize" button); the check
# itself is `require_admin`, through the same authenticator as /v1.
_bearer = HTTPBearer(auto_error=False, description="The admin key (IMAGEGATE_ADMIN_KEY).")


async def require_admin(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    who = await principal(request)
    if not who.is_admin:
        raise PermissionDenied("The admin API needs the admin key.", code="admin_key_required")
    return who


def admin_router(**options: Any) -> APIRouter:
    """A router under ``/admin`` whose every route requires the admin key."""
    return APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], **options)


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("cannot be null: leave the field out to keep its value")
    return value


#: For PATCH fields that may be left out but not cleared (a name, a flag): null is a 400 naming it.
NotNull = BeforeValidator(_not_null)


def utc(moment: datetime | None) -> datetime | None:
    """A query's time as aware UTC; a time without an offset is read as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def not_found(what: str, ident: str) -> NotFound:
    return NotFound(f"No {what} with id '{ident}'.", code=f"{what.replace(' ', '_')}_not_found")


def invalid(error: ValueError, param: str | None = None) -> InvalidRequest:
    """A store's ValueError (bad name, bad amount, …) as a 400 for the admin."""
    text = str(error).rstrip(".")
    # Upper-case the first letter only: str.capitalize() would also lower "USD" and names.
    return InvalidRequest(text[:1].upper() + text[1:] + ".", param=param)


def conflict(message: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, code=code, status=409)
