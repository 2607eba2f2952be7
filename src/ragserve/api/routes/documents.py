"""Documents: multipart uploads, JSON text documents, listing and search by name, page
texts for citations, re-ingestion and deletion.

An upload's body is size-limited while it streams in (see ``api.body_limit``); files larger than
1 MiB are spooled to disk by the multipart parser, so memory holds one file at a time.
Without ``?wait=true`` an upload is accepted (202) once its type is checked and its bytes are
stored: one ingestion job per file (``GET /v1/jobs/{job_id}``); ``?wait=true`` returns each
file's outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragserve.api.deps import ApiContext, Context, Reader, Writer
from ragserve.api.errors import responses
from ragserve.api.routes.collections import CollectionName
from ragserve.api.schemas import (
    DocumentOut,
    DocumentPage,
    IngestResponse,
    IngestResult,
    JobOut,
    PageText,
    TextDocumentsIn,
)
from ragserve.errors import EmptyDocument, InputError, RagError, TooLarge, UnsupportedFileType
from ragserve.ingest.sniff import SUPPORTED_TYPES, sniff
from ragserve.ingestion import upload_name
from ragserve.types import IngestOutcome, JobRecord, TextDocument

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])
DocumentId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="document id")]
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "one or more files (at most server.max_files)",
                    }
                },
            }
        }
    },
}
_ERRORS = responses(400, 401, 403, 404, 413, 415, 422, 429)


@router.post(
    "",
    response_model=IngestResponse,
    status_code=200,
    responses={
        202: {"model": IngestResponse, "description": "accepted; indexed in the background"},
        **_ERRORS,
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_documents(
    request: Request,
    name: CollectionName,
    principal: Writer,
    ctx: Context,
    wait: Annotated[bool, Query(description="wait until indexed")] = False,
) -> JSONResponse:
    """Upload PDF, Markdown, HTML or text files (multipart field ``files``).

    The body is read only after the key and its scope are checked, so an unauthenticated
    client cannot make the server receive an upload.
    """
    async with _form(request, ctx.settings.server.max_files) as form:
        files = [part for part in form.getlist("files") if isinstance(part, UploadFile)]
        if not files:
            raise InputError("no file in the request; send multipart fields named files")
        return await run_in_threadpool(_upload, ctx, name, principal.tenant, files, wait)


def _upload(
    ctx: ApiContext, name: str, tenant: str, files: list[UploadFile], wait: bool
) -> JSONResponse:
    uploads, rejected = _read_uploads(files, ctx.settings.server.max_upload_bytes)
    if not uploads:  # every file refused: answer with the first refusal (413, 415 or 422)
        raise rejected[0][1]
    ctx.service.create_collection(name, tenant=tenant)
    if wait:
        outcomes = ctx.service.ingest_uploads(name, uploads, tenant=tenant)
        ctx.metrics.observe_ingest((o.status, o.chunks) for o in outcomes)
        results = [IngestResult.of(o) for o in [*(r for r, _ in rejected), *outcomes]]
        return _json(200, IngestResponse(collection=name, results=results))
    jobs = ctx.service.jobs.submit_uploads(name, uploads, tenant=tenant)
    results = [*(IngestResult.of(r) for r, _ in rejected), *_accepted(ctx, jobs)]
    return _json(202, IngestResponse(collection=name, results=results, **_batch(jobs)))


def _accepted(ctx: ApiContext, jobs: list[JobRecord]) -> list[IngestResult]:
    """Hand the jobs to the queue; one ``accepted`` result per job."""
    ctx.metrics.jobs_submitted.labels("ingest").inc(len(jobs))
    ctx.queue.submit(jobs)
    return [
        IngestResult(
            source=job.payload["source"],
            status="accepted",
            document_id=ctx.service.document_id_for(
                job.collection, job.payload["source"], tenant=job.tenant
            ),
            job_id=job.id,
        )
        for job in jobs
    ]


def _batch(jobs: list[JobRecord]) -> dict[str, Any]:
    return {"batch_id": jobs[0].batch_id, "jobs": [JobOut.of(job) for job in jobs]}


@asynccontextmanager
async def _form(request: Request, max_files: int) -> AsyncIterator[FormData]:
    """The multipart form, parsed with the server's limits; its temporary files are closed
    after use."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedFileType("send the files as multipart/form-data in fields named files")
    try:
        form = await request.form(max_files=max_files, max_fields=100)
    except StarletteHTTPException as exc:
        if exc.status_code == 413:  # the body limit, raised while the body streamed in
            raise
        if "Too many files" in str(exc.detail):
            raise InputError(f"at most {max_files} files per request") from exc
        raise InputError(f"invalid multipart body: {exc.detail}") from exc
    except MultipartParseError as exc:
        raise InputError(f"invalid multipart body: {exc}") from exc
    try:
        yield form
    finally:
        await form.close()


