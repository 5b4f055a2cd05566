"""The ingest request, top to bottom, behind one door (`ingest`):

read and parse the body (checks 5–7) → check the payload (8–9) → resolve the models
(10), the User Event (11–12) and `ignoredUpdateCfs` (13) from the worker's copy of the
organization's schema → validate every entry with its model's compiled checks → in one
transaction: the locked read, the plan (ingestion/plan.py: every decision), the write
(ingestion/writer.py) → log line → answer.

The HTTP endpoint (after the gate's checks 1–4) and the Console's test form (after its
own access check and the key's rate limits) come through `ingest`; `import_records`
(parsed entries, its own batch size) through its two steps, `ingest_prepare` and
`ingest_write`, which it runs a batch apart. Every outcome is logged once, here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from cdp.errors import (
    ApiError,
    IdempotencyKeyReused,
    InvalidObjectType,
    InvalidValue,
    error_body,
)
from cdp.identifiers import cdp_ids_generate
from cdp.models import ApiKey, Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE, USER_EVENT_OBJECT_TYPE
from cdp.schema_cache import schema_version as current_schema_version
from cdp.selectors import LoadedModel, OrganizationModels, organization_models
from cdp.suppression import SUPPRESSED_MESSAGE, suppressed_digests, suppressed_fields
from ingestion.destinations import destination_routes
from ingestion.log import ingest_log_line, ingest_replay_log_line
from ingestion.payload import (
    IngestPayload,
    body_parse,
    body_read,
    idempotency_key_check,
    is_dry_run,
    payload_check,
    query_flags_parse,
    request_fingerprint,
)
from ingestion.plan import (
    Caller,
    Idempotency,
    IngestPlan,
    Snapshot,
    StoredAnswer,
    plan_build,
    refusal_log_row,
)
from ingestion.validation import RejectedEntry, ValidEntry, entry_validate
from ingestion.writer import (
    PortableWriter,
    PostgresWriter,
    ReadRequest,
    log_row_create,
    writer,
)
from journeys.configs import UserEventRules, config_resolve
from journeys.user_events import user_event_lookups


@dataclass(frozen=True)
class IngestLimits:
    """What one call may hold: the API's limits, or an import's."""

    max_entries: int | None  # check 9; None: any number
    events_cap: int | None  # events per request; None: no cap


def api_limits() -> IngestLimits:
    return IngestLimits(settings.CDP_INGEST_MAX_ENTRIES, settings.CDP_MAX_EVENTS_PER_REQUEST)


@dataclass(frozen=True)
class IngestResponse:
    status: int
    content: bytes  # the JSON body
    error: ApiError | None = None  # the request was refused; nothing was stored
    plan: IngestPlan | None = None
    # A retry answered with the stored answer of this (original) request.
    replay_of: str | None = None

    @cached_property
    def body(self) -> dict[str, Any]:
        return orjson.loads(self.content)


@dataclass(frozen=True)
class _RequestModels:
    system_model: LoadedModel | None
    custom_models: dict[str, LoadedModel]  # by momCode: those the entries name

    def by_id(self) -> dict[int, LoadedModel]:
        models = [self.system_model] if self.system_model else self.custom_models.values()
        return {m.pk: m for m in models}


def _models_resolve(models: OrganizationModels, payload: IngestPayload) -> _RequestModels:
    """Check 10."""
    if payload.object_type == CUSTOM_MODEL_OBJECT_TYPE:
        custom = models.custom
        named = {}
        for entry in payload.entries:
            if isinstance(entry, dict):
                code = entry.get("momCode")
                if isinstance(code, str) and (code := code.strip()) in custom:
                    named[code] = custom[code]
        return _RequestModels(None, named)
    system_model = models.system.get(payload.object_type)
    if system_model is None:
        raise InvalidObjectType(f"Unknown objectType: {payload.object_type}")
    return _RequestModels(system_model, {})


def _ignored_fields_check(payload: IngestPayload, models: Mapping[int, LoadedModel]) -> list[str]:
    """Check 13; returns the warnings for models that do not support the list."""
    if not payload.ignored_update_cfs:
        return []
    custom_names = {f.name for m in models.values() for f in m.schema.custom_fields}
    if any(name not in custom_names for name in payload.ignored_update_cfs):
        raise InvalidValue(["ignoredUpdateCfs"])
    return [
        f"ignoredUpdateCfs is ignored for {m.data_model}: the model does not support it"
        for m in models.values()
        if not m.schema.supports_ignored_update_cfs
    ]


def _read_request(
    organization_id: int,
    payload: IngestPayload,
    valid: list[ValidEntry],
    rules: UserEventRules | None,
    limits: IngestLimits,
    *,
    idempotency_key: str | None,
    dry_run: bool,
) -> ReadRequest:
    pairs = sorted({(e.model.pk, e.key) for e in valid})
    fires_once = rules is not None and rules.fires_once and not payload.init_data
    is_user_event = payload.object_type == USER_EVENT_OBJECT_TYPE
    return ReadRequest(
        organization_id=organization_id,
        pairs=pairs,
        read_records=not is_user_event,
        fired_config_id=rules.config.pk if fires_once and rules is not None else None,
        fired_keys=[k for m, k in pairs if rules is not None and m == rules.model.pk]
        if fires_once
        else (),
        user_event_lookups=sorted(user_event_lookups(e.patch for e in valid))
        if is_user_event
        else (),
        idempotency_key=idempotency_key,
        lock=not dry_run,
    )


@dataclass(frozen=True)
class PreparedIngest:
    """A request past its checks (5–13) and the validation of its entries: what remains
    is the transaction (`ingest_write`). Or its refusal, already logged."""

    refusal: IngestResponse | None
    organization: Organization
    api_key: ApiKey | None
    caller: Caller
    request_id: str
    started: float
    limits: IngestLimits
    payload: IngestPayload | None = None
    rules: UserEventRules | None = None
    warnings: list[str] = field(default_factory=list)
    valid: list[ValidEntry] = field(default_factory=list)
    rejected: list[RejectedEntry] = field(default_factory=list)
    dry_run: bool = False
    idempotency_key: str | None = None  # None for dry runs, which ignore the header
    fingerprint: str = ""
    schema_version: bytes = b""  # the version of the schema read for the checks
    model_ids: tuple[int, ...] = ()  # the request's models: those its entries name


def ingest(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    body: bytes | HttpRequest | None = None,
    content_type: str = "application/json",
    data: dict[str, Any] | None = None,
    init_data: str | bool | None = None,
    dry_run: str | bool | None = None,
    idempotency_key: str | None = None,
    schema_version: bytes | None = None,
    limits: IngestLimits | None = None,
) -> IngestResponse:
    """Run one ingest request of `organization`, sent with `api_key` (None for operator
    imports), from the raw `body` (an HTTP request or bytes) or from parsed `data`.

    `init_data` is the raw query value (or a bool, for imports). Checks 5–13 answer a
    refusal (`IngestResponse.error`), logged and storing nothing; otherwise the plan is
    written in one transaction, answering 200, or 400 INVALID_ENTRIES with the full body
    when every entry was rejected. The two steps are `ingest_prepare` and `ingest_write`
    (an import runs them in two threads, one batch apart).

    `dry_run` (the raw query value, or a bool) plans the request and writes nothing: the
    answer says what would change. `idempotency_key` (the raw header) stores the answer
    with the writes; a retry with the same key and request is answered the stored answer
    (`IngestResponse.replay_of`), writing nothing.
    """
    prepared = ingest_prepare(
        organization=organization,
        api_key=api_key,
        request_id=request_id,
        body=body,
        content_type=content_type,
        data=data,
        init_data=init_data,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
        schema_version=schema_version,
        limits=limits,
    )
    return prepared.refusal or ingest_write(prepared)


def _unless_suppressed(entry: ValidEntry, digests: frozenset[str]) -> ValidEntry | RejectedEntry:
    """The entry, or its refusal when it carries an identifier an erasure suppressed. The
    result then names the entry by its key only when the key is not that identifier: the
    result is logged, and a suppressed identifier is never stored."""
    fields = suppressed_fields(entry.patch, digests)
    if not fields:
        return entry
    key = None if entry.model.schema.key_field in fields else entry.key
    return RejectedEntry(entry.index, key, SUPPRESSED_MESSAGE)


def _caller(organization: Organization, api_key: ApiKey | None, version: bytes) -> Caller:
    return Caller(
        organization_id=organization.pk,
        callback_enabled=organization.callback_enabled,
        api_key_id=api_key.pk if api_key is not None else None,
        api_key_prefix=api_key.prefix if api_key is not None else "",
        destinations=destination_routes(organization.pk, version=version),
    )


def _rules_resolve(
    organization: Organization,
    payload: IngestPayload,
    models: Mapping[int, LoadedModel],
    version: bytes,
) -> UserEventRules | None:
    """Checks 11–12: the User Event the payload names, for the request's models."""
    return config_resolve(
        organization=organization,
        config_id=payload.je_config_id,
        event_key=payload.je_event_key,
        models=models,
        version=version,
    )


