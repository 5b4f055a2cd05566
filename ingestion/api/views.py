"""Data Ingestion API and Read API views. They hold no business logic:
the pipeline and the selectors do the work, `cdp.errors` builds every error body."""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.errors import ApiError, MethodNotAllowed, MissingInfo, NotFound, error_http_response
from cdp.gate import Admission
from cdp.models import EntityRecord
from ingestion import selectors
from ingestion.api import schema_docs
from ingestion.authentication import TokenApiKeyAuthentication, request_admit
from ingestion.erasure import erasure_answer, erasure_order_parse, erasure_run
from ingestion.payload import (
    IDEMPOTENCY_KEY_HEADER,
    body_parse,
    body_read,
    http_request_id,
    is_dry_run,
)
from ingestion.pipeline import ingest


def _admission(request: Request) -> Admission:
    """`request.auth`: what TokenApiKeyAuthentication, the views' only authentication,
    returns (DRF's types say only "a token or anything")."""
    return cast(Admission, request.auth)


class IngestionApiView(APIView):
    # Authenticates and counts the rate limits (checks 1–4) in one round trip.
    authentication_classes = [TokenApiKeyAuthentication]
    permission_classes: list = []


class IngestView(IngestionApiView):
    """The ingest endpoint as the OpenAPI document describes it. Requests are served by
    `ingest_endpoint`, a plain Django view: DRF's request, negotiation and response layers
    cost more than a tenth of a small request's time (docs/performance.md) and give it
    nothing, since the pipeline reads the raw body and serializes its own answer."""

    parser_classes: list = []

    @extend_schema(**schema_docs.INGEST)
    def post(self, request: Request) -> HttpResponse:
        return ingest_endpoint(request._request)


@csrf_exempt
def ingest_endpoint(request: HttpRequest) -> HttpResponse:
    """POST /dhub-i/api/v1.0/ingest: checks 1–4 (the gate), then the pipeline's one door."""
    try:
        admission = request_admit(request.META)
        if request.method != "POST":
            raise MethodNotAllowed(f'Method "{request.method}" not allowed.', headers=_ALLOW)
    except ApiError as error:
        if is_dry_run(request.GET.get("dryRun")):
            error.extra["dryRun"] = True  # every answer to a dry run says it is one
        return error_http_response(error, request)
    result = ingest(
        organization=admission.organization,
        api_key=admission.api_key,
        request_id=http_request_id(request),
        body=request,
        content_type=request.content_type or "",
        init_data=request.GET.get("initData"),
        dry_run=request.GET.get("dryRun"),
        idempotency_key=request.META.get(IDEMPOTENCY_KEY_META),
        schema_version=admission.schema_version,
    )
    # The answer's bytes come from the plan, serialized once (or stored, for a replay).
    response = HttpResponse(result.content, status=result.status, content_type="application/json")
    if result.replay_of is not None:
        response["Idempotent-Replayed"] = "true"
        response["X-Request-Id"] = result.replay_of  # the body's, the original request's
    return response


_ALLOW = {"Allow": "POST"}
# Read from META directly: `request.headers` parses every header of the request.
IDEMPOTENCY_KEY_META = "HTTP_" + IDEMPOTENCY_KEY_HEADER.upper().replace("-", "_")
# drf-spectacular documents every URL whose view names an APIView subclass as `cls` (as
# `APIView.as_view()` does): the plain view is described by IngestView's schema.
ingest_endpoint.cls = IngestView  # type: ignore[attr-defined]
ingest_endpoint.initkwargs = {}  # type: ignore[attr-defined]


def _record_found(request: Request, object_type: str, key: str) -> EntityRecord:
    """The organization's record named by the URL (and `momCode`), or 404."""
    mom_code = request.query_params.get("momCode", "").strip() or None
    if object_type == "custom-model" and not mom_code:
        raise MissingInfo("Invalid value of: momCode")
    record = selectors.record_get(
        organization=_admission(request).organization,
        object_type=object_type,
        key=key,
        mom_code=mom_code,
    )
    if record is None:
        raise NotFound(f"No {object_type} record with key {key}")
    return record


class RecordView(IngestionApiView):
    @extend_schema(**schema_docs.RECORD)
    def get(self, request: Request, object_type: str, key: str) -> Response:
        record = _record_found(request, object_type, key)
        return Response({"success": True, "record": selectors.record_as_json(record)})


class RecordHistoryView(IngestionApiView):
    @extend_schema(**schema_docs.RECORD_HISTORY)
    def get(self, request: Request, object_type: str, key: str) -> Response:
        record = _record_found(request, object_type, key)
        query = selectors.HistoryQuery.from_params(request.query_params)
        if not selectors.record_keeps_history(record):
            return Response({"success": True, "historyKept": False, "history": [], "next": None})
        entries, next_cursor = selectors.record_history_page(record=record, query=query)
        return Response(
            {
                "success": True,
                "historyKept": True,
                "history": [selectors.history_entry_as_json(e) for e in entries],
                "next": next_cursor,
            }
        )


class UserEventsView(IngestionApiView):
    @extend_schema(**schema_docs.USER_EVENTS)
    def get(self, request: Request) -> Response:
        query = selectors.UserEventQuery.from_params(request.query_params)
        events, next_cursor = selectors.user_events_list(
            organization=_admission(request).organization, query=query
        )
        return Response(
            {
                "success": True,
                "events": [selectors.user_event_as_json(e) for e in events],
                "next": next_cursor,
            }
        )


class ErasureView(IngestionApiView):
    """POST /dhub-i/api/v1.0/erasure: a person's data erased (ingestion/erasure.py)."""

    parser_classes: list = []  # the body is read as the ingest endpoint reads it

    @extend_schema(**schema_docs.ERASURE)
    def post(self, request: Request) -> Response:
        raw = body_read(request._request)
        order = erasure_order_parse(body_parse(raw, request.content_type or ""))
        admission = _admission(request)
        api_key = admission.api_key
        erasure = erasure_run(
            organization=admission.organization,
            order=order,
            requested_by=f"API key {api_key.prefix}… ({api_key.name})",
        )
        return Response(erasure_answer(erasure))
