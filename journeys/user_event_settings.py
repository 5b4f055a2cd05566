"""The editable settings of a User Event: the type the services take, by the model's
attribute names, and its wire form, by the names provisioning files and error paths use.

`UserEventSettingsSerializer` is the one place the two sets of names meet. Provisioning
reads a file's User Events with its fields; `config_settings_validate` names each problem
by its wire path (`filter.conditions[0].value`) through `WIRE_NAMES`; the Console's form
maps those paths back onto its fields with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rest_framework import serializers

from journeys.event_time import EVENT_TIME_INGESTED


@dataclass(frozen=True, kw_only=True)
class UserEventSettings:
    """What `journey_event_config_create` and `journey_event_config_update` write, as a
    whole: a setting left out takes the value a new User Event gets.

    The values are not judged yet: read from a file they may be of any JSON type (an
    `eventName` of 42), which `config_settings_validate` refuses, naming the wire path.
    `enabled` None leaves it as it is: True for a new User Event, the stored value on an
    update, so that a provisioning file leaving it out keeps a User Event disabled in the
    Console disabled.
    """

    event_name: str
    event_time: str = EVENT_TIME_INGESTED
    channel: str = "None"
    category: str
    sub_category: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    update_values: list[Any] = field(default_factory=list)
    enabled: bool | None = None


def _setting(**kwargs: Any) -> serializers.JSONField:
    # Passed through as written: judging a value needs the model's schema, which the
    # services read (in a provisioning file it may come from the same file).
    return serializers.JSONField(required=False, allow_null=True, **kwargs)


class UserEventSettingsSerializer(serializers.Serializer[UserEventSettings]):
    """A User Event's settings under their wire names; `save()` gives the
    UserEventSettings. It refuses nothing a JSON object holds: every check is
    `config_settings_validate`'s, so that its messages and paths are the same whichever
    way the settings come."""

    eventName = _setting(source="event_name")
    eventTime = _setting(source="event_time")
    channel = _setting()
    category = _setting()
    subCategory = _setting(source="sub_category")
    filter = _setting(source="filters")
    updateValues = _setting(source="update_values")
    enabled = _setting()

    def create(self, validated_data: dict[str, Any]) -> UserEventSettings:
        # Neither has a default: left out, each is refused as missing by the validator.
        return UserEventSettings(**{"event_name": None, "category": None, **validated_data})


# Model attribute name → wire name. A bound field's `source_attrs` is its dotted source,
# split: here a single attribute.
WIRE_NAMES: Mapping[str, str] = {
    ".".join(setting.source_attrs): name
    for name, setting in UserEventSettingsSerializer().fields.items()
}


def user_event_settings_from_wire(data: Mapping[str, Any]) -> UserEventSettings:
    """The settings in `data`, an object under wire names (a User Event of a provisioning
    file); its other keys are ignored. Raises DRF's ValidationError only when `data` is
    not a JSON object or holds a value JSON cannot."""
    serializer = UserEventSettingsSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.save()
