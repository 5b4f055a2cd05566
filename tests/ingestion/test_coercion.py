"""Coercion and per-entry validation (DESIGN §6): unit tests of cdp/coercion.py, then
the same rules through the Data Ingestion API, checked on response bodies and rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp import services
from cdp.coercion import (
    CoercionError,
    coerce,
    to_boolean,
    to_integer,
    to_list,
    to_number,
    to_text,
    to_timestamp,
)
from cdp.schema import Field, FieldType

# 2024-01-02T03:04:05Z
EPOCH_S = 1704164645
EPOCH_MS = EPOCH_S * 1000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# --- unit: cdp/coercion.py -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 42 ", 42),
        ("-7", -7),
        ("+7", 7),
        (42.0, 42),
        (0, 0),
        ("42.0", 42),
        ("4.2e1", 42),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_to_integer_accepts_integers_and_integral_strings(raw, expected):
    value = to_integer(raw)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    "raw",
    [
        "4.2",
        4.2,
        "abc",
        "",
        "4 2",
        True,
        False,
        [1],
        {"a": 1},
        float("nan"),
        float("inf"),
        2**63,
        1.2e30,
        "1e30",
    ],
)
def test_to_integer_rejects_everything_else(raw):
    with pytest.raises(CoercionError, match="must be an integer"):
        to_integer(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("gold", "gold"), ("", ""), (42, "42"), (4.5, "4.5"), (True, "true"), (False, "false")],
)
def test_to_text_stringifies_numbers_and_booleans(raw, expected):
    assert to_text(raw) == expected


@pytest.mark.parametrize("raw", [{"a": 1}, ["a"], float("nan"), float("inf")])
def test_to_text_rejects_objects_lists_and_non_finite_numbers(raw):
    with pytest.raises(CoercionError):
        to_text(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [(2.5, 2.5), (3, 3), ("2.5", 2.5), ("3", 3), ("-1e3", -1000.0)]
)
def test_to_number(raw, expected):
    assert to_number(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "", True, None, float("nan"), [1]])
def test_to_number_rejects_non_numbers(raw):
    with pytest.raises(CoercionError, match=r"must be a (finite )?number"):
        to_number(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), (False, False), ("true", True), ("TRUE", True), (" false ", False)],
)
def test_to_boolean(raw, expected):
    assert to_boolean(raw) is expected


@pytest.mark.parametrize("raw", ["yes", "", 2, -1, 0.5, None, ["true"]])
def test_to_boolean_rejects_other_values(raw):
    with pytest.raises(CoercionError, match="must be a boolean"):
        to_boolean(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (EPOCH_MS, EPOCH_MS),  # epoch ms kept
        (str(EPOCH_MS), EPOCH_MS),
        (EPOCH_S, EPOCH_MS),  # epoch seconds, number
        (str(EPOCH_S), EPOCH_MS),  # epoch seconds, string (real clients)
        (EPOCH_S + 0.5, EPOCH_MS + 500),
        (10**11 - 1, (10**11 - 1) * 1000),  # just below 10^11: seconds
        (10**11, 10**11),  # from 10^11 on: milliseconds
        ("2024-01-02T03:04:05Z", EPOCH_MS),
        ("2024-01-02T03:04:05+00:00", EPOCH_MS),
        ("2024-01-02T10:04:05+07:00", EPOCH_MS),
        ("2024-01-02T03:04:05.250Z", EPOCH_MS + 250),
        ("2024-01-02T03:04:05", EPOCH_MS),  # zone-less, timezoneGmt 0
    ],
)
def test_to_timestamp(raw, expected):
    value = to_timestamp(raw)
    assert value == expected
    assert type(value) is int


def test_to_timestamp_reads_a_zone_less_date_in_the_entry_timezone():
    assert to_timestamp("2024-01-02T03:04:05", tz_hours=7) == _ms(2024, 1, 1, 20, 4, 5)
    assert to_timestamp("2024-01-02T03:04:05", tz_hours=-5) == _ms(2024, 1, 2, 8, 4, 5)
    # A zone in the string wins over timezoneGmt.
    assert to_timestamp("2024-01-02T03:04:05Z", tz_hours=7) == EPOCH_MS


@pytest.mark.parametrize("raw", ["not a date", "2024-13-45", "", True, [EPOCH_MS], {"t": 1}])
def test_to_timestamp_rejects_bad_dates(raw):
    with pytest.raises(CoercionError):
        to_timestamp(raw)


def test_numbers_too_large_to_store_are_rejected_not_crashed_on():
    huge_digits = "9" * 5000  # past Python's 4,300-digit limit of int(str)
    with pytest.raises(CoercionError, match="must be an integer"):
        to_integer(huge_digits)
    for raw in (huge_digits, "1e999", "-1e999"):  # "1e999" reads as infinity
        with pytest.raises(CoercionError, match=r"must be a (finite )?number"):
            to_number(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "1e999",
        "9" * 5000,
        10**20,  # epoch ms in the year 3 billion
        -(10**20),
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
    ],
)
def test_to_timestamp_rejects_dates_no_reader_can_represent(raw):
    with pytest.raises(CoercionError):
        to_timestamp(raw)


def test_to_timestamp_accepts_the_first_and_last_representable_dates():
    assert to_timestamp("0001-01-01T00:00:00Z") == -62135596800000
    assert to_timestamp("9999-12-31T23:59:59.999Z") == 253402300799999
    assert datetime.fromtimestamp(to_timestamp(253402300799999) / 1000, tz=UTC).year == 9999


def test_to_list_stringifies_scalars_and_rejects_the_rest():
    assert to_list(["a", 2, True]) == ["a", "2", "true"]
    assert to_list([]) == []
    for raw in ("a", {"a": 1}, [{"a": 1}], [["a"]]):
        with pytest.raises(CoercionError):
            to_list(raw)


def test_coerce_checks_choices_after_the_type():
    status = Field("recordStatus", FieldType.TEXT, choices=("Active", "Deleted"))
    assert coerce(status, "Deleted") == "Deleted"
    with pytest.raises(CoercionError, match="must be one of Active, Deleted"):
        coerce(status, "Gone")
    assert coerce(Field("customFieldLong01", FieldType.INTEGER, custom=True), "42") == 42


# --- through the API: stored values -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("group", "field", "raw", "stored"),
    [
        ("customFieldLongs", "customFieldLong01", "42", 42),
        ("customFieldLongs", "customFieldLong01", 42.0, 42),
        ("customFieldLongs", "customFieldLong01", -3, -3),
        ("customFieldDoubles", "customFieldDouble01", "4.5", 4.5),
        ("customFieldDoubles", "customFieldDouble01", 3, 3),
        ("customFieldTexts", "customField01", 123, "123"),
        ("customFieldTexts", "customField01", 1.5, "1.5"),
        ("customFieldTexts", "customField01", True, "true"),
        ("customFieldBooleans", "customFieldBool01", True, True),
        ("customFieldBooleans", "customFieldBool01", "true", True),
        ("customFieldBooleans", "customFieldBool01", "false", False),
        ("customFieldListTexts", "customFieldList01", ["a", 2, False], ["a", "2", "false"]),
        ("customFieldTimestamps", "customFieldTimestamp01", EPOCH_MS, EPOCH_MS),
        ("customFieldTimestamps", "customFieldTimestamp01", EPOCH_S, EPOCH_MS),
        ("customFieldTimestamps", "customFieldTimestamp01", str(EPOCH_S), EPOCH_MS),
        ("customFieldTimestamps", "customFieldTimestamp01", "2024-01-02T10:04:05+07:00", EPOCH_MS),
    ],
)
def test_values_are_coerced_to_the_field_type(api_a, group, field, raw, stored):
    response = api_a.post([api_a.entry("R-1", **{group: {field: raw}})])

    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["action"] == "created"
    value = api_a.data("R-1")[field]
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.django_db
def test_zone_less_dates_use_the_entry_timezone(api_a):
    response = api_a.post(
        [
            api_a.entry(
                "R-1",
                timezoneGmt=7,
                createdAt="2024-01-02T03:04:05",
                customFieldTimestamps={"customFieldTimestamp01": "2024-01-02T03:04:05"},
            ),
            api_a.entry(
                "R-2",
                timezoneGmt="-5",
                customFieldTimestamps={"customFieldTimestamp01": "2024-01-02T03:04:05"},
            ),
            api_a.entry("R-3", customFieldTimestamps={"customFieldTimestamp01": "2024-01-02"}),
        ]
    )

    assert response.json()["success"] is True, response.content
    expected = _ms(2024, 1, 1, 20, 4, 5)
    assert api_a.data("R-1")["createdAt"] == expected
    assert api_a.data("R-1")["customFieldTimestamp01"] == expected
    assert api_a.data("R-2")["customFieldTimestamp01"] == _ms(2024, 1, 2, 8, 4, 5)
    assert api_a.data("R-3")["customFieldTimestamp01"] == _ms(2024, 1, 2)


@pytest.mark.django_db
def test_numeric_keys_and_built_in_fields_are_stringified(api_a):
    response = api_a.post([{"momCode": api_a.tenant.mom_code, "refId": 1001, "customerId": 55}])

    assert response.json()["results"][0]["refId"] == "1001", response.content
    assert api_a.data("1001") == {"refId": "1001", "customerId": "55"}


# --- through the API: rejected entries --------------------------------------------------------


def _rejection(api, entry, *, object_type: str = "custom-model") -> str:
    """Send `entry` next to a valid one: the bad one is answered 101, the good one stored."""
    good = api.entry("GOOD") if object_type == "custom-model" else None
    entries = [entry, good] if good else [entry]
    response = api.post(entries, object_type=object_type)
    body = response.json()
    result = body["results"][0]
    assert result["status"] == 101, body
    assert "action" not in result and "cdpId" not in result
    assert body["failed"] == 1
    if good:
        assert response.status_code == 200
        assert body["results"][1]["status"] == 200
    else:
        assert response.status_code == 400
    return result["errorMessage"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"customFieldLongs": {"customFieldLong01": "4.2"}},
            "Invalid value of customFieldLongs.customFieldLong01: must be an integer",
        ),
        (
            {"customFieldLong01": 4.2},
            "Invalid value of customFieldLong01: must be an integer",
        ),
        (
            {"customFieldLongs": {"customFieldLong01": True}},
            "Invalid value of customFieldLongs.customFieldLong01: must be an integer",
        ),
        (
            {"customFieldDoubles": {"customFieldDouble01": "lots"}},
            "Invalid value of customFieldDoubles.customFieldDouble01: must be a number",
        ),
        (
            {"customFieldBooleans": {"customFieldBool01": "yes"}},
            "Invalid value of customFieldBooleans.customFieldBool01: must be a boolean",
        ),
        (
            {"customFieldTexts": {"customField01": {"nested": 1}}},
            "Invalid value of customFieldTexts.customField01: must be a string, number or boolean",
        ),
        (
            {"customFieldListTexts": {"customFieldList01": "a,b"}},
            "Invalid value of customFieldListTexts.customFieldList01: must be a list",
        ),
        ({"recordStatus": "Gone"}, "Invalid value of recordStatus: must be one of Active, Deleted"),
        ({"timezoneGmt": 20}, "Invalid value of timezoneGmt: must be between -12 and 14"),
        ({"timezoneGmt": "east"}, "Invalid value of timezoneGmt: must be an integer"),
        ({"customFieldTexts": "gold"}, "Invalid value of customFieldTexts: must be an object"),
    ],
)
def test_values_of_the_wrong_type_reject_the_entry_naming_the_field(api_a, fields, message):
    assert _rejection(api_a, api_a.entry("BAD", **fields)) == message
    assert not api_a.records().filter(key="BAD").exists()
    assert api_a.records().filter(key="GOOD").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"customFieldTimestamps": {"customFieldTimestamp01": "yesterday"}},
        {"customFieldTimestamps": {"customFieldTimestamp01": "2024-02-30T00:00:00"}},
        {"createdAt": "soon"},
    ],
)
def test_bad_dates_reject_the_entry_naming_the_field(api_a, fields):
    message = _rejection(api_a, api_a.entry("BAD", **fields))

    wire_name = next(
        f"{group}.{next(iter(inner))}" if isinstance(inner, dict) else group
        for group, inner in fields.items()
    )
    assert message.startswith(f"Invalid value of {wire_name}: "), message
    assert not api_a.records().filter(key="BAD").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"customFieldDoubles": {"customFieldDouble01": "1e999"}},
            "Invalid value of customFieldDoubles.customFieldDouble01: must be a finite number",
        ),
        (
            {"customFieldLongs": {"customFieldLong01": "9" * 5000}},
            "Invalid value of customFieldLongs.customFieldLong01: must be an integer",
        ),
        (
            {"customFieldTimestamps": {"customFieldTimestamp01": "1e999"}},
            "Invalid value of customFieldTimestamps.customFieldTimestamp01: must be a timestamp",
        ),
        (
            {"customFieldTimestamps": {"customFieldTimestamp01": 10**20}},
            "Invalid value of customFieldTimestamps.customFieldTimestamp01: "
            "must be a date between the years 1 and 9999",
        ),
    ],
)
def test_values_too_large_to_store_reject_the_entry_not_the_request(api_a, fields, message):
    assert _rejection(api_a, api_a.entry("BAD", **fields)) == message


@pytest.mark.django_db
def test_user_event_time_too_large_rejects_the_entry(api_a):
    event = {
        "source": api_a.tenant.mom_code,
        "sourceId": "S-1",
        "channel": "Online",
        "eventCtg": "Other",
        "eventName": "view",
    }

    response = api_a.post(
        [{**event, "eventAt": 10**20}, {**event, "eventAt": EPOCH_MS}], object_type="user-event"
    )

    body = response.json()
    assert response.status_code == 200, body
    assert [r["status"] for r in body["results"]] == [101, 200]
    assert body["results"][0]["errorMessage"] == (
        "Invalid value of eventAt: must be a date between the years 1 and 9999"
    )


@pytest.mark.django_db
def test_unknown_field_with_a_value_rejects_the_entry(api_a):
    assert _rejection(api_a, api_a.entry("BAD", foo="x")) == "Unknown field: foo"
    assert (
        _rejection(api_a, api_a.entry("BAD", customFieldTexts={"customField99": "x"}))
        == "Unknown field: customFieldTexts.customField99"
    )
    assert not api_a.records().filter(key="BAD").exists()


@pytest.mark.django_db
def test_unknown_field_with_null_is_ignored(api_a):
    response = api_a.post(
        [
            api_a.entry(
                "R-1", foo=None, customFieldTexts={"customField01": "a", "customField99": None}
            )
        ]
    )

    assert response.json()["success"] is True, response.content
    assert api_a.data("R-1") == {"refId": "R-1", "customField01": "a"}


@pytest.mark.django_db
def test_custom_field_not_declared_on_the_model_is_rejected(api_a):
    # customField05 is declared, but on another model of the same organization.
    api_a.custom_model("Other", ["customField05"])

    assert (
        _rejection(api_a, api_a.entry("BAD", customField05="x")) == "Unknown field: customField05"
    )
    assert (
        _rejection(api_a, api_a.entry("BAD", customFieldTexts={"customField05": "x"}))
        == "Unknown field: customFieldTexts.customField05"
    )


@pytest.mark.django_db
def test_custom_field_in_the_wrong_group_is_rejected(api_a):
    message = _rejection(api_a, api_a.entry("BAD", customFieldLongs={"customField01": 3}))

    assert (
        message == "Invalid field: customField01 belongs in customFieldTexts, not customFieldLongs"
    )
    assert not api_a.records().filter(key="BAD").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"customerId": "C-1"}, "Missing refId"),
        ({"refId": ""}, "Missing refId"),
        ({"refId": "   "}, "Missing refId"),
        ({"refId": None}, "Missing refId"),
        ({"refId": "x" * 256}, "Invalid value of refId: longer than 255"),
    ],
)
def test_missing_or_bad_key_rejects_the_entry(api_a, entry, message):
    assert _rejection(api_a, {"momCode": api_a.tenant.mom_code, **entry}) == message


@pytest.mark.django_db
def test_missing_and_unknown_mom_codes_reject_the_entry(api_a):
    assert _rejection(api_a, {"refId": "R-9"}) == "Missing momCode"
    assert _rejection(api_a, {"refId": "R-9", "momCode": ""}) == "Missing momCode"
    assert (
        _rejection(api_a, {"refId": "R-9", "momCode": "M-ZZZZZ-O-ZZZZZ-M"})
        == "Unknown momCode: M-ZZZZZ-O-ZZZZZ-M"
    )


@pytest.mark.django_db
def test_another_organizations_mom_code_is_unknown(api_a, api_b):
    b_mom_code = api_b.tenant.mom_code

    message = _rejection(api_a, {"momCode": b_mom_code, "refId": "R-9", "customField01": "x"})

    assert message == f"Unknown momCode: {b_mom_code}"
    assert not api_b.records().exists()


ORDER = {
    "orderId": "O-1",
    "orderStatus": "new",
    "customerId": "C-1",
    "customerName": "Ann",
    "customerEmail": "ann@example.test",
    "items": [{"productSku": "SKU-1", "productName": "Tea"}],
}


@pytest.mark.django_db
def test_order_with_its_required_fields_is_stored_with_items_coerced(api_a):
    entry = {
        **ORDER,
        "totalCost": "12.5",
        "orderDate": str(EPOCH_S),
        "items": [{"productSku": 42, "productName": "Tea", "price": "10.5", "unit": None}],
    }

    response = api_a.post([entry], object_type="order")

    assert response.json()["success"] is True, response.content
    data = api_a.data("O-1", api_a.system_model("order"))
    assert data["items"] == [{"productSku": "42", "productName": "Tea", "price": 10.5}]
    assert data["totalCost"] == 12.5
    assert data["orderDate"] == EPOCH_MS


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"orderId": None}, "Missing orderId"),
        ({"orderStatus": None}, "Missing orderStatus"),
        ({"customerId": ""}, "Missing customerId"),
        ({"customerName": None}, "Missing customerName"),
        ({"customerEmail": None}, "Missing customerEmail"),
        ({"items": None}, "Missing items"),
        ({"items": []}, "Missing items"),
        ({"items": [{"productName": "Tea"}]}, "Missing items[0].productSku"),
        (
            {"items": [{"productSku": "S", "productName": "Tea"}, {"productSku": "T"}]},
            "Missing items[1].productName",
        ),
        ({"items": "SKU-1"}, "Invalid value of items: must be a list of objects"),
        (
            {"items": [{"productSku": "S", "productName": "T", "colour": "red"}]},
            "Unknown field: items[0].colour",
        ),
        (
            {"items": [{"productSku": "S", "productName": "T", "price": "cheap"}]},
            "Invalid value of items[0].price: must be a number",
        ),
    ],
)
def test_order_required_fields(api_a, change, message):
    entry = {k: v for k, v in {**ORDER, **change}.items() if v is not None}
    assert _rejection(api_a, entry, object_type="order") == message
    assert not api_a.records(api_a.system_model("order")).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"phone": "0901", "fullName": "Ann Lee"},
        {"email": "ann@example.test", "firstName": "Ann"},
        {"email": "ann@example.test", "lastName": "Lee"},
    ],
)
def test_customer_identity_with_contact_and_name_is_stored(api_a, fields):
    response = api_a.post([{"customerId": "C-1", **fields}], object_type="customer-identity")

    assert response.json()["success"] is True, response.content
    data = api_a.data("C-1", api_a.system_model("customer-identity"))
    assert data == {"customerId": "C-1", **fields}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fullName": "Ann"}, "Missing phone or email"),
        ({"phone": "", "email": None, "fullName": "Ann"}, "Missing phone or email"),
        ({"phone": "0901"}, "Missing fullName or firstName or lastName"),
        ({"phone": "0901", "fullName": ""}, "Missing fullName or firstName or lastName"),
        ({"email": "a@b.test", "fullName": "Ann", "customerId": None}, "Missing customerId"),
        (
            {"email": "a@b.test", "fullName": "Ann", "gender": "other"},
            "Invalid value of gender: must be one of male, female, undefined",
        ),
    ],
)
def test_customer_identity_required_fields(api_a, fields, message):
    entry = {"customerId": "C-1", **fields}
    assert _rejection(api_a, entry, object_type="customer-identity") == message
    assert not api_a.records(api_a.system_model("customer-identity")).exists()


@pytest.mark.django_db
def test_custom_fields_on_a_system_model_are_typed_like_on_custom_models(api_a):
    identity = api_a.system_model("customer-identity")
    services.field_definition_create(
        organization=api_a.tenant.organization, data_model=identity, name="customFieldLong03"
    )
    base = {"email": "a@b.test", "fullName": "Ann"}

    response = api_a.post(
        [
            {"customerId": "C-1", **base, "customFieldLongs": {"customFieldLong03": "9"}},
            {"customerId": "C-2", **base, "customFieldLong03": "nine"},
            {"customerId": "C-3", **base, "customField01": "x"},  # declared on Membership only
        ],
        object_type="customer-identity",
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 101, 101], results
    assert results[1]["errorMessage"] == "Invalid value of customFieldLong03: must be an integer"
    assert results[2]["errorMessage"] == "Unknown field: customField01"
    assert api_a.data("C-1", identity)["customFieldLong03"] == 9
