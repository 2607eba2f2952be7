"""Collections of the caller's tenant: another tenant's collection does not exist (404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ragserve.api.deps import Context, Reader, Writer
from ragserve.api.errors import responses
from ragserve.api.schemas import NAME_PATTERN, CollectionCreate, CollectionList, CollectionOut
from ragserve.errors import CollectionNotFound, Conflict

router = APIRouter(prefix="/v1/collections", tags=["collections"])
CollectionName = Annotated[str, Path(pattern=NAME_PATTERN, description="collection name")]


@router.post(
    "",
    status_code=201,
    response_model=CollectionOut,
    responses=responses(400, 401, 403, 409, 422, 429),
)
def create_collection(body: CollectionCreate, principal: Writer, ctx: Context) -> CollectionOut:
    """Create an empty collection; 409 when it exists."""
    try:
        ctx.service.get_collection(body.name, tenant=principal.tenant)
    except CollectionNotFound:
        return CollectionOut.of(ctx.service.create_collection(body.name, tenant=principal.tenant))
    raise Conflict(f"collection {body.name!r} exists")


@router.get("", response_model=CollectionList, responses=responses(401, 403, 429))
def list_collections(principal: Reader, ctx: Context) -> CollectionList:
    infos = ctx.service.list_collections(tenant=principal.tenant)
    return CollectionList(collections=[CollectionOut.of(info) for info in infos])


@router.get("/{name}", response_model=CollectionOut, responses=responses(401, 403, 404, 422, 429))
def get_collection(name: CollectionName, principal: Reader, ctx: Context) -> CollectionOut:
    """Counts and the version (rises on every change)."""
    return CollectionOut.of(ctx.service.get_collection(name, tenant=principal.tenant))


@router.delete("/{name}", status_code=204, responses=responses(401, 403, 404, 422, 429))
def delete_collection(name: CollectionName, principal: Writer, ctx: Context) -> Response:
    """Delete the collection with every document, chunk and stored original."""
    ctx.service.delete_collection(name, tenant=principal.tenant)
    return Response(status_code=204)
