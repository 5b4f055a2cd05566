"""The Filter of a User Event: conditions on a record, all or any of them.

Config shape::

    {"match": "all" | "any",
     "conditions": [{"field": "customFieldLong01", "operator": "gte", "value": 100}, ...]}

`filter_validate` checks a config against a model's schema and returns path-prefixed error
messages; `filter_compile` turns a valid config into a predicate that runs on the ingest hot
path. Semantics (docs/decisions-rule-engine.md):

- Comparisons follow the field's type; configured values are coerced once, at compile time.
- Text comparisons are case-sensitive; gt/gte/lt/lte on text compare by code point.
- A missing field (absent or None) fails every operator except is_empty, neq, not_contains
  and not_in, which it passes.
- is_empty holds for missing, None, "" and []; is_not_empty is its negation.
- On a list field, contains/not_contains test one element's membership, eq/neq compare the
  whole list ignoring order, in/not_in ask whether any element is among the given values.
- An empty or absent condition list passes every record, whatever `match` says.

Change-aware conditions, for `Changed` User Events only (`change_aware`): a condition's
field may be `previous.<field>`, the field's stored value before the write (None when it
was empty), with the field's own operators; `changed` and `not_changed` (no value) ask
whether the write changed a field. The predicate then runs on the record with its
previous values beside it (`with_previous`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdp.schema import FieldType, ModelSchema
from journeys.coercion import CoercionError, to_field_scalar, value_shown

RecordPredicate = Callable[[Mapping[str, Any]], bool]

MATCH_ALL = "all"
MATCH_ANY = "any"

OPERATORS: tuple[str, ...] = (
    "eq",
    "neq",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "is_empty",
    "is_not_empty",
    "changed",
    "not_changed",
)
# Whether this write changed the field: `Changed` User Events only, on a field itself.
CHANGE_OPERATORS = frozenset({"changed", "not_changed"})
VALUELESS_OPERATORS = frozenset({"is_empty", "is_not_empty"}) | CHANGE_OPERATORS
PREVIOUS_PREFIX = "previous."
CHANGED_ONLY = "applies to Changed User Events only"
LIST_VALUE_OPERATORS = frozenset({"in", "not_in"})

_ORDERED = ("gt", "gte", "lt", "lte")
_EQUALITY = ("eq", "neq")
_MEMBERSHIP = ("in", "not_in")
_VALUELESS = ("is_empty", "is_not_empty", "changed", "not_changed")

OPERATORS_BY_TYPE: dict[FieldType, tuple[str, ...]] = {
    FieldType.TEXT: (
        *_EQUALITY,
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        *_ORDERED,
        *_MEMBERSHIP,
        *_VALUELESS,
    ),
    FieldType.INTEGER: (*_EQUALITY, *_ORDERED, *_MEMBERSHIP, *_VALUELESS),
    FieldType.NUMBER: (*_EQUALITY, *_ORDERED, *_MEMBERSHIP, *_VALUELESS),
    FieldType.TIMESTAMP: (*_EQUALITY, *_ORDERED, *_MEMBERSHIP, *_VALUELESS),
    FieldType.BOOLEAN: (*_EQUALITY, *_VALUELESS),
    FieldType.LIST: (*_EQUALITY, "contains", "not_contains", *_MEMBERSHIP, *_VALUELESS),
    FieldType.OBJECT_LIST: _VALUELESS,
}

_FILTER_KEYS = ("match", "conditions")
_CONDITION_KEYS = ("field", "operator", "value")


@dataclass(frozen=True)
class _Condition:
    field: str
    type: FieldType
    operator: str
    # Already coerced: a scalar of the field's type, a frozenset for in/not_in, a sorted
    # list for eq/neq on a list field, None for is_empty/is_not_empty.
    value: Any


def filter_validate(
    filter_config: Any, schema: ModelSchema, *, path: str, change_aware: bool = False
) -> list[str]:
    """Every problem of `filter_config` against `schema`, each message starting with its
    JSON path under `path` (e.g. "filter.conditions[1].operator: ..."). Empty when valid.

    None and {} are valid (no conditions: every record passes). `change_aware` (a
    `Changed` User Event) allows `previous.<field>` and the change operators.
    """
    _, _, errors = _parse(filter_config, schema, path, change_aware)
    return errors


def filter_reads_previous(filter_config: Any) -> bool:
    """Whether a (valid) filter looks at the record as it was before the write."""
    conditions = (filter_config or {}).get("conditions") or []
    return any(
        str(c.get("field", "")).startswith(PREVIOUS_PREFIX) or c.get("operator") in CHANGE_OPERATORS
        for c in conditions
    )


def with_previous(after: Mapping[str, Any], before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record after the write, with each field's previous value as
    `previous.<field>`: what change-aware conditions and update values read."""
    view = dict(after)
    for name, value in (before or {}).items():
        # An empty previous value ("" or []: stored as sent) reads as null.
        view[PREVIOUS_PREFIX + name] = None if _is_empty(value) else value
    return view


