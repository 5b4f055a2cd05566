"""The wire's value rules, one function per field type: what ingestion stores,
and what the rule engine compares and assigns (journeys/coercion.py words its own errors
over these), so an entry and a User Event's constants never follow two sets of rules.

Each coercer returns the stored value or raises `CoercionError` with a reason; the
caller names the field. `None` never reaches a coercer: it means "clear".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cdp.schema import Field, FieldType

# Below this, a number is epoch seconds (10^11 ms is in 1973; 10^11 s is in year 5138).
EPOCH_SECONDS_BELOW = 10**11
_INTEGER_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class CoercionError(ValueError):
    pass


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_text(value: Any, *, tz_hours: int = 0) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise CoercionError("must be a finite number")
        return str(value)
    raise CoercionError("must be a string, number or boolean")


# Integer fields are 64-bit (PangoCDP's Long); beyond that JSON parsers lose digits.
INTEGER_LIMIT = 2**63
# Number fields hold the same range, integers exactly and other numbers as doubles. Past
# it, PostgreSQL's jsonb keeps a double such as 1e20 as its digits, which read back as an
# integer no 64-bit reader (orjson, which writes every answer) can hold; SQLite would
# keep it, so both refuse it (and any integer past it), rather than the one database
# storing what the other cannot give back.
_NUMBER_RANGE_MESSAGE = f"must be a number from {-INTEGER_LIMIT} to {INTEGER_LIMIT - 1}"


def _in_integer_range(number: int) -> int:
    if not -INTEGER_LIMIT <= number < INTEGER_LIMIT:
        raise CoercionError("must be an integer")
    return number


def _parsed_number(value: Any) -> int | float:
    """A JSON number, or a numeric string read as the JSON number it spells, of any
    magnitude; raises CoercionError for anything else, and for a non-finite double."""
    if _is_number(value):
        number = value
    elif isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        text = value.strip()
        if _INTEGER_RE.match(text):
            try:
                number = int(text)
            except ValueError:  # over Python's 4,300-digit limit of int(str)
                raise CoercionError(_NUMBER_RANGE_MESSAGE) from None
        else:
            number = float(text)  # never raises on what the pattern matched
    else:
        raise CoercionError("must be a number")
    if isinstance(number, float) and not math.isfinite(number):
        # NaN, or infinity: "1e999" reads as infinity, which JSON cannot store.
        raise CoercionError("must be a finite number")
    return number


def to_integer(value: Any, *, tz_hours: int = 0) -> int:
    if isinstance(value, bool):
        raise CoercionError("must be an integer")
    if isinstance(value, int):
        return _in_integer_range(value)
    if isinstance(value, float) and value.is_integer():
        return _in_integer_range(int(value))
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        # An integral numeric string: "42", but also "42.0" and "4.2e1".
        try:
            number = _parsed_number(value)
        except CoercionError:
            raise CoercionError("must be an integer") from None
        if isinstance(number, int) or number.is_integer():
            return _in_integer_range(int(number))
    raise CoercionError("must be an integer")


def to_number(value: Any, *, tz_hours: int = 0) -> int | float:
    number = _parsed_number(value)
    # Compared as they are: an int of any size against the limit never overflows.
    if not -INTEGER_LIMIT <= number < INTEGER_LIMIT:
        raise CoercionError(_NUMBER_RANGE_MESSAGE)
    return number


def to_boolean(value: Any, *, tz_hours: int = 0) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CoercionError("must be a boolean")


def _epoch_to_ms(number: int | float) -> int:
    return round(number * 1000) if abs(number) < EPOCH_SECONDS_BELOW else int(number)


# Stored timestamps become datetimes downstream (event times, user events): keep them in
# the years Python and the databases can represent, or a later read would fail.
MIN_MS = round(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_MS = round(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
_DATE_RANGE_MESSAGE = "must be a date between the years 1 and 9999"


def _in_date_range(ms: int) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise CoercionError(_DATE_RANGE_MESSAGE)
    return ms


def to_timestamp(value: Any, *, tz_hours: int = 0) -> int:
    """Epoch milliseconds from epoch ms or seconds (number or numeric string) or ISO-8601.

    A zone-less ISO string is read in the entry's `timezoneGmt` (hours east of UTC).
    """
    if isinstance(value, bool):
        raise CoercionError("must be a timestamp")
    if _is_number(value) or (isinstance(value, str) and _NUMBER_RE.match(value.strip())):
        try:
            number = _parsed_number(value)
        except CoercionError:
            raise CoercionError("must be a timestamp") from None
        return _in_date_range(_epoch_to_ms(number))
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise CoercionError(
                "must be epoch milliseconds, epoch seconds or an ISO-8601 date"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone(timedelta(hours=tz_hours)))
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:  # the offset pushed it past year 1 or 9999
            raise CoercionError(_DATE_RANGE_MESSAGE) from None
        return _in_date_range(round(moment.timestamp() * 1000))
    raise CoercionError("must be a timestamp")


def to_list(value: Any, *, tz_hours: int = 0) -> list[str]:
    if not isinstance(value, list):
        raise CoercionError("must be a list")
    try:
        return [to_text(item) for item in value]
    except CoercionError:
        raise CoercionError("must be a list of strings, numbers or booleans") from None


COERCERS: dict[FieldType, Callable[..., Any]] = {
    FieldType.TEXT: to_text,
    FieldType.INTEGER: to_integer,
    FieldType.NUMBER: to_number,
    FieldType.BOOLEAN: to_boolean,
    FieldType.TIMESTAMP: to_timestamp,
    FieldType.LIST: to_list,
}


def coerce(field: Field, value: Any, *, tz_hours: int = 0) -> Any:
    """The value of `field` to store; raises CoercionError. Object lists are not handled here."""
    coerced = COERCERS[field.type](value, tz_hours=tz_hours)
    if field.choices is not None and coerced != "" and coerced not in field.choices:
        raise CoercionError(f"must be one of {', '.join(field.choices)}")
    return coerced
