"""Resolving the User Event configuration an ingest request names (DESIGN §6 checks 11–12)."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Q

from cdp.errors import InvalidJourneyEvent, JourneyEventDisabled
from cdp.models import Organization
from journeys.models import JourneyEventConfig


def config_resolve(
    *,
    organization: Organization,
    config_id: str | None,
    event_key: str | None,
    model_ids: Collection[int],
) -> JourneyEventConfig | None:
    """The enabled config named by `config_id` and/or `event_key`, or None if neither is given.

    Raises InvalidJourneyEvent when they name no config of this organization, two
    different configs, or a config of a model other than `model_ids` (the models of the
    request's entries); JourneyEventDisabled when the config is disabled. One query.
    """
    if config_id is None and event_key is None:
        return None
    lookup = Q()
    if config_id is not None:
        lookup |= Q(config_id=config_id)
    if event_key is not None:
        lookup |= Q(event_key=event_key)
    found = list(
        JourneyEventConfig.objects.filter(lookup, organization=organization).select_related(
            "data_model"
        )[:2]
    )
    by_id = next((c for c in found if c.config_id == config_id), None)
    by_key = next((c for c in found if c.event_key == event_key), None)
    if config_id is not None and by_id is None:
        raise InvalidJourneyEvent(f"Unknown jeConfigId: {config_id}")
    if event_key is not None and by_key is None:
        raise InvalidJourneyEvent(f"Unknown jeEventKey: {event_key}")
    if by_id is not None and by_key is not None and by_id.pk != by_key.pk:
        raise InvalidJourneyEvent("jeConfigId and jeEventKey name two different User Events")
    config = by_id or by_key
    assert config is not None
    if config.data_model_id not in model_ids:
        raise InvalidJourneyEvent(
            f"User Event {config.config_id} belongs to model {config.data_model}, "
            "not to this request's entries"
        )
    if not config.enabled:
        raise JourneyEventDisabled(f"User Event {config.config_id} is disabled")
    return config
