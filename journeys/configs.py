"""Resolving the User Event an ingest request names (checks 11–12 of the ingest endpoint), from each
worker's copy of the organization's configurations, compiled once per schema version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cdp.errors import InvalidJourneyEvent, JourneyEventDisabled
from cdp.models import Organization
from cdp.schema_cache import schema_cached
from cdp.selectors import LoadedModel
from journeys.changes import CREATED, UPDATED
from journeys.filters import RecordPredicate, filter_compile, filter_reads_previous
from journeys.models import JourneyEventConfig, Trigger
from journeys.update_values import (
    UpdateValuesApplier,
    update_values_compile,
    update_values_read_previous,
)

_TRIGGER_ACTION = {Trigger.CREATED: CREATED, Trigger.CHANGED: UPDATED}


@dataclass(frozen=True)
class UserEventRules:
    """An enabled User Event compiled against its model's schema: the record action that
    triggers it, its filter and its update values, ready for the ingest hot path."""

    config: JourneyEventConfig
    model: LoadedModel
    action: str
    passes: RecordPredicate
    update: UpdateValuesApplier
    # The filter or the update values read `previous.<field>` (or ask what changed): they
    # run on the record with its previous values beside it.
    reads_previous: bool = False

    @property
    def fires_once(self) -> bool:
        """A `Created` User Event fires at most once per record, ever."""
        return self.config.trigger == Trigger.CREATED


@dataclass(frozen=True)
class _Configs:
    by_id: dict[str, JourneyEventConfig]
    by_key: dict[str, JourneyEventConfig]


def _configs(organization: Organization, version: bytes | None) -> _Configs:
    def load() -> _Configs:
        configs = list(
            JourneyEventConfig.objects.filter(organization=organization).select_related(
                "data_model"
            )
        )
        return _Configs({c.config_id: c for c in configs}, {c.event_key: c for c in configs})

    return schema_cached(organization.pk, "journeys.configs", load, version=version)


def config_rules(config: JourneyEventConfig, model: LoadedModel) -> UserEventRules:
    return UserEventRules(
        config=config,
        model=model,
        action=_TRIGGER_ACTION[Trigger(config.trigger)],
        passes=filter_compile(config.filters or {}, model.schema),
        update=update_values_compile(config.update_values or [], model.schema),
        reads_previous=filter_reads_previous(config.filters)
        or update_values_read_previous(config.update_values),
    )


def config_resolve(
    *,
    organization: Organization,
    config_id: str | None,
    event_key: str | None,
    models: Mapping[int, LoadedModel],
    version: bytes | None = None,
) -> UserEventRules | None:
    """The enabled config named by `config_id` and/or `event_key`, compiled, or None if
    neither is given.

    Raises InvalidJourneyEvent when they name no config of this organization, two
    different configs, or a config of a model other than `models` (the models of the
    request's entries, by id); JourneyEventDisabled when the config is disabled. No query
    while this worker's copy of the organization's schema is current.
    """
    if config_id is None and event_key is None:
        return None
    configs = _configs(organization, version)
    by_id = configs.by_id.get(config_id) if config_id is not None else None
    by_key = configs.by_key.get(event_key) if event_key is not None else None
    if config_id is not None and by_id is None:
        raise InvalidJourneyEvent(f"Unknown jeConfigId: {config_id}")
    if event_key is not None and by_key is None:
        raise InvalidJourneyEvent(f"Unknown jeEventKey: {event_key}")
    if by_id is not None and by_key is not None and by_id.pk != by_key.pk:
        raise InvalidJourneyEvent("jeConfigId and jeEventKey name two different User Events")
    config = by_id or by_key
    assert config is not None
    model = models.get(config.data_model_id)
    if model is None:
        raise InvalidJourneyEvent(
            f"User Event {config.config_id} belongs to model {config.data_model}, "
            "not to this request's entries"
        )
    if not config.enabled:
        raise JourneyEventDisabled(f"User Event {config.config_id} is disabled")
    return model.compiled(f"journeys.rules:{config.pk}", lambda m: config_rules(config, m))
