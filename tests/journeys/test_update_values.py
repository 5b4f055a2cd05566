"""The Update Values of a User Event: validation messages and the compiled assignments."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.schema import SYSTEM_MODELS, Field, FieldType, ModelSchema
from journeys.update_values import update_values_compile, update_values_validate

SCHEMA = ModelSchema.build(
    SYSTEM_MODELS["custom-model"],
    tags=(),
    custom_fields=(
        Field("customField01", FieldType.TEXT, custom=True),
        Field("customFieldLong01", FieldType.INTEGER, custom=True),
        Field("customFieldDouble01", FieldType.NUMBER, custom=True),
        Field("customFieldBool01", FieldType.BOOLEAN, custom=True),
        Field("customFieldTimestamp01", FieldType.TIMESTAMP, custom=True),
        Field("customFieldList01", FieldType.LIST, custom=True),
    ),
)
ORDER_SCHEMA = ModelSchema.build(SYSTEM_MODELS["order"], tags=(), custom_fields=())
TARGETS_HELP = (
    "value, customerId, email, phone, note, eventLabels, eventLabel2s, eventLabel3s, "
    "properties.<name>"
)


def apply(update_values: list[dict[str, Any]], record: dict[str, Any]):
    return update_values_compile(update_values, SCHEMA)(record)


FROM_FIELD_CASES = [
    # (target, source field, record value, expected attributes)
    ("value", "customFieldLong01", 120, {"value": 120.0}),
    ("value", "customFieldDouble01", 1.5, {"value": 1.5}),
    ("value", "customField01", "12.5", {"value": 12.5}),
    ("value", "customField01", " 7 ", {"value": 7.0}),
    ("value", "customFieldTimestamp01", 1_700_000_000_000, {"value": 1.7e12}),
    ("customerId", "customerId", "C-1", {"customer_id": "C-1"}),
    ("customerId", "customFieldLong01", 42, {"customer_id": "42"}),
    ("email", "email", "a@b.test", {"email": "a@b.test"}),
    ("phone", "phone", "+84901234567", {"phone": "+84901234567"}),
    ("phone", "customFieldLong01", 84901234567, {"phone": "84901234567"}),
    ("note", "customField01", "gold", {"note": "gold"}),
    ("note", "customFieldDouble01", 1.5, {"note": "1.5"}),
    ("note", "customFieldBool01", True, {"note": "true"}),
    ("note", "customFieldBool01", False, {"note": "false"}),
    ("eventLabels", "customFieldList01", ["a", "b"], {"event_labels": ["a", "b"]}),
    ("eventLabels", "tags", ["x"], {"event_labels": ["x"]}),
    ("eventLabel2s", "customField01", "gold", {"event_label2s": ["gold"]}),
    ("eventLabel3s", "customFieldLong01", 3, {"event_label3s": ["3"]}),
    ("eventLabel3s", "customFieldBool01", False, {"event_label3s": ["false"]}),
    ("properties.tier", "customField01", "gold", {"properties": {"tier": "gold"}}),
    ("properties.points", "customFieldLong01", 7, {"properties": {"points": 7}}),
    ("properties.optIn", "customFieldBool01", False, {"properties": {"optIn": False}}),
    ("properties.interests", "customFieldList01", ["a"], {"properties": {"interests": ["a"]}}),
]


@pytest.mark.parametrize(("target", "field", "record_value", "expected"), FROM_FIELD_CASES)
def test_target_from_a_field_is_coerced_to_the_target_type(target, field, record_value, expected):
    update_values = [{"target": target, "field": field}]
    assert update_values_validate(update_values, SCHEMA, path="updateValues") == []
    assert apply(update_values, {"refId": "R-1", field: record_value}) == (expected, [])


FROM_CONSTANT_CASES = [
    ("value", 99, {"value": 99.0}),
    ("value", 2.5, {"value": 2.5}),
    ("value", "12.5", {"value": 12.5}),
    ("customerId", "C-9", {"customer_id": "C-9"}),
    ("email", "vip@shop.test", {"email": "vip@shop.test"}),
    ("phone", 84901, {"phone": "84901"}),
    ("note", True, {"note": "true"}),
    ("note", "", {"note": ""}),
    ("eventLabels", ["vip"], {"event_labels": ["vip"]}),
    ("eventLabels", ["vip", 3, True], {"event_labels": ["vip", "3", "true"]}),
    ("eventLabels", [], {"event_labels": []}),
    ("eventLabel2s", "vip", {"event_label2s": ["vip"]}),
    ("eventLabel3s", 7, {"event_label3s": ["7"]}),
    ("properties.campaign", {"id": [1, 2]}, {"properties": {"campaign": {"id": [1, 2]}}}),
    ("properties.cleared", None, {"properties": {"cleared": None}}),
    ("properties.count_2", 2, {"properties": {"count_2": 2}}),
]


@pytest.mark.parametrize(("target", "value", "expected"), FROM_CONSTANT_CASES)
def test_target_from_a_constant_is_coerced_once(target, value, expected):
    update_values = [{"target": target, "value": value}]
    assert update_values_validate(update_values, SCHEMA, path="updateValues") == []
    assert apply(update_values, {"refId": "R-1"}) == (expected, [])


def test_design_example_sets_value_property_and_labels():
    update_values = [
        {"target": "value", "field": "customFieldLong01"},
        {"target": "properties.tier", "field": "customField01"},
        {"target": "eventLabels", "value": ["vip"]},
    ]
    record = {"refId": "R-1", "customFieldLong01": 120, "customField01": "gold"}
    assert apply(update_values, record) == (
        {"value": 120.0, "properties": {"tier": "gold"}, "event_labels": ["vip"]},
        [],
    )


def test_properties_targets_merge_into_one_dict():
    update_values = [
        {"target": "properties.tier", "field": "customField01"},
        {"target": "properties.source", "value": "crm"},
        {"target": "properties.points", "field": "customFieldLong01"},
    ]
    attributes, warnings = apply(update_values, {"customField01": "gold"})
    assert attributes == {"properties": {"tier": "gold", "source": "crm"}}
    assert warnings == []


@pytest.mark.parametrize("empty", [None, "", [], "absent"])
@pytest.mark.parametrize(
    ("target", "field"),
    [
        ("value", "customField01"),
        ("note", "customField01"),
        ("eventLabels", "customFieldList01"),
        ("properties.tier", "customField01"),
    ],
)
def test_empty_source_field_sets_nothing_and_warns_nothing(target, field, empty):
    record = {"refId": "R-1"} if empty == "absent" else {"refId": "R-1", field: empty}
    assert apply([{"target": target, "field": field}], record) == ({}, [])


@pytest.mark.parametrize(
    ("target", "field", "record_value", "warning"),
    [
        (
            "value",
            "customField01",
            "gold",
            "value not set: customField01 on R-1 is 'gold', not a number",
        ),
        (
            "value",
            "customField01",
            "1_000",
            "value not set: customField01 on R-1 is '1_000', not a number",
        ),
        (
            "value",
            "customField01",
            "inf",
            "value not set: customField01 on R-1 is 'inf', not a number",
        ),
        # Records arrive coerced; a value of another type means schema drift, not a crash.
        (
            "customerId",
            "customField01",
            {"id": 1},
            'customerId not set: customField01 on R-1 is {"id": 1}, not text',
        ),
        (
            "eventLabels",
            "customFieldList01",
            ["a", {"b": 1}],
            'eventLabels not set: customFieldList01 on R-1 is ["a", {"b": 1}], not a list of text',
        ),
        (
            "eventLabel2s",
            "customField01",
            {"b": 1},
            'eventLabel2s not set: customField01 on R-1 is {"b": 1}, not text or a list of text',
        ),
    ],
)
def test_uncoercible_field_value_sets_nothing_and_warns(target, field, record_value, warning):
    update_values = [
        {"target": target, "field": field},
        {"target": "properties.kept", "value": 1},
    ]
    attributes, warnings = apply(update_values, {"refId": "R-1", field: record_value})
    assert attributes == {"properties": {"kept": 1}}
    assert warnings == [warning]


def test_warning_without_a_record_key_names_only_the_field():
    attributes, warnings = apply(
        [{"target": "value", "field": "customField01"}], {"customField01": "x"}
    )
    assert attributes == {}
    assert warnings == ["value not set: customField01 is 'x', not a number"]


def test_warnings_name_the_key_field_of_the_model():
    update_values = [{"target": "value", "field": "orderStatus"}]
    attributes, warnings = update_values_compile(update_values, ORDER_SCHEMA)(
        {"orderId": "O-7", "orderStatus": "paid"}
    )
    assert attributes == {}
    assert warnings == ["value not set: orderStatus on O-7 is 'paid', not a number"]


def test_each_call_returns_fresh_containers():
    compiled = update_values_compile(
        [
            {"target": "eventLabels", "value": ["vip"]},
            {"target": "properties.campaign", "value": {"ids": [1]}},
        ],
        SCHEMA,
    )
    first, _ = compiled({})
    first["event_labels"].append("mutated")
    first["properties"]["campaign"]["ids"].append(2)
    second, _ = compiled({})
    assert second == {"event_labels": ["vip"], "properties": {"campaign": {"ids": [1]}}}


def test_no_update_values_set_nothing():
    for update_values in (None, []):
        assert update_values_validate(update_values, SCHEMA, path="updateValues") == []
        assert update_values_compile(update_values, SCHEMA)({"customField01": "x"}) == ({}, [])


def test_compile_refuses_an_invalid_list_naming_the_error():
    with pytest.raises(ValueError, match=r"updateValues\[0\]\.target: unknown target 'score'"):
        update_values_compile([{"target": "score", "value": 1}], SCHEMA)


P = "updateValues[0]"
VALIDATION_CASES = [
    (
        SCHEMA,
        {"target": "value"},
        ["updateValues: expected a list of {target, field or value} objects"],
    ),
    (SCHEMA, ["value"], [f"{P}: expected an object with target and field or value"]),
    (
        SCHEMA,
        [{"target": "value", "field": "customFieldLong01", "default": 0}],
        [f"{P}: unknown key 'default' (use target, field, value)"],
    ),
    # target
    (SCHEMA, [{"value": 1}], [f"{P}.target: required (use {TARGETS_HELP})"]),
    (
        SCHEMA,
        [{"target": "score", "value": 1}],
        [f"{P}.target: unknown target 'score' (use {TARGETS_HELP})"],
    ),
    (SCHEMA, [{"target": 5, "value": 1}], [f"{P}.target: unknown target 5 (use {TARGETS_HELP})"]),
    (
        SCHEMA,
        [{"target": "Value", "value": 1}],
        [f"{P}.target: unknown target 'Value' (use {TARGETS_HELP})"],
    ),
    (
        SCHEMA,
        [{"target": "properties.", "value": 1}],
        [f"{P}.target: property name '' must be letters, digits or _ (e.g. properties.tier)"],
    ),
    (
        SCHEMA,
        [{"target": "properties.my-tier", "value": 1}],
        [
            f"{P}.target: property name 'my-tier' must be letters, digits or _ "
            "(e.g. properties.tier)"
        ],
    ),
    (
        SCHEMA,
        [{"target": "properties.a.b", "value": 1}],
        [f"{P}.target: property name 'a.b' must be letters, digits or _ (e.g. properties.tier)"],
    ),
    # exactly one of field / value
    (
        SCHEMA,
        [{"target": "value"}],
        [f"{P}: give either field (a record field) or value (a constant), one is required"],
    ),
    (
        SCHEMA,
        [{"target": "value", "field": "customFieldLong01", "value": 1}],
        [f"{P}: give either field (a record field) or value (a constant), not both"],
    ),
    # field
    (SCHEMA, [{"target": "note", "field": "nope"}], [f"{P}.field: unknown field 'nope'"]),
    (
        SCHEMA,
        [{"target": "note", "field": ""}],
        [f"{P}.field: expected the name of a field of the model"],
    ),
    (
        SCHEMA,
        [{"target": "note", "field": None}],
        [f"{P}.field: expected the name of a field of the model"],
    ),
    (
        SCHEMA,
        [{"target": "value", "field": "customFieldBool01"}],
        [f"{P}.field: customFieldBool01 is a field of type boolean; value takes a number"],
    ),
    (
        SCHEMA,
        [{"target": "value", "field": "customFieldList01"}],
        [f"{P}.field: customFieldList01 is a field of type list; value takes a number"],
    ),
    (
        SCHEMA,
        [{"target": "note", "field": "tags"}],
        [f"{P}.field: tags is a field of type list; note takes text"],
    ),
    (
        ORDER_SCHEMA,
        [{"target": "eventLabels", "field": "items"}],
        [f"{P}.field: items is a field of type object_list; eventLabels takes a list of text"],
    ),
    # previous.<field> (Changed User Events only): the field must exist
    (
        SCHEMA,
        [{"target": "value", "field": "previous.nope"}],
        [f"{P}.field: unknown field 'previous.nope'"],
    ),
    # constant
    (SCHEMA, [{"target": "value", "value": "abc"}], [f"{P}.value: expected a number, got 'abc'"]),
    (SCHEMA, [{"target": "value", "value": True}], [f"{P}.value: expected a number, got true"]),
    (SCHEMA, [{"target": "value", "value": None}], [f"{P}.value: expected a number, got null"]),
    (SCHEMA, [{"target": "email", "value": None}], [f"{P}.value: expected text, got null"]),
    (SCHEMA, [{"target": "note", "value": ["a"]}], [f'{P}.value: expected text, got ["a"]']),
    (
        SCHEMA,
        [{"target": "phone", "value": {"n": 1}}],
        [f'{P}.value: expected text, got {{"n": 1}}'],
    ),
    (
        SCHEMA,
        [{"target": "eventLabels", "value": [{"a": 1}]}],
        [f'{P}.value: expected a list of text, got [{{"a": 1}}]'],
    ),
    (
        SCHEMA,
        [{"target": "eventLabel2s", "value": None}],
        [f"{P}.value: expected text or a list of text, got null"],
    ),
    # one assignment per target
    (
        SCHEMA,
        [{"target": "value", "field": "customFieldLong01"}, {"target": "value", "value": 1}],
        ["updateValues[1].target: 'value' is already set by updateValues[0]"],
    ),
    (
        SCHEMA,
        [
            {"target": "properties.tier", "value": 1},
            {"target": "note", "value": "n"},
            {"target": "properties.tier", "field": "customField01"},
        ],
        ["updateValues[2].target: 'properties.tier' is already set by updateValues[0]"],
    ),
]


@pytest.mark.parametrize(("schema", "update_values", "errors"), VALIDATION_CASES)
def test_validation_names_the_path_of_each_bad_value(schema, update_values, errors):
    assert update_values_validate(update_values, schema, path="updateValues") == errors
    with pytest.raises(ValueError):
        update_values_compile(update_values, schema)


def test_validation_reports_every_bad_item_under_the_given_path():
    update_values = [
        {"target": "value", "field": "customFieldLong01"},
        {"target": "score", "field": "nope"},
        {"target": "note", "field": "tags", "value": "x"},
        {"target": "eventLabels", "value": {"a": 1}},
    ]
    errors = update_values_validate(update_values, SCHEMA, path="userEvents[1].updateValues")
    assert errors == [
        f"userEvents[1].updateValues[1].target: unknown target 'score' (use {TARGETS_HELP})",
        "userEvents[1].updateValues[2]: give either field (a record field) or value "
        "(a constant), not both",
        'userEvents[1].updateValues[3].value: expected text or a list of text, got {"a": 1}',
    ]


def test_a_previous_source_is_for_changed_user_events_only():
    # Validation refuses previous.<field> unless the User Event is a Changed one
    # (`change_aware`); compiling takes any list validation let through.
    update_values = [{"target": "properties.previousTier", "field": "previous.customField01"}]
    assert update_values_validate(update_values, SCHEMA, path="updateValues") == [
        "updateValues[0].field: previous.customField01: previous.<field> applies to Changed "
        "User Events only"
    ]
    assert (
        update_values_validate(update_values, SCHEMA, path="updateValues", change_aware=True) == []
    )
    apply_previous = update_values_compile(update_values, SCHEMA)
    assert apply_previous({"previous.customField01": "silver", "customField01": "gold"}) == (
        {"properties": {"previousTier": "silver"}},
        [],
    )
