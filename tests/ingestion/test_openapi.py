"""The OpenAPI document (drf-spectacular) describes the wire contract of DESIGN §5, §6, §6b."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from drf_spectacular.validation import validate_schema

from tests.contract import ERROR_KEYS, EVENT_KEYS, INGEST_BODY_KEYS, RECORD_KEYS

INGEST = "/dhub-i/api/v1.0/ingest"
RECORD = "/dhub-i/api/v1.0/records/{object_type}/{key}"
USER_EVENTS = "/dhub-i/api/v1.0/user-events"
HISTORY = "/dhub-i/api/v1.0/record-history/{object_type}/{key}"
AUTHEN = "/api/accounts/authen"


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict[str, Any]:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    assert "json" in response["Content-Type"]
    return response.json()


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.removeprefix("#/components/schemas/")
    return schema["components"]["schemas"][name]


def json_schema(schema, operation, status: str) -> dict[str, Any]:
    return resolve(schema, operation["responses"][status]["content"]["application/json"]["schema"])


def properties(schema, component: dict[str, Any]) -> set[str]:
    return set(resolve(schema, component)["properties"])


def params(operation, location: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == location}


def test_schema_is_a_valid_openapi_3_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    assert schema["info"]["title"]


def test_schema_needs_no_credentials_and_docs_page_is_html(client):
    assert client.get("/api/schema/", {"format": "json"}).status_code == 200

    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "/api/schema/" in html


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_nothing_from_a_cdn(client, page):
    html = client.get(page).content.decode()

    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    scripts = [s for s in html.split('src="')[1:]]
    assert scripts and all(s.startswith("/static/") for s in scripts), scripts


def test_every_endpoint_is_described(schema):
    paths = schema["paths"]

    assert set(paths[INGEST]) == {"post"}
    assert set(paths[RECORD]) == {"get"}
    assert set(paths[USER_EVENTS]) == {"get"}
    assert set(paths[HISTORY]) == {"get"}
    assert set(paths[AUTHEN]) == {"post"}
    assert paths[INGEST]["post"]["operationId"] == "ingest"


def test_token_and_api_key_headers_are_described(schema):
    schemes = schema["components"]["securitySchemes"]
    headers = {(s["type"], s["in"], s["name"]) for s in schemes.values()}
    assert headers == {("apiKey", "header", "TOKEN"), ("apiKey", "header", "API_KEY")}

    for path, method in ((INGEST, "post"), (RECORD, "get"), (USER_EVENTS, "get"), (HISTORY, "get")):
        operation = schema["paths"][path][method]
        # Both schemes in one requirement object: TOKEN and API_KEY together.
        assert [set(r) for r in operation["security"]] == [set(schemes)]
        header_params = params(operation, "header")
        assert {"TOKEN", "API_KEY"} <= set(header_params)
        assert header_params["TOKEN"]["required"] and header_params["API_KEY"]["required"]

    assert not schema["paths"][AUTHEN]["post"].get("security")


def test_ingest_request_body_fields(schema):
    operation = schema["paths"][INGEST]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    media = body["content"]["application/json"]
    request = resolve(schema, media["schema"])

    assert set(request["properties"]) == {
        "objectType",
        "source",
        "jeConfigId",
        "jeEventKey",
        "entries",
        "ignoredUpdateCfs",
    }
    assert set(request["required"]) == {"objectType", "source", "entries"}
    assert request["properties"]["entries"]["type"] == "array"
    assert request["properties"]["entries"]["maxItems"] == 50
    assert request["properties"]["jeConfigId"]["nullable"] is True
    assert request["properties"]["ignoredUpdateCfs"]["items"]["type"] == "string"
    [example] = media["examples"].values()
    assert example["value"]["objectType"] == "custom-model"
    assert "initData" in params(operation, "query")


def test_ingest_responses_include_every_error(schema):
    operation = schema["paths"][INGEST]["post"]

    assert {"200", "400", "401", "413", "429"} <= set(operation["responses"])
    ok = json_schema(schema, operation, "200")
    assert set(ok["properties"]) >= {"success", "requestId", *INGEST_BODY_KEYS}
    for status in ("401", "413", "429"):
        error = json_schema(schema, operation, status)
        assert set(error["properties"]) == ERROR_KEYS, status
        assert set(error["required"]) == ERROR_KEYS, status
    # One schema for every 400: the error keys required, the 200 body's keys optional (an
    # INVALID_ENTRIES answer has them). A oneOf of the two would match that answer twice.
    bad_request = json_schema(schema, operation, "400")
    assert "oneOf" not in bad_request and "anyOf" not in bad_request
    assert set(bad_request["properties"]) == set(ok["properties"]) | ERROR_KEYS
    assert set(bad_request["required"]) == ERROR_KEYS
    descriptions = " ".join(r["description"] for r in operation["responses"].values())
    for code in (
        "UNAUTHORIZED",
        "RATE_LIMITED",
        "PAYLOAD_TOO_LARGE",
        "INVALID_JSON",
        "MISSING_INFO",
        "ENTRIES_LIMIT_EXCEEDED",
        "INVALID_OBJECT_TYPE",
        "INVALID_ENTRIES",
    ):
        assert code in descriptions, code
    assert "TOKEN and API_KEY headers are required" in operation["responses"]["401"]["description"]


def test_idempotency_key_and_dry_run_are_described(schema):
    operation = schema["paths"][INGEST]["post"]

    key = params(operation, "header")["Idempotency-Key"]
    assert not key.get("required", False)
    assert key["schema"]["pattern"] == "^[\\x21-\\x7E]{1,255}$"
    assert "dryRun" in params(operation, "query")
    reused = operation["responses"]["422"]
    assert "IDEMPOTENCY_KEY_REUSED" in reused["description"]
    assert set(json_schema(schema, operation, "422")["properties"]) == ERROR_KEYS
    for status in ("200", "400"):
        headers = operation["responses"][status]["headers"]
        assert headers["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    ok = json_schema(schema, operation, "200")
    assert ok["properties"]["dryRun"]["type"] == "boolean"
    assert "dryRun" not in ok["required"]
    result = resolve(schema, ok["properties"]["results"]["items"])
    assert {"changes", "event"} <= set(result["properties"])
    change = resolve(schema, result["properties"]["changes"]["additionalProperties"])
    assert set(change["properties"]) == set(change["required"]) == {"from", "to"}
    event_node = result["properties"]["event"]
    event = resolve(schema, event_node["allOf"][0] if "allOf" in event_node else event_node)
    assert set(event["properties"]) == EVENT_KEYS - {"eventId", "requestId"}


def test_page_limits_are_bounded(schema):
    for path in (USER_EVENTS, HISTORY):
        limit = params(schema["paths"][path]["get"], "query")["limit"]["schema"]
        assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 200), path


def test_every_answer_of_the_ingest_endpoint_matches_exactly_one_schema(schema, api_a):
    """Real answers (200, 400 INVALID_ENTRIES, 400 MISSING_INFO) validated against the
    document with a JSON Schema validator: each matches its status's schema."""
    import jsonschema  # drf-spectacular's own dependency

    operation = schema["paths"][INGEST]["post"]
    answers = [
        api_a.post([api_a.entry("R-1")]),
        api_a.post([{"refId": "no-momCode"}]),
        api_a.post([], source=""),
    ]
    assert [a.status_code for a in answers] == [200, 400, 400]
    for answer in answers:
        node = operation["responses"][str(answer.status_code)]["content"]["application/json"]
        document = {**node["schema"], "components": schema["components"]}
        jsonschema.validate(answer.json(), document)


