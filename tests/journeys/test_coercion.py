"""Coercion of rule values to a field type: the edge cases filters and update values share."""

from __future__ import annotations

import pytest

from journeys.coercion import (
    CoercionError,
    to_boolean,
    to_integer,
    to_number,
    to_text,
    to_text_list,
    to_timestamp,
)

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a", "a"), ("", ""), (5, "5"), (1.5, "1.5"), (True, "true"), (False, "false")],
)
def test_text_takes_strings_numbers_and_booleans(value, expected):
    assert to_text(value) == expected


@pytest.mark.parametrize("value", [None, [], {}, float("nan"), float("inf")])
def test_text_refuses_the_rest(value):
    with pytest.raises(CoercionError):
        to_text(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (-5, -5), (5.0, 5), ("5", 5), (" -5 ", -5), ("+5", 5), ("5.0", 5), ("1e3", 1000)],
)
def test_integer_takes_integral_values(value, expected):
    result = to_integer(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [True, 5.5, "5.5", "1_000", "", "abc", None, float("inf")])
def test_integer_refuses_fractions_booleans_and_non_numbers(value):
    with pytest.raises(CoercionError, match="expected an integer"):
        to_integer(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (1.5, 1.5), ("1.5", 1.5), (".5", 0.5), ("-2", -2), ("2e-1", 0.2)],
)
def test_number_takes_numbers_and_numeric_strings(value, expected):
    assert to_number(value) == expected


@pytest.mark.parametrize("value", [True, "nan", "inf", "Infinity", "1_000", "", float("nan"), [1]])
def test_number_refuses_booleans_and_non_finite_values(value):
    with pytest.raises(CoercionError, match="expected a number"):
        to_number(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("true", True), (" FALSE ", False)]
)
def test_boolean_takes_booleans_and_their_spelling(value, expected):
    assert to_boolean(value) is expected


def test_boolean_takes_one_and_zero_as_the_wire_does():
    assert (to_boolean(1), to_boolean(0)) == (True, False)


@pytest.mark.parametrize("value", [2, -1, 0.5, "yes", "", None])
def test_boolean_refuses_other_numbers_and_words(value):
    with pytest.raises(CoercionError):
        to_boolean(value)


@pytest.mark.parametrize(
    "value",
    [
        T0,
        float(T0),
        str(T0),
        1_700_000_000,
        "1700000000",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20.000+00:00",
        "2023-11-15T05:13:20+07:00",
        "2023-11-14T22:13:20",
    ],
)
def test_timestamp_reads_epoch_ms_epoch_seconds_and_iso_8601(value):
    assert to_timestamp(value) == T0


def test_timestamp_keeps_milliseconds_and_reads_dates_as_utc_midnight():
    assert to_timestamp("2023-11-14T22:13:20.123Z") == T0 + 123
    assert to_timestamp("2024-01-01") == 1_704_067_200_000


@pytest.mark.parametrize("value", [True, "yesterday", "", None, [T0], 10**20])
def test_timestamp_refuses_the_rest(value):
    with pytest.raises(CoercionError, match="expected a timestamp"):
        to_timestamp(value)


def test_text_list_stringifies_each_element_and_refuses_nesting():
    assert to_text_list(["a", 1, True]) == ["a", "1", "true"]
    with pytest.raises(CoercionError, match="expected a list of text"):
        to_text_list(["a", ["b"]])
    with pytest.raises(CoercionError, match="expected a list of text"):
        to_text_list("a")


def test_error_message_shows_the_value_briefly():
    with pytest.raises(CoercionError) as caught:
        to_number("x" * 100)
    assert str(caught.value) == f"expected a number, got '{'x' * 56}..."
    assert caught.value.expected == "a number"
