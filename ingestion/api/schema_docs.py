"""OpenAPI descriptions (drf-spectacular) of the Data Ingestion and Read APIs.

The views parse bodies themselves (the wire contract is fixed), so these
serializers only describe the shapes for the schema; they validate nothing.
"""

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
)
from rest_framework import serializers

# DRF's SerializerMetaclass pops each declared field off the class, so a field named like
# an attribute of Field or Serializer (`source`, `data`) shadows nothing; the stubs type
# the class attribute as that attribute, hence `type: ignore[assignment]` on those fields.


class ErrorBody(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    errorCode = serializers.CharField(
        help_text="UNAUTHORIZED, RATE_LIMITED, PAYLOAD_TOO_LARGE, INVALID_JSON, MISSING_INFO, "
        "ENTRIES_LIMIT_EXCEEDED, INVALID_OBJECT_TYPE, INVALID_JOURNEY_EVENT, "
        "JOURNEY_EVENT_DISABLED, INVALID_ENTRIES, IDEMPOTENCY_KEY_REUSED, NOT_FOUND, "
        "METHOD_NOT_ALLOWED, REQUEST_TIMEOUT, INTERNAL_ERROR, SERVICE_UNAVAILABLE"
    )
    message = serializers.CharField()
    requestId = serializers.CharField(help_text="Equals the X-Request-Id header.")


class IngestRequestBody(serializers.Serializer):
    objectType = serializers.CharField(
        help_text="custom-model, user-event, order, customer-identity, lead-information"
    )
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field
    jeConfigId = serializers.CharField(required=False, allow_null=True)
    jeEventKey = serializers.CharField(required=False, allow_null=True)
    entries = serializers.ListField(child=serializers.DictField(), max_length=50)
    ignoredUpdateCfs = serializers.ListField(child=serializers.CharField(), required=False)


class EventsCounts(serializers.Serializer):
    generated = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    dropped = serializers.IntegerField()


class FieldChange(serializers.Serializer):
    # "from" is a Python keyword: the field is declared under another name and renamed.
    from_ = serializers.JSONField(allow_null=True, help_text="The stored value, or null")
    to = serializers.JSONField(allow_null=True, help_text="The value after the write, or null")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class WouldBeEvent(serializers.Serializer):
    """A dry run's event: as the Read API would list it, without eventId and requestId."""

    jeConfigId = serializers.CharField(allow_null=True)
    jeEventKey = serializers.CharField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field
    sourceId = serializers.CharField()
    condition = serializers.CharField()
    channel = serializers.CharField()
    eventCtg = serializers.CharField()
    eventCtg2 = serializers.CharField()
    eventCtg3 = serializers.CharField()
    eventName = serializers.CharField()
    eventAt = serializers.IntegerField(help_text="epoch ms")
    value = serializers.FloatField(allow_null=True)
    eventLabels = serializers.ListField(child=serializers.CharField())
    eventLabel2s = serializers.ListField(child=serializers.CharField())
    eventLabel3s = serializers.ListField(child=serializers.CharField())
    customerId = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    note = serializers.CharField()
    properties = serializers.DictField()


class EntryResult(serializers.Serializer):
    index = serializers.IntegerField()
    refId = serializers.CharField(allow_null=True, help_text="The entry's key value.")
    status = serializers.IntegerField(help_text="200 stored, 101 rejected")
    action = serializers.ChoiceField(choices=["created", "updated", "unchanged"], required=False)
    cdpId = serializers.CharField(
        required=False, allow_null=True, help_text="Dry run: null for a record to be created"
    )
    eventId = serializers.CharField(required=False, help_text="Not in a dry run")
    errorMessage = serializers.CharField(required=False)
    changes = serializers.DictField(
        child=FieldChange(),
        required=False,
        help_text="Dry run only: each field the write would change; {} for unchanged",
    )
    event = WouldBeEvent(
        required=False, help_text="Dry run only: the user event the entry would generate"
    )


class IngestResponseBody(serializers.Serializer):
    success = serializers.BooleanField()
    errorCode = serializers.CharField(required=False, help_text="INVALID_ENTRIES when any failed")
    message = serializers.CharField(required=False)
    requestId = serializers.CharField()
    dryRun = serializers.BooleanField(required=False, help_text="true on a dry run's answer only")
    objectType = serializers.CharField()
    initData = serializers.BooleanField()
    total = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    events = EventsCounts()
    results = EntryResult(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class IngestErrorBody(ErrorBody):
    """A 400 of the ingest endpoint: the error body, which one schema describes for every
    400 (a `oneOf` of the error body and the 200 body would match an INVALID_ENTRIES
    answer twice). INVALID_ENTRIES (every entry rejected) also carries every field of the
    200 body; the other 400s carry none of them."""

    dryRun = serializers.BooleanField(required=False, help_text="true on a dry run's answer only")
    objectType = serializers.CharField(required=False)
    initData = serializers.BooleanField(required=False)
    total = serializers.IntegerField(required=False)
    created = serializers.IntegerField(required=False)
    updated = serializers.IntegerField(required=False)
    unchanged = serializers.IntegerField(required=False)
    failed = serializers.IntegerField(required=False)
    events = EventsCounts(required=False)
    results = EntryResult(many=True, required=False)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


class RecordBody(serializers.Serializer):
    cdpId = serializers.CharField()
    objectType = serializers.CharField()
    momCode = serializers.CharField(allow_null=True)
    key = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field
    createdAt = serializers.IntegerField(help_text="epoch ms")
    updatedAt = serializers.IntegerField(help_text="epoch ms")
    data = serializers.DictField(  # type: ignore[assignment]  # a declared field
        help_text="Flat: custom fields by their own names."
    )


class RecordResponseBody(serializers.Serializer):
    success = serializers.BooleanField()
    record = RecordBody()


class HistoryEntryBody(serializers.Serializer):
    requestId = serializers.CharField(help_text="The ingest request that wrote it")
    action = serializers.ChoiceField(choices=["created", "updated"])
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field
    at = serializers.IntegerField(help_text="epoch ms")
    changes = serializers.DictField(
        child=FieldChange(), help_text="Each changed field; a created record: every field"
    )


class RecordHistoryResponseBody(serializers.Serializer):
    success = serializers.BooleanField()
    historyKept = serializers.BooleanField(
        help_text="false (with an empty history) for a model not tagged KEEP_HISTORY"
    )
    history = HistoryEntryBody(many=True, help_text="Newest first")
    next = serializers.CharField(allow_null=True, help_text="Pass back as cursor=")


class UserEventBody(WouldBeEvent):
    eventId = serializers.CharField()
    requestId = serializers.CharField()


class UserEventsResponseBody(serializers.Serializer):
    success = serializers.BooleanField()
    events = UserEventBody(many=True)
    next = serializers.CharField(allow_null=True, help_text="Pass back as cursor=")


_HEADERS = [
    OpenApiParameter(
        "TOKEN",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description="Token from POST /api/accounts/authen",
    ),
    OpenApiParameter(
        "API_KEY",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description="The API key the token was issued for",
    ),
]

_RESPONSE_HEADERS = [
    OpenApiParameter(
        "X-Request-Id",
        str,
        OpenApiParameter.HEADER,
        response=True,
        description="32 lowercase hex; equals the body's requestId",
    ),
    OpenApiParameter(
        "X-Rate-Limit-Retry-After-Seconds",
        int,
        OpenApiParameter.HEADER,
        response=[429],
        description="Whole seconds until the full window frees",
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        response=[429, 503],
        description="Whole seconds to wait: until the full window frees (429), or before "
        "retrying while the database or the cache is unavailable (503)",
    ),
]


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorBody, description=description)


_AUTH_ERRORS = {
    401: _error(
        "UNAUTHORIZED: `TOKEN and API_KEY headers are required`, `Invalid token or API key`, "
        "or `Token has expired`"
    ),
    429: _error(
        "RATE_LIMITED: a window of this API key is full; X-Rate-Limit-Retry-After-Seconds "
        "and Retry-After give the seconds until it frees"
    ),
}

# What the production server's guard answers before the application (cdp/asgi.py), in
# the API's error shape, to a request whose body does not arrive in time.
BODY_TIMEOUT = {
    408: _error(
        "REQUEST_TIMEOUT: the body did not arrive within CDP_REQUEST_BODY_TIMEOUT seconds "
        "(10 by default) of the headers; the connection is closed"
    ),
}

# Every operation, the Authentication API's too (cdp/api/authentication.py).
_UNAVAILABLE = {
    503: _error(
        "SERVICE_UNAVAILABLE: `The database is unavailable; retry later` or `The cache is "
        "unavailable; retry later`; Retry-After gives the seconds to wait. Retry an ingest "
        "with the same Idempotency-Key and body (docs/retries-and-dry-runs.md)"
    ),
}

_IDEMPOTENCY = [
    OpenApiParameter(
        "Idempotency-Key",
        str,
        OpenApiParameter.HEADER,
        required=False,
        description="1–255 visible ASCII characters (0x21–0x7E), chosen by the client per "
        "request. A retry with the same key, body and initData within "
        "CDP_IDEMPOTENCY_KEY_TTL_SECONDS (a day) is answered the first answer, writing "
        "nothing; the same key with another request answers 422. Per organization. "
        "Ignored on a dry run.",
        pattern=r"^[\x21-\x7E]{1,255}$",
    ),
    OpenApiParameter(
        "Idempotent-Replayed",
        str,
        OpenApiParameter.HEADER,
        response=[200, 400],
        enum=["true"],
        description="Present on a retry answered with the stored answer (X-Request-Id "
        "and the body's requestId are then the original request's)",
    ),
]

INGEST: dict[str, Any] = {
    "operation_id": "ingest",
    "summary": "Create or update up to 50 records of one object type",
    "tags": ["Data Ingestion API"],
    # Given by media type: the view has no parser classes (the pipeline reads the body), so
    # drf-spectacular would otherwise describe no request body at all.
    "request": {"application/json": IngestRequestBody},
    "parameters": [
        *_HEADERS,
        *_RESPONSE_HEADERS,
        OpenApiParameter(
            "initData",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="true for a historical load: no user events fire",
        ),
        OpenApiParameter(
            "dryRun",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="true: every check and the whole plan, nothing written; the answer "
            "has dryRun, and per stored entry its changes and the event it would generate",
        ),
        *_IDEMPOTENCY,
    ],
    "responses": {
        200: OpenApiResponse(IngestResponseBody, description="At least one entry stored"),
        400: OpenApiResponse(
            IngestErrorBody,
            description="INVALID_JSON, MISSING_INFO (`Invalid value of: <fields>`), "
            "ENTRIES_LIMIT_EXCEEDED, INVALID_OBJECT_TYPE, INVALID_JOURNEY_EVENT, "
            "JOURNEY_EVENT_DISABLED: an error body; INVALID_ENTRIES (every entry rejected): "
            "the error body plus every field of the 200 body",
        ),
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
        **BODY_TIMEOUT,
        413: _error("PAYLOAD_TOO_LARGE: the body is over CDP_INGEST_MAX_BODY_BYTES"),
        422: _error(
            "IDEMPOTENCY_KEY_REUSED: `Idempotency-Key was already used with a different request`"
        ),
    },
    "examples": [
        OpenApiExample(
            "custom-model",
            request_only=True,
            value={
                "objectType": "custom-model",
                "source": "CRM",
                "jeConfigId": None,
                "jeEventKey": None,
                "entries": [
                    {
                        "momCode": "M-Q3JP7-O-OHITB-M",
                        "refId": "R-1",
                        "customerId": "C-1",
                        "customFieldTexts": {"customField01": "gold"},
                        "customFieldLongs": {"customFieldLong01": 3},
                    }
                ],
                "ignoredUpdateCfs": ["customField01"],
            },
        )
    ],
}

RECORD: dict[str, Any] = {
    "operation_id": "record_get",
    "summary": "Read one stored record by its key",
    "tags": ["Read API"],
    "parameters": [
        *_HEADERS,
        *_RESPONSE_HEADERS,
        OpenApiParameter(
            "momCode",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="Required for objectType custom-model",
        ),
    ],
    "responses": {
        200: RecordResponseBody,
        400: _error("MISSING_INFO: `Invalid value of: momCode`"),
        404: _error("NOT_FOUND: the organization has no such record"),
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
    },
}

_PAGE = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
        OpenApiParameter.QUERY,
        required=False,
        description="1–200, default 50",
    ),
    OpenApiParameter(
        "cursor",
        str,
        OpenApiParameter.QUERY,
        required=False,
        description="`next` of the previous page",
    ),
]

