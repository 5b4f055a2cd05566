"""Erasure: a person's data removed from an organization on request (the right to be
forgotten), and, with `suppress`, kept out afterwards.

`erasure_run` does it in one transaction, inside the organization: every record of every
model whose customerId, email (case-insensitively) or phone is a given value, with its
history; every user event that carries one of them or was generated from such a record;
and what the outboxes still hold of them (the results of pending and failed callbacks,
the events of pending and failed destination deliveries). Each lookup uses an index of
its own (cdp.models, journeys.models), never a scan of the tenant's records.

Copies of identifiers in what was logged (the request log's results, the stored answers
of idempotency keys, sent callbacks) are removed after the commit by the worker
(`erasure_logs_scrub`): it reads the organization's whole log, which has no place in a
request that must answer in under a second. It works from digests, never the values.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cdp.errors import InvalidValue
from cdp.models import (
    DataModel,
    EntityRecord,
    ErasureRequest,
    Organization,
)
from cdp.schema_cache import schema_changed
from cdp.selectors import identifier_condition, record_identifier_condition
from cdp.suppression import identifier_digest
from ingestion.models import CallbackDelivery, CallbackStatus, DestinationDelivery, RecordHistory
from journeys.models import EVENT_IDENTIFIERS, UserEvent

IDENTIFIERS = ("customerId", "email", "phone")
# Each identifier's name as a Python argument (the Console's form fields, the command's
# options).
IDENTIFIER_ARGUMENTS = {"customerId": "customer_id", "email": "email", "phone": "phone"}
# The event column that holds each identifier.
_EVENT_COLUMNS = {"customerId": "customer_id", "email": "email", "phone": "phone"}
# Outbox rows that may still be sent (a failed one, by a Replay).
_UNSENT = (CallbackStatus.PENDING, CallbackStatus.FAILED)
_DELETE_CHUNK = 5000
# Digests of keys the scrub also removes from the logs (records' keys, events' sourceIds).
KEY_KIND = "key"


@dataclass(frozen=True)
class ErasureOrder:
    """What to erase: the identifiers given, by kind (customerId, email, phone)."""

    identifiers: Mapping[str, str]
    suppress: bool = False


def erasure_order_parse(data: Mapping[str, Any]) -> ErasureOrder:
    """The body of an erasure request. At least one identifier, each a non-empty string
    (null: not given); `suppress` a boolean; no other key (a misspelt identifier must not
    pass for an erasure of less). Otherwise MISSING_INFO `Invalid value of: …`: the
    fields given badly, in body order, or all three identifiers when none is given."""
    bad = []
    for name, value in data.items():
        if name in IDENTIFIERS:
            if value is not None and (not isinstance(value, str) or not value.strip()):
                bad.append(name)
        elif name != "suppress" or not isinstance(value, bool):
            bad.append(name)
    given = {name: data[name] for name in IDENTIFIERS if isinstance(data.get(name), str)}
    if not given and not bad:
        bad = list(IDENTIFIERS)
    if bad:
        raise InvalidValue(bad)
    return ErasureOrder(identifiers=given, suppress=data.get("suppress", False))


def _records_matching(organization: Organization, identifiers: Mapping[str, str]) -> set[tuple]:
    """(id, data model id, key) of every record of the organization carrying one."""
    found: set[tuple] = set()
    records = EntityRecord.objects.filter(organization=organization)
    for kind, value in identifiers.items():
        matching = records.filter(record_identifier_condition(kind=kind, value=value))
        found.update(matching.values_list("id", "data_model_id", "key"))
    return found


def _events_matching(
    organization: Organization,
    identifiers: Mapping[str, str],
    sources: Mapping[str, list[str]],
) -> set[tuple[int, str, str]]:
    """(id, eventId, sourceId) of every event of the organization carrying one of the
    identifiers, or generated from one of the records (`sources`: source → keys)."""
    found: set[tuple[int, str, str]] = set()
    events = UserEvent.objects.filter(organization=organization)
    fields = ("id", "event_id", "source_id")
    for kind, value in identifiers.items():
        column = _EVENT_COLUMNS[kind]
        within = ~Q(**{column: ""})
        matching = events.filter(
            identifier_condition(EVENT_IDENTIFIERS[column], kind, value, within=within)
        )
        found.update(matching.values_list(*fields))
    for source, keys in sources.items():
        for chunk in _chunks(keys):
            found.update(events.filter(source_id__in=chunk, source=source).values_list(*fields))
    return found


def _chunks(items: list, size: int = _DELETE_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete_by_id(queryset: QuerySet, ids: list[int]) -> int:
    deleted = 0
    for chunk in _chunks(ids):
        deleted += queryset.filter(id__in=chunk).delete()[0]
    return deleted


def _callbacks_erase(organization: Organization, names: set[str], emails: set[str]) -> int:
    """Remove the erased entries (by refId) from the callbacks not yet delivered: a refId
    that is one of `names` exactly, or an erased email in any case (`emails`, lower-case);
    a callback left with none is deleted. How many callbacks changed."""
    changed = 0
    unsent = CallbackDelivery.objects.filter(organization=organization, status__in=_UNSENT)
    for row in unsent.only("id", "body"):
        body = orjson.loads(row.body)
        data = body.get("data", {})
        kept = {
            ref: result
            for ref, result in data.items()
            if ref not in names and ref.lower() not in emails
        }
        if len(kept) == len(data):
            continue
        changed += 1
        if not kept:
            unsent.filter(id=row.id).delete()
        else:
            text = orjson.dumps({**body, "data": kept}).decode()
            unsent.filter(id=row.id).update(body=text, entries=len(kept))
    return changed


def _deliveries_erase(organization: Organization, event_ids: set[str]) -> int:
    """Remove the erased events from the deliveries not yet delivered; a delivery left
    with none is deleted (it would POST an empty list). How many deliveries changed."""
    changed = 0
    unsent = DestinationDelivery.objects.filter(organization=organization, status__in=_UNSENT)
    for row in unsent.only("id", "event_ids"):
        kept = [i for i in row.event_ids if i not in event_ids]
        if len(kept) == len(row.event_ids):
            continue
        changed += 1
        if kept:
            unsent.filter(id=row.id).update(event_ids=kept)
        else:
            unsent.filter(id=row.id).delete()
    return changed


def erasure_run(
    *,
    organization: Organization,
    order: ErasureOrder,
    requested_by: str,
    now: datetime | None = None,
) -> ErasureRequest:
    """Erase the person `order` names from `organization` (see the module) and record the
    request: who asked, the counts, and with `suppress` the identifiers' digests. The
    log scrub is queued in the same transaction."""
    from ingestion.tasks import erasure_logs_scrub_task

    now = now or timezone.now()
    identifiers = order.identifiers
    with transaction.atomic():
        records = _records_matching(organization, identifiers)
        keys_by_model: dict[int, list[str]] = defaultdict(list)
        for _, model_id, key in records:
            keys_by_model[model_id].append(key)
        data_models = DataModel.objects.filter(organization=organization).in_bulk(keys_by_model)
        sources = {data_models[m].source_name: keys for m, keys in keys_by_model.items()}
        events = _events_matching(organization, identifiers, sources)
        history = 0
        for model_id, model_keys in keys_by_model.items():
            for chunk in _chunks(model_keys):
                history += RecordHistory.objects.filter(
                    organization=organization, data_model_id=model_id, key__in=chunk
                ).delete()[0]
        erased_events = _delete_by_id(
            UserEvent.objects.filter(organization=organization), [e[0] for e in events]
        )
        erased_records = _delete_by_id(
            EntityRecord.objects.filter(organization=organization), [r[0] for r in records]
        )
        # What names the person in the outboxes and logs: the identifiers, the erased
        # records' keys (a customer's key is its customerId) and events' sourceIds.
        keys = {key for _, _, key in records} | {source_id for _, _, source_id in events}
        names = {v for k, v in identifiers.items() if k != "email"} | keys
        emails = {v.lower() for k, v in identifiers.items() if k == "email"}
        digests = [identifier_digest(kind, value) for kind, value in identifiers.items()]
        erasure = ErasureRequest.objects.create(
            organization=organization,
            erasure_id=secrets.token_hex(16),
            identifiers=list(identifiers),
            requested_by=requested_by,
            records=erased_records,
            events=erased_events,
            history=history,
            callbacks=_callbacks_erase(organization, names, emails),
            deliveries=_deliveries_erase(organization, {e[1] for e in events}),
            suppress=order.suppress,
            digests=digests if order.suppress else [],
            created_at=now,
        )
        if order.suppress:
            schema_changed(organization.pk)  # every worker's ingest path sees it
        scrub = digests + [identifier_digest(KEY_KIND, key) for key in sorted(keys)]
        erasure_logs_scrub_task.enqueue(organization.pk, erasure.erasure_id, scrub)
    return erasure


def erasure_answer(erasure: ErasureRequest) -> dict[str, Any]:
    """The erasure endpoint's answer (the command's `--json` too)."""
    return {
        "success": True,
        "erasureId": erasure.erasure_id,
        "records": erasure.records,
        "events": erasure.events,
    }


def suppression_lift(*, erasure: ErasureRequest, lifted_by: str) -> bool:
    """Lift the erasure's suppression: its identifiers may be ingested again, and its
    digests are dropped. False when it had none to lift."""
    with transaction.atomic():
        lifted = ErasureRequest.objects.filter(
            organization_id=erasure.organization_id,
            pk=erasure.pk,
            suppress=True,
            suppression_lifted_at__isnull=True,
        ).update(suppression_lifted_at=timezone.now(), suppression_lifted_by=lifted_by, digests=[])
        if lifted:
            schema_changed(erasure.organization_id)
    erasure.refresh_from_db()
    return bool(lifted)


# ---------------------------------------------------------------------------------------
# The log scrub (the worker's).


def _named(value: Any, digests: frozenset[str]) -> bool:
    """Whether `value` (a logged refId) is one of the erased names."""
    if not isinstance(value, str) or not value:
        return False
    return any(identifier_digest(kind, value) in digests for kind in (*IDENTIFIERS, KEY_KIND))


def _results_scrubbed(results: list[Any], digests: frozenset[str]) -> bool:
    """Null every result's refId that names an erased person, in place; whether any did."""
    changed = False
    for result in results:
        if isinstance(result, dict) and _named(result.get("refId"), digests):
            result["refId"] = None
            changed = True
    return changed


