"""Change-aware User Events: `previous.<field>` and the `changed`/`not_changed` operators,
in the rule engine (filters, update values, validation, the services, the events plan).

A `Changed` User Event's conditions and update values may read the record as it was
before the write: `previous.<field>` is the field's stored value before this write (None
when it was empty), `changed`/`not_changed` ask whether this write changed the field. The
compiled rules run on `with_previous(after, before)`: the record after the write with each
field's previous value beside it. A `Created` User Event may use none of them.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from cdp.schema import FieldType
from cdp.selectors import organization_models
from journeys.changes import CREATED, UNCHANGED, UPDATED, RecordChange
from journeys.configs import config_resolve
from journeys.filters import (
    CHANGE_OPERATORS,
    OPERATORS_BY_TYPE,
    filter_compile,
    filter_reads_previous,
    filter_validate,
    with_previous,
)
from journeys.generation import events_plan
from journeys.models import JourneyEventConfig
from journeys.services import (
    config_settings_validate,
    journey_event_config_create,
    journey_event_config_update,
)
from journeys.update_values import (
    update_values_compile,
    update_values_read_previous,
    update_values_validate,
)
from journeys.user_event_settings import UserEventSettings
from tests.journeys.test_filters import (
    BOOL,
    DOUBLE,
    LIST,
    LONG,
    ORDER_SCHEMA,
    SCHEMA,
    T0,
    TEXT,
    TS,
)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


ABSENT = _Absent()  # the field is not in the record at all (it was, or is, empty)
ITEMS = "items"  # the order model's object-list field


def record_of(field: str, value: Any) -> dict[str, Any]:
    return {} if value is ABSENT else {field: value}


def cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"field": field, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


def prev(field: str) -> str:
    return f"previous.{field}"


def passes_change(
    condition: dict[str, Any], before: dict[str, Any], after: dict[str, Any], schema=SCHEMA
) -> bool:
    """The condition, compiled as a Changed User Event's, on one write `before → after`."""
    predicate = filter_compile({"match": "all", "conditions": [condition]}, schema)
    return predicate(with_previous(after, before))


# --- with_previous ------------------------------------------------------------------------


def test_with_previous_puts_each_stored_value_beside_the_record_after_the_write():
    before = {"refId": "R-1", TEXT: "silver", LONG: 950}
    after = {"refId": "R-1", TEXT: "gold", LIST: ["vip"]}

    view = with_previous(after, before)

    assert view == {
        "refId": "R-1",
        TEXT: "gold",
        LIST: ["vip"],
        "previous.refId": "R-1",
        f"previous.{TEXT}": "silver",
        f"previous.{LONG}": 950,
    }
    # A field empty before the write (LIST) has no previous value: reading it gives None.
    assert view.get(f"previous.{LIST}") is None
    # The inputs are left as they were.
    assert after == {"refId": "R-1", TEXT: "gold", LIST: ["vip"]}


def test_with_previous_of_a_created_record_has_no_previous_values():
    assert with_previous({TEXT: "gold"}, None) == {TEXT: "gold"}


# --- changed / not_changed ----------------------------------------------------------------

# (field, value before the write, value after it, changed?) — ABSENT: no value (never
# set, or cleared by a null in an entry: the store drops the field).
CHANGE_CASES = [
    # text: case-sensitive, as every text comparison
    (TEXT, "silver", "gold", True),
    (TEXT, "gold", "gold", False),
    (TEXT, "gold", "Gold", True),
    (TEXT, ABSENT, "gold", True),  # set where it was empty
    (TEXT, "gold", ABSENT, True),  # cleared by the write
    (TEXT, ABSENT, ABSENT, False),
    # integer
    (LONG, 950, 1200, True),
    (LONG, 950, 950, False),
    (LONG, 0, ABSENT, True),
    (LONG, ABSENT, 0, True),
    (LONG, ABSENT, ABSENT, False),
    # number: an integral float equals the integer
    (DOUBLE, 1.5, 1.75, True),
    (DOUBLE, 2, 2.0, False),
    (DOUBLE, 1.5, ABSENT, True),
    (DOUBLE, ABSENT, 1.5, True),
    (DOUBLE, ABSENT, ABSENT, False),
    # boolean: false is a value, so empty → false is a change
    (BOOL, False, True, True),
    (BOOL, True, True, False),
    (BOOL, ABSENT, False, True),
    (BOOL, False, ABSENT, True),
    (BOOL, ABSENT, ABSENT, False),
    # timestamp (epoch ms)
    (TS, T0, T0 + 1, True),
    (TS, T0, T0, False),
    (TS, ABSENT, T0, True),
    (TS, T0, ABSENT, True),
    (TS, ABSENT, ABSENT, False),
    # list: the whole list
    (LIST, ["vip"], ["vip", "new"], True),
    (LIST, ["vip", "new"], ["vip", "new"], False),
    (LIST, ["vip", "new"], ["vip"], True),
    (LIST, ABSENT, ["vip"], True),
    (LIST, ["vip"], ABSENT, True),
    (LIST, ABSENT, ABSENT, False),
]


@pytest.mark.parametrize(
    ("field", "before", "after", "changed"),
    CHANGE_CASES,
    ids=[f"{c[0]}-{c[1]!r}-{c[2]!r}" for c in CHANGE_CASES],
)
def test_changed_and_not_changed_compare_the_field_with_its_previous_value(
    field, before, after, changed
):
    before_record, after_record = record_of(field, before), record_of(field, after)
    assert passes_change(cond(field, "changed"), before_record, after_record) is changed
    assert passes_change(cond(field, "not_changed"), before_record, after_record) is not changed


