"""The ingest request, top to bottom (DESIGN §6):

authenticate → limit (both done by the view's DRF classes) → read and parse → resolve
models and the User Event → validate entries → upsert → generate events → queue the
callback → log → respond.

Each step is a call into the module that owns it; each step's output is the next one's
input. The organization comes from the authenticated API key, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from cdp.errors import ApiError, InvalidEntries, InvalidObjectType, InvalidValue, error_body
from cdp.models import ApiKey, Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE, USER_EVENT_OBJECT_TYPE
from cdp.selectors import LoadedModel, custom_models_load, system_model_load
from ingestion.callbacks import callback_enqueue
from ingestion.log import ingestion_request_log
from ingestion.payload import IngestPayload, body_parse, body_read, init_data_parse, payload_check
from ingestion.upsert import CREATED, UNCHANGED, UPDATED, StoredEntry, records_upsert
from ingestion.validation import RejectedEntry, ValidEntry, entry_validate
from journeys.configs import config_resolve
from journeys.generation import EventsOutcome, events_generate
from journeys.models import JourneyEventConfig
from journeys.user_events import user_events_store


@dataclass(frozen=True)
class IngestResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class _Models:
    system_model: LoadedModel | None
    custom_models: dict[str, LoadedModel]

    @property
    def all(self) -> list[LoadedModel]:
        return [self.system_model] if self.system_model else list(self.custom_models.values())


def _models_load(organization: Organization, payload: IngestPayload) -> _Models:
    if payload.object_type == CUSTOM_MODEL_OBJECT_TYPE:
        codes = {
            e["momCode"].strip()
            for e in payload.entries
            if isinstance(e, dict) and isinstance(e.get("momCode"), str)
        }
        return _Models(None, custom_models_load(organization=organization, mom_codes=codes))
    system_model = system_model_load(organization=organization, object_type=payload.object_type)
    if system_model is None:
        raise InvalidObjectType(f"Unknown objectType: {payload.object_type}")
    return _Models(system_model, {})


def _ignored_fields_check(payload: IngestPayload, models: _Models) -> list[str]:
    """Check 13; returns the warnings for models that do not support the list."""
    if not payload.ignored_update_cfs:
        return []
    custom_names = {f.name for m in models.all for f in m.schema.custom_fields}
    if any(name not in custom_names for name in payload.ignored_update_cfs):
        raise InvalidValue(["ignoredUpdateCfs"])
    return [
        f"ignoredUpdateCfs is ignored for {m.data_model}: the model does not support it"
        for m in models.all
        if not m.schema.supports_ignored_update_cfs
    ]


def _result(item: StoredEntry | RejectedEntry, event_ids: dict[int, str]) -> dict[str, Any]:
    if isinstance(item, RejectedEntry):
        return {"index": item.index, "refId": item.key, "status": 101, "errorMessage": item.message}
    result = {
        "index": item.index,
        "refId": item.entry.key,
        "status": 200,
        "action": item.action,
        "cdpId": item.cdp_id,
    }
    if item.index in event_ids:
        result["eventId"] = event_ids[item.index]
    return result


def _response_body(
    payload: IngestPayload,
    stored: list[StoredEntry],
    rejected: list[RejectedEntry],
    events: EventsOutcome,
    warnings: list[str],
) -> dict[str, Any]:
    items = sorted(
        [*stored, *rejected],
        key=lambda item: item.index,
    )
    actions = [s.action for s in stored]
    return {
        "objectType": payload.object_type,
        "initData": payload.init_data,
        "total": len(payload.entries),
        "created": actions.count(CREATED),
        "updated": actions.count(UPDATED),
        "unchanged": actions.count(UNCHANGED),
        "failed": len(rejected),
        "events": {
            "generated": events.generated,
            "suppressed": events.suppressed,
            "dropped": events.dropped,
        },
        "results": [_result(item, events.event_ids) for item in items],
        "warnings": [*warnings, *events.warnings],
    }


def _outcome(request_id: str, payload: IngestPayload, body: dict[str, Any]) -> IngestResponse:
    failed, total = body["failed"], body["total"]
    if failed == 0:
        return IngestResponse(200, {"success": True, "requestId": request_id, **body})
    error_class = InvalidEntries(f"{failed} of {total} entries rejected")
    status = 400 if failed == total else 200
    return IngestResponse(status, {**error_body(error_class, request_id), **body})


def _store(
    organization: Organization,
    payload: IngestPayload,
    valid: list[ValidEntry],
    config: JourneyEventConfig | None,
    request_id: str,
) -> tuple[list[StoredEntry], EventsOutcome]:
    now = timezone.now()
    if payload.object_type == USER_EVENT_OBJECT_TYPE:
        stored = user_events_store(
            organization=organization, entries=valid, request_id=request_id, now=now
        )
    else:
        stored = records_upsert(
            organization=organization,
            entries=valid,
            ignored_fields=frozenset(payload.ignored_update_cfs),
            source=payload.source,
            now=now,
        )
    events = events_generate(
        organization=organization,
        config=config,
        stored=stored,
        init_data=payload.init_data,
        request_id=request_id,
        now=now,
    )
    return stored, events


def ingest(*, api_key: ApiKey, request: HttpRequest, request_id: str) -> IngestResponse:
    """Run one authenticated, rate-limited HTTP ingest request; every outcome is logged.

    Reads the body under its size limit and parses it (checks 5–7), then `ingest_data`.
    Raises ApiError for checks 5–13 (after logging it).
    """
    started = time.perf_counter()
    try:
        data = body_parse(body_read(request), request.content_type or "")
        init_data = init_data_parse(request.GET.get("initData"))
    except ApiError as error:
        _log_refusal(api_key.organization, api_key, request_id, None, None, error, started)
        raise
    return ingest_data(
        organization=api_key.organization,
        api_key=api_key,
        data=data,
        init_data=init_data,
        request_id=request_id,
        started=started,
    )


def ingest_data(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    data: dict[str, Any],
    init_data: bool,
    request_id: str,
    started: float | None = None,
) -> IngestResponse:
    """Ingest a parsed body (checks 8–14, then store, generate events, log, respond).

    The HTTP endpoint, the Console's test form and `import_records` all come through
    here. `api_key` is None for operator imports. Raises ApiError for checks 8–13, after
    logging it; answers 200, or 400 INVALID_ENTRIES with the full body when every entry
    was rejected.
    """
    started = time.perf_counter() if started is None else started
    payload: IngestPayload | None = None
    config: JourneyEventConfig | None = None
    try:
        payload = payload_check(data, init_data=init_data)
        models = _models_load(organization, payload)
        config = config_resolve(
            organization=organization,
            config_id=payload.je_config_id,
            event_key=payload.je_event_key,
            model_ids={m.pk for m in models.all},
        )
        warnings = _ignored_fields_check(payload, models)
    except ApiError as error:
        _log_refusal(organization, api_key, request_id, payload, config, error, started)
        raise

    checked = [
        entry_validate(
            entry,
            index=index,
            object_type=payload.object_type,
            system_model=models.system_model,
            custom_models=models.custom_models,
        )
        for index, entry in enumerate(payload.entries)
    ]
    valid = [c for c in checked if isinstance(c, ValidEntry)]
    rejected = [c for c in checked if isinstance(c, RejectedEntry)]
    with transaction.atomic():
        stored, events = _store(organization, payload, valid, config, request_id)
        response = _outcome(
            request_id, payload, _response_body(payload, stored, rejected, events, warnings)
        )
        # In the same transaction: the partner hears of exactly what was committed.
        callback_enqueue(
            organization=organization,
            api_key=api_key,
            request_id=request_id,
            results=response.body["results"],
        )
        ingestion_request_log(
            organization=organization,
            api_key=api_key,
            request_id=request_id,
            payload=payload,
            config=config,
            status=response.status,
            body=response.body,
            started=started,
        )
    return response


def _log_refusal(
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    payload: IngestPayload | None,
    config: JourneyEventConfig | None,
    error: ApiError,
    started: float,
) -> None:
    ingestion_request_log(
        organization=organization,
        api_key=api_key,
        request_id=request_id,
        payload=payload,
        config=config,
        status=error.status,
        body=error_body(error, request_id),
        started=started,
    )
