"""Data Ingestion API and Read API views (DESIGN §6, §6b). They hold no business logic:
the pipeline and the selectors do the work, `cdp.errors` builds every error body."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.errors import MissingInfo, NotFound
from ingestion import selectors
from ingestion.api import schema_docs
from ingestion.authentication import TokenApiKeyAuthentication
from ingestion.pipeline import ingest
from ingestion.throttles import ApiKeyRateThrottle


class IngestionApiView(APIView):
    authentication_classes = [TokenApiKeyAuthentication]
    permission_classes: list = []
    throttle_classes = [ApiKeyRateThrottle]


class IngestView(IngestionApiView):
    # The pipeline reads and parses the raw body itself (size limit first, then JSON).
    parser_classes: list = []

    @extend_schema(**schema_docs.INGEST)
    # The pipeline opens its own transaction around the writes; a failed check must
    # still commit its log row, so the view itself is not atomic.
    @transaction.non_atomic_requests
    def post(self, request: Request) -> Response:
        result = ingest(
            api_key=request.auth, request=request._request, request_id=request._request.request_id
        )
        return Response(result.body, status=result.status)


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
