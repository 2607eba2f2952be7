"""Sessions for people: sign in with a username and password (``ragserve users create``),
get a session key that expires, sign out.

A session key is an API key of the user's tenant and scopes that stops working after
``security.session_ttl_s``; it is sent like any key (``Authorization: Bearer``). Failed
sign-ins are limited per username and per client address (``security.login_rate``,
``login_client_rate``) and, by the store, lock an account after repeated failures; every
refusal says the same thing, so no answer tells whether a username exists.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ragserve.api.deps import ApiContext, Context, Reader
from ragserve.api.errors import responses
from ragserve.api.schemas import Strict
from ragserve.errors import RateLimited, Unauthenticated
from ragserve.security.keys import Principal
from ragserve.security.passwords import verify_user
from ragserve.types import ApiKeyRecord

router = APIRouter(prefix="/v1/auth", tags=["auth"])
SESSION_PREFIX = "session:"
LOGIN_PATH = "/v1/auth/login"


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    token: str = Field(description="send it as Authorization: Bearer <token>; shown once")
    tenant: str
    scopes: list[str]
    expires_at: str


class WhoAmI(BaseModel):
    tenant: str
    key_id: str | None
    scopes: list[str]
    session: bool = Field(description="a sign-in session (it expires) rather than an API key")
    expires_at: str | None


@router.post(
    "/login",
    response_model=SessionOut,
    responses=responses(400, 401, 422, 429),
    openapi_extra={"security": []},
)
async def login(body: LoginIn, request: Request, ctx: Context) -> SessionOut:
    """Sign in with a username and password: a session key of the user's tenant and scopes."""
    client = request.client.host if request.client else "unknown"
    return await run_in_threadpool(_login, ctx, body, client)


def _login(ctx: ApiContext, body: LoginIn, client: str) -> SessionOut:
    wait = ctx.limiter.login_blocked(body.username, client)
    if wait:
        ctx.metrics.rate_limited.labels(kind="login").inc()
        raise RateLimited(f"too many failed sign-ins; retry in {wait} s", retry_after=wait)
    principal = verify_user(ctx.service.store.accounts, body.username, body.password)
    if principal is None:
        try:
            ctx.limiter.hit_login(body.username, client)
        except RateLimited:
            ctx.metrics.rate_limited.labels(kind="login").inc()
            raise
        raise Unauthenticated("wrong username or password, or the account is locked or disabled")
    username = (principal.key_id or "").removeprefix("user:")
    token, record = ctx.keys.create(
        principal.tenant,
        principal.scopes,
        name=f"{SESSION_PREFIX}{username}",
        expires_in_s=ctx.settings.security.session_ttl_s,
    )
    assert record.expires_at is not None
    return SessionOut(
        token=token,
        tenant=record.tenant,
        scopes=list(record.scopes),
        expires_at=record.expires_at,
    )


@router.post("/logout", status_code=204, responses=responses(400, 401, 403, 422, 429))
def logout(principal: Reader, ctx: Context) -> Response:
    """End the session whose key is presented (an API key is left alone: revoke it with
    ``DELETE /v1/keys/{id}``)."""
    record = _record(ctx, principal)
    if record is not None and record.name.startswith(SESSION_PREFIX):
        ctx.keys.revoke(record.key_id, tenant=principal.tenant)
    return Response(status_code=204)


@router.get("/me", response_model=WhoAmI, responses=responses(401, 403, 422, 429))
def whoami(principal: Reader, ctx: Context) -> WhoAmI:
    """Who the presented key is: tenant, scopes, and whether it is an expiring session."""
    record = _record(ctx, principal)
    return WhoAmI(
        tenant=principal.tenant,
        key_id=principal.key_id,
        scopes=sorted(principal.scopes),
        session=record is not None and record.name.startswith(SESSION_PREFIX),
        expires_at=record.expires_at if record is not None else None,
    )


def _record(ctx: ApiContext, principal: Principal) -> ApiKeyRecord | None:
    if principal.key_id is None:
        return None
    return ctx.service.store.accounts.find_api_key(principal.key_id)