RECORD_HISTORY: dict[str, Any] = {
    "operation_id": "record_history",
    "summary": "A record's history (models tagged KEEP_HISTORY), newest first",
    "tags": ["Read API"],
    "parameters": [
        *_HEADERS,
        *_RESPONSE_HEADERS,
        OpenApiParameter(
            "momCode",
            str,
            OpenApiParameter.QUERY,
            required=False,
            description="Required for objectType custom-model",
        ),
        *_PAGE,
    ],
    "responses": {
        200: RecordHistoryResponseBody,
        400: _error("MISSING_INFO: `Invalid value of: momCode`, `limit` or `cursor`"),
        404: _error("NOT_FOUND: the organization has no such record"),
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
    },
}

USER_EVENTS: dict[str, Any] = {
    "operation_id": "user_events_list",
    "summary": "List user events, newest first",
    "tags": ["Read API"],
    "parameters": [
        *_HEADERS,
        *_RESPONSE_HEADERS,
        OpenApiParameter("eventName", str, OpenApiParameter.QUERY, required=False),
        OpenApiParameter("source", str, OpenApiParameter.QUERY, required=False),
        OpenApiParameter("sourceId", str, OpenApiParameter.QUERY, required=False),
        OpenApiParameter(
            "since",
            int,
            OpenApiParameter.QUERY,
            required=False,
            description="epoch ms: events at or after",
        ),
        *_PAGE,
    ],
    "responses": {
        200: UserEventsResponseBody,
        400: _error("MISSING_INFO: `Invalid value of: <parameters>`"),
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
    },
}