def filter_compile(filter_config: Any, schema: ModelSchema) -> RecordPredicate:
    """A predicate `record -> bool` for a config that `filter_validate` accepts.

    Compile once per config and reuse it for every record: values are coerced here, and
    the predicate does only dict lookups and comparisons. A record value of an unexpected
    type (records are coerced on ingestion, so this means a schema drift) fails its
    condition instead of raising. Raises ValueError, listing the errors, for an invalid
    config.
    """
    match, conditions, errors = _parse(filter_config, schema, "filter", change_aware=True)
    if errors:
        raise ValueError("invalid filter: " + "; ".join(errors))
    checks = [_check(condition) for condition in conditions]
    if not checks:
        return _pass_all
    if match == MATCH_ANY:
        return _passes_any(checks)
    return _passes_all(checks)


# The Console's words for each operator, wherever it shows one: the User Event form's
# operator list and its errors, and the preview's conditions ("customFieldLong01 ≥ 100");
# the wire, provisioning and the filters themselves keep the codes.
OPERATOR_WORDS = {
    "eq": "equals",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "not_in": "is not one of",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "changed": "changed",
    "not_changed": "did not change",
}


def filter_explain(
    filter_config: Any, schema: ModelSchema
) -> Callable[[Mapping[str, Any]], list[tuple[str, bool]]]:
    """For a valid filter, a function `record -> [(words, passed), ...]`, one per
    condition, judged exactly as `filter_compile`'s predicate judges it:
    "customFieldLong01 ≥ 100: 250 — yes"."""
    _match, conditions, errors = _parse(filter_config, schema, "filter", change_aware=True)
    if errors:
        raise ValueError("invalid filter: " + "; ".join(errors))
    explained = []
    for condition in conditions:
        words = f"{condition.field} {OPERATOR_WORDS[condition.operator]}"
        if condition.operator not in VALUELESS_OPERATORS:
            shown = condition.value
            if isinstance(shown, frozenset):
                shown = sorted(shown, key=str)
            words += f" {value_shown(shown)}"
        explained.append((words, condition.field, _check(condition)))

    def explain(record: Mapping[str, Any]) -> list[tuple[str, bool]]:
        results = []
        for words, field_name, check in explained:
            passed = check(record)
            actual = value_shown(record.get(field_name))
            results.append((f"{words}: {actual} — {'yes' if passed else 'no'}", passed))
        return results

    return explain