def ingest_prepare(
    *,
    organization: Organization,
    api_key: ApiKey | None,
    request_id: str,
    body: bytes | HttpRequest | None = None,
    content_type: str = "application/json",
    data: dict[str, Any] | None = None,
    init_data: str | bool | None = None,
    dry_run: str | bool | None = None,
    idempotency_key: str | None = None,
    schema_version: bytes | None = None,
    limits: IngestLimits | None = None,
) -> PreparedIngest:
    """The Idempotency-Key's check, checks 5–13 and every entry's validation (see
    `ingest`); no transaction, but for a refused request with a key (is it a retry?)."""
    started = time.perf_counter()
    limits = limits or api_limits()
    # One version for every part of the schema read below (destinations, models, User
    # Events, suppressions): the HTTP path read it with the token; an import's batch or
    # the Console's test form reads it here, once, instead of once per part.
    schema_version = current_schema_version(organization.pk, read=schema_version)
    caller = _caller(organization, api_key, schema_version)
    # A dry run ignores the Idempotency-Key, which is checked before its flag (check 7).
    dry = dry_run if isinstance(dry_run, bool) else is_dry_run(dry_run)
    prepared = PreparedIngest(
        None, organization, api_key, caller, request_id, started, limits, dry_run=dry
    )
    payload: IngestPayload | None = None
    rules: UserEventRules | None = None
    key: str | None = None
    fingerprint = ""
    try:
        key = None if dry else idempotency_key_check(idempotency_key)
        if data is None:
            assert body is not None
            raw = body_read(body)
            fingerprint = request_fingerprint(raw, init_data) if key is not None else ""
            data = body_parse(raw, content_type)
        if isinstance(init_data, bool):
            init = init_data
        else:
            init, _ = query_flags_parse(init_data, None if isinstance(dry_run, bool) else dry_run)
        payload = payload_check(data, init_data=init, max_entries=limits.max_entries)
        request_models = _models_resolve(
            organization_models(organization=organization, version=schema_version), payload
        )
        by_id = request_models.by_id()
        rules = _rules_resolve(organization, payload, by_id, schema_version)
        warnings = _ignored_fields_check(payload, by_id)
    except ApiError as error:
        prepared = replace(prepared, idempotency_key=key, fingerprint=fingerprint)
        if key is not None and fingerprint:
            # As if the stored answer had been looked up as soon as the body was read.
            with writer() as store:
                answer = store.read(ReadRequest(organization.pk, idempotency_key=key))
                retried = _retry_answer(store, prepared, answer.stored_answer)
                if retried is None:
                    store.release()
            if retried is not None:
                return replace(prepared, refusal=retried)
        return replace(prepared, refusal=_refuse(prepared, payload, rules, error))

    valid: list[ValidEntry] = []
    rejected: list[RejectedEntry] = []
    object_type, system_model = payload.object_type, request_models.system_model
    custom_models = request_models.custom_models
    digests = suppressed_digests(organization.pk, version=schema_version)
    for index, entry in enumerate(payload.entries):
        checked = entry_validate(
            entry,
            index=index,
            object_type=object_type,
            system_model=system_model,
            custom_models=custom_models,
        )
        if digests and type(checked) is ValidEntry:
            checked = _unless_suppressed(checked, digests)
        (valid if type(checked) is ValidEntry else rejected).append(checked)  # type: ignore[arg-type]
    return replace(
        prepared,
        payload=payload,
        rules=rules,
        warnings=warnings,
        valid=valid,
        rejected=rejected,
        idempotency_key=key,
        fingerprint=fingerprint,
        schema_version=schema_version,
        model_ids=tuple(by_id),
    )


