"""Coercion of rule-engine values to a field type: filter constants, update values, event times.

Each `to_*` function returns the value in the type's canonical Python form (DESIGN §4: text →
str, integer → int, number → int | float, boolean → bool, timestamp → int epoch ms, list →
list[str]) or raises `CoercionError`, whose `expected` phrase ("a number") lets callers word
their own message. Pure functions: no database, no settings.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.schema import FieldType

# Digits only, as JSON writes numbers: Python's int()/float() also accept "1_000", "nan"
# and "inf", which no client means as a number.
_INTEGER_STRING = re.compile(r"[+-]?\d+")
_NUMBER_STRING = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

# Same rule as ingestion (DESIGN §6): a number below 10^11 is epoch seconds. 10^11 ms is
# 1973-03-03, 10^11 s is year 5138, so no real time is ambiguous.
_EPOCH_SECONDS_BELOW = 10**11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


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


def _is_plain_number(value: Any) -> bool:
    # bool is a subclass of int; true/false is never a number here.
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_text(value: Any) -> str:
    """Text from a string, a finite number or a boolean ("true"/"false", as JSON spells it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_plain_number(value) and math.isfinite(value):
        return str(value)
    raise CoercionError("text", value)


def to_integer(value: Any) -> int:
    """An int from an int, an integral float, or an integral numeric string."""
    if _is_plain_number(value):
        if isinstance(value, int):
            return value
        if math.isfinite(value) and value.is_integer():
            return int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _INTEGER_STRING.fullmatch(text):
            return int(text)
        if _NUMBER_STRING.fullmatch(text):
            number = float(text)
            if math.isfinite(number) and number.is_integer():
                return int(number)
    raise CoercionError("an integer", value)


def to_number(value: Any) -> int | float:
    """An int or finite float from a number or a numeric string; ints stay ints."""
    if _is_plain_number(value):
        if math.isfinite(value):
            return value
    elif isinstance(value, str):
        text = value.strip()
        if _INTEGER_STRING.fullmatch(text):
            return int(text)
        if _NUMBER_STRING.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
    raise CoercionError("a number", value)


def to_boolean(value: Any) -> bool:
    """A bool from a bool or the strings "true"/"false" (any case); 0 and 1 are refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
    raise CoercionError("a boolean (true or false)", value)


def to_timestamp(value: Any) -> int:
    """Epoch milliseconds from epoch ms, epoch seconds (below 10^11), or an ISO-8601 string.

    Numeric strings count as numbers. A zone-less ISO string is read as UTC: a rule has no
    entry, so no `timezoneGmt`, to place it in.
    """
    try:
        number = to_integer(value)
    except CoercionError:
        pass
    else:
        return number * 1000 if abs(number) < _EPOCH_SECONDS_BELOW else number
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return (moment - _EPOCH) // _ONE_MS
    raise CoercionError("a timestamp (epoch milliseconds or ISO-8601)", value)


def to_text_list(value: Any) -> list[str]:
    """A list of text from a list whose every element coerces to text."""
    if not isinstance(value, list):
        raise CoercionError("a list of text", value)
    try:
        return [to_text(item) for item in value]
    except CoercionError:
        raise CoercionError("a list of text", value) from None


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