def test_changed_looks_at_its_own_field_only():
    before = {TEXT: "silver", LONG: 950}
    after = {TEXT: "silver", LONG: 1200}
    assert passes_change(cond(TEXT, "changed"), before, after) is False
    assert passes_change(cond(TEXT, "not_changed"), before, after) is True
    assert passes_change(cond(LONG, "changed"), before, after) is True


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ([{"productSku": "S-1"}], [{"productSku": "S-1"}], False),
        ([{"productSku": "S-1"}], [{"productSku": "S-1"}, {"productSku": "S-2"}], True),
        ([{"productSku": "S-1", "quantity": 1}], [{"productSku": "S-1", "quantity": 2}], True),
        (ABSENT, [{"productSku": "S-1"}], True),
        ([{"productSku": "S-1"}], ABSENT, True),
    ],
)
def test_changed_on_an_object_list_field(before, after, changed):
    before_record, after_record = record_of(ITEMS, before), record_of(ITEMS, after)
    assert passes_change(cond(ITEMS, "changed"), before_record, after_record, ORDER_SCHEMA) is (
        changed
    )
    assert (
        passes_change(cond(ITEMS, "not_changed"), before_record, after_record, ORDER_SCHEMA)
        is not changed
    )


def test_a_reordered_list_is_not_a_change_as_eq_ignores_order():
    before, after = {LIST: ["vip", "new"]}, {LIST: ["new", "vip"]}
    assert passes_change(cond(LIST, "eq", ["vip", "new"]), before, after) is True
    assert passes_change(cond(LIST, "changed"), before, after) is False


# Empty is absent, null, "" or [] (docs/decisions-rule-engine.md); ingestion stores "" and
# [] as sent. previous.<field> is null when the field was empty, and a write between two
# empty values did not change the field.
EMPTY_CASES = [
    (TEXT, "", ABSENT),
    (TEXT, ABSENT, ""),
    (LIST, [], ABSENT),
    (LIST, ABSENT, []),
]


@pytest.mark.parametrize(("field", "before", "after"), EMPTY_CASES)
def test_a_write_between_two_empty_values_did_not_change_the_field(field, before, after):
    before_record, after_record = record_of(field, before), record_of(field, after)
    assert passes_change(cond(field, "changed"), before_record, after_record) is False
    assert passes_change(cond(field, "not_changed"), before_record, after_record) is True


def test_an_empty_previous_text_is_null():
    # "Tier was below b": a record whose tier was "" had no tier; comparisons with null fail.
    condition = cond(prev(TEXT), "lt", "b")
    assert passes_change(condition, {TEXT: ""}, {TEXT: "gold"}) is False
    assert passes_change(cond(prev(TEXT), "is_empty"), {TEXT: ""}, {TEXT: "gold"}) is True


# --- previous.<field> ---------------------------------------------------------------------