@dataclass(frozen=True)
class PortablePrepared:
    """An import's prepared batch as another process can receive it (pickled): plain
    values, the models by id. Only what `ingest_write` needs of an import's batch (no
    API key, no Idempotency-Key, no dry run); the entries themselves stay behind, the plan
    needs only their number."""

    request_id: str
    started: float  # time.perf_counter(): one clock for every process of the machine
    version: bytes  # the schema version the batch was validated against
    model_ids: tuple[int, ...]  # the request's models (those its entries name)
    payload: IngestPayload  # with `entries` emptied
    entries: int
    warnings: list[str]
    valid: list[tuple[int, str, int, dict[str, Any]]]  # index, key, model id, patch
    rejected: list[RejectedEntry]


def prepared_portable(prepared: PreparedIngest) -> PortablePrepared:
    """An import's prepared batch, past its checks (no refusal), in portable form."""
    payload = prepared.payload
    assert payload is not None and prepared.refusal is None
    assert prepared.api_key is None and prepared.idempotency_key is None and not prepared.dry_run
    return PortablePrepared(
        request_id=prepared.request_id,
        started=prepared.started,
        version=prepared.schema_version,
        model_ids=prepared.model_ids,
        payload=replace(payload, entries=[]),
        entries=len(payload.entries),
        warnings=prepared.warnings,
        valid=[(e.index, e.key, e.model.pk, e.patch) for e in prepared.valid],
        rejected=prepared.rejected,
    )