def erasure_logs_scrub(*, organization_id: int, erasure_id: str, digests: Iterable[str]) -> int:
    """Remove the erased names (given as digests) from the organization's request log
    (results' refId), stored idempotent answers (the same) and callbacks (their `data`
    keys), then mark the erasure scrubbed. How many rows changed."""
    from ingestion.models import IdempotencyKey, IngestionRequest

    wanted = frozenset(digests)
    changed = 0
    log = IngestionRequest.objects.filter(organization_id=organization_id)
    for row in log.only("id", "results").iterator(chunk_size=2000):
        if _results_scrubbed(row.results, wanted):
            log.filter(id=row.id).update(results=row.results)
            changed += 1
    answers = IdempotencyKey.objects.filter(organization_id=organization_id)
    for row in answers.only("id", "body").iterator(chunk_size=2000):
        body = orjson.loads(row.body)
        if _results_scrubbed(body.get("results", []), wanted):
            answers.filter(id=row.id).update(body=orjson.dumps(body).decode())
            changed += 1
    callbacks = CallbackDelivery.objects.filter(organization_id=organization_id)
    for row in callbacks.only("id", "body").iterator(chunk_size=2000):
        body = orjson.loads(row.body)
        data = body.get("data", {})
        kept = {ref: result for ref, result in data.items() if not _named(ref, wanted)}
        if len(kept) != len(data):
            callbacks.filter(id=row.id).update(body=orjson.dumps({**body, "data": kept}).decode())
            changed += 1
    ErasureRequest.objects.filter(organization_id=organization_id, erasure_id=erasure_id).update(
        logs_scrubbed_at=timezone.now()
    )
    return changed
