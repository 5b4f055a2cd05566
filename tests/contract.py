"""The JSON key sets of DESIGN §5–§6b, written down once for every test that checks a body."""

ERROR_KEYS = {"success", "errorCode", "message", "requestId"}
# Every key of the ingest answer besides success/errorCode/message/requestId (§6).
INGEST_BODY_KEYS = {
    "objectType",
    "initData",
    "total",
    "created",
    "updated",
    "unchanged",
    "failed",
    "events",
    "results",
    "warnings",
}
RECORD_KEYS = {"cdpId", "objectType", "momCode", "key", "source", "createdAt", "updatedAt", "data"}
EVENT_KEYS = {
    "eventId",
    "jeConfigId",
    "jeEventKey",
    "source",
    "sourceId",
    "condition",
    "channel",
    "eventCtg",
    "eventCtg2",
    "eventCtg3",
    "eventName",
    "eventAt",
    "value",
    "eventLabels",
    "eventLabel2s",
    "eventLabel3s",
    "customerId",
    "email",
    "phone",
    "note",
    "properties",
    "requestId",
}
