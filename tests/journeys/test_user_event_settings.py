"""A User Event's settings from the wire (journeys/user_event_settings.py): each wire name
read into the model's attribute, nothing judged on the way, every problem then named by
its wire path (no database)."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from journeys.filters import OPERATORS
from journeys.services import config_attributes, config_settings_validate
from journeys.user_event_settings import (
    WIRE_NAMES,
    UserEventSettings,
    user_event_settings_from_wire,
)
from tests.journeys.test_filters import SCHEMA


def test_each_wire_name_is_read_into_its_attribute():
    settings = user_event_settings_from_wire(
        {
            "ref": "not a setting",
            "eventName": "membership_created",
            "eventTime": "customFieldTimestamp01",
            "channel": "Online",
            "category": "UserIdentity",
            "subCategory": "signup",
            "filter": {"conditions": [{"field": "customField01", "operator": "is_empty"}]},
            "updateValues": [{"target": "note", "value": "hi"}],
            "enabled": False,
        }
    )

    assert settings == UserEventSettings(
        event_name="membership_created",
        event_time="customFieldTimestamp01",
        channel="Online",
        category="UserIdentity",
        sub_category="signup",
        filters={"conditions": [{"field": "customField01", "operator": "is_empty"}]},
        update_values=[{"target": "note", "value": "hi"}],
        enabled=False,
    )
    assert config_settings_validate(settings, SCHEMA, trigger="Created") == []
    assert list(WIRE_NAMES.values()) == [
        "eventName",
        "eventTime",
        "channel",
        "category",
        "subCategory",
        "filter",
        "updateValues",
        "enabled",
    ]


def test_settings_left_out_take_a_new_user_event_s_and_enabled_is_left_as_it_is():
    settings = user_event_settings_from_wire({"eventName": "e", "category": "Other"})

    assert settings == UserEventSettings(event_name="e", category="Other")
    assert config_attributes(settings) == {
        "event_name": "e",
        "event_time": "ingested",
        "channel": "None",
        "category": "Other",
        "sub_category": "",
        "filters": {},
        "update_values": [],
    }


def test_event_name_and_category_left_out_are_refused_as_missing():
    settings = user_event_settings_from_wire({})

    assert config_settings_validate(settings, SCHEMA, trigger="Created") == [
        "eventName: required",
        "category: None is not one of CampaignBehaviour, UserIdentity, UserInteraction, "
        "Transaction, CustomerService, Other",
    ]


def test_values_pass_unjudged_and_are_refused_at_their_wire_paths():
    settings = user_event_settings_from_wire(
        {
            "eventName": 42,
            "category": "Other",
            "subCategory": ["a"],
            "filter": {"conditions": [{"field": "customField01", "operator": "like"}]},
            "enabled": "yes",
        }
    )

    assert (settings.event_name, settings.enabled) == (42, "yes")
    assert config_settings_validate(settings, SCHEMA, trigger="Created", path="userEvents[3]") == [
        "userEvents[3].eventName: must be a string",
        "userEvents[3].subCategory: must be a string",
        "userEvents[3].filter.conditions[0].operator: unknown operator 'like' "
        f"(use {', '.join(OPERATORS)})",
        "userEvents[3].enabled: must be true or false",
    ]


def test_only_a_json_object_is_read():
    with pytest.raises(ValidationError):
        user_event_settings_from_wire(["eventName", "e"])  # type: ignore[arg-type]
