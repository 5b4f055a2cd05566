"""Writes for User Event configurations. Keyword-only, organization first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from cdp.models import DataModel, FieldDefinition, Organization
from cdp.schema import CATEGORIES, CHANNELS, ModelSchema
from journeys.event_time import event_time_validate
from journeys.filters import filter_validate
from journeys.models import (
    EVENT_TIME_INGESTED,
    JourneyEventConfig,
    Trigger,
    config_id_generate,
    event_key_generate,
)
from journeys.update_values import update_values_validate

if TYPE_CHECKING:
    # The user model (settings.AUTH_USER_MODEL), as the type checker knows it.
    from django.contrib.auth.models import User

# The editable settings of a config, by their wire (provisioning) names.
CONFIG_FIELDS = {
    "eventName": "event_name",
    "eventTime": "event_time",
    "channel": "channel",
    "category": "category",
    "subCategory": "sub_category",
    "filter": "filters",
    "updateValues": "update_values",
    "enabled": "enabled",
}


def model_schema(*, organization: Organization, data_model: DataModel) -> ModelSchema:
    definitions = list(
        FieldDefinition.objects.filter(organization=organization, data_model=data_model)
    )
    return data_model.schema(definitions)


def _choice(value: Any, choices: tuple[str, ...], path: str) -> list[str]:
    if value not in choices:
        return [f"{path}: {value!r} is not one of {', '.join(choices)}"]
    return []


def _text(value: Any, path: str, *, required: bool, max_length: int = 100) -> list[str]:
    if value is None or value == "":
        return [f"{path}: required"] if required else []
    if not isinstance(value, str):
        return [f"{path}: must be a string"]
    if len(value) > max_length:
        return [f"{path}: at most {max_length} characters"]
    return []


def config_settings_validate(
    settings: Mapping[str, Any], schema: ModelSchema, *, trigger: str, path: str = ""
) -> list[str]:
    """Every problem of a config's settings (wire names, as in provisioning files), each
    prefixed with its JSON path under `path`. Empty when valid. Only a `Changed` User Event
    (`trigger`) may look at the record as it was before the write."""
    prefix = f"{path}." if path else ""
    change_aware = trigger == Trigger.CHANGED
    errors = [
        *_text(settings.get("eventName"), f"{prefix}eventName", required=True),
        *_text(settings.get("subCategory"), f"{prefix}subCategory", required=False),
        *_choice(settings.get("channel", "None"), CHANNELS, f"{prefix}channel"),
        *_choice(settings.get("category"), CATEGORIES, f"{prefix}category"),
        *event_time_validate(
            settings.get("eventTime", EVENT_TIME_INGESTED), schema, path=f"{prefix}eventTime"
        ),
        *filter_validate(
            settings.get("filter") or {},
            schema,
            path=f"{prefix}filter",
            change_aware=change_aware,
        ),
        *update_values_validate(
            settings.get("updateValues") or [],
            schema,
            path=f"{prefix}updateValues",
            change_aware=change_aware,
        ),
    ]
    if not isinstance(settings.get("enabled", True), bool):
        errors.append(f"{prefix}enabled: must be true or false")
    return errors


def config_attributes(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The model attributes for `settings`. A setting left out takes the value a new User
    Event gets, so an update replaces the settings as a whole; only `enabled`, toggled on
    its own, is kept when absent."""
    attributes = {
        CONFIG_FIELDS[name]: value for name, value in settings.items() if name in CONFIG_FIELDS
    }
    attributes.setdefault("event_time", EVENT_TIME_INGESTED)
    attributes.setdefault("channel", "None")
    attributes["filters"] = attributes.get("filters") or {}
    attributes["update_values"] = attributes.get("update_values") or []
    attributes["sub_category"] = attributes.get("sub_category") or ""
    return attributes


def journey_event_config_create(
    *,
    organization: Organization,
    data_model: DataModel,
    trigger: str,
    settings: Mapping[str, Any],
    created_by: User | None = None,
    ref: str | None = None,
) -> JourneyEventConfig:
    """Create a User Event on `data_model` with generated jeConfigId and jeEventKey.

    `settings` uses the wire names of CONFIG_FIELDS. Raises ValidationError listing every
    problem with its path.
    """
    if data_model.organization_id != organization.pk:
        raise ValidationError({"model": "Unknown model."})
    schema = model_schema(organization=organization, data_model=data_model)
    errors = _choice(trigger, tuple(Trigger.values), "trigger")
    errors += config_settings_validate(settings, schema, trigger=trigger)
    if errors:
        raise ValidationError(errors)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return JourneyEventConfig.objects.create(
                    organization=organization,
                    data_model=data_model,
                    trigger=trigger,
                    config_id=config_id_generate(group_key=organization.group_key, trigger=trigger),
                    event_key=event_key_generate(),
                    ref=ref,
                    created_by=created_by,
                    **config_attributes(settings),
                )
        except IntegrityError:
            if (
                ref is not None
                and JourneyEventConfig.objects.filter(organization=organization, ref=ref).exists()
            ):
                raise ValidationError({"ref": f"A User Event with ref {ref!r} exists."}) from None
    raise RuntimeError("could not draw a unique jeConfigId and jeEventKey")


def journey_event_config_update(
    *,
    organization: Organization,
    config: JourneyEventConfig,
    settings: Mapping[str, Any],
) -> tuple[JourneyEventConfig, bool]:
    """Change a User Event's settings; return it and whether anything changed.

    The model, the trigger, the jeConfigId and the jeEventKey never change: the ID names
    the trigger, and clients hold both. Create another User Event instead.
    """
    if config.organization_id != organization.pk:
        raise ValidationError({"config": "Unknown User Event."})
    schema = model_schema(organization=organization, data_model=config.data_model)
    errors = config_settings_validate(settings, schema, trigger=config.trigger)
    if errors:
        raise ValidationError(errors)
    changed = [
        name
        for name, value in config_attributes(settings).items()
        if getattr(config, name) != value
    ]
    for name in changed:
        setattr(config, name, config_attributes(settings)[name])
    if changed:
        config.save(update_fields=[*changed, "updated_at"])
    return config, bool(changed)


def journey_event_config_set_enabled(
    *, organization: Organization, config: JourneyEventConfig, enabled: bool
) -> JourneyEventConfig:
    if config.organization_id != organization.pk:
        raise ValidationError({"config": "Unknown User Event."})
    if config.enabled != enabled:
        config.enabled = enabled
        config.save(update_fields=["enabled", "updated_at"])
    return config
