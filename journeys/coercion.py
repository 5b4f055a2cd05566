"""Coercion of rule-engine values to a field type: filter constants, update values, event times.

The rules are the wire's (cdp/coercion.py), so a User Event's constants and the entries it
compares them with are read alike; this module only words the errors for the rule engine.
Each `to_*` function returns the value in the type's canonical Python form (text
→ str, integer → int, number → int | float, boolean → bool, timestamp → int epoch ms, list
→ list[str]) or raises `CoercionError`, whose `expected` phrase ("a number") lets callers
word their own message. Pure functions: no database, no settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cdp import coercion as wire
from cdp.schema import FieldType


class CoercionError(ValueError):
    """A value that cannot be coerced; `expected` names the type, e.g. "a number"."""

    def __init__(self, expected: str, value: Any) -> None:
        self.expected = expected
        self.value = value
        super().__init__(f"expected {expected}, got {value_shown(value)}")


def value_shown(value: Any) -> str:
    """A short rendering of a value for messages: strings quoted, the rest as JSON."""
    if isinstance(value, str):
        shown = repr(value)
    else:
        try:
            shown = json.dumps(value, ensure_ascii=False, default=str)
        except ValueError:  # circular structures
            shown = type(value).__name__
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _worded(coerce: Callable[[Any], Any], expected: str) -> Callable[[Any], Any]:
    def coerce_worded(value: Any) -> Any:
        try:
            return coerce(value)
        except wire.CoercionError:
            raise CoercionError(expected, value) from None

    coerce_worded.__doc__ = f"{expected.capitalize()}, by the wire's rule (cdp/coercion.py)."
    return coerce_worded


to_text = _worded(wire.to_text, "text")
to_integer = _worded(wire.to_integer, "an integer")
to_number = _worded(wire.to_number, "a number")
to_boolean = _worded(wire.to_boolean, "a boolean (true or false)")
# A rule has no entry, so no `timezoneGmt`: a zone-less ISO string is read as UTC.
to_timestamp = _worded(wire.to_timestamp, "a timestamp (epoch milliseconds or ISO-8601)")
to_text_list = _worded(wire.to_list, "a list of text")


_SCALAR_COERCERS = {
    FieldType.TEXT: to_text,
    FieldType.INTEGER: to_integer,
    FieldType.NUMBER: to_number,
    FieldType.BOOLEAN: to_boolean,
    FieldType.TIMESTAMP: to_timestamp,
    # A list field's elements are text; this coerces one element.
    FieldType.LIST: to_text,
}


def to_field_scalar(value: Any, type_: FieldType) -> Any:
    """One value of a field of `type_` (for a list field: one element). Raises CoercionError.

    Not for object-list fields, which hold no scalar.
    """
    try:
        coerce = _SCALAR_COERCERS[type_]
    except KeyError:
        raise CoercionError(f"no value (a {type_} field holds no scalar)", value) from None
    return coerce(value)