@router.post(
    "/text",
    response_model=IngestResponse,
    responses={
        202: {"model": IngestResponse, "description": "wait=false: accepted as jobs"},
        **_ERRORS,
    },
)
def add_text_documents(
    name: CollectionName,
    body: TextDocumentsIn,
    principal: Writer,
    ctx: Context,
    wait: Annotated[bool, Query(description="index before answering; false: one job each")] = True,
) -> JSONResponse:
    """Add documents given as JSON text with metadata: indexed before the response, or with
    ``wait=false`` accepted (202) as one job per document."""
    documents = [
        TextDocument(d.source, d.text, title=d.title, metadata=d.metadata) for d in body.documents
    ]
    if not wait:
        jobs = ctx.service.jobs.submit_texts(name, documents, tenant=principal.tenant)
        accepted = IngestResponse(collection=name, results=_accepted(ctx, jobs), **_batch(jobs))
        return _json(202, accepted)
    outcomes = ctx.service.ingest_texts(
        name, documents, tenant=principal.tenant, keep_originals=True
    )
    ctx.metrics.observe_ingest((o.status, o.chunks) for o in outcomes)
    return _json(
        200, IngestResponse(collection=name, results=[IngestResult.of(o) for o in outcomes])
    )


@router.get("", response_model=DocumentPage, responses=responses(401, 403, 404, 422, 429))
def list_documents(
    name: CollectionName,
    principal: Reader,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="source or title contains it"),
    ] = None,
) -> DocumentPage:
    """Documents ordered by source, a page at a time (``limit`` at most
    server.max_page_size). ``q`` keeps those whose source or title contains it, ignoring
    case (Unicode letters too) and taken literally (``%`` and ``_`` are no wildcards);
    ``total`` then counts the matching documents."""
    limit = min(limit, ctx.settings.server.max_page_size)
    tenant = principal.tenant
    records = ctx.service.list_documents(name, tenant=tenant, limit=limit, offset=offset, match=q)
    total = ctx.service.count_documents(name, tenant=tenant, match=q)
    return DocumentPage(
        documents=[DocumentOut.of(r) for r in records], limit=limit, offset=offset, total=total
    )


@router.get(
    "/{document_id}", response_model=DocumentOut, responses=responses(401, 403, 404, 422, 429)
)
def get_document(
    name: CollectionName, document_id: DocumentId, principal: Reader, ctx: Context
) -> DocumentOut:
    return DocumentOut.of(ctx.service.get_document(name, document_id, tenant=principal.tenant))


@router.get(
    "/{document_id}/pages/{page}",
    response_model=PageText,
    responses=responses(401, 403, 404, 422, 429),
)
def get_page_text(
    name: CollectionName,
    document_id: DocumentId,
    page: Annotated[int, Path(description="page number, from 1 to the document's page_count")],
    principal: Reader,
    ctx: Context,
) -> PageText:
    """The text of one page of the document, for opening a citation where it stands, and
    ``passages``: the page's chunks in ordinal order, each at ``text[start:end]`` (a search
    result's or source's ``start``/``end`` locate it too).

    ``exact`` is true when the text was extracted again from the stored original, exactly as
    indexed; false when the page was rebuilt from its chunks, spaces between them (no original
    kept, a password-protected PDF, or a loader that now extracts differently). 404
    ``page_not_found`` for a page outside 1..``page_count`` (0 and negative numbers too),
    ``document_not_found`` for a document not in the collection."""
    view = ctx.service.page_text(name, document_id, page, tenant=principal.tenant)
    return PageText.of(view)


@router.get(
    "/{document_id}/original",
    response_class=Response,
    responses={
        200: {
            "content": {mime_type: {} for mime_type in SUPPORTED_TYPES},
            "description": "the original bytes, typed as they were ingested",
        },
        **responses(401, 403, 404, 422, 429),
    },
)
def download_original(
    name: CollectionName, document_id: DocumentId, principal: Reader, ctx: Context
) -> Response:
    """The bytes the document was ingested from (uploads and text documents)."""
    record, data = ctx.service.document_original(name, document_id, tenant=principal.tenant)
    file_name = upload_name(record.source).replace('"', "")
    return Response(
        data,
        media_type=record.mime_type,
        headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
    )


@router.post(
    "/{document_id}/reingest",
    response_model=IngestResult,
    responses=responses(401, 403, 404, 422, 429),
)
def reingest_document(
    name: CollectionName, document_id: DocumentId, principal: Writer, ctx: Context
) -> IngestResult:
    """Index the document again from its stored original (``unchanged`` when current)."""
    outcome = ctx.service.reingest_document(name, document_id, tenant=principal.tenant)
    ctx.metrics.observe_ingest([(outcome.status, outcome.chunks)])
    return IngestResult.of(outcome)


@router.delete("/{document_id}", status_code=204, responses=responses(401, 403, 404, 422, 429))
def delete_document(
    name: CollectionName, document_id: DocumentId, principal: Writer, ctx: Context
) -> Response:
    ctx.service.delete_document(name, document_id, tenant=principal.tenant)
    return Response(status_code=204)


def _read_uploads(
    files: list[UploadFile], max_bytes: int
) -> tuple[list[tuple[str, bytes]], list[tuple[IngestOutcome, RagError]]]:
    """Each file's bytes, or its refusal: too large, empty or of an unsupported type."""
    uploads: list[tuple[str, bytes]] = []
    rejected: list[tuple[IngestOutcome, RagError]] = []
    for file in files:
        file_name = upload_name(file.filename or "upload")
        data = file.file.read(max_bytes + 1)
        try:
            if len(data) > max_bytes:
                raise TooLarge(f"{file_name} is larger than {max_bytes} bytes")
            if not data:
                raise EmptyDocument(f"{file_name} is empty")
            sniff(data, file_name)
        except RagError as exc:
            rejected.append((IngestOutcome(file_name, "failed", error=str(exc)), exc))
            continue
        uploads.append((file.filename or "upload", data))
    return uploads, rejected


def _json(status: int, body: IngestResponse) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status)
