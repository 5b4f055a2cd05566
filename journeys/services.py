"""Writes for User Event configurations. Keyword-only, organization first."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from cdp.models import DataModel, FieldDefinition, Organization
from cdp.schema import CATEGORIES, CHANNELS, ModelSchema
from journeys.event_time import event_time_validate
from journeys.filters import filter_validate
from journeys.models import (
    JourneyEventConfig,
    Trigger,
    config_id_generate,
    event_key_generate,
)
from journeys.update_values import update_values_validate
from journeys.user_event_settings import WIRE_NAMES, UserEventSettings

if TYPE_CHECKING:
    # The user model (settings.AUTH_USER_MODEL), as the type checker knows it.
    from django.contrib.auth.models import User


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
    settings: UserEventSettings, schema: ModelSchema, *, trigger: str, path: str = ""
) -> list[str]:
    """Every problem of `settings`, each prefixed with its JSON path under `path`, named by
    the settings' wire names (`filter.conditions[0].value`), as provisioning files and the
    Console's form read them. Empty when valid. Only a `Changed` User Event (`trigger`)
    may look at the record as it was before the write."""
    prefix = f"{path}." if path else ""
    at = {attribute: f"{prefix}{wire}" for attribute, wire in WIRE_NAMES.items()}
    change_aware = trigger == Trigger.CHANGED
    errors = [
        *_text(settings.event_name, at["event_name"], required=True),
        *_text(settings.sub_category, at["sub_category"], required=False),
        *_choice(settings.channel, CHANNELS, at["channel"]),
        *_choice(settings.category, CATEGORIES, at["category"]),
        *event_time_validate(settings.event_time, schema, path=at["event_time"]),
        *filter_validate(
            settings.filters or {}, schema, path=at["filters"], change_aware=change_aware
        ),
        *update_values_validate(
            settings.update_values or [],
            schema,
            path=at["update_values"],
            change_aware=change_aware,
        ),
    ]
    if settings.enabled is not None and not isinstance(settings.enabled, bool):
        errors.append(f"{at['enabled']}: must be true or false")
    return errors


def config_attributes(settings: UserEventSettings) -> dict[str, Any]:
    """The model attributes for `settings`; `enabled` only when it is set (None keeps the
    stored value)."""
    attributes = {f.name: getattr(settings, f.name) for f in fields(settings)}
    attributes["filters"] = settings.filters or {}
    attributes["update_values"] = settings.update_values or []
    attributes["sub_category"] = settings.sub_category or ""
    if settings.enabled is None:
        del attributes["enabled"]
    return attributes


def journey_event_config_create(
    *,
    organization: Organization,
    data_model: DataModel,
    trigger: str,
    settings: UserEventSettings,
    created_by: User | None = None,
    ref: str | None = None,
) -> JourneyEventConfig:
    """Create a User Event on `data_model` with generated jeConfigId and jeEventKey.

    Raises ValidationError listing every problem with its path (`config_settings_validate`).
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
    settings: UserEventSettings,
) -> tuple[JourneyEventConfig, bool]:
    """Replace a User Event's settings; return it and whether anything changed.

    The model, the trigger, the jeConfigId and the jeEventKey never change: the ID names
    the trigger, and clients hold both. Create another User Event instead.
    """
    if config.organization_id != organization.pk:
        raise ValidationError({"config": "Unknown User Event."})
    schema = model_schema(organization=organization, data_model=config.data_model)
    errors = config_settings_validate(settings, schema, trigger=config.trigger)
    if errors:
        raise ValidationError(errors)
    attributes = config_attributes(settings)
    changed = [name for name, value in attributes.items() if getattr(config, name) != value]
    for name in changed:
        setattr(config, name, attributes[name])
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
