"""The ingestion log: one IngestionRequest row (written with the request's plan by
ingestion/writer.py) and one `cdp.ingest` log line per authenticated ingest request (HTTP,
the Console's test form, and each `import_records` batch), and their purge."""

from __future__ import annotations

import logging
from datetime import datetime

from cdp.models import ApiKey, Organization
from ingestion.models import IdempotencyKey, IngestionRequest, RecordHistory
from ingestion.plan import LogRow

logger = logging.getLogger("cdp.ingest")


def ingest_log_line(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    log: LogRow,
    duration_ms: float,
    dry_run: bool = False,
) -> None:
    """The structured line of one request. Public values only: the key's 8-character
    prefix, never the key, the token or a callback secret."""
    logger.info(
        "ingest",
        extra={
            "fields": {
                "requestId": request_id,
                "organization": organization.group_key,
                "apiKeyPrefix": api_key.prefix if api_key is not None else "",
                "objectType": log.object_type,
                "initData": log.init_data,
                "total": log.total,
                "created": log.created,
                "updated": log.updated,
                "unchanged": log.unchanged,
                "failed": log.failed,
                "eventsGenerated": log.events_generated,
                "status": log.status,
                "errorCode": log.error_code,
                "durationMs": round(duration_ms, 3),
                **({"dryRun": True} if dry_run else {}),
            }
        },
    )


def ingest_replay_log_line(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    original_request_id: str,
    status: int,
    duration_ms: float,
) -> None:
    """The line of a retry answered with the stored answer of `original_request_id`."""
    logger.info(
        "ingest replayed",
        extra={
            "fields": {
                "requestId": request_id,
                "replayOf": original_request_id,
                "organization": organization.group_key,
                "apiKeyPrefix": api_key.prefix if api_key is not None else "",
                "status": status,
                "durationMs": round(duration_ms, 3),
            }
        },
    )


def _purge_by_organization(
    model: type[IngestionRequest] | type[RecordHistory], before: datetime, batch_size: int
) -> int:
    """Delete `model`'s rows, of every organization, created before `before`; returns how
    many. Organization by organization (each lookup uses the tenant-leading index) and in
    batches, so no statement holds locks on much of the table."""
    deleted = 0
    for organization_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        old = model.objects.filter(organization_id=organization_id, created_at__lt=before)
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            deleted += model.objects.filter(organization_id=organization_id, pk__in=ids).delete()[0]
    return deleted


def ingestion_requests_purge(*, before: datetime, batch_size: int = 5000) -> int:
    """Delete the log rows created before `before`; returns how many."""
    return _purge_by_organization(IngestionRequest, before, batch_size)


def record_history_purge(*, before: datetime, batch_size: int = 5000) -> int:
    """Delete the record history entries written before `before`; returns how many."""
    return _purge_by_organization(RecordHistory, before, batch_size)


def idempotency_keys_purge(*, before: datetime, batch_size: int = 5000) -> int:
    """Delete the Idempotency-Keys, of every organization, that expired before `before`;
    returns how many. In batches (by the expiry index), so no statement holds many locks;
    each batch deleted by its tenant-leading keys."""
    deleted = 0
    expired = IdempotencyKey.objects.filter(expires_at__lt=before)
    while rows := list(expired.values_list("organization_id", "pk")[:batch_size]):
        by_organization: dict[int, list[int]] = {}
        for organization_id, pk in rows:
            by_organization.setdefault(organization_id, []).append(pk)
        for organization_id, ids in by_organization.items():
            deleted += IdempotencyKey.objects.filter(
                organization_id=organization_id, pk__in=ids
            ).delete()[0]
    return deleted
