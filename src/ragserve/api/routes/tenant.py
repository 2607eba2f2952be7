"""The caller's tenant: API keys (admin), usage and quotas, and its own LLM (admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from ragserve.api.deps import Admin, Context, Reader
from ragserve.api.errors import responses
from ragserve.api.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    QuotaOut,
    TenantLLMIn,
    TenantLLMOut,
    UsageDayOut,
    UsageResponse,
)
from ragserve.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["tenant"])
_STATUSES = (400, 401, 403, 422, 429)
_ERRORS = responses(*_STATUSES)


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=_ERRORS)
def create_key(body: KeyCreate, principal: Admin, ctx: Context) -> KeyCreated:
    """A new key for the caller's tenant; the key is in this response only."""
    key, record = ctx.keys.create(principal.tenant, body.scopes, name=body.name)
    return KeyCreated(key=key, **KeyOut.of(record).model_dump())


@router.get("/keys", response_model=KeyList, responses=_ERRORS)
def list_keys(principal: Admin, ctx: Context) -> KeyList:
    """The tenant's keys (never the keys themselves)."""
    return KeyList(keys=[KeyOut.of(r) for r in ctx.keys.list(principal.tenant)])


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=responses(404, *_STATUSES))
def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[a-z0-9]{12}$")], principal: Admin, ctx: Context
) -> KeyOut:
    """Revoke a key of the tenant; it fails from its next request on."""
    return KeyOut.of(ctx.keys.revoke(key_id, tenant=principal.tenant))


@router.get("/usage", response_model=UsageResponse, responses=_ERRORS)
def usage(
    principal: Reader,
    ctx: Context,
    days: Annotated[int, Query(ge=1, le=366, description="days back, today included")] = 30,
) -> UsageResponse:
    """Usage per UTC day and today's quota."""
    today = datetime.now(UTC).date()
    rows = ctx.service.store.accounts.usage(
        principal.tenant,
        since=(today - timedelta(days=days - 1)).isoformat(),
        until=today.isoformat(),
    )
    status = ctx.limiter.quota_status(principal.tenant)
    return UsageResponse(
        tenant=principal.tenant,
        days=[UsageDayOut.of(row) for row in rows],
        quota=QuotaOut(
            questions_used=status.questions_used,
            questions_limit=status.questions_limit,
            tokens_used=status.tokens_used,
            tokens_limit=status.tokens_limit,
            max_tokens=status.max_tokens,
            resets_at=status.resets_at,
        ),
    )


@router.get("/llm", response_model=TenantLLMOut, responses=responses(404, *_STATUSES))
def get_llm(principal: Admin, ctx: Context) -> TenantLLMOut:
    """The tenant's own LLM, if set (the key is never returned)."""
    view = ctx.service.tenant_llms.get(principal.tenant)
    if view is None:
        raise NotFoundError(
            "this tenant has no LLM of its own; the server's LLM answers its questions"
        )
    return TenantLLMOut(**vars(view))


@router.put("/llm", response_model=TenantLLMOut, responses=_ERRORS)
def set_llm(body: TenantLLMIn, principal: Admin, ctx: Context) -> TenantLLMOut:
    """Answer this tenant's questions with its own OpenAI-compatible server, model and key."""
    view = ctx.service.tenant_llms.set(principal.tenant, body.base_url, body.model, body.api_key)
    return TenantLLMOut(**vars(view))


@router.delete("/llm", status_code=204, responses=responses(404, *_STATUSES))
def delete_llm(principal: Admin, ctx: Context) -> Response:
    """Go back to the server's LLM."""
    if not ctx.service.tenant_llms.delete(principal.tenant):
        raise NotFoundError("this tenant has no LLM of its own")
    return Response(status_code=204)
