"""The ingestion log: one IngestionRequest row per authenticated ingest request."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cdp.models import ApiKey, Organization
from ingestion.models import IngestionRequest

if TYPE_CHECKING:
    from ingestion.payload import IngestPayload
    from journeys.models import JourneyEventConfig


def ingestion_request_log(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    payload: IngestPayload | None,
    config: JourneyEventConfig | None,
    status: int,
    body: dict[str, Any],
    started: float,
) -> IngestionRequest:
    """Write the log row; call it inside the request's transaction when it stored anything.

    `body` is the response body; its counts and per-entry results are kept as they were
    answered. Nothing secret is in it.
    """
    events = body.get("events") or {}
    return IngestionRequest.objects.create(
        organization=organization,
        api_key=api_key,
        request_id=request_id,
        # An unknown objectType (INVALID_OBJECT_TYPE) can be longer than the column; the
        # message names it whole.
        object_type=payload.object_type[:50] if payload else "",
        source=payload.source if payload else "",
        init_data=payload.init_data if payload else False,
        config=config,
        total=body.get("total", 0),
        created=body.get("created", 0),
        updated=body.get("updated", 0),
        unchanged=body.get("unchanged", 0),
        failed=body.get("failed", 0),
        events_generated=events.get("generated", 0),
        events_suppressed=events.get("suppressed", 0),
        events_dropped=events.get("dropped", 0),
        results=body.get("results", []),
        warnings=body.get("warnings", []),
        status=status,
        error_code=body.get("errorCode", ""),
        message=(body.get("message") or "")[:300],
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
