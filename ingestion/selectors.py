"""Reads of the Read API. Every lookup is made inside the organization."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q
from django.http import QueryDict

from cdp.errors import InvalidValue
from cdp.models import EntityRecord, ModelKind, Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE, TAG_KEEP_HISTORY
from ingestion.models import RecordHistory
from journeys.events import event_as_json
from journeys.models import UserEvent

MAX_EVENTS_PAGE = 200
DEFAULT_EVENTS_PAGE = 50


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


# PostgreSQL cannot compare text holding U+0000; no stored value holds it (ingest refuses it).
NUL = "\x00"


def record_get(
    *, organization: Organization, object_type: str, key: str, mom_code: str | None
) -> EntityRecord | None:
    if NUL in f"{object_type}{key}{mom_code or ''}":
        return None
    records = EntityRecord.objects.select_related("data_model").filter(
        organization=organization, key=key
    )
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        records = records.filter(data_model__kind=ModelKind.CUSTOM, data_model__mom_code=mom_code)
    else:
        records = records.filter(
            data_model__kind=ModelKind.SYSTEM, data_model__object_type=object_type
        )
    return records.first()


def record_as_json(record: EntityRecord) -> dict[str, Any]:
    return {
        "cdpId": record.cdp_id,
        "objectType": record.data_model.object_type,
        "momCode": record.data_model.mom_code,
        "key": record.key,
        "source": record.source,
        "createdAt": epoch_ms(record.created_at),
        "updatedAt": epoch_ms(record.updated_at),
        "data": record.data,
    }


def _cursor_encode(event: UserEvent) -> str:
    raw = f"{event.event_at.isoformat()}|{event.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, pk = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("cursor time without zone")
        return moment.astimezone(UTC), int(pk)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue(["cursor"]) from None


@dataclass(frozen=True)
class UserEventQuery:
    event_name: str | None = None
    source: str | None = None
    source_id: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_EVENTS_PAGE
    cursor: tuple[datetime, int] | None = None

    @classmethod
    def from_params(cls, params: QueryDict) -> UserEventQuery:
        text = {
            name: (params.get(name) or "").strip() or None
            for name in ("eventName", "source", "sourceId")
        }
        bad = [name for name, value in text.items() if value and NUL in value]
        since = None
        if raw_since := params.get("since"):
            try:
                since = datetime.fromtimestamp(int(raw_since) / 1000, tz=UTC)
            except (ValueError, OverflowError, OSError):
                bad.append("since")
        limit = page_limit_parse(params, bad)
        if bad:
            raise InvalidValue(bad)
        raw_cursor = params.get("cursor")
        cursor = _cursor_decode(raw_cursor) if raw_cursor else None
        return cls(text["eventName"], text["source"], text["sourceId"], since, limit, cursor)


def page_limit_parse(params: QueryDict, bad: list[str]) -> int:
    """`limit`: 1–200, 50 when absent; a bad one is added to `bad`."""
    raw = params.get("limit")
    if not raw:
        return DEFAULT_EVENTS_PAGE
    try:
        limit = int(raw)
        if 1 <= limit <= MAX_EVENTS_PAGE:
            return limit
    except ValueError:
        pass
    bad.append("limit")
    return DEFAULT_EVENTS_PAGE


def user_events_list(
    *, organization: Organization, query: UserEventQuery
) -> tuple[list[UserEvent], str | None]:
    """A page of the organization's user events, newest first, and the next page's cursor."""
    events = UserEvent.objects.filter(organization=organization).select_related("config")
    if query.event_name:
        events = events.filter(event_name=query.event_name)
    if query.source:
        events = events.filter(source=query.source)
    if query.source_id:
        events = events.filter(source_id=query.source_id)
    if query.since:
        events = events.filter(event_at__gte=query.since)
    if query.cursor:
        # The events after (at, pk) in page order: (event_at, id) < (at, pk). Said as
        # "event_at <= at and (event_at < at or id < pk)", the bound on event_at is the
        # index's range, so the scan starts at the cursor; said as "event_at < at or
        # (event_at = at and id < pk)", it is a filter, and the scan reads every newer
        # event before it (224 ms a page at the millionth event, against 2.5 ms).
        at, pk = query.cursor
        events = events.filter(Q(event_at__lte=at), Q(event_at__lt=at) | Q(pk__lt=pk))
    page = list(events.order_by("-event_at", "-pk")[: query.limit + 1])
    has_more = len(page) > query.limit
    page = page[: query.limit]
    return page, (_cursor_encode(page[-1]) if has_more else None)


def user_event_as_json(event: UserEvent) -> dict[str, Any]:
    config = event.config
    return {
        "eventId": event.event_id,
        **event_as_json(
            event,
            event_at_ms=epoch_ms(event.event_at),
            je_config_id=config.config_id if config else None,
            je_event_key=config.event_key if config else None,
        ),
        "requestId": event.request_id,
    }


# --- record history ------------------------------------------------------------------------


def record_keeps_history(record: EntityRecord) -> bool:
    return TAG_KEEP_HISTORY in record.data_model.tags


def _history_cursor_decode(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode().removeprefix("h"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue(["cursor"]) from None


def _history_cursor_encode(entry: RecordHistory) -> str:
    return base64.urlsafe_b64encode(f"h{entry.pk}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class HistoryQuery:
    limit: int = DEFAULT_EVENTS_PAGE
    before_id: int | None = None  # the cursor: entries older than this one

    @classmethod
    def from_params(cls, params: QueryDict) -> HistoryQuery:
        bad: list[str] = []
        limit = page_limit_parse(params, bad)
        if bad:
            raise InvalidValue(bad)
        cursor = params.get("cursor")
        return cls(limit, _history_cursor_decode(cursor) if cursor else None)


def record_history_page(
    *, record: EntityRecord, query: HistoryQuery
) -> tuple[list[RecordHistory], str | None]:
    """A page of the record's history, newest first, and the next page's cursor (one
    index range scan: organization, model, key, id)."""
    entries = RecordHistory.objects.filter(
        organization_id=record.organization_id, data_model_id=record.data_model_id, key=record.key
    )
    if query.before_id is not None:
        entries = entries.filter(pk__lt=query.before_id)
    page = list(entries.order_by("-pk")[: query.limit + 1])
    has_more = len(page) > query.limit
    page = page[: query.limit]
    return page, (_history_cursor_encode(page[-1]) if has_more else None)


def history_entry_as_json(entry: RecordHistory) -> dict[str, Any]:
    return {
        "requestId": entry.request_id,
        "action": entry.action,
        "source": entry.source,
        "at": epoch_ms(entry.created_at),
        "changes": entry.changes,
    }