class ErasureResponseBody(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")
    erasureId = serializers.CharField(help_text="32 lowercase hex; the Console lists it")
    records = serializers.IntegerField(help_text="Records erased, of every model")
    events = serializers.IntegerField(help_text="User events erased")


def _identifier(description: str) -> dict:
    # At least one character that is not white space (a blank value is refused).
    return {
        "type": "string",
        "nullable": True,
        "minLength": 1,
        "pattern": r"\S",
        "description": description + "; null or absent: not given",
    }


ERASURE: dict[str, Any] = {
    "operation_id": "erasure",
    "summary": "Erase a person's records and user events, and optionally keep them out",
    "description": "In one transaction inside the organization: every record of every "
    "model whose customerId, email (case-insensitively) or phone is a given value, with "
    "its history; every user event carrying one of them or generated from such a record; "
    "what undelivered callbacks and destination deliveries hold of them. With suppress, "
    "later entries carrying a given identifier are refused (status 101, `Suppressed by an "
    "erasure request`) until an owner lifts it. See docs/privacy.md.",
    "tags": ["Data Ingestion API"],
    "request": {
        "application/json": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "customerId": _identifier("Exact match"),
                "email": _identifier("Case-insensitive match (email or customerEmail)"),
                "phone": _identifier("Exact match (phone or customerPhone)"),
                "suppress": {
                    "type": "boolean",
                    "default": False,
                    "description": "true: keep a SHA-256 digest of each identifier and "
                    "refuse later entries carrying one (status 101)",
                },
            },
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("customerId", "email", "phone")
            ],
        }
    },
    "parameters": [*_HEADERS, *_RESPONSE_HEADERS],
    "responses": {
        200: ErasureResponseBody,
        400: _error(
            "INVALID_JSON; MISSING_INFO `Invalid value of: customerId, email, phone` (the "
            "fields given badly, any unknown field, or all three when none is given)"
        ),
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
        **BODY_TIMEOUT,
        413: _error("PAYLOAD_TOO_LARGE: the body is over CDP_INGEST_MAX_BODY_BYTES"),
    },
    "examples": [
        OpenApiExample(
            "by email, suppressed",
            request_only=True,
            value={"email": "ana@example.com", "suppress": True},
        )
    ],
}