# (field, operator, configured value, previous value, value after the write, expected):
# the condition is on previous.<field>, so only the previous value decides; the value after
# the write is there to show it is not read.
PREVIOUS_CASES = [
    # text
    (TEXT, "eq", "silver", "silver", "gold", True),
    (TEXT, "eq", "silver", "gold", "silver", False),
    (TEXT, "eq", "silver", "Silver", "gold", False),
    (TEXT, "eq", "silver", ABSENT, "silver", False),
    (TEXT, "neq", "silver", "gold", "silver", True),
    (TEXT, "neq", "silver", "silver", "gold", False),
    (TEXT, "neq", "silver", ABSENT, "silver", True),
    (TEXT, "contains", "il", "silver", "gold", True),
    (TEXT, "contains", "il", "gold", "silver", False),
    (TEXT, "not_contains", "il", "gold", "silver", True),
    (TEXT, "not_contains", "il", "silver", "gold", False),
    (TEXT, "starts_with", "si", "silver", "gold", True),
    (TEXT, "starts_with", "si", "gold", "silver", False),
    (TEXT, "ends_with", "er", "silver", "gold", True),
    (TEXT, "ends_with", "er", "gold", "silver", False),
    (TEXT, "gt", "b", "c", "a", True),
    (TEXT, "gt", "b", "b", "c", False),
    (TEXT, "gte", "b", "b", "a", True),
    (TEXT, "gte", "b", "a", "c", False),
    (TEXT, "lt", "b", "a", "c", True),
    (TEXT, "lt", "b", "b", "a", False),
    (TEXT, "lte", "b", "b", "c", True),
    (TEXT, "lte", "b", "c", "a", False),
    (TEXT, "in", ["silver", "bronze"], "bronze", "gold", True),
    (TEXT, "in", ["silver", "bronze"], "gold", "silver", False),
    (TEXT, "not_in", ["gold"], "silver", "gold", True),
    (TEXT, "not_in", ["gold"], "gold", "silver", False),
    (TEXT, "is_empty", None, ABSENT, "gold", True),
    (TEXT, "is_empty", None, "gold", ABSENT, False),
    (TEXT, "is_not_empty", None, "gold", ABSENT, True),
    (TEXT, "is_not_empty", None, ABSENT, "gold", False),
    # integer: the configured value is coerced to an integer
    (LONG, "eq", 950, 950, 1200, True),
    (LONG, "eq", "950", 950, 1200, True),
    (LONG, "eq", 950, 1200, 950, False),
    (LONG, "neq", 950, 1200, 950, True),
    (LONG, "neq", 950, 950, 1200, False),
    (LONG, "gt", 1000, 1001, 10, True),
    (LONG, "gt", 1000, 1000, 2000, False),
    (LONG, "gte", 1000, 1000, 10, True),
    (LONG, "gte", 1000, 999, 2000, False),
    (LONG, "lt", 1000, 999, 1500, True),
    (LONG, "lt", 1000, 1000, 10, False),
    (LONG, "lt", 1000, ABSENT, 10, False),
    (LONG, "lte", 1000, 1000, 2000, True),
    (LONG, "lte", 1000, 1001, 10, False),
    (LONG, "in", [1, "2"], 2, 3, True),
    (LONG, "in", [1, 2], 3, 1, False),
    (LONG, "not_in", [1, 2], 3, 1, True),
    (LONG, "not_in", [1, 2], 1, 3, False),
    (LONG, "is_empty", None, ABSENT, 0, True),
    (LONG, "is_empty", None, 0, ABSENT, False),
    (LONG, "is_not_empty", None, 0, ABSENT, True),
    (LONG, "is_not_empty", None, ABSENT, 0, False),
    # number
    (DOUBLE, "eq", 2, 2.0, 1.5, True),
    (DOUBLE, "eq", "1.5", 1.5, 2.0, True),
    (DOUBLE, "eq", 1.5, 1.25, 1.5, False),
    (DOUBLE, "neq", 1.5, 1.25, 1.5, True),
    (DOUBLE, "neq", 1.5, 1.5, 1.25, False),
    (DOUBLE, "gt", 1.5, 1.75, 1.0, True),
    (DOUBLE, "gt", 1.5, 1.5, 2.0, False),
    (DOUBLE, "gte", 1.5, 1.5, 1.0, True),
    (DOUBLE, "gte", 1.5, 1, 2.0, False),
    (DOUBLE, "lt", 1.5, 1, 2.0, True),
    (DOUBLE, "lt", 1.5, 1.5, 1.0, False),
    (DOUBLE, "lt", 1.5, ABSENT, 1.0, False),
    (DOUBLE, "lte", 1.5, 1.5, 2.0, True),
    (DOUBLE, "lte", 1.5, 2, 1.0, False),
    (DOUBLE, "in", [1.5, 2], 2.0, 1.0, True),
    (DOUBLE, "in", [1.5, 2], 2.5, 2.0, False),
    (DOUBLE, "not_in", [1.5], 2.5, 1.5, True),
    (DOUBLE, "not_in", [1.5], 1.5, 2.5, False),
    (DOUBLE, "is_empty", None, ABSENT, 0.0, True),
    (DOUBLE, "is_empty", None, 0.0, ABSENT, False),
    (DOUBLE, "is_not_empty", None, 0.0, ABSENT, True),
    (DOUBLE, "is_not_empty", None, ABSENT, 0.0, False),
    # boolean: false is a value
    (BOOL, "eq", False, False, True, True),
    (BOOL, "eq", "false", False, True, True),
    (BOOL, "eq", False, True, False, False),
    (BOOL, "eq", False, ABSENT, False, False),
    (BOOL, "neq", True, False, True, True),
    (BOOL, "neq", True, ABSENT, True, True),
    (BOOL, "neq", True, True, False, False),
    (BOOL, "is_empty", None, ABSENT, False, True),
    (BOOL, "is_empty", None, False, ABSENT, False),
    (BOOL, "is_not_empty", None, False, ABSENT, True),
    (BOOL, "is_not_empty", None, ABSENT, False, False),
    # timestamp: configured ISO-8601 or epoch seconds, compared in epoch ms
    (TS, "eq", "2023-11-14T22:13:20Z", T0, T0 + 1, True),
    (TS, "eq", 1_700_000_000, T0, T0 + 1, True),
    (TS, "eq", T0, T0 + 1, T0, False),
    (TS, "neq", T0, T0 + 1, T0, True),
    (TS, "neq", T0, T0, T0 + 1, False),
    (TS, "gt", T0, T0 + 1, T0, True),
    (TS, "gt", T0, T0, T0 + 1, False),
    (TS, "gte", T0, T0, T0 - 1, True),
    (TS, "gte", T0, T0 - 1, T0, False),
    (TS, "lt", "2023-11-15", T0, T0 + 86_400_000, True),
    (TS, "lt", T0, T0, T0 - 1, False),
    (TS, "lt", T0, ABSENT, T0 - 1, False),
    (TS, "lte", T0, T0, T0 + 1, True),
    (TS, "lte", T0, T0 + 1, T0, False),
    (TS, "in", [T0, "2024-01-01T00:00:00Z"], T0, T0 + 1, True),
    (TS, "in", [T0], T0 + 1, T0, False),
    (TS, "not_in", [T0], T0 + 1, T0, True),
    (TS, "not_in", [T0], T0, T0 + 1, False),
    (TS, "is_empty", None, ABSENT, T0, True),
    (TS, "is_empty", None, T0, ABSENT, False),
    (TS, "is_not_empty", None, T0, ABSENT, True),
    (TS, "is_not_empty", None, ABSENT, T0, False),
    # list: contains is membership, eq ignores order, in intersects
    (LIST, "contains", "vip", ["vip", "new"], ["new"], True),
    (LIST, "contains", "vip", ["new"], ["vip"], False),
    (LIST, "not_contains", "vip", ["new"], ["vip"], True),
    (LIST, "not_contains", "vip", ABSENT, ["vip"], True),
    (LIST, "not_contains", "vip", ["vip"], ["new"], False),
    (LIST, "eq", ["vip", "new"], ["new", "vip"], ["vip"], True),
    (LIST, "eq", ["vip", "new"], ["vip"], ["vip", "new"], False),
    (LIST, "neq", ["vip"], ["new"], ["vip"], True),
    (LIST, "neq", ["vip"], ["vip"], ["new"], False),
    (LIST, "in", ["vip", "gold"], ["gold", "new"], ["new"], True),
    (LIST, "in", ["vip", "gold"], ["new"], ["vip"], False),
    (LIST, "not_in", ["vip"], ["new"], ["vip"], True),
    (LIST, "not_in", ["vip"], ["vip", "new"], ["new"], False),
    (LIST, "is_empty", None, ABSENT, ["vip"], True),
    (LIST, "is_empty", None, ["vip"], ABSENT, False),
    (LIST, "is_not_empty", None, ["vip"], ABSENT, True),
    (LIST, "is_not_empty", None, ABSENT, ["vip"], False),
]