def prepared_restore(
    portable: PortablePrepared, *, organization: Organization, limits: IngestLimits
) -> PreparedIngest:
    """The batch `prepared_portable` gave, for `ingest_write` in this process: its models
    and User Event from this process's copy of the schema at the batch's version. Raises
    ApiError when the User Event changed meanwhile so that it no longer applies."""
    version = portable.version
    models = organization_models(organization=organization, version=version)
    all_models = {m.pk: m for m in (*models.system.values(), *models.custom.values())}
    by_id = {pk: all_models[pk] for pk in portable.model_ids}
    payload = replace(portable.payload, entries=[None] * portable.entries)
    rules = _rules_resolve(organization, payload, by_id, version)
    return PreparedIngest(
        None,
        organization,
        None,
        _caller(organization, None, version),
        portable.request_id,
        portable.started,
        limits,
        payload=payload,
        rules=rules,
        warnings=portable.warnings,
        valid=[
            ValidEntry(index, key, all_models[model_id], patch)
            for index, key, model_id, patch in portable.valid
        ],
        rejected=portable.rejected,
    )


def ingest_write(prepared: PreparedIngest) -> IngestResponse:
    """The locked read, the plan and its write, in one transaction; then the log line.

    With an Idempotency-Key whose stored answer the read finds, that answer instead (a
    retry) or 422 (the key was used for another request), writing nothing. A dry run
    reads without locks, plans, and writes nothing."""
    payload, rules, valid = prepared.payload, prepared.rules, prepared.valid
    assert payload is not None and prepared.refusal is None
    organization, key = prepared.organization, prepared.idempotency_key
    read = _read_request(
        organization.pk,
        payload,
        valid,
        rules,
        prepared.limits,
        idempotency_key=key,
        dry_run=prepared.dry_run,
    )
    with writer(read_only=prepared.dry_run) as store:
        snapshot = store.read(read) if read.pairs or key is not None else Snapshot()
        # After the locks: a request that waited for the one before it writes a later time.
        now = timezone.now()
        retried = _retry_answer(store, prepared, snapshot.stored_answer)
        if retried is not None:
            return retried
        plan = plan_build(
            caller=prepared.caller,
            request_id=prepared.request_id,
            payload=payload,
            valid=valid,
            rejected=prepared.rejected,
            rules=rules,
            warnings=prepared.warnings,
            snapshot=snapshot,
            events_cap=prepared.limits.events_cap,
            now=now,
            new_cdp_id=iter(cdp_ids_generate(len(valid))).__next__,
            elapsed_ms=(time.perf_counter() - prepared.started) * 1000,
            idempotency=Idempotency(
                key,
                prepared.fingerprint,
                now + timedelta(seconds=settings.CDP_IDEMPOTENCY_KEY_TTL_SECONDS),
            )
            if key is not None
            else None,
            dry_run=prepared.dry_run,
        )
        if not prepared.dry_run:
            store.write(plan)
    ingest_log_line(
        organization=organization,
        api_key=prepared.api_key,
        request_id=prepared.request_id,
        log=plan.log,
        duration_ms=(time.perf_counter() - prepared.started) * 1000,
        dry_run=prepared.dry_run,
    )
    return IngestResponse(plan.status, plan.content, plan=plan)


