"""One structured `cdp.ingest` line per ingest request; JSON lines with LOG_FORMAT=json;
never a key, token or secret in any log record."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from cdp.log_format import JsonLinesFormatter, KeyValueFormatter
from tests.conftest import authenticate
from tests.ops.conftest import callback_enable, ingest, member

ROOT = Path(__file__).resolve().parents[2]


def ingest_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cdp.ingest"]


def test_one_line_per_request_with_its_fields(client, tenant_a, tenant_b, caplog):
    caplog.set_level(logging.DEBUG)
    token = authenticate(client, tenant_a)

    response = ingest(client, tenant_a, token, [member(tenant_a, "R-1"), {"refId": "R-2"}])

    [record] = ingest_records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "ingest"
    assert record.fields == {
        "requestId": response.json()["requestId"],
        "organization": tenant_a.group_key,
        "apiKeyPrefix": tenant_a.raw_key[:8],
        "objectType": "custom-model",
        "initData": False,
        "total": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "failed": 1,
        "eventsGenerated": 0,
        "status": 200,
        "errorCode": "INVALID_ENTRIES",
        "durationMs": record.fields["durationMs"],
    }
    assert record.fields["durationMs"] > 0


def test_a_refused_request_is_logged_with_its_error_code(client, tenant_a, caplog):
    caplog.set_level(logging.INFO)
    token = authenticate(client, tenant_a)

    response = client.post(
        "/dhub-i/api/v1.0/ingest",
        data=json.dumps({"objectType": "nope", "source": "CRM", "entries": [{}]}),
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": tenant_a.raw_key},
    )

    [record] = ingest_records(caplog)
    assert response.status_code == 400
    assert record.fields["status"] == 400
    assert record.fields["errorCode"] == "INVALID_OBJECT_TYPE"
    assert record.fields["requestId"] == response["X-Request-Id"]


def test_no_key_token_or_secret_reaches_any_log_record(client, tenant_a, caplog):
    caplog.set_level(logging.DEBUG)
    secret = callback_enable(tenant_a, "https://partner.example/cdp-callback")
    token = authenticate(client, tenant_a)
    ingest(client, tenant_a, token, [member(tenant_a, "R-1")])
    # Refusals too: a wrong key with a good token, and a good key with a bad token.
    client.post(
        "/dhub-i/api/v1.0/ingest",
        data="{}",
        content_type="application/json",
        headers={"TOKEN": token, "API_KEY": "f" * 40},
    )
    client.post(
        "/dhub-i/api/v1.0/ingest",
        data="{}",
        content_type="application/json",
        headers={"TOKEN": token + "x", "API_KEY": tenant_a.raw_key},
    )

    assert ingest_records(caplog)
    assert any(r.name == "django.request" for r in caplog.records)  # the 401s were logged
    secrets = (tenant_a.raw_key, token, secret)
    for record in caplog.records:
        texts = [
            JsonLinesFormatter().format(record),
            KeyValueFormatter().format(record),
            repr(vars(record)),
        ]
        for text in texts:
            assert not any(value in text for value in secrets), text


def test_formats_print_the_fields(client, tenant_a, caplog):
    caplog.set_level(logging.INFO)
    token = authenticate(client, tenant_a)
    response = ingest(client, tenant_a, token, [member(tenant_a, "R-1")])
    [record] = ingest_records(caplog)

    line = json.loads(JsonLinesFormatter().format(record))
    plain = KeyValueFormatter().format(record)

    assert line["logger"] == "cdp.ingest"
    assert line["level"] == "INFO"
    assert line["message"] == "ingest"
    assert line["requestId"] == response.json()["requestId"]
    assert line["created"] == 1
    assert line["errorCode"] == ""
    assert f" INFO cdp.ingest ingest requestId={line['requestId']} " in plain
    assert f"organization={tenant_a.group_key} " in plain
    assert 'errorCode="" ' in plain


def _log_with(log_format: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('cdp.ingest').info('ingest', extra={'fields': {'requestId': 'abc', "
        "'status': 200}})"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "LOG_FORMAT": log_format}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_log_format_json_setting_writes_json_lines():
    json_run, plain_run = _log_with("json"), _log_with("plain")

    assert json_run.returncode == 0, json_run.stderr
    line = json.loads(json_run.stderr.strip())
    assert (line["logger"], line["requestId"], line["status"]) == ("cdp.ingest", "abc", 200)
    assert plain_run.stderr.strip().endswith("INFO cdp.ingest ingest requestId=abc status=200")


def test_an_unknown_log_format_is_refused():
    run = _log_with("xml")

    assert run.returncode != 0
    assert "LOG_FORMAT is 'xml': use plain or json." in run.stderr