@pytest.mark.parametrize(
    ("field", "operator", "value", "before", "after", "expected"),
    PREVIOUS_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]!r}-{c[3]!r}" for c in PREVIOUS_CASES],
)
def test_previous_field_compares_the_value_before_the_write_by_the_field_type(
    field, operator, value, before, after, expected
):
    condition = cond(prev(field), operator, value)
    assert passes_change(condition, record_of(field, before), record_of(field, after)) is expected


@pytest.mark.parametrize("operator", ["is_empty", "is_not_empty"])
def test_previous_of_an_object_list_field(operator):
    filled = {ITEMS: [{"productSku": "S-1"}]}
    condition = cond(prev(ITEMS), operator)
    assert passes_change(condition, {}, filled, ORDER_SCHEMA) is (operator == "is_empty")
    assert passes_change(condition, filled, {}, ORDER_SCHEMA) is (operator == "is_not_empty")


def test_cases_cover_every_operator_of_every_type_with_previous_and_change():
    # What tests/journeys/test_filters.py leaves to this module: every operator of every
    # scalar and list type on previous.<field>, and changed/not_changed on the field.
    on_previous = {(field, operator) for field, operator, *_ in PREVIOUS_CASES}
    on_change = {field for field, *_ in CHANGE_CASES}
    for field_name in (TEXT, LONG, DOUBLE, BOOL, TS, LIST):
        field_type = SCHEMA.field(field_name).type
        for operator in OPERATORS_BY_TYPE[field_type]:
            if operator in CHANGE_OPERATORS:
                assert field_name in on_change, (field_name, operator)
            else:
                assert (field_name, operator) in on_previous, (field_name, operator)
    assert set(OPERATORS_BY_TYPE[FieldType.OBJECT_LIST]) == {
        "is_empty",
        "is_not_empty",
        *CHANGE_OPERATORS,
    }


# The null rule, on previous.<field>: a previous value that is empty (no previous value)
# fails every operator but is_empty, neq, not_contains and not_in, as a field does.
SAMPLE_VALUES = {TEXT: "gold", LONG: 100, DOUBLE: 1.5, BOOL: True, TS: T0, LIST: "vip"}
NULL_PASSES = {"is_empty", "neq", "not_contains", "not_in"}
NULL_CASES = [
    (field, operator)
    for field in SAMPLE_VALUES
    for operator in OPERATORS_BY_TYPE[SCHEMA.field(field).type]
    if operator not in CHANGE_OPERATORS
]


def sample_condition(field: str, operator: str) -> dict[str, Any]:
    name = prev(field)
    if operator in ("is_empty", "is_not_empty"):
        return cond(name, operator)
    if operator in ("in", "not_in") or (field == LIST and operator in ("eq", "neq")):
        return cond(name, operator, [SAMPLE_VALUES[field]])
    return cond(name, operator, SAMPLE_VALUES[field])


@pytest.mark.parametrize(("field", "operator"), NULL_CASES)
@pytest.mark.parametrize("before", [{}, "none"], ids=["empty-before", "null-before"])
def test_previous_null_passes_only_is_empty_neq_not_contains_not_in(field, operator, before):
    before = {field: None} if before == "none" else {}
    # The value after the write matches the sample: only the previous value is read.
    after = {field: [SAMPLE_VALUES[field]] if field == LIST else SAMPLE_VALUES[field]}
    expected = operator in NULL_PASSES
    assert passes_change(sample_condition(field, operator), before, after) is expected


@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte", "eq"])
def test_a_comparison_with_a_null_previous_value_is_false(operator):
    # "Points crossed 1,000": a record whose points were empty did not cross anything.
    condition = cond(prev(LONG), operator, 1000)
    assert passes_change(condition, {}, {LONG: 1500}) is False
    assert passes_change(condition, {LONG: None}, {LONG: 1500}) is False


# --- the worked examples -------------------------------------------------------------------

