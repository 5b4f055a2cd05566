"""Data Ingestion API and Read API views (DESIGN §6, §6b). They hold no business logic:
the pipeline and the selectors do the work, `cdp.errors` builds every error body."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.errors import MissingInfo, NotFound
from ingestion import selectors
from ingestion.api import schema_docs
from ingestion.authentication import TokenApiKeyAuthentication
from ingestion.pipeline import ingest


class IngestionApiView(APIView):
    # Authenticates and counts the rate limits (checks 1–4) in one round trip.
    authentication_classes = [TokenApiKeyAuthentication]
    permission_classes: list = []


class IngestView(IngestionApiView):
    # The pipeline reads and parses the raw body itself (size limit first, then JSON).
    parser_classes: list = []

    @extend_schema(**schema_docs.INGEST)
    def post(self, request: Request) -> HttpResponse:
        admission = request.auth
        result = ingest(
            organization=admission.organization,
            api_key=admission.api_key,
            request_id=request._request.request_id,
            body=request._request,
            content_type=request._request.content_type or "",
            init_data=request._request.GET.get("initData"),
            schema_version=admission.schema_version,
        )
        # The answer is serialized once, by the plan; DRF does not render it again.
        return HttpResponse(result.content, status=result.status, content_type="application/json")


class RecordView(IngestionApiView):
    @extend_schema(**schema_docs.RECORD)
    def get(self, request: Request, object_type: str, key: str) -> Response:
        organization = request.auth.organization
        mom_code = request.query_params.get("momCode", "").strip() or None
        if object_type == "custom-model" and not mom_code:
            raise MissingInfo("Invalid value of: momCode")
        record = selectors.record_get(
            organization=organization, object_type=object_type, key=key, mom_code=mom_code
        )
        if record is None:
            raise NotFound(f"No {object_type} record with key {key}")
        return Response({"success": True, "record": selectors.record_as_json(record)})


class UserEventsView(IngestionApiView):
    @extend_schema(**schema_docs.USER_EVENTS)
    def get(self, request: Request) -> Response:
        query = selectors.UserEventQuery.from_params(request.query_params)
        events, next_cursor = selectors.user_events_list(
            organization=request.auth.organization, query=query
        )
        return Response(
            {
                "success": True,
                "events": [selectors.user_event_as_json(e) for e in events],
                "next": next_cursor,
            }
        )
