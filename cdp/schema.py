"""One schema abstraction for every data model, system or custom.

The built-in fields of the system object types (PangoCDP's entities) are
defined here, once, in code; the custom fields an organization declares live in the
database as `FieldDefinition` rows. `ModelSchema` joins both for one `DataModel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class FieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    LIST = "list"
    OBJECT_LIST = "object_list"


TAG_SUPPORT_IGNORED_UPDATE_CFS = "SUPPORT_IGNORED_UPDATE_CFS"
# Each write that creates or changes a record keeps a history entry (its changed fields).
TAG_KEEP_HISTORY = "KEEP_HISTORY"
KNOWN_TAGS = (TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY)


@dataclass(frozen=True)
class CustomFieldPattern:
    regex: re.Pattern[str]
    type: FieldType
    group: str
    example: str


# Order matters only for readability: the patterns are mutually exclusive. `\Z`, not `$`,
# which would also accept a name with a trailing newline.
CUSTOM_FIELD_PATTERNS: tuple[CustomFieldPattern, ...] = (
    CustomFieldPattern(
        re.compile(r"^customField(0[1-9]|[1-9][0-9])\Z"),
        FieldType.TEXT,
        "customFieldTexts",
        "customField01",
    ),
    CustomFieldPattern(
        re.compile(r"^customFieldLong(0[1-9]|[1-9][0-9])\Z"),
        FieldType.INTEGER,
        "customFieldLongs",
        "customFieldLong01",
    ),
    CustomFieldPattern(
        re.compile(r"^customFieldDouble(0[1-9]|[1-9][0-9])\Z"),
        FieldType.NUMBER,
        "customFieldDoubles",
        "customFieldDouble01",
    ),
    CustomFieldPattern(
        re.compile(r"^customFieldBool(0[1-9]|[1-9][0-9])\Z"),
        FieldType.BOOLEAN,
        "customFieldBooleans",
        "customFieldBool01",
    ),
    CustomFieldPattern(
        re.compile(r"^customFieldTimestamp(0[1-9]|[1-9][0-9])\Z"),
        FieldType.TIMESTAMP,
        "customFieldTimestamps",
        "customFieldTimestamp01",
    ),
    CustomFieldPattern(
        re.compile(r"^customFieldList(0[1-9]|[1-9][0-9])\Z"),
        FieldType.LIST,
        "customFieldListTexts",
        "customFieldList01",
    ),
)
CUSTOM_FIELD_GROUPS: dict[str, FieldType] = {p.group: p.type for p in CUSTOM_FIELD_PATTERNS}


def custom_field_pattern(name: str) -> CustomFieldPattern | None:
    """The pattern a custom field name matches, or None when it is not a valid name."""
    for pattern in CUSTOM_FIELD_PATTERNS:
        if pattern.regex.match(name):
            return pattern
    return None


CUSTOM_FIELD_NAME_HELP = (
    "customFieldNN, customFieldLongNN, customFieldDoubleNN, customFieldBoolNN, "
    "customFieldTimestampNN or customFieldListNN, with NN from 01 to 99"
)


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    choices: tuple[str, ...] | None = None
    custom: bool = False
    label: str = ""
    max_length: int | None = None


@dataclass(frozen=True)
class SystemModelSpec:
    object_type: str
    name: str
    key_field: str
    tags: tuple[str, ...]
    fields: tuple[Field, ...]
    # Each tuple: at least one of these fields must have a value.
    required_one_of: tuple[tuple[str, ...], ...] = ()
    # Sub-fields of object-list fields (order `items`).
    item_fields: dict[str, tuple[Field, ...]] = field(default_factory=dict)


def _fields(type_: FieldType, *names: str) -> tuple[Field, ...]:
    return tuple(Field(n, type_) for n in names)


T, INT, NUM, TS, LST = (
    FieldType.TEXT,
    FieldType.INTEGER,
    FieldType.NUMBER,
    FieldType.TIMESTAMP,
    FieldType.LIST,
)
RECORD_STATUSES = ("Active", "Deleted")
CHANNELS = ("Online", "Offline", "None")
CATEGORIES = (
    "CampaignBehaviour",
    "UserIdentity",
    "UserInteraction",
    "Transaction",
    "CustomerService",
    "Other",
)
CONDITIONS = ("Created", "Changed")

# Every entity takes these.
COMMON_FIELDS = (Field("timezoneGmt", INT), Field("systemName", T))
AUDIT_FIELDS = (
    *_fields(TS, "createdAt", "updatedAt"),
    *_fields(T, "createdBy", "updatedBy"),
    Field("recordStatus", T, choices=RECORD_STATUSES),
)

CUSTOM_MODEL = SystemModelSpec(
    object_type="custom-model",
    name="Custom Model",
    key_field="refId",
    tags=(TAG_SUPPORT_IGNORED_UPDATE_CFS,),
    fields=(
        Field("momCode", T, required=True),
        Field("refId", T, required=True),
        *_fields(
            T,
            "customerId",
            "email",
            "phone",
            "leadId",
            "deviceId",
            "eventCtg",
            "event",
            "eventLabel",
            "ggCid",
            "ggTid",
            "fbPid",
            "fbCId",
            "zoOAId",
            "zoUId",
            "zoUAId",
            "cookieGroup01",
            "cookieGroup02",
            "cookieGroup03",
            "cookie01",
            "cookie02",
            "cookie03",
        ),
        Field("tags", LST),
        *AUDIT_FIELDS,
        *COMMON_FIELDS,
    ),
)

USER_EVENT = SystemModelSpec(
    object_type="user-event",
    name="User Event",
    key_field="sourceId",
    tags=(TAG_SUPPORT_IGNORED_UPDATE_CFS,),
    fields=(
        Field("source", T, required=True, max_length=255),
        Field("sourceId", T, required=True, max_length=255),
        Field("condition", T, choices=CONDITIONS),
        Field("channel", T, required=True, choices=CHANNELS),
        Field("eventCtg", T, required=True, choices=CATEGORIES),
        *_fields(T, "eventCtg2", "eventCtg3"),
        Field("eventName", T, required=True, max_length=255),
        Field("eventAt", TS, required=True),
        Field("value", NUM),
        *_fields(LST, "eventLabels", "eventLabel2s", "eventLabel3s"),
        *_fields(T, "customerId", "email", "phone", "zaloOAId", "zaloUserId", "note"),
        # Real clients send `recordStatus: ""`; it is accepted as text here.
        Field("recordStatus", T),
        *COMMON_FIELDS,
    ),
)

CUSTOMER_IDENTITY = SystemModelSpec(
    object_type="customer-identity",
    name="Customer Identity",
    key_field="customerId",
    tags=(TAG_SUPPORT_IGNORED_UPDATE_CFS,),
    fields=(
        Field("customerId", T, required=True),
        *_fields(
            T,
            "customerGroup",
            "identityNo",
            "passportNo",
            "phone",
            "email",
            "fullName",
            "firstName",
            "lastName",
            "middleName",
        ),
        Field("nickNames", LST),
        Field("gender", T, choices=("male", "female", "undefined")),
        Field("dob", TS),
        Field("dob2", T),
        Field("yob", INT),
        Field("maritalStatus", T, choices=("Single", "Married", "Divorced")),
        *_fields(
            T,
            "religious",
            "country",
            "state",
            "city",
            "district",
            "ward",
            "address",
            "building",
            "buildingBlock",
            "apartmentCode",
            "zipCode",
            "language",
            "status",
        ),
        Field("sourceChannel", T, choices=("Online", "Offline")),
        *_fields(T, "sourceName", "sourceNameLevel2", "storeId"),
        *AUDIT_FIELDS,
        *COMMON_FIELDS,
    ),
    required_one_of=(("phone", "email"), ("fullName", "firstName", "lastName")),
)

LEAD_INFORMATION = SystemModelSpec(
    object_type="lead-information",
    name="Lead Information",
    key_field="leadId",
    tags=(TAG_SUPPORT_IGNORED_UPDATE_CFS,),
    fields=(
        Field("leadId", T, required=True),
        Field("phone", T, required=True),
        *_fields(T, "email", "customerId", "fullName", "firstName", "lastName"),
        Field("dob", TS),
        *_fields(
            T,
            "gender",
            "status",
            "gaTid",
            "gaCid",
            "o2oCid",
            "formKey",
            "formName",
            "formVs",
        ),
        Field("tags", LST),
        *_fields(
            T,
            "sourceChannel",
            "sourceName",
            "sourceNameLevel2",
            "sourceNameLevel3",
        ),
        Field("doubleOptIn", T, choices=("Yes", "No")),
        Field("singleOptIn", T, choices=("Yes", "No")),
        *_fields(T, "facebookId", "zaloId", "linkedin", "twitterId", "instagramId"),
        Field("prospectLevel", INT),
        *AUDIT_FIELDS,
        *COMMON_FIELDS,
    ),
)

ORDER = SystemModelSpec(
    object_type="order",
    name="Order",
    key_field="orderId",
    tags=(),
    fields=(
        Field("orderId", T, required=True),
        Field("orderStatus", T, required=True),
        Field("orderDate", TS),
        Field("customerId", T, required=True),
        Field("customerName", T, required=True),
        Field("customerEmail", T, required=True),
        *_fields(T, "customerPhone", "deliveryMethod"),
        Field("deliveryDate", TS),
        Field("deliveryStatus", T),
        *_fields(
            NUM,
            "shippingCost",
            "vatCost",
            "vatPercent",
            "discount",
            "discountPercent",
            "totalProductCost",
            "totalCost",
            "totalCostWithVat",
        ),
        *_fields(T, "paymentMethod", "paymentStatus"),
        *AUDIT_FIELDS,
        Field("items", FieldType.OBJECT_LIST, required=True),
        *COMMON_FIELDS,
    ),
    item_fields={
        "items": (
            Field("productSku", T, required=True),
            Field("productName", T, required=True),
            *_fields(NUM, "price", "price4Sale", "quantity", "discount", "discountPercent"),
            *_fields(T, "imageLink", "productLink", "unit"),
        ),
    },
)

SYSTEM_MODELS: dict[str, SystemModelSpec] = {
    spec.object_type: spec
    for spec in (CUSTOM_MODEL, USER_EVENT, ORDER, CUSTOMER_IDENTITY, LEAD_INFORMATION)
}
CUSTOM_MODEL_OBJECT_TYPE = CUSTOM_MODEL.object_type
USER_EVENT_OBJECT_TYPE = USER_EVENT.object_type


@dataclass(frozen=True)
class ModelSchema:
    """The fields of one data model: built-in ones from its spec plus its custom fields."""

    spec: SystemModelSpec
    tags: tuple[str, ...]
    custom_fields: tuple[Field, ...]
    fields: dict[str, Field]

    @classmethod
    def build(
        cls, spec: SystemModelSpec, *, tags: tuple[str, ...], custom_fields: tuple[Field, ...]
    ) -> ModelSchema:
        fields = {f.name: f for f in spec.fields}
        fields.update({f.name: f for f in custom_fields})
        return cls(spec=spec, tags=tags, custom_fields=custom_fields, fields=fields)

    @property
    def key_field(self) -> str:
        return self.spec.key_field

    @property
    def supports_ignored_update_cfs(self) -> bool:
        return TAG_SUPPORT_IGNORED_UPDATE_CFS in self.tags

    @property
    def keeps_history(self) -> bool:
        return TAG_KEEP_HISTORY in self.tags

    def field(self, name: str) -> Field | None:
        return self.fields.get(name)

    def timestamp_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.type == FieldType.TIMESTAMP]