TIER_SILVER_TO_GOLD = {
    "match": "all",
    "conditions": [cond(prev(TEXT), "eq", "silver"), cond(TEXT, "eq", "gold")],
}
POINTS_CROSSED_1000 = {
    "match": "all",
    "conditions": [cond(prev(LONG), "lt", 1000), cond(LONG, "gte", 1000)],
}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({TEXT: "silver"}, {TEXT: "gold"}, True),
        ({TEXT: "gold"}, {TEXT: "gold"}, False),  # already gold
        ({TEXT: "gold"}, {TEXT: "silver"}, False),  # the other way
        ({TEXT: "bronze"}, {TEXT: "gold"}, False),  # not from silver
        ({TEXT: "silver"}, {TEXT: "platinum"}, False),  # not to gold
        ({}, {TEXT: "gold"}, False),  # no tier before
        ({TEXT: "silver"}, {}, False),  # tier cleared
        ({TEXT: "silver", LONG: 5}, {TEXT: "gold", LONG: 6}, True),  # other fields do not matter
    ],
)
def test_tier_went_from_silver_to_gold(before, after, expected):
    predicate = filter_compile(TIER_SILVER_TO_GOLD, SCHEMA)
    assert predicate(with_previous(after, before)) is expected


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({LONG: 950}, {LONG: 1200}, True),
        ({LONG: 999}, {LONG: 1000}, True),
        ({LONG: 1000}, {LONG: 1200}, False),  # already past 1,000
        ({LONG: 1200}, {LONG: 950}, False),  # the other way
        ({LONG: 500}, {LONG: 999}, False),  # still below
        ({}, {LONG: 1500}, False),  # no points before: a comparison with null is false
        ({LONG: 950}, {}, False),  # points cleared
    ],
)
def test_points_crossed_1000(before, after, expected):
    predicate = filter_compile(POINTS_CROSSED_1000, SCHEMA)
    assert predicate(with_previous(after, before)) is expected


def test_match_any_of_change_aware_conditions():
    either = {"match": "any", "conditions": [cond(TEXT, "changed"), cond(prev(LONG), "gte", 1000)]}
    predicate = filter_compile(either, SCHEMA)
    assert predicate(with_previous({TEXT: "gold", LONG: 1}, {TEXT: "silver", LONG: 1})) is True
    assert predicate(with_previous({TEXT: "gold", LONG: 1}, {TEXT: "gold", LONG: 1000})) is True
    assert predicate(with_previous({TEXT: "gold", LONG: 1}, {TEXT: "gold", LONG: 999})) is False


def test_reads_previous_says_whether_a_filter_looks_before_the_write():
    assert filter_reads_previous(TIER_SILVER_TO_GOLD) is True
    assert filter_reads_previous({"conditions": [cond(TEXT, "not_changed")]}) is True
    assert filter_reads_previous({"conditions": [cond(TEXT, "eq", "gold")]}) is False
    assert filter_reads_previous({}) is False
    assert filter_reads_previous(None) is False


# --- update values from previous.<field> --------------------------------------------------


def apply(update_values: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]):
    return update_values_compile(update_values, SCHEMA)(with_previous(after, before))


def test_previous_values_map_into_value_and_properties():
    update_values = [
        {"target": "properties.previousTier", "field": prev(TEXT)},
        {"target": "properties.tier", "field": TEXT},
        {"target": "value", "field": prev(LONG)},
        {"target": "properties.points", "field": LONG},
    ]
    before = {"refId": "R-1", TEXT: "silver", LONG: 950}
    after = {"refId": "R-1", TEXT: "gold", LONG: 1200}

    assert update_values_validate(update_values, SCHEMA, path="u", change_aware=True) == []
    assert apply(update_values, before, after) == (
        {"properties": {"previousTier": "silver", "tier": "gold", "points": 1200}, "value": 950.0},
        [],
    )


@pytest.mark.parametrize(
    ("target", "field", "previous_value", "expected"),
    [
        ("value", DOUBLE, 1.5, {"value": 1.5}),
        ("value", TEXT, "12.5", {"value": 12.5}),
        ("value", TS, T0, {"value": float(T0)}),
        ("note", BOOL, False, {"note": "false"}),
        ("customerId", LONG, 42, {"customer_id": "42"}),
        ("eventLabels", LIST, ["vip", "new"], {"event_labels": ["vip", "new"]}),
        ("eventLabel2s", TEXT, "silver", {"event_label2s": ["silver"]}),
        ("properties.interests", LIST, ["vip"], {"properties": {"interests": ["vip"]}}),
        ("properties.optIn", BOOL, False, {"properties": {"optIn": False}}),
        ("properties.joined", TS, T0, {"properties": {"joined": T0}}),
    ],
)
def test_a_previous_value_is_coerced_to_the_target_as_a_field_is(
    target, field, previous_value, expected
):
    update_values = [{"target": target, "field": prev(field)}]
    assert update_values_validate(update_values, SCHEMA, path="u", change_aware=True) == []
    assert apply(update_values, {"refId": "R-1", field: previous_value}, {"refId": "R-1"}) == (
        expected,
        [],
    )


