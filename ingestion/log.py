"""The ingestion log: one IngestionRequest row and one `cdp.ingest` log line per
authenticated ingest request (HTTP, the Console's test form, and each `import_records`
batch)."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cdp.models import ApiKey, Organization
from ingestion.models import IngestionRequest

if TYPE_CHECKING:
    from ingestion.payload import IngestPayload
    from journeys.models import JourneyEventConfig

logger = logging.getLogger("cdp.ingest")


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
    entry = IngestionRequest.objects.create(
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
    _log_line(organization, api_key, entry)
    return entry


def _log_line(organization: Organization, api_key: ApiKey | None, entry: IngestionRequest) -> None:
    """The structured line of one request. Public values only: the key's 8-character
    prefix, never the key, the token or a callback secret."""
    logger.info(
        "ingest",
        extra={
            "fields": {
                "requestId": entry.request_id,
                "organization": organization.group_key,
                "apiKeyPrefix": api_key.prefix if api_key is not None else "",
                "objectType": entry.object_type,
                "initData": entry.init_data,
                "total": entry.total,
                "created": entry.created,
                "updated": entry.updated,
                "unchanged": entry.unchanged,
                "failed": entry.failed,
                "eventsGenerated": entry.events_generated,
                "status": entry.status,
                "errorCode": entry.error_code,
                "durationMs": entry.duration_ms,
            }
        },
    )


def ingestion_requests_purge(*, before: datetime, batch_size: int = 5000) -> int:
    """Delete the log rows, of every organization, created before `before`; returns how
    many. Organization by organization (each lookup uses the tenant-leading index) and in
    batches, so no statement holds locks on much of the table."""
    deleted = 0
    for organization_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        old = IngestionRequest.objects.filter(
            organization_id=organization_id, created_at__lt=before
        )
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            deleted += IngestionRequest.objects.filter(pk__in=ids).delete()[0]
    return deleted