def _retry_answer(
    store: PostgresWriter | PortableWriter,
    prepared: PreparedIngest,
    answer: StoredAnswer | None,
) -> IngestResponse | None:
    """What a request whose Idempotency-Key holds `answer` gets, ending the writer's
    transaction: the stored answer, when it is the same request again (the replay is
    counted on the original's log row), or 422 after the transaction; None when the key
    holds no answer."""
    if answer is None:
        return None
    organization = prepared.organization
    if answer.fingerprint != prepared.fingerprint:
        store.release()
        return _refuse(prepared, prepared.payload, prepared.rules, IdempotencyKeyReused())
    store.replayed(organization.pk, answer.request_id, timezone.now())
    ingest_replay_log_line(
        organization=organization,
        api_key=prepared.api_key,
        request_id=prepared.request_id,
        original_request_id=answer.request_id,
        status=answer.status,
        duration_ms=(time.perf_counter() - prepared.started) * 1000,
    )
    return IngestResponse(answer.status, answer.content, replay_of=answer.request_id)


def _refuse(
    prepared: PreparedIngest,
    payload: IngestPayload | None,
    rules: UserEventRules | None,
    error: ApiError,
) -> IngestResponse:
    """A refused request: logged (a dry run's only in the log line), nothing stored."""
    elapsed_ms = (time.perf_counter() - prepared.started) * 1000
    log = refusal_log_row(
        caller=prepared.caller,
        payload=payload,
        config_id=rules.config.pk if rules is not None else None,
        error=error,
        elapsed_ms=elapsed_ms,
        idempotency_key=prepared.idempotency_key or "",
    )
    organization, request_id = prepared.organization, prepared.request_id
    if not prepared.dry_run:
        log_row_create(organization.pk, request_id, timezone.now(), log)
    ingest_log_line(
        organization=organization,
        api_key=prepared.api_key,
        request_id=request_id,
        log=log,
        duration_ms=(time.perf_counter() - prepared.started) * 1000,
        dry_run=prepared.dry_run,
    )
    body = error_body(error, request_id)
    if prepared.dry_run:
        body["dryRun"] = True
    return IngestResponse(error.status, orjson.dumps(body), error=error)