@pytest.mark.parametrize("before", [{}, {TEXT: None, LONG: None}], ids=["empty", "null"])
def test_an_empty_previous_value_sets_nothing(before):
    update_values = [
        {"target": "properties.previousTier", "field": prev(TEXT)},
        {"target": "value", "field": prev(LONG)},
        {"target": "properties.tier", "field": TEXT},
    ]
    assert apply(update_values, before, {TEXT: "gold", LONG: 1200}) == (
        {"properties": {"tier": "gold"}},
        [],
    )


def test_a_previous_value_that_does_not_coerce_sets_nothing_with_a_warning():
    update_values = [{"target": "value", "field": prev(TEXT)}]
    before, after = {"refId": "R-1", TEXT: "lots"}, {"refId": "R-1", TEXT: "12"}
    assert apply(update_values, before, after) == (
        {},
        ["value not set: previous.customField01 on R-1 is 'lots', not a number"],
    )


def test_reads_previous_says_whether_update_values_look_before_the_write():
    assert update_values_read_previous([{"target": "value", "field": prev(LONG)}]) is True
    assert update_values_read_previous([{"target": "value", "field": LONG}]) is False
    assert update_values_read_previous([{"target": "value", "value": 1}]) is False
    assert update_values_read_previous([]) is False
    assert update_values_read_previous(None) is False


# --- validation -----------------------------------------------------------------------------

P = "filter.conditions[0]"
ONLY_CHANGED = "applies to Changed User Events only"


@pytest.mark.parametrize(
    ("condition", "errors"),
    [
        (
            cond(prev(TEXT), "eq", "silver"),
            [f"{P}.field: previous.customField01: previous.<field> {ONLY_CHANGED}"],
        ),
        (
            cond(prev(LONG), "is_empty"),
            [f"{P}.field: previous.customFieldLong01: previous.<field> {ONLY_CHANGED}"],
        ),
        (cond(TEXT, "changed"), [f"{P}.operator: 'changed' {ONLY_CHANGED}"]),
        (cond(LIST, "not_changed"), [f"{P}.operator: 'not_changed' {ONLY_CHANGED}"]),
        (
            cond(prev(TEXT), "changed"),
            [
                f"{P}.field: previous.customField01: previous.<field> {ONLY_CHANGED}",
                f"{P}.operator: 'changed' {ONLY_CHANGED}",
            ],
        ),
    ],
)
def test_a_filter_not_change_aware_refuses_previous_and_change_operators(condition, errors):
    filter_config = {"conditions": [condition]}
    assert filter_validate(filter_config, SCHEMA, path="filter") == errors
    assert filter_validate(filter_config, SCHEMA, path="filter", change_aware=False) == errors


@pytest.mark.parametrize(
    "condition",
    [
        cond(prev(TEXT), "eq", "silver"),
        cond(prev(LONG), "lt", 1000),
        cond(prev(LIST), "contains", "vip"),
        cond(prev(BOOL), "is_empty"),
        cond(TEXT, "changed"),
        cond(TS, "not_changed"),
        # A value given with a valueless operator means nothing, as with is_empty.
        {"field": TEXT, "operator": "changed", "value": ""},
    ],
)
def test_a_change_aware_filter_accepts_previous_and_change_operators(condition):
    assert (
        filter_validate({"conditions": [condition]}, SCHEMA, path="filter", change_aware=True) == []
    )


@pytest.mark.parametrize(
    ("condition", "errors"),
    [
        (
            cond(prev(TEXT), "changed"),
            [
                f"{P}.operator: 'changed' applies to a field, not to its previous value "
                "(use customField01)"
            ],
        ),
        (
            cond(prev(LONG), "not_changed"),
            [
                f"{P}.operator: 'not_changed' applies to a field, not to its previous value "
                "(use customFieldLong01)"
            ],
        ),
        (cond("previous.nope", "eq", 1), [f"{P}.field: unknown field 'previous.nope'"]),
        (cond("previous.", "is_empty"), [f"{P}.field: unknown field 'previous.'"]),
        (
            cond("previous.previous.customField01", "eq", "a"),
            [f"{P}.field: unknown field 'previous.previous.customField01'"],
        ),
        (
            cond(prev(BOOL), "gt", True),
            [
                f"{P}.operator: 'gt' does not apply to boolean field {BOOL} "
                "(use eq, neq, is_empty, is_not_empty, changed, not_changed)"
            ],
        ),
        (cond(prev(LONG), "lt"), [f"{P}.value: required for operator 'lt'"]),
        (cond(prev(LONG), "lt", "abc"), [f"{P}.value: expected an integer, got 'abc'"]),
        (
            cond(prev(TS), "gt", "yesterday"),
            [f"{P}.value: expected a timestamp (epoch milliseconds or ISO-8601), got 'yesterday'"],
        ),
    ],
)
def test_change_aware_validation_messages(condition, errors):
    filter_config = {"conditions": [condition]}
    assert filter_validate(filter_config, SCHEMA, path="filter", change_aware=True) == errors
    with pytest.raises(ValueError):
        filter_compile(filter_config, SCHEMA)


def test_an_unknown_previous_field_is_unknown_whatever_the_trigger():
    filter_config = {"conditions": [cond("previous.nope", "eq", 1)]}
    assert filter_validate(filter_config, SCHEMA, path="filter") == [
        f"{P}.field: unknown field 'previous.nope'"
    ]


U = "updateValues[0]"


