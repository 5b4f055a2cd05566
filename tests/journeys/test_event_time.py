"""The Event Time of a User Event: the write time or a timestamp field, with a fallback."""

from __future__ import annotations

import pytest

from cdp.schema import SYSTEM_MODELS, Field, FieldType, ModelSchema
from journeys.event_time import event_time_resolve, event_time_validate

SCHEMA = ModelSchema.build(
    SYSTEM_MODELS["custom-model"],
    tags=(),
    custom_fields=(
        Field("customField01", FieldType.TEXT, custom=True),
        Field("customFieldTimestamp01", FieldType.TIMESTAMP, custom=True),
    ),
)
USER_EVENT_SCHEMA = ModelSchema.build(SYSTEM_MODELS["user-event"], tags=(), custom_fields=())
CHOICES = "ingested, createdAt, updatedAt, customFieldTimestamp01"
WRITTEN_AT = 1_750_000_000_000
T0 = 1_700_000_000_000


@pytest.mark.parametrize(
    "event_time", ["ingested", "createdAt", "updatedAt", "customFieldTimestamp01"]
)
def test_ingested_and_every_timestamp_field_are_valid(event_time):
    assert event_time_validate(event_time, SCHEMA, path="eventTime") == []


def test_system_model_timestamp_fields_are_valid():
    assert event_time_validate("eventAt", USER_EVENT_SCHEMA, path="eventTime") == []


@pytest.mark.parametrize(
    ("event_time", "errors"),
    [
        (None, [f"userEvents[0].eventTime: required, one of {CHOICES}"]),
        ("", [f"userEvents[0].eventTime: required, one of {CHOICES}"]),
        (5, [f"userEvents[0].eventTime: required, one of {CHOICES}"]),
        ("nope", [f"userEvents[0].eventTime: unknown field 'nope' (use {CHOICES})"]),
        ("Ingested", [f"userEvents[0].eventTime: unknown field 'Ingested' (use {CHOICES})"]),
        (
            "customField01",
            [
                "userEvents[0].eventTime: customField01 is a field of type text, not timestamp "
                f"(use {CHOICES})"
            ],
        ),
    ],
)
def test_validation_names_the_path_and_the_choices(event_time, errors):
    assert event_time_validate(event_time, SCHEMA, path="userEvents[0].eventTime") == errors


def test_ingested_is_the_write_time_whatever_the_record_holds():
    record = {"refId": "R-1", "customFieldTimestamp01": T0}
    assert event_time_resolve("ingested", record, WRITTEN_AT) == (WRITTEN_AT, None)


@pytest.mark.parametrize("field", ["createdAt", "customFieldTimestamp01"])
def test_timestamp_field_gives_its_value(field):
    record = {"refId": "R-1", field: T0}
    assert event_time_resolve(field, record, WRITTEN_AT, record_key="R-1") == (T0, None)


@pytest.mark.parametrize(
    "record", [{}, {"customFieldTimestamp01": None}, {"customFieldTimestamp01": ""}]
)
def test_empty_field_falls_back_to_the_write_time_with_a_warning(record):
    assert event_time_resolve("customFieldTimestamp01", record, WRITTEN_AT, record_key="R-1") == (
        WRITTEN_AT,
        "eventTime field customFieldTimestamp01 is empty on R-1; used the write time",
    )


def test_warning_without_a_record_key_names_only_the_field():
    assert event_time_resolve("updatedAt", {}, WRITTEN_AT) == (
        WRITTEN_AT,
        "eventTime field updatedAt is empty; used the write time",
    )


def test_value_that_is_not_a_timestamp_falls_back_with_a_warning():
    record = {"customFieldTimestamp01": "soon"}
    assert event_time_resolve("customFieldTimestamp01", record, WRITTEN_AT, record_key="R-2") == (
        WRITTEN_AT,
        "eventTime field customFieldTimestamp01 on R-2 is 'soon', not a timestamp; "
        "used the write time",
    )


@pytest.mark.parametrize("value", ["2023-11-14T22:13:20Z", float(T0), str(T0)])
def test_uncoerced_timestamp_value_is_still_read(value):
    record = {"customFieldTimestamp01": value}
    assert event_time_resolve("customFieldTimestamp01", record, WRITTEN_AT) == (T0, None)
