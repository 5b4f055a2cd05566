"""The `userEvents` section of a provisioning file: User Events, matched by `ref`.

Judged in two steps: their shape here, their settings (filters, update values, event
time) by journeys.services against the model's schema while applying, since the schema
may come from the same file. The model and trigger of a stored User Event never change
(its ID names the trigger, and clients hold it); the other settings are updated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers

from cdp import services
from cdp.models import DataModel, ModelKind, Organization
from cdp.provisioning.data_models import MODEL_NAME_MAX
from cdp.provisioning.errors import ProvisioningError, ProvisioningInvalid, invalid, path_join
from cdp.provisioning.registry import section_register
from cdp.provisioning.results import Status, UserEventOutcome
from cdp.provisioning.serializers import Choice, ItemList, Problems, StrictSerializer, Text
from journeys.models import JourneyEventConfig, Trigger
from journeys.services import journey_event_config_create, journey_event_config_update
from journeys.user_event_settings import UserEventSettingsSerializer


class UserEventSerializer(StrictSerializer):
    """A User Event: its `ref`, `model` and `trigger`, and beside them its settings, read
    by UserEventSettingsSerializer's fields into `settings`, a UserEventSettings that
    journeys.services judges when applying."""

    ref = Text(max_length=100)
    model = Text(max_length=MODEL_NAME_MAX)
    trigger = Choice(Trigger.values)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **UserEventSettingsSerializer().get_fields()}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        spec = {key: attrs.pop(key) for key in ("ref", "model", "trigger")}
        # What is left are the settings, under the model's names (their fields' sources).
        return {**spec, "settings": UserEventSettingsSerializer().create(attrs)}


class UserEventsSerializer(ItemList):
    """Each `ref` appears once."""

    child = UserEventSerializer()

    def validate(self, user_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problems = Problems(self)
        ref_once = problems.once("ref")
        for i, spec in enumerate(user_events):
            ref_once(spec["ref"], (i, "ref"))
        problems.raise_any()
        return user_events


def user_events_apply(
    *, organization: Organization, items: list[dict[str, Any]], path: str
) -> list[UserEventOutcome]:
    return [
        _user_event_apply(organization=organization, spec=spec, path=path_join(path, index))
        for index, spec in enumerate(items)
    ]


def _user_event_model(*, organization: Organization, name: str, path: str) -> DataModel:
    """`model` is a custom model's name or a system object type."""
    models = DataModel.objects.filter(organization=organization)
    if name in services.SYSTEM_OBJECT_TYPES:
        found = models.filter(kind=ModelKind.SYSTEM, object_type=name).first()
    else:
        found = models.filter(kind=ModelKind.CUSTOM, name=name).first()
    if found is None:
        raise invalid(
            f"{path}.model",
            f"no model {name!r}: use a custom model's name or one of "
            f"{', '.join(services.SYSTEM_OBJECT_TYPES)}",
        )
    return found


def _user_event_apply(
    *, organization: Organization, spec: dict[str, Any], path: str
) -> UserEventOutcome:
    ref: str = spec["ref"]
    data_model = _user_event_model(organization=organization, name=spec["model"], path=path)
    settings = spec["settings"]
    config = JourneyEventConfig.objects.filter(organization=organization, ref=ref).first()
    if config is None:
        config = _refusing_paths(
            path,
            journey_event_config_create,
            organization=organization,
            data_model=data_model,
            trigger=spec["trigger"],
            settings=settings,
            ref=ref,
        )
        status: Status = "created"
    else:
        if config.data_model_id != data_model.pk or config.trigger != spec["trigger"]:
            raise invalid(
                path,
                f"User Event {ref!r} exists on {config.data_model.name} with trigger "
                f"{config.trigger}: its model and trigger never change; give another ref",
            )
        config, changed = _refusing_paths(
            path,
            journey_event_config_update,
            organization=organization,
            config=config,
            settings=settings,
        )
        status = "updated" if changed else "unchanged"
    return UserEventOutcome(
        ref=ref, config_id=config.config_id, event_key=config.event_key, status=status
    )


def _refusing_paths(path: str, service: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a journeys service whose ValidationError messages start with their own path
    (`filter.conditions[1].operator: …`); report them under `path`."""
    try:
        return service(**kwargs)
    except ValidationError as error:
        problems = []
        for message in error.messages:
            inner, _, text = message.partition(": ")
            problems.append(ProvisioningError(path_join(path, inner), text or message))
        raise ProvisioningInvalid(problems) from None


section_register(
    key="userEvents", position=30, validator=UserEventsSerializer, apply=user_events_apply
)