@pytest.mark.parametrize(
    ("update_values", "change_aware", "errors"),
    [
        (
            [{"target": "properties.previousTier", "field": prev(TEXT)}],
            False,
            [f"{U}.field: previous.customField01: previous.<field> {ONLY_CHANGED}"],
        ),
        ([{"target": "properties.previousTier", "field": prev(TEXT)}], True, []),
        (
            [{"target": "value", "field": "previous.nope"}],
            False,
            [f"{U}.field: unknown field 'previous.nope'"],
        ),
        (
            [{"target": "value", "field": "previous.nope"}],
            True,
            [f"{U}.field: unknown field 'previous.nope'"],
        ),
        (
            [{"target": "value", "field": prev(BOOL)}],
            True,
            [
                f"{U}.field: previous.customFieldBool01 is a field of type boolean; "
                "value takes a number"
            ],
        ),
        (
            [{"target": "note", "field": prev(LIST)}],
            True,
            [f"{U}.field: previous.customFieldList01 is a field of type list; note takes text"],
        ),
    ],
)
def test_update_values_previous_sources_validation(update_values, change_aware, errors):
    assert (
        update_values_validate(
            update_values, SCHEMA, path="updateValues", change_aware=change_aware
        )
        == errors
    )


def test_config_settings_validate_allows_them_for_changed_only():
    settings = UserEventSettings(
        event_name="tier_upgraded",
        category="UserIdentity",
        filters=TIER_SILVER_TO_GOLD,
        update_values=[{"target": "properties.previousTier", "field": prev(TEXT)}],
    )
    assert config_settings_validate(settings, SCHEMA, trigger="Changed") == []
    assert config_settings_validate(settings, SCHEMA, trigger="Created") == [
        f"filter.conditions[0].field: previous.customField01: previous.<field> {ONLY_CHANGED}",
        f"updateValues[0].field: previous.customField01: previous.<field> {ONLY_CHANGED}",
    ]


# --- the services ---------------------------------------------------------------------------

CHANGE_AWARE_SETTINGS = UserEventSettings(
    event_name="tier_upgraded",
    category="UserIdentity",
    filters={
        "match": "all",
        "conditions": [
            cond(prev(TEXT), "eq", "silver"),
            cond(TEXT, "eq", "gold"),
            cond(LONG, "not_changed"),
        ],
    },
    update_values=[
        {"target": "properties.previousTier", "field": prev(TEXT)},
        {"target": "value", "field": prev(LONG)},
    ],
)


def test_a_created_user_event_using_them_is_refused(tenant_a):
    with pytest.raises(ValidationError) as refused:
        journey_event_config_create(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            trigger="Created",
            settings=CHANGE_AWARE_SETTINGS,
        )

    assert refused.value.messages == [
        f"filter.conditions[0].field: previous.customField01: previous.<field> {ONLY_CHANGED}",
        f"filter.conditions[2].operator: 'not_changed' {ONLY_CHANGED}",
        f"updateValues[0].field: previous.customField01: previous.<field> {ONLY_CHANGED}",
        f"updateValues[1].field: previous.customFieldLong01: previous.<field> {ONLY_CHANGED}",
    ]
    assert not JourneyEventConfig.objects.filter(organization=tenant_a.organization).exists()


@pytest.mark.parametrize(
    "settings",
    [
        {"filters": {"conditions": [cond(TEXT, "changed")]}},
        {"update_values": [{"target": "value", "field": prev(LONG)}]},
    ],
)
def test_a_created_user_event_is_refused_for_any_one_of_them(tenant_a, settings):
    with pytest.raises(ValidationError) as refused:
        journey_event_config_create(
            organization=tenant_a.organization,
            data_model=tenant_a.model,
            trigger="Created",
            settings=UserEventSettings(event_name="x", category="Other", **settings),
        )
    [message] = refused.value.messages
    assert message.endswith(ONLY_CHANGED)


def test_a_changed_user_event_using_them_is_created(tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=CHANGE_AWARE_SETTINGS,
    )

    config.refresh_from_db()
    assert config.trigger == "Changed"
    assert config.filters == CHANGE_AWARE_SETTINGS.filters
    assert config.update_values == CHANGE_AWARE_SETTINGS.update_values


def test_updating_a_user_event_follows_its_trigger(tenant_a):
    created = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="membership_created", category="UserIdentity"),
    )
    changed = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(event_name="membership_changed", category="UserIdentity"),
    )

    with pytest.raises(ValidationError) as refused:
        journey_event_config_update(
            organization=tenant_a.organization, config=created, settings=CHANGE_AWARE_SETTINGS
        )
    updated, did_change = journey_event_config_update(
        organization=tenant_a.organization, config=changed, settings=CHANGE_AWARE_SETTINGS
    )

    assert len(refused.value.messages) == 4
    assert all(m.endswith(ONLY_CHANGED) for m in refused.value.messages)
    created.refresh_from_db()
    assert created.filters == {}
    assert did_change is True
    assert updated.filters == CHANGE_AWARE_SETTINGS.filters


# --- events_plan ----------------------------------------------------------------------------


def rules_of(tenant, config):
    models = organization_models(organization=tenant.organization)
    loaded = models.custom[tenant.mom_code]
    return config_resolve(
        organization=tenant.organization,
        config_id=config.config_id,
        event_key=None,
        models={loaded.pk: loaded},
    )


