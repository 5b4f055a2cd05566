"""The Filter of a User Event: validation messages and the compiled predicate (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.schema import SYSTEM_MODELS, Field, FieldType, ModelSchema
from journeys.filters import (
    CHANGE_OPERATORS,
    OPERATORS,
    OPERATORS_BY_TYPE,
    filter_compile,
    filter_validate,
)

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

TEXT, LONG, DOUBLE, BOOL, TS, LIST = (
    "customField01",
    "customFieldLong01",
    "customFieldDouble01",
    "customFieldBool01",
    "customFieldTimestamp01",
    "customFieldList01",
)
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
ALL_OPERATORS_HELP = (
    "eq, neq, contains, not_contains, starts_with, ends_with, gt, gte, lt, lte, in, not_in, "
    "is_empty, is_not_empty, changed, not_changed"
)


def passes(condition: dict[str, Any], record: dict[str, Any]) -> bool:
    return filter_compile({"match": "all", "conditions": [condition]}, SCHEMA)(record)


def cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"field": field, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


# (field, operator, configured value, record value, expected)
OPERATOR_CASES = [
    # text: case-sensitive everywhere
    (TEXT, "eq", "gold", "gold", True),
    (TEXT, "eq", "gold", "Gold", False),
    (TEXT, "eq", 5, "5", True),
    (TEXT, "eq", True, "true", True),
    (TEXT, "neq", "gold", "silver", True),
    (TEXT, "neq", "gold", "gold", False),
    (TEXT, "contains", "ol", "gold", True),
    (TEXT, "contains", "OL", "gold", False),
    (TEXT, "not_contains", "x", "gold", True),
    (TEXT, "not_contains", "ol", "gold", False),
    (TEXT, "starts_with", "go", "gold", True),
    (TEXT, "starts_with", "Go", "gold", False),
    (TEXT, "starts_with", "ld", "gold", False),
    (TEXT, "ends_with", "ld", "gold", True),
    (TEXT, "ends_with", "go", "gold", False),
    (TEXT, "gt", "b", "c", True),
    (TEXT, "gt", "b", "b", False),
    (TEXT, "gte", "b", "b", True),
    (TEXT, "gte", "b", "a", False),
    (TEXT, "lt", "b", "a", True),
    (TEXT, "lt", "b", "b", False),
    (TEXT, "lte", "b", "b", True),
    (TEXT, "lte", "b", "c", False),
    (TEXT, "in", ["gold", "silver"], "gold", True),
    (TEXT, "in", ["gold", "silver"], "bronze", False),
    (TEXT, "not_in", ["gold"], "silver", True),
    (TEXT, "not_in", ["gold"], "gold", False),
    (TEXT, "is_empty", None, "", True),
    (TEXT, "is_empty", None, "gold", False),
    (TEXT, "is_not_empty", None, "gold", True),
    (TEXT, "is_not_empty", None, "", False),
    # integer: numeric, constants coerced from numeric strings
    (LONG, "eq", 100, 100, True),
    (LONG, "eq", "100", 100, True),
    (LONG, "eq", 100, 101, False),
    (LONG, "neq", 100, 101, True),
    (LONG, "neq", 100, 100, False),
    (LONG, "gt", 100, 101, True),
    (LONG, "gt", 100, 100, False),
    (LONG, "gte", 100, 100, True),
    (LONG, "gte", 100, 99, False),
    (LONG, "lt", 100, 99, True),
    (LONG, "lt", 100, 100, False),
    (LONG, "lte", 100, 100, True),
    (LONG, "lte", 100, 101, False),
    (LONG, "in", [1, "2"], 2, True),
    (LONG, "in", [1, 2], 3, False),
    (LONG, "not_in", [1, 2], 3, True),
    (LONG, "not_in", [1, 2], 1, False),
    (LONG, "is_empty", None, 0, False),
    (LONG, "is_not_empty", None, 0, True),
    # number: ints and floats compare as numbers
    (DOUBLE, "eq", 1.5, 1.5, True),
    (DOUBLE, "eq", 2, 2.0, True),
    (DOUBLE, "eq", "1.5", 1.5, True),
    (DOUBLE, "eq", 1.5, 1.25, False),
    (DOUBLE, "neq", 1.5, 1.25, True),
    (DOUBLE, "neq", 1.5, 1.5, False),
    (DOUBLE, "gt", 1.5, 1.75, True),
    (DOUBLE, "gt", 1.5, 1.5, False),
    (DOUBLE, "gte", 1.5, 1.5, True),
    (DOUBLE, "gte", 1.5, 1, False),
    (DOUBLE, "lt", 1.5, 1, True),
    (DOUBLE, "lt", 1.5, 1.5, False),
    (DOUBLE, "lte", 1.5, 1.5, True),
    (DOUBLE, "lte", 1.5, 2, False),
    (DOUBLE, "in", [1.5, 2], 2.0, True),
    (DOUBLE, "in", [1.5, 2], 2.5, False),
    (DOUBLE, "not_in", [1.5], 2.5, True),
    (DOUBLE, "not_in", [1.5], 1.5, False),
    (DOUBLE, "is_empty", None, 0.0, False),
    (DOUBLE, "is_not_empty", None, 0.0, True),
    # boolean: false is a value, not emptiness
    (BOOL, "eq", True, True, True),
    (BOOL, "eq", True, False, False),
    (BOOL, "eq", False, False, True),
    (BOOL, "eq", "true", True, True),
    (BOOL, "neq", True, False, True),
    (BOOL, "neq", True, True, False),
    (BOOL, "is_empty", None, False, False),
    (BOOL, "is_not_empty", None, False, True),
    # timestamp: epoch ms; configured ISO-8601 and epoch seconds are converted
    (TS, "eq", T0, T0, True),
    (TS, "eq", "2023-11-14T22:13:20Z", T0, True),
    (TS, "eq", "2023-11-15T05:13:20+07:00", T0, True),
    (TS, "eq", "2023-11-14T22:13:20", T0, True),
    (TS, "eq", 1_700_000_000, T0, True),
    (TS, "eq", str(T0), T0, True),
    (TS, "eq", T0, T0 + 1, False),
    (TS, "neq", T0, T0 + 1, True),
    (TS, "neq", T0, T0, False),
    (TS, "gt", "2023-11-14T22:13:20Z", T0 + 1, True),
    (TS, "gt", T0, T0, False),
    (TS, "gte", T0, T0, True),
    (TS, "gte", T0, T0 - 1, False),
    (TS, "lt", "2023-11-15", T0, True),
    (TS, "lt", T0, T0, False),
    (TS, "lte", T0, T0, True),
    (TS, "lte", T0, T0 + 1, False),
    (TS, "in", [T0, "2024-01-01T00:00:00Z"], T0, True),
    (TS, "in", [T0], T0 + 1, False),
    (TS, "not_in", [T0], T0 + 1, True),
    (TS, "not_in", [T0], T0, False),
    (TS, "is_empty", None, T0, False),
    (TS, "is_not_empty", None, T0, True),
    # list: contains is membership; eq compares whole lists, ignoring order; in intersects
    (LIST, "contains", "vip", ["vip", "new"], True),
    (LIST, "contains", "vip", ["new"], False),
    (LIST, "contains", "VIP", ["vip"], False),
    (LIST, "contains", "vi", ["vip"], False),
    (LIST, "not_contains", "vip", ["new"], True),
    (LIST, "not_contains", "vip", ["vip", "new"], False),
    (LIST, "eq", ["a", "b"], ["b", "a"], True),
    (LIST, "eq", ["a", "b"], ["a"], False),
    (LIST, "eq", ["a", "b"], ["a", "b", "c"], False),
    (LIST, "eq", [], [], True),
    (LIST, "neq", ["a", "b"], ["a"], True),
    (LIST, "neq", ["a", "b"], ["b", "a"], False),
    (LIST, "in", ["a", "z"], ["a", "b"], True),
    (LIST, "in", ["a", "z"], ["b"], False),
    (LIST, "not_in", ["a"], ["b"], True),
    (LIST, "not_in", ["a"], ["a", "b"], False),
    (LIST, "is_empty", None, [], True),
    (LIST, "is_empty", None, ["a"], False),
    (LIST, "is_not_empty", None, ["a"], True),
    (LIST, "is_not_empty", None, [], False),
]


@pytest.mark.parametrize(
    ("field", "operator", "value", "record_value", "expected"),
    OPERATOR_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]!r}-{c[3]!r}" for c in OPERATOR_CASES],
)
def test_operator_compares_by_field_type(field, operator, value, record_value, expected):
    assert passes(cond(field, operator, value), {field: record_value}) is expected


def test_operator_cases_cover_every_operator_of_every_scalar_and_list_type():
    # changed/not_changed compare a field with its previous value, which a one-value case
    # cannot express: tests/journeys/test_change_aware.py covers them for every type (and
    # checks its own coverage the same way).
    covered = {(field, operator) for field, operator, *_ in OPERATOR_CASES}
    for field_name in (TEXT, LONG, DOUBLE, BOOL, TS, LIST):
        field_type = SCHEMA.field(field_name).type
        for operator in OPERATORS_BY_TYPE[field_type]:
            if operator in CHANGE_OPERATORS:
                continue
            assert (field_name, operator) in covered, (field_name, operator)


# A valid configured value per field type, for conditions whose value does not matter.
SAMPLE_VALUES = {TEXT: "gold", LONG: 100, DOUBLE: 1.5, BOOL: True, TS: T0, LIST: "vip"}
MISSING_PASSES = {"is_empty", "neq", "not_contains", "not_in"}
MISSING_CASES = [
    (field, operator)
    for field in SAMPLE_VALUES
    for operator in OPERATORS_BY_TYPE[SCHEMA.field(field).type]
    # A change operator compares the field with its previous value: see the test below.
    if operator not in CHANGE_OPERATORS
]


def sample_condition(field: str, operator: str) -> dict[str, Any]:
    if operator in ("is_empty", "is_not_empty", *CHANGE_OPERATORS):
        return cond(field, operator)
    if operator in ("in", "not_in") or (field == LIST and operator in ("eq", "neq")):
        return cond(field, operator, [SAMPLE_VALUES[field]])
    return cond(field, operator, SAMPLE_VALUES[field])


@pytest.mark.parametrize(("field", "operator"), MISSING_CASES)
@pytest.mark.parametrize("record", [{}, "none"], ids=["absent", "null"])
def test_missing_field_passes_only_is_empty_neq_not_contains_not_in(field, operator, record):
    record = {field: None} if record == "none" else {}
    expected = operator in MISSING_PASSES
    assert passes(sample_condition(field, operator), record) is expected


@pytest.mark.parametrize("field", list(SAMPLE_VALUES))
@pytest.mark.parametrize("record", [{}, "none"], ids=["absent", "null"])
def test_missing_field_without_previous_value_is_not_changed(field, record):
    # A record without previous values beside it (no `previous.<field>` key): the field and
    # its previous value are both None, so the write did not change the field.
    record = {field: None} if record == "none" else {}
    assert passes(cond(field, "changed"), record) is False
    assert passes(cond(field, "not_changed"), record) is True


@pytest.mark.parametrize("operator", ["is_empty", "is_not_empty"])
def test_object_list_fields_take_emptiness_tests_only(operator):
    predicate = filter_compile({"conditions": [cond("items", operator)]}, ORDER_SCHEMA)
    assert predicate({"items": []}) is (operator == "is_empty")
    assert predicate({"items": [{"productSku": "S-1"}]}) is (operator == "is_not_empty")
    assert predicate({}) is (operator == "is_empty")


TWO_CONDITIONS = [cond(LONG, "gte", 100), cond(TEXT, "eq", "gold")]


@pytest.mark.parametrize(
    ("match", "record", "expected"),
    [
        ("all", {LONG: 150, TEXT: "gold"}, True),
        ("all", {LONG: 150, TEXT: "silver"}, False),
        ("all", {LONG: 50, TEXT: "gold"}, False),
        ("all", {}, False),
        ("any", {LONG: 150, TEXT: "gold"}, True),
        ("any", {LONG: 150, TEXT: "silver"}, True),
        ("any", {LONG: 50, TEXT: "gold"}, True),
        ("any", {LONG: 50, TEXT: "silver"}, False),
        ("any", {}, False),
    ],
)
def test_match_all_needs_every_condition_and_any_needs_one(match, record, expected):
    predicate = filter_compile({"match": match, "conditions": TWO_CONDITIONS}, SCHEMA)
    assert predicate(record) is expected


def test_match_defaults_to_all():
    predicate = filter_compile({"conditions": TWO_CONDITIONS}, SCHEMA)
    assert predicate({LONG: 150, TEXT: "gold"}) is True
    assert predicate({LONG: 150, TEXT: "silver"}) is False


@pytest.mark.parametrize(
    "filter_config",
    [None, {}, {"conditions": []}, {"match": "any", "conditions": []}, {"match": "any"}],
)
def test_no_conditions_pass_every_record(filter_config):
    assert filter_validate(filter_config, SCHEMA, path="filter") == []
    predicate = filter_compile(filter_config, SCHEMA)
    assert predicate({}) is True
    assert predicate({LONG: -1, TEXT: ""}) is True


@pytest.mark.parametrize(
    ("condition", "record"),
    [
        (cond(TEXT, "contains", "a"), {TEXT: 5}),
        (cond(TEXT, "starts_with", "a"), {TEXT: 5}),
        (cond(LONG, "gt", 1), {LONG: "x"}),
        (cond(TEXT, "in", ["a"]), {TEXT: ["a"]}),
        (cond(LIST, "eq", ["a"]), {LIST: 5}),
    ],
)
def test_mistyped_record_value_fails_its_condition_instead_of_raising(condition, record):
    assert passes(condition, record) is False
    either = {"match": "any", "conditions": [condition, cond(BOOL, "eq", True)]}
    assert filter_compile(either, SCHEMA)({**record, BOOL: True}) is True


def test_compiled_filter_is_reusable_across_records():
    predicate = filter_compile({"conditions": [cond(LONG, "in", [1, 2])]}, SCHEMA)
    results = [predicate({LONG: n}) for n in range(5)]
    assert results == [False, True, True, False, False]


def test_compile_refuses_an_invalid_filter_naming_the_error():
    with pytest.raises(ValueError, match=r"filter\.conditions\[0\]\.operator: unknown operator"):
        filter_compile({"conditions": [cond(LONG, "like", 1)]}, SCHEMA)


def test_design_example_filter_is_valid():
    example = {"match": "all", "conditions": [cond(LONG, "gte", 100)]}
    assert filter_validate(example, SCHEMA, path="userEvents[0].filter") == []


@pytest.mark.parametrize(
    "condition",
    [cond(TEXT, "is_empty", ""), cond(TEXT, "is_not_empty", "anything")],
)
def test_emptiness_operators_ignore_a_value(condition):
    assert filter_validate({"conditions": [condition]}, SCHEMA, path="filter") == []


P = "filter.conditions[0]"
VALIDATION_CASES = [
    # the filter object
    ("text", ["filter: expected an object with match and conditions"]),
    ({"condition": []}, ["filter: unknown key 'condition' (use match, conditions)"]),
    ({"match": "some"}, ["filter.match: unknown match 'some' (use all or any)"]),
    ({"match": None}, ["filter.match: unknown match null (use all or any)"]),
    ({"conditions": {"field": LONG}}, ["filter.conditions: expected a list of conditions"]),
    # one condition
    ({"conditions": ["x"]}, [f"{P}: expected an object with field, operator and value"]),
    (
        {"conditions": [{**cond(LONG, "eq", 1), "op": "eq"}]},
        [f"{P}: unknown key 'op' (use field, operator, value)"],
    ),
    (
        {"conditions": [{"operator": "eq", "value": 1}]},
        [f"{P}.field: required, the name of a field of the model"],
    ),
    ({"conditions": [cond("nope", "eq", 1)]}, [f"{P}.field: unknown field 'nope'"]),
    (
        {"conditions": [{"field": LONG, "value": 1}]},
        [f"{P}.operator: required (use {ALL_OPERATORS_HELP})"],
    ),
    (
        {"conditions": [cond(LONG, "like", 1)]},
        [f"{P}.operator: unknown operator 'like' (use {ALL_OPERATORS_HELP})"],
    ),
    (
        {"conditions": [cond("nope", "like", 1)]},
        [
            f"{P}.field: unknown field 'nope'",
            f"{P}.operator: unknown operator 'like' (use {ALL_OPERATORS_HELP})",
        ],
    ),
    # operator not applicable to the field's type
    (
        {"conditions": [cond(BOOL, "gt", True)]},
        [
            f"{P}.operator: 'gt' does not apply to boolean field {BOOL} "
            "(use eq, neq, is_empty, is_not_empty, changed, not_changed)"
        ],
    ),
    (
        {"conditions": [cond(BOOL, "in", [True])]},
        [
            f"{P}.operator: 'in' does not apply to boolean field {BOOL} "
            "(use eq, neq, is_empty, is_not_empty, changed, not_changed)"
        ],
    ),
    (
        {"conditions": [cond(LIST, "gte", "a")]},
        [
            f"{P}.operator: 'gte' does not apply to list field {LIST} "
            "(use eq, neq, contains, not_contains, in, not_in, is_empty, is_not_empty, changed, "
            "not_changed)"
        ],
    ),
    (
        {"conditions": [cond(LIST, "starts_with", "a")]},
        [
            f"{P}.operator: 'starts_with' does not apply to list field {LIST} "
            "(use eq, neq, contains, not_contains, in, not_in, is_empty, is_not_empty, changed, "
            "not_changed)"
        ],
    ),
    (
        {"conditions": [cond(LONG, "contains", 1)]},
        [
            f"{P}.operator: 'contains' does not apply to integer field {LONG} "
            "(use eq, neq, gt, gte, lt, lte, in, not_in, is_empty, is_not_empty, changed, "
            "not_changed)"
        ],
    ),
    (
        {"conditions": [cond(DOUBLE, "ends_with", 1)]},
        [
            f"{P}.operator: 'ends_with' does not apply to number field {DOUBLE} "
            "(use eq, neq, gt, gte, lt, lte, in, not_in, is_empty, is_not_empty, changed, "
            "not_changed)"
        ],
    ),
    (
        {"conditions": [cond(TS, "starts_with", "2024")]},
        [
            f"{P}.operator: 'starts_with' does not apply to timestamp field {TS} "
            "(use eq, neq, gt, gte, lt, lte, in, not_in, is_empty, is_not_empty, changed, "
            "not_changed)"
        ],
    ),
    # value present and coercible
    ({"conditions": [cond(LONG, "eq")]}, [f"{P}.value: required for operator 'eq'"]),
    (
        {"conditions": [{"field": TEXT, "operator": "contains", "value": None}]},
        [f"{P}.value: required for operator 'contains'"],
    ),
    ({"conditions": [cond(TEXT, "eq", {"a": 1})]}, [f'{P}.value: expected text, got {{"a": 1}}']),
    ({"conditions": [cond(TEXT, "eq", ["a"])]}, [f'{P}.value: expected text, got ["a"]']),
    ({"conditions": [cond(LONG, "gt", "abc")]}, [f"{P}.value: expected an integer, got 'abc'"]),
    ({"conditions": [cond(LONG, "gt", 2.5)]}, [f"{P}.value: expected an integer, got 2.5"]),
    ({"conditions": [cond(LONG, "gt", "1_000")]}, [f"{P}.value: expected an integer, got '1_000'"]),
    ({"conditions": [cond(DOUBLE, "lt", "abc")]}, [f"{P}.value: expected a number, got 'abc'"]),
    ({"conditions": [cond(DOUBLE, "lt", True)]}, [f"{P}.value: expected a number, got true"]),
    ({"conditions": [cond(DOUBLE, "lt", "nan")]}, [f"{P}.value: expected a number, got 'nan'"]),
    (
        {"conditions": [cond(BOOL, "eq", 2)]},
        [f"{P}.value: expected a boolean (true or false), got 2"],
    ),
    (
        {"conditions": [cond(BOOL, "eq", "yes")]},
        [f"{P}.value: expected a boolean (true or false), got 'yes'"],
    ),
    (
        {"conditions": [cond(TS, "gt", "yesterday")]},
        [f"{P}.value: expected a timestamp (epoch milliseconds or ISO-8601), got 'yesterday'"],
    ),
    (
        {"conditions": [cond(LIST, "contains", ["a"])]},
        [f'{P}.value: expected text, got ["a"]'],
    ),
    (
        {"conditions": [cond(LIST, "eq", "a")]},
        [
            f"{P}.value: expected a list of text for operator 'eq' on a list field, got 'a' "
            "(to test one element use contains)"
        ],
    ),
    (
        {"conditions": [cond(LIST, "neq", ["a", {"b": 1}])]},
        [f'{P}.value[1]: expected text, got {{"b": 1}}'],
    ),
    # in / not_in take a non-empty list of coercible values
    (
        {"conditions": [cond(LONG, "in", 5)]},
        [f"{P}.value: expected a non-empty list for operator 'in', got 5"],
    ),
    (
        {"conditions": [cond(TEXT, "not_in", [])]},
        [f"{P}.value: expected a non-empty list for operator 'not_in', got []"],
    ),
    (
        {"conditions": [cond(LONG, "in", [1, "x", 2.5])]},
        [
            f"{P}.value[1]: expected an integer, got 'x'",
            f"{P}.value[2]: expected an integer, got 2.5",
        ],
    ),
    (
        {"conditions": [cond(LIST, "in", ["a", None])]},
        [f"{P}.value[1]: expected text, got null"],
    ),
]


@pytest.mark.parametrize(("filter_config", "errors"), VALIDATION_CASES)
def test_validation_names_the_path_of_each_bad_value(filter_config, errors):
    assert filter_validate(filter_config, SCHEMA, path="filter") == errors
    if errors:
        with pytest.raises(ValueError):
            filter_compile(filter_config, SCHEMA)


def test_object_list_field_refuses_comparisons():
    errors = filter_validate({"conditions": [cond("items", "eq", "x")]}, ORDER_SCHEMA, path="f")
    assert errors == [
        "f.conditions[0].operator: 'eq' does not apply to object_list field items "
        "(use is_empty, is_not_empty, changed, not_changed)"
    ]


def test_validation_reports_every_bad_condition_under_the_given_path():
    filter_config = {
        "match": "every",
        "conditions": [
            cond(LONG, "gte", 100),
            cond(TEXT, "like", "a"),
            cond(BOOL, "eq", "maybe"),
        ],
    }
    errors = filter_validate(filter_config, SCHEMA, path="userEvents[2].filter")
    assert errors == [
        "userEvents[2].filter.match: unknown match 'every' (use all or any)",
        "userEvents[2].filter.conditions[1].operator: unknown operator 'like' "
        f"(use {ALL_OPERATORS_HELP})",
        "userEvents[2].filter.conditions[2].value: expected a boolean (true or false), got 'maybe'",
    ]


def test_every_operator_is_known_to_some_field_type():
    assert set(OPERATORS) == {op for ops in OPERATORS_BY_TYPE.values() for op in ops}