def _parse(
    filter_config: Any, schema: ModelSchema, path: str, change_aware: bool = False
) -> tuple[str, list[_Condition], list[str]]:
    if filter_config is None:
        return MATCH_ALL, [], []
    if not isinstance(filter_config, Mapping):
        return MATCH_ALL, [], [f"{path}: expected an object with match and conditions"]
    errors = [
        f"{path}: unknown key {key!r} (use match, conditions)"
        for key in filter_config
        if key not in _FILTER_KEYS
    ]
    match = filter_config.get("match", MATCH_ALL)
    if match not in (MATCH_ALL, MATCH_ANY):
        errors.append(f"{path}.match: unknown match {value_shown(match)} (use all or any)")
    raw_conditions = filter_config.get("conditions")
    if raw_conditions is None:
        return match, [], errors
    if not isinstance(raw_conditions, list):
        errors.append(f"{path}.conditions: expected a list of conditions")
        return match, [], errors
    conditions = []
    for index, raw in enumerate(raw_conditions):
        condition = _parse_condition(
            raw, schema, f"{path}.conditions[{index}]", errors, change_aware
        )
        if condition is not None:
            conditions.append(condition)
    return match, conditions, errors


def _parse_condition(
    raw: Any, schema: ModelSchema, path: str, errors: list[str], change_aware: bool
) -> _Condition | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{path}: expected an object with field, operator and value")
        return None
    errors.extend(
        f"{path}: unknown key {key!r} (use field, operator, value)"
        for key in raw
        if key not in _CONDITION_KEYS
    )
    name = raw.get("field")
    field = None
    previous = isinstance(name, str) and name.startswith(PREVIOUS_PREFIX)
    if not isinstance(name, str) or not name:
        errors.append(f"{path}.field: required, the name of a field of the model")
    else:
        field = schema.field(name.removeprefix(PREVIOUS_PREFIX) if previous else name)
        if field is None:
            errors.append(f"{path}.field: unknown field {name!r}")
        elif previous and not change_aware:
            errors.append(f"{path}.field: {name}: previous.<field> {CHANGED_ONLY}")
            field = None

    operator = raw.get("operator")
    if operator not in OPERATORS:
        problem = "required" if operator is None else f"unknown operator {value_shown(operator)}"
        errors.append(f"{path}.operator: {problem} (use {', '.join(OPERATORS)})")
        return None
    if operator in CHANGE_OPERATORS and not change_aware:
        errors.append(f"{path}.operator: {operator!r} {CHANGED_ONLY}")
        return None
    if field is None:
        return None
    if operator in CHANGE_OPERATORS and previous:
        errors.append(
            f"{path}.operator: {operator!r} applies to a field, not to its previous value "
            f"(use {field.name})"
        )
        return None
    allowed = OPERATORS_BY_TYPE[field.type]
    if operator not in allowed:
        errors.append(
            f"{path}.operator: {operator!r} does not apply to {field.type} field "
            f"{field.name} (use {', '.join(allowed)})"
        )
        return None

    name = PREVIOUS_PREFIX + field.name if previous else field.name
    if operator in VALUELESS_OPERATORS:
        # A Console form may post a blank value alongside is_empty; it means nothing.
        return _Condition(name, field.type, operator, None)
    if raw.get("value") is None:
        errors.append(f"{path}.value: required for operator {operator!r}")
        return None
    value = _coerce_value(raw["value"], field.type, operator, f"{path}.value", errors)
    if value is None:
        return None
    return _Condition(name, field.type, operator, value)


def _items_coerce(
    value: list[Any], type_: FieldType, path: str, errors: list[str]
) -> list[Any] | None:
    """Each element coerced to the field's scalar type, or None after appending errors."""
    items = []
    for index, item in enumerate(value):
        try:
            items.append(to_field_scalar(item, type_))
        except CoercionError as error:
            errors.append(f"{path}[{index}]: {error}")
    return items if len(items) == len(value) else None


def _coerce_value(value: Any, type_: FieldType, operator: str, path: str, errors: list[str]) -> Any:
    """The condition's value coerced for the predicate, or None after appending errors."""
    if operator in LIST_VALUE_OPERATORS:
        if not isinstance(value, list) or not value:
            errors.append(
                f"{path}: expected a non-empty list for operator {operator!r}, "
                f"got {value_shown(value)}"
            )
            return None
        items = _items_coerce(value, type_, path, errors)
        return frozenset(items) if items is not None else None
    if type_ == FieldType.LIST and operator in _EQUALITY:
        if not isinstance(value, list):
            errors.append(
                f"{path}: expected a list of text for operator {operator!r} on a list field, "
                f"got {value_shown(value)} (to test one element use contains)"
            )
            return None
        items = _items_coerce(value, type_, path, errors)
        return sorted(items) if items is not None else None
    try:
        return to_field_scalar(value, type_)
    except CoercionError as error:
        errors.append(f"{path}: {error}")
        return None