def change(
    index: int, tenant, key: str, action: str, before: dict | None, after: dict
) -> RecordChange:
    return RecordChange(
        index=index,
        model_id=tenant.model.pk,
        source=tenant.mom_code,
        key=key,
        action=action,
        before=None if before is None else {"refId": key, **before},
        after={"refId": key, **after},
        cdp_id=f"cdp-{index}",
    )


def plan(rules, changes):
    return events_plan(
        rules=rules, changes=changes, fired=(), init_data=False, cap=None, written_at_ms=T0
    )


def test_events_plan_fires_a_change_aware_user_event_exactly_on_the_right_changes(tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(
            event_name="tier_upgraded",
            category="UserIdentity",
            filters=TIER_SILVER_TO_GOLD,
            update_values=[
                {"target": "properties.previousTier", "field": prev(TEXT)},
                {"target": "properties.tier", "field": TEXT},
                {"target": "value", "field": prev(LONG)},
            ],
        ),
    )
    rules = rules_of(tenant_a, config)
    assert rules.reads_previous is True

    changes = [
        change(0, tenant_a, "UP", UPDATED, {TEXT: "silver", LONG: 950}, {TEXT: "gold", LONG: 950}),
        change(1, tenant_a, "DOWN", UPDATED, {TEXT: "gold"}, {TEXT: "silver"}),
        change(2, tenant_a, "SAME", UNCHANGED, {TEXT: "gold"}, {TEXT: "gold"}),
        change(3, tenant_a, "NEW", CREATED, None, {TEXT: "gold"}),
        change(4, tenant_a, "FROM-EMPTY", UPDATED, {}, {TEXT: "gold"}),
        change(5, tenant_a, "BRONZE", UPDATED, {TEXT: "bronze"}, {TEXT: "gold"}),
        change(6, tenant_a, "UP-2", UPDATED, {TEXT: "silver"}, {TEXT: "gold", LONG: 10}),
    ]
    # Gold before and after, another field changed: the entry updated the record, and
    # the tier stayed gold: no event.
    changes.append(change(7, tenant_a, "GOLD", UPDATED, {TEXT: "gold"}, {TEXT: "gold", LONG: 1}))

    result = plan(rules, changes)

    assert result.generated == 2
    assert result.warnings == []
    assert sorted(result.event_ids) == [0, 6]
    up, up_2 = result.rows
    assert (up.source_id, up.condition, up.event_name) == ("UP", "Changed", "tier_upgraded")
    assert (up.properties, up.value) == ({"previousTier": "silver", "tier": "gold"}, 950.0)
    # No points before: value is not set.
    assert (up_2.source_id, up_2.properties, up_2.value) == (
        "UP-2",
        {"previousTier": "silver", "tier": "gold"},
        None,
    )


def test_events_plan_sees_each_entry_of_a_repeated_key_against_the_previous_entry(tenant_a):
    # A key sent twice in one request: the second entry's previous values are what the
    # first one left, as if the entries came in two requests.
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(
            event_name="points_crossed_1000",
            category="Transaction",
            filters=POINTS_CROSSED_1000,
            update_values=[{"target": "value", "field": prev(LONG)}],
        ),
    )
    rules = rules_of(tenant_a, config)
    changes = [
        change(0, tenant_a, "R-1", UPDATED, {LONG: 500}, {LONG: 990}),
        change(1, tenant_a, "R-1", UPDATED, {LONG: 990}, {LONG: 1010}),
        change(2, tenant_a, "R-1", UPDATED, {LONG: 1010}, {LONG: 2000}),
    ]

    result = plan(rules, changes)

    assert list(result.event_ids) == [1]
    [row] = result.rows
    assert row.value == 990.0


def test_events_plan_passes_the_record_alone_to_rules_that_do_not_look_before(tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(
            event_name="tier_is_gold",
            category="UserIdentity",
            filters={"conditions": [cond(TEXT, "eq", "gold")]},
            update_values=[{"target": "properties.tier", "field": TEXT}],
        ),
    )
    rules = rules_of(tenant_a, config)
    assert rules.reads_previous is False

    result = plan(rules, [change(0, tenant_a, "R-1", UPDATED, {TEXT: "silver"}, {TEXT: "gold"})])

    [row] = result.rows
    assert row.properties == {"tier": "gold"}


def test_events_plan_of_changed_and_not_changed(tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Changed",
        settings=UserEventSettings(
            event_name="tier_changed_points_kept",
            category="UserIdentity",
            filters={"conditions": [cond(TEXT, "changed"), cond(LONG, "not_changed")]},
        ),
    )
    rules = rules_of(tenant_a, config)
    assert rules.reads_previous is True
    changes = [
        change(0, tenant_a, "TIER", UPDATED, {TEXT: "a", LONG: 1}, {TEXT: "b", LONG: 1}),
        change(1, tenant_a, "BOTH", UPDATED, {TEXT: "a", LONG: 1}, {TEXT: "b", LONG: 2}),
        change(2, tenant_a, "POINTS", UPDATED, {TEXT: "a", LONG: 1}, {TEXT: "a", LONG: 2}),
        change(3, tenant_a, "CLEARED", UPDATED, {TEXT: "a"}, {}),
        change(4, tenant_a, "SET", UPDATED, {}, {TEXT: "a"}),
        change(5, tenant_a, "OTHER", UPDATED, {BOOL: True}, {BOOL: False}),
    ]

    result = plan(rules, changes)

    assert [row.source_id for row in result.rows] == ["TIER", "CLEARED", "SET"]