def test_record_history_endpoint_is_described(schema):
    operation = schema["paths"][HISTORY]["get"]

    assert {"object_type", "key"} <= set(params(operation, "path"))
    assert {"momCode", "limit", "cursor"} <= set(params(operation, "query"))
    assert {"200", "400", "401", "404", "429"} <= set(operation["responses"])
    ok = json_schema(schema, operation, "200")
    assert set(ok["properties"]) == {"success", "historyKept", "history", "next"}
    entry = resolve(schema, ok["properties"]["history"]["items"])
    assert set(entry["properties"]) == {"requestId", "action", "source", "at", "changes"}
    assert resolve(schema, entry["properties"]["action"])["enum"] == ["created", "updated"]
    change = resolve(schema, entry["properties"]["changes"]["additionalProperties"])
    assert set(change["properties"]) == {"from", "to"}


def test_rate_limited_responses_describe_the_retry_headers(schema):
    for path, method in ((INGEST, "post"), (RECORD, "get"), (USER_EVENTS, "get"), (HISTORY, "get")):
        headers = schema["paths"][path][method]["responses"]["429"]["headers"]
        assert {"X-Rate-Limit-Retry-After-Seconds", "Retry-After", "X-Request-Id"} <= set(headers)
        assert headers["Retry-After"]["schema"]["type"] == "integer"


