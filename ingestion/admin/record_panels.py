"""What ingestion adds to a record's Console page (cdp.console.ConsoleSite's registry, slot
"record" of `cdp.EntityRecord`): its history, newest first, and the requests that wrote
it, linking to the Ingestion log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from cdp.console import ConsoleModelAdmin, console_site
from cdp.models import EntityRecord
from ingestion.models import IngestionRequest, RecordHistory
from ingestion.selectors import HistoryQuery, record_history_page, record_keeps_history

# The history entries a record's page shows; the Read API pages through all of them.
HISTORY_SHOWN = 50


@dataclass(frozen=True)
class HistoryRead:
    entries: list[RecordHistory]
    more: bool  # older entries than those shown


def _history(record: EntityRecord) -> HistoryRead:
    """The record's newest entries, read once for both panels of its page (one index range
    scan: organization, model, key, id) and kept on the record the page renders."""
    read: HistoryRead | None = getattr(record, "_console_history", None)
    if read is None:
        entries, cursor = record_history_page(record=record, query=HistoryQuery(HISTORY_SHOWN))
        read = HistoryRead(entries, cursor is not None)
        setattr(record, "_console_history", read)  # noqa: B010 (not a declared attribute)
    return read


def _text(value: Any) -> str | None:
    """A value of a change as text (None: null, shown as a dash)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def history_panel(
    request: HttpRequest, model_admin: ConsoleModelAdmin, record: EntityRecord
) -> dict[str, Any]:
    """Each write that created or changed the record, newest first: when, what, the
    request and each changed field from → to."""
    if not record_keeps_history(record):
        return {"keeps_history": False}
    read = _history(record)
    entries = [
        {
            "entry": entry,
            "changes": [
                {"field": name, "from": _text(change.get("from")), "to": _text(change.get("to"))}
                for name, change in entry.changes.items()
            ],
        }
        for entry in read.entries
    ]
    return {
        "keeps_history": True,
        "entries": entries,
        "more": read.more,
        "shown": HISTORY_SHOWN,
        "retention_days": settings.CDP_RECORD_HISTORY_DAYS,
    }


def requests_panel(
    request: HttpRequest, model_admin: ConsoleModelAdmin, record: EntityRecord
) -> dict[str, Any]:
    """The requests of the record's history, newest first, each linking to its row of the
    Ingestion log (one lookup of the log's unique key, organization and requestId)."""
    log_url = reverse(f"{model_admin.admin_site.name}:ingestion_ingestionrequest_changelist")
    if not record_keeps_history(record):
        return {"keeps_history": False, "log_url": log_url}
    request_ids = list(dict.fromkeys(entry.request_id for entry in _history(record).entries))
    logged = {
        row.request_id: row
        for row in IngestionRequest.objects.filter(
            organization_id=record.organization_id, request_id__in=request_ids
        ).only("pk", "request_id", "created_at", "status", "source", "object_type")
    }
    return {
        "keeps_history": True,
        "log_url": log_url,
        "requests": [{"request_id": rid, "logged": logged.get(rid)} for rid in request_ids],
    }


console_site.register_panel(
    EntityRecord,
    "record",
    key="history",
    title="History",
    template="admin/ingestion/entityrecord/history_panel.html",
    context=history_panel,
    order=10,
)
console_site.register_panel(
    EntityRecord,
    "record",
    key="requests",
    title="Requests that wrote it",
    template="admin/ingestion/entityrecord/requests_panel.html",
    context=requests_panel,
    order=30,
)