def _check(condition: _Condition) -> RecordPredicate:
    """One condition as a closure over its field name and coerced value.

    Each closure is written for its operator so that evaluation is one dict lookup and
    one comparison; the missing-field rule falls out of None comparing unequal to every
    coerced value, and is spelled out where it does not.
    """
    name, value, operator = condition.field, condition.value, condition.operator
    on_list = condition.type == FieldType.LIST

    if operator in CHANGE_OPERATORS:
        # Empty before and after ("", [], null or absent) is no change; a list compares
        # as eq does, whatever its order.
        was = PREVIOUS_PREFIX + name
        same = _same_list if on_list else _same_value
        if operator == "changed":
            return lambda record: not same(record.get(name), record.get(was))
        return lambda record: same(record.get(name), record.get(was))
    if operator == "is_empty":
        return lambda record: _is_empty(record.get(name))
    if operator == "is_not_empty":
        return lambda record: not _is_empty(record.get(name))
    if operator == "eq":
        if on_list:
            return lambda record: (v := record.get(name)) is not None and sorted(v) == value
        return lambda record: record.get(name) == value
    if operator == "neq":
        if on_list:
            return lambda record: (v := record.get(name)) is None or sorted(v) != value
        return lambda record: record.get(name) != value
    if operator == "contains":
        # Substring for text, element membership for a list: both are Python's `in`.
        return lambda record: (v := record.get(name)) is not None and value in v
    if operator == "not_contains":
        return lambda record: (v := record.get(name)) is None or value not in v
    if operator == "starts_with":
        return lambda record: (v := record.get(name)) is not None and str.startswith(v, value)
    if operator == "ends_with":
        return lambda record: (v := record.get(name)) is not None and str.endswith(v, value)
    if operator == "gt":
        return lambda record: (v := record.get(name)) is not None and v > value
    if operator == "gte":
        return lambda record: (v := record.get(name)) is not None and v >= value
    if operator == "lt":
        return lambda record: (v := record.get(name)) is not None and v < value
    if operator == "lte":
        return lambda record: (v := record.get(name)) is not None and v <= value
    if operator == "in":
        if on_list:
            return lambda record: (v := record.get(name)) is not None and not value.isdisjoint(v)
        return lambda record: record.get(name) in value
    if operator == "not_in":
        if on_list:
            return lambda record: (v := record.get(name)) is None or value.isdisjoint(v)
        return lambda record: record.get(name) not in value
    raise AssertionError(f"operator {operator!r} passed validation but has no predicate")


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same_value(now: Any, was: Any) -> bool:
    return (_is_empty(now) and _is_empty(was)) or now == was


def _same_list(now: Any, was: Any) -> bool:
    if _is_empty(now) or _is_empty(was):
        return _is_empty(now) and _is_empty(was)
    return sorted(now) == sorted(was)


def _pass_all(record: Mapping[str, Any]) -> bool:
    return True


# Mistyped record values raise TypeError (str > int, unhashable in frozenset) or
# AttributeError; they fail the condition rather than the ingest request. The try costs
# nothing on Python 3.11+ unless it fires.
_MISTYPED = (TypeError, AttributeError)


def _passes_all(checks: list[RecordPredicate]) -> RecordPredicate:
    def passes(record: Mapping[str, Any]) -> bool:
        for check in checks:
            try:
                if not check(record):
                    return False
            except _MISTYPED:
                return False
        return True

    return passes


def _passes_any(checks: list[RecordPredicate]) -> RecordPredicate:
    def passes(record: Mapping[str, Any]) -> bool:
        for check in checks:
            try:
                if check(record):
                    return True
            except _MISTYPED:
                continue
        return False

    return passes
