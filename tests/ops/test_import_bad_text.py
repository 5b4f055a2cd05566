"""`manage.py import_records` with text no database can store: a lone surrogate (the JSON
escape "\\ud800" and its kin, which the standard library's JSON reader turns into a str
that is no Unicode text), U+0000, and numbers out of every column's range. Each such
record goes to the rejects file with a clear message and the import goes on, the same on
SQLite and PostgreSQL; text that is not UTF-8 at all still refuses the whole file."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cdp.models import EntityRecord
from ingestion.file_import import UNSTORABLE
from ingestion.models import IngestionRequest


def run(path: Path, tenant) -> str:
    out = StringIO()
    call_command(
        "import_records",
        str(path),
        "--org",
        tenant.group_key,
        "--object-type",
        "custom-model",
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def keys(tenant) -> set[str]:
    return set(
        EntityRecord.objects.filter(organization=tenant.organization).values_list("key", flat=True)
    )


def rejects(path: Path) -> list[dict[str, Any]]:
    raw = path.with_name(path.name + ".rejects.ndjson").read_bytes()
    raw.decode("utf-8")  # the rejects file itself is UTF-8, whatever the record held
    return [json.loads(line) for line in raw.splitlines()]


def line(tenant, ref_id: str, extra: str = "") -> bytes:
    """One record as JSON text; `extra` is raw JSON text put in as written."""
    return f'{{"momCode": "{tenant.mom_code}", "refId": "{ref_id}"{extra}}}'.encode()


def write(tmp_path: Path, name: str, records: list[bytes]) -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_bytes(b"[\n" + b",\n".join(records) + b"\n]\n")
    else:
        path.write_bytes(b"".join(r + b"\n" for r in records))
    return path


# Each: raw JSON text in a record, as escapes (every byte of the file is ASCII).
LONE_SURROGATES = {
    "high-in-value": ', "customField01": "\\ud800"',
    "low-in-value": ', "customField01": "x\\udfffy"',
    "upper-case-escape": ', "customField01": "\\uD83D"',
    "pair-reversed": ', "customField01": "\\ude00\\ud83d"',
    "in-a-list": ', "customFieldList01": ["ok", "\\udbff"]',
    "in-the-key": ', "customerId": "C\\ud800"',
    "in-a-group": ', "customFieldTexts": {"customField02": "\\udc00"}',
    "in-a-field-name": ', "\\ud800": "x"',
}


@pytest.mark.parametrize("file_format", ["json", "ndjson"])
@pytest.mark.parametrize("case", list(LONE_SURROGATES))
def test_a_lone_surrogate_rejects_its_record_and_the_import_goes_on(
    tmp_path, tenant_a, file_format, case
):
    path = write(
        tmp_path,
        f"members.{file_format}",
        [
            line(tenant_a, "OK-1"),
            line(tenant_a, "BAD-1", LONE_SURROGATES[case]),
            line(tenant_a, "OK-2"),
        ],
    )

    out = run(path, tenant_a)

    assert keys(tenant_a) == {"OK-1", "OK-2"}
    [reject] = rejects(path)
    assert reject["line"] == (3 if file_format == "json" else 2)
    assert reject["error"] == UNSTORABLE
    assert reject["entry"]["refId"] == "BAD-1"  # the record as read, surrogate escaped
    assert "created 2, updated 0, unchanged 0, failed 1" in out


def test_a_lone_surrogate_in_a_csv_list_cell_rejects_its_row(tmp_path, tenant_a):
    path = tmp_path / "members.csv"
    mom = tenant_a.mom_code
    path.write_bytes(
        b"momCode,refId,customFieldList01\n"
        + f'{mom},OK-1,"[""a""]"\n{mom},BAD-1,"[""\\ud800""]"\n{mom},OK-2,\n'.encode()
    )

    run(path, tenant_a)

    assert keys(tenant_a) == {"OK-1", "OK-2"}
    [reject] = rejects(path)
    assert (reject["line"], reject["error"]) == (3, UNSTORABLE)


def test_a_surrogate_pair_is_a_character_and_is_imported(tmp_path, tenant_a):
    path = write(
        tmp_path,
        "members.json",
        [line(tenant_a, "EMOJI-1", ', "customField01": "\\ud83d\\ude00 and \\u00e9"')],
    )

    run(path, tenant_a)

    record = EntityRecord.objects.get(organization=tenant_a.organization, key="EMOJI-1")
    assert record.data["customField01"] == "\U0001f600 and \u00e9"


@pytest.mark.parametrize("file_format", ["json", "ndjson"])
def test_a_nul_rejects_its_record_in_every_format(tmp_path, tenant_a, file_format):
    path = write(
        tmp_path,
        f"members.{file_format}",
        [line(tenant_a, "OK-1"), line(tenant_a, "BAD-1", ', "customField01": "a\\u0000b"')],
    )

    run(path, tenant_a)

    assert keys(tenant_a) == {"OK-1"}
    [reject] = rejects(path)
    assert reject["error"] == UNSTORABLE


def test_an_ndjson_line_that_is_not_json_keeps_its_parse_error(tmp_path, tenant_a):
    # A lone surrogate escape in a line that is not JSON anyway: the JSON error is the one.
    path = write(tmp_path, "members.ndjson", [line(tenant_a, "OK-1"), b'{"refId": "\\ud800", '])

    run(path, tenant_a)

    [reject] = rejects(path)
    assert reject["error"].startswith("not valid JSON"), reject


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_deeply_nested_ndjson_line_with_a_surrogate_is_rejected_not_crashed_on(
    tmp_path, tenant_a, depth
):
    nested = b'{"refId": "\\ud800", "x": ' + b"[" * depth + b"]" * depth + b"}"
    path = write(tmp_path, "members.ndjson", [line(tenant_a, "OK-1"), nested])

    run(path, tenant_a)

    assert keys(tenant_a) == {"OK-1"}
    [reject] = rejects(path)
    assert reject["line"] == 2


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            f', "customFieldDouble01": {"1" * 400}',
            "Invalid value of customFieldDouble01: must be a number from -9223372036854775808 "
            "to 9223372036854775807",
        ),
        (
            f', "customFieldDouble01": {"1" * 25}',
            "Invalid value of customFieldDouble01: must be a number from -9223372036854775808 "
            "to 9223372036854775807",
        ),
        (
            ', "customFieldDouble01": 1e400',  # the standard library reads it as infinity
            "Invalid value of customFieldDouble01: must be a finite number",
        ),
        (
            f', "customFieldLong01": {"1" * 400}',
            "Invalid value of customFieldLong01: must be an integer",
        ),
        (
            f', "customFieldTimestamp01": {"1" * 400}',
            "Invalid value of customFieldTimestamp01: must be a date between the years 1 and 9999",
        ),
        (
            ', "customField01": 1e400',
            "Invalid value of customField01: must be a finite number",
        ),
    ],
    ids=["400-digit-double", "25-digit-double", "1e400", "400-digit-long", "timestamp", "text"],
)
def test_a_json_array_number_out_of_range_rejects_its_record(tmp_path, tenant_a, extra, message):
    # The JSON array reader (the standard library's) keeps integers of any size and reads
    # 1e400 as infinity: each is rejected with its entry, as the API rejects it.
    path = write(tmp_path, "members.json", [line(tenant_a, "OK-1"), line(tenant_a, "BAD-1", extra)])

    run(path, tenant_a)

    assert keys(tenant_a) == {"OK-1"}
    [reject] = rejects(path)
    assert (reject["line"], reject["error"]) == (3, message)


# --- text that is not UTF-8 --------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["json", "ndjson", "csv"])
@pytest.mark.parametrize(
    "raw", [b"\xed\xa0\x80", b"\xff", b"caf\xe9"], ids=["encoded-surrogate", "ff", "latin-1"]
)
def test_text_that_is_not_utf8_refuses_the_file_before_anything_is_written(
    tmp_path, tenant_a, file_format, raw
):
    # A file in another encoding (or with a surrogate encoded as UTF-8 would, which UTF-8
    # forbids) is refused whole, naming where, as before: it is the file that is wrong.
    if file_format == "csv":
        path = tmp_path / "members.csv"
        path.write_bytes(
            b"momCode,refId,customField01\n"
            + f"{tenant_a.mom_code},OK-1,x\n{tenant_a.mom_code},BAD-1,".encode()
            + raw
            + b"\n"
        )
    else:
        bad = line(tenant_a, "BAD-1", ', "customField01": "RAW"').replace(b"RAW", raw)
        path = write(tmp_path, f"members.{file_format}", [line(tenant_a, "OK-1"), bad])

    with pytest.raises(CommandError, match="is not UTF-8 text"):
        run(path, tenant_a)

    assert keys(tenant_a) == set()
    assert not IngestionRequest.objects.exists()