def test_every_operation_documents_503_service_unavailable(schema):
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 6  # authen, ingest, the three reads and erasure

    for path, method, operation in operations:
        unavailable = operation["responses"].get("503")
        assert unavailable is not None, (path, method)
        error = json_schema(schema, operation, "503")
        assert set(error["properties"]) == set(error["required"]) == ERROR_KEYS, path
        assert "SERVICE_UNAVAILABLE" in unavailable["description"], path
        assert "database" in unavailable["description"], path
        assert "cache" in unavailable["description"], path
        assert "Retry-After" in unavailable["description"], path
    error_codes = resolve(schema, {"$ref": "#/components/schemas/ErrorBody"})
    assert "SERVICE_UNAVAILABLE" in error_codes["properties"]["errorCode"]["description"]


def test_unavailable_responses_describe_retry_after(schema):
    for path, method in ((INGEST, "post"), (RECORD, "get"), (USER_EVENTS, "get"), (HISTORY, "get")):
        headers = schema["paths"][path][method]["responses"]["503"]["headers"]
        assert {"Retry-After", "X-Request-Id"} <= set(headers), path
        assert "X-Rate-Limit-Retry-After-Seconds" not in headers, path
        assert headers["Retry-After"]["schema"]["type"] == "integer"


def test_record_endpoint_is_described(schema):
    operation = schema["paths"][RECORD]["get"]

    assert {"object_type", "key"} <= set(params(operation, "path"))
    assert "momCode" in params(operation, "query")
    assert {"200", "400", "401", "404"} <= set(operation["responses"])
    record = resolve(schema, json_schema(schema, operation, "200")["properties"]["record"])
    assert set(record["properties"]) == RECORD_KEYS
    assert record["properties"]["createdAt"]["type"] == "integer"
    assert set(json_schema(schema, operation, "404")["properties"]) == ERROR_KEYS


def test_user_events_endpoint_is_described(schema):
    operation = schema["paths"][USER_EVENTS]["get"]

    assert {"eventName", "source", "sourceId", "since", "limit", "cursor"} <= set(
        params(operation, "query")
    )
    assert {"200", "400", "401"} <= set(operation["responses"])
    page = json_schema(schema, operation, "200")
    assert set(page["properties"]) == {"success", "events", "next"}
    event = resolve(schema, page["properties"]["events"]["items"])
    assert set(event["properties"]) == EVENT_KEYS


def test_erasure_endpoint_is_described(schema):
    operation = schema["paths"]["/dhub-i/api/v1.0/erasure"]["post"]

    assert operation["operationId"] == "erasure"
    assert {"200", "400", "401", "413", "429", "503"} <= set(operation["responses"])
    answer = json_schema(schema, operation, "200")
    assert set(answer["properties"]) == {"success", "erasureId", "records", "events"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"customerId", "email", "phone", "suppress"}
    assert body["additionalProperties"] is False
    assert [branch["required"] for branch in body["anyOf"]] == [
        ["customerId"],
        ["email"],
        ["phone"],
    ]


def test_authentication_endpoint_is_described(schema):
    operation = schema["paths"][AUTHEN]["post"]

    request = resolve(schema, operation["requestBody"]["content"]["application/json"]["schema"])
    assert set(request["properties"]) == {"username", "apiKey", "cdpGKey"}
    assert set(json_schema(schema, operation, "200")["properties"]) == {
        "success",
        "status",
        "token",
        "issuedAt",
        "expiredAt",
        "expiredAfter",
    }
    for status in ("400", "401", "413", "429", "503"):
        assert set(json_schema(schema, operation, status)["properties"]) == ERROR_KEYS, status
    assert "Invalid credentials" in operation["responses"]["401"]["description"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert "Retry-After" in operation["responses"]["503"]["headers"]


def test_schema_generation_has_no_warnings(tmp_path):
    # `--fail-on-warn` exits non-zero on any drf-spectacular warning or error.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )

    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.")
