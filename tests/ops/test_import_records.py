"""`manage.py import_records`: JSON array, NDJSON and CSV files through the ingest
pipeline, rejects written with their error, safe to re-run, progress for large files."""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import pickle
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from cdp.models import EntityRecord
from ingestion import file_import
from ingestion.models import IngestionRequest
from journeys.models import UserEvent
from journeys.services import journey_event_config_create
from journeys.user_event_settings import UserEventSettings


def run(path: Path, tenant, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(
        "import_records",
        str(path),
        "--org",
        tenant.group_key,
        "--object-type",
        "custom-model",
        *args,
        stdout=out,
        stderr=err,
    )
    return out.getvalue(), err.getvalue()


def records(tenant) -> dict[str, dict[str, Any]]:
    return {r.key: r.data for r in EntityRecord.objects.filter(organization=tenant.organization)}


def stopped_message(path: Path, reason: str) -> str:
    """The command's error when an import stops part way, as an operator reads it."""
    return (
        f"The import of {path} stopped: {reason}. The batches committed before it stopped"
        " stay; re-running the file is safe."
    )


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sample_entries(tenant) -> list[dict[str, Any]]:
    return [
        {
            "momCode": tenant.mom_code,
            "refId": "R-1",
            "customerId": "C-1",
            "customField01": "gold",
            "customFieldLong01": 120,
            "customFieldList01": ["golf", "wine"],
        },
        {"refId": "R-2", "customerId": "C-2"},  # no momCode: rejected
        {"momCode": tenant.mom_code, "refId": "R-3", "customFieldLong01": "many"},  # not an int
        {"momCode": tenant.mom_code, "refId": "R-4", "email": "r4@example.test"},
    ]


def write_json(path: Path, entries: list[Any]) -> Path:
    # One record per line inside the array, so line numbers are easy to state.
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    return path


def write_ndjson(path: Path, entries: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


CSV_COLUMNS = [
    "momCode",
    "refId",
    "customerId",
    "email",
    "customField01",
    "customFieldLong01",
    "customFieldList01",
]


def write_csv(path: Path, entries: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for entry in entries:
            writer.writerow(
                [
                    json.dumps(entry[c]) if isinstance(entry.get(c), list) else entry.get(c, "")
                    for c in CSV_COLUMNS
                ]
            )
    return path


WRITERS = {"json": write_json, "ndjson": write_ndjson, "csv": write_csv}
# The file line each sample entry starts on: the array's "[" or the CSV header is line 1.
FIRST_LINE = {"json": 2, "ndjson": 1, "csv": 2}


@pytest.mark.parametrize("file_format", ["json", "ndjson", "csv"])
def test_each_format_is_imported_through_the_pipeline(tmp_path, tenant_a, tenant_b, file_format):
    path = WRITERS[file_format](tmp_path / f"members.{file_format}", sample_entries(tenant_a))
    before_b = records(tenant_b)

    out, err = run(path, tenant_a, "--source", "CRM-export")

    stored = records(tenant_a)
    assert set(stored) == {"R-1", "R-4"}
    assert stored["R-1"] == {
        "refId": "R-1",
        "customerId": "C-1",
        "customField01": "gold",
        "customFieldLong01": 120,
        "customFieldList01": ["golf", "wine"],
    }
    # Empty CSV cells are absent.
    assert stored["R-4"] == {"refId": "R-4", "email": "r4@example.test"}
    assert EntityRecord.objects.get(organization=tenant_a.organization, key="R-1").source == (
        "CRM-export"
    )
    assert "4 records" in out and "created 2, updated 0, unchanged 0, failed 2" in out
    rejects_path = path.with_name(path.name + ".rejects.ndjson")
    assert f"2 rejected records written to {rejects_path}" in out
    first = FIRST_LINE[file_format]
    rejected = rejects_of(rejects_path)
    assert [(r["line"], r["entry"]["refId"], r["error"]) for r in rejected] == [
        (first + 1, "R-2", "Missing momCode"),
        (first + 2, "R-3", rejected[1]["error"]),
    ]
    assert "customFieldLong01" in rejected[1]["error"]
    assert "| 4/4 [" in err and "created 2 updated 0 unchanged 0 failed 2]" in err
    log = IngestionRequest.objects.get(organization=tenant_a.organization)
    assert (log.api_key, log.source, log.total) == (None, "CRM-export", 4)
    assert records(tenant_b) == before_b


def test_rerun_gives_unchanged_and_fires_no_second_event(tmp_path, tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_imported", category="UserIdentity"),
    )
    path = write_ndjson(tmp_path / "members.ndjson", sample_entries(tenant_a))

    first, _ = run(path, tenant_a, "--je-config-id", config.config_id)
    stored = records(tenant_a)
    second, err = run(path, tenant_a, "--je-config-id", config.config_id)

    assert "created 2, updated 0, unchanged 0, failed 2; user events generated 2" in first
    assert "created 0, updated 0, unchanged 2, failed 2; user events generated 0" in second
    assert "| 4/4 [" in err and "created 0 updated 0 unchanged 2 failed 2]" in err
    assert records(tenant_a) == stored
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 2


def test_init_data_stores_records_without_events(tmp_path, tenant_a):
    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_imported", category="UserIdentity"),
    )
    path = write_json(tmp_path / "members.json", sample_entries(tenant_a))

    out, _ = run(path, tenant_a, "--je-config-id", config.config_id, "--init-data")

    assert set(records(tenant_a)) == {"R-1", "R-4"}
    assert not UserEvent.objects.filter(organization=tenant_a.organization).exists()
    assert "initData" in out


def test_unreadable_records_are_rejected_with_their_line(tmp_path, tenant_a):
    ndjson = tmp_path / "mixed.ndjson"
    ndjson.write_text(
        json.dumps({"momCode": tenant_a.mom_code, "refId": "OK-1"})
        + "\n\n \t\x0b\x0c\r\n{not json\n"  # an empty line, a line of whitespace
        + json.dumps(["not", "an", "object"])
        + "\n"
    )
    rejects = tmp_path / "out" / "rejects.ndjson"
    rejects.parent.mkdir()

    out, _ = run(ndjson, tenant_a, "--rejects", str(rejects))

    assert set(records(tenant_a)) == {"OK-1"}
    rejected = rejects_of(rejects)
    assert [(r["line"], r["entry"]) for r in rejected] == [
        (4, "{not json"),
        (5, ["not", "an", "object"]),
    ]
    assert rejected[0]["error"].startswith("not valid JSON")
    assert rejected[1]["error"]
    assert "created 1, updated 0, unchanged 0, failed 2" in out


def test_csv_row_with_too_many_cells_is_rejected(tmp_path, tenant_a):
    path = tmp_path / "wide.csv"
    path.write_text(f"momCode,refId\n{tenant_a.mom_code},W-1\n{tenant_a.mom_code},W-2,extra\n")

    run(path, tenant_a)

    assert set(records(tenant_a)) == {"W-1"}
    [rejected] = rejects_of(path.with_name("wide.csv.rejects.ndjson"))
    assert rejected["line"] == 3
    assert rejected["error"] == "has 3 cells; the header names 2 columns"


def test_no_rejects_file_when_nothing_is_rejected(tmp_path, tenant_a):
    path = write_ndjson(tmp_path / "clean.ndjson", [sample_entries(tenant_a)[0]])

    out, _ = run(path, tenant_a)

    assert not path.with_name("clean.ndjson.rejects.ndjson").exists()
    assert "rejected" not in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"refId": "A"},\n{"refId": ', "line 2: not valid JSON"),
        ('{"refId": "A"}', "line 1: a JSON file holds one array of records"),
        ('[{"refId": "A"}] []', "line 1: text after the array"),
        ('[{"refId": "A", "n": NaN}]', "line 1: not valid JSON"),
    ],
)
def test_a_broken_json_file_is_refused_before_anything_is_written(
    tmp_path, tenant_a, text, message
):
    good = json.dumps({"momCode": tenant_a.mom_code, "refId": "GOOD"})
    path = tmp_path / "broken.json"
    path.write_text(text.replace('{"refId": "A"}', good))

    with pytest.raises(CommandError, match=message):
        run(path, tenant_a)

    assert records(tenant_a) == {}
    assert not IngestionRequest.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "0" * 32], "No organization has the group key"),
        (["--object-type", "invoice"], "Unknown objectType: invoice"),
        (["--je-config-id", "nope"], "Unknown jeConfigId: nope"),
        (["--format", "xml"], "invalid choice"),
        (["--source", " "], "--source must not be blank"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, tenant_a, args, message):
    path = write_ndjson(tmp_path / "members.ndjson", sample_entries(tenant_a))
    options = {"--org": tenant_a.group_key, "--object-type": "custom-model"}
    extra: list[str] = []
    for name, value in zip(args[::2], args[1::2], strict=True):
        if name in options:
            options[name] = value
        else:
            extra += [name, value]

    with pytest.raises(CommandError, match=message):
        call_command(
            "import_records",
            str(path),
            *[item for pair in options.items() for item in pair],
            *extra,
            stdout=StringIO(),
            stderr=StringIO(),
        )

    assert records(tenant_a) == {}


def test_format_comes_from_the_extension_or_the_option(tmp_path, tenant_a):
    path = write_ndjson(tmp_path / "members.txt", [sample_entries(tenant_a)[0]])

    with pytest.raises(CommandError, match="give --format"):
        run(path, tenant_a)
    run(path, tenant_a, "--format", "ndjson")

    assert set(records(tenant_a)) == {"R-1"}


def test_ten_thousand_records_finish_with_a_progress_bar(tmp_path, tenant_a, monkeypatch):
    # What handles log records while a batch is written (its cdp.ingest line included).
    seen_handlers = []
    real_ingest_write = file_import.ingest_write

    def ingest_write(prepared):
        seen_handlers.append({type(h).__name__ for h in logging.getLogger().handlers})
        return real_ingest_write(prepared)

    monkeypatch.setattr(file_import, "ingest_write", ingest_write)
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["momCode", "refId", "customField01", "customFieldLong01"])
        writer.writerows(
            [tenant_a.mom_code, f"B-{i:05d}", f"tier-{i % 7}", i] for i in range(10_000)
        )

    out, err = run(path, tenant_a)

    # tqdm's bar, redrawn in place: the last state counts everything, with a rate.
    final = err.replace("\n", "\r").split("\r")
    final = [line for line in final if line.strip()][-1]
    assert "100%" in final and "10000/10000" in final, final
    assert "records/s" in final
    assert "created 10,000 updated 0 unchanged 0 failed 0" in final
    assert "10,000 records in " in out and "10 batches" in out
    assert "created 10,000, updated 0, unchanged 0, failed 0" in out
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 10_000
    assert IngestionRequest.objects.filter(organization=tenant_a.organization).count() == 10
    assert EntityRecord.objects.get(organization=tenant_a.organization, key="B-09999").data == {
        "refId": "B-09999",
        "customField01": "tier-3",
        "customFieldLong01": 9999,
    }
    # Log lines go through tqdm, which prints them above the bar, never inside it: the
    # console handler is tqdm's while batches are written (pytest adds its own too).
    assert len(seen_handlers) == 10
    assert all("_TqdmLoggingHandler" in h and "StreamHandler" not in h for h in seen_handlers)
    assert {type(h).__name__ for h in logging.getLogger().handlers} >= {"StreamHandler"}


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_json_array_reader_is_exact_across_buffer_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(file_import, "_CHUNK_CHARS", chunk)  # values straddle chunks
    values = [
        {"refId": "A", "n": 12345, "nested": {"list": [1, 2, {"x": "y,]"}]}},
        123456789,
        'a string with "quotes", \\ and ] and ,',
        [],
        {},
        -0.5e10,
        1.25e-7,
        "été ☃",
        None,
        True,
    ]
    path = tmp_path / "values.json"
    path.write_text("  \n[" + ",\n\n ".join(json.dumps(v) for v in values) + "\n]\n\n")

    read = list(file_import.records_read(path, "json"))

    assert [r.entry for r in read] == values
    assert [r.line for r in read] == [2 + 2 * index for index in range(len(values))]
    assert file_import.records_count(path, "json") == len(values)


def _big_ndjson(tmp_path, tenant, count: int) -> Path:
    return write_ndjson(
        tmp_path / "big.ndjson",
        [
            {"momCode": tenant.mom_code, "refId": f"T-{i:05d}", "customFieldLong01": i}
            for i in range(count)
        ],
    )


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_batches_are_written_by_a_writer_thread(tmp_path, monkeypatch):
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    writers = []
    real_ingest_write = file_import.ingest_write

    def ingest_write(prepared):
        writers.append(threading.current_thread().name)
        return real_ingest_write(prepared)

    monkeypatch.setattr(file_import, "ingest_write", ingest_write)
    path = _big_ndjson(tmp_path, tenant, 5000)

    out, _err = run(path, tenant)

    # Five batches of 1000, by the two writer threads (which one takes which: either).
    assert len(writers) == 5 and set(writers) <= {"import-writer-0", "import-writer-1"}
    assert "created 5,000, updated 0, unchanged 0, failed 0" in out
    stored = EntityRecord.objects.filter(organization=tenant.organization)
    assert stored.count() == 5000
    assert stored.get(key="T-04999").data == {"refId": "T-04999", "customFieldLong01": 4999}
    assert IngestionRequest.objects.filter(organization=tenant.organization).count() == 5
    assert not EntityRecord.objects.filter(organization=other.organization).exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_stops_the_import_after_the_committed_ones(tmp_path, monkeypatch):
    from tests.conftest import tenant_create

    tenant = tenant_create("Acme", "a@acme.test")
    real_ingest_write = file_import.ingest_write
    written = []

    def ingest_write(prepared):
        first = prepared.valid[0].key
        if first == "T-01000":  # the second batch
            raise RuntimeError("the database went away")
        response = real_ingest_write(prepared)
        written.append(first)
        return response

    monkeypatch.setattr(file_import, "ingest_write", ingest_write)

    with pytest.raises(RuntimeError, match="the database went away"):
        run(_big_ndjson(tmp_path, tenant, 5000), tenant)

    # The first batch, and at most the one the other writer had begun: never the failed
    # one, never one taken after the failure.
    assert written[0] == "T-00000" and len(written) <= 2
    stored = set(records(tenant))
    assert stored == {
        f"T-{n:05d}" for first in written for n in range(int(first[2:]), int(first[2:]) + 1000)
    }


@pytest.mark.django_db(transaction=True)
def test_a_key_in_two_batches_keeps_the_files_last_record_and_reports_stay_in_order(
    tmp_path, monkeypatch
):
    """The first batch is slow to write: the second, which shares a key with it, waits for
    it (the file's later record wins); the third, which shares none, may commit before
    both. Rejections and progress are reported in file order all the same."""
    from tests.conftest import tenant_create

    tenant = tenant_create("Acme", "a@acme.test")
    monkeypatch.setattr(file_import, "BATCH_SIZE", 3)
    real_ingest_write = file_import.ingest_write
    order = []

    def ingest_write(prepared):
        first = prepared.valid[0].key
        if first == "K-1":
            time.sleep(0.3)
        response = real_ingest_write(prepared)
        order.append(first)
        return response

    monkeypatch.setattr(file_import, "ingest_write", ingest_write)
    entry = {"momCode": tenant.mom_code}
    path = write_ndjson(
        tmp_path / "twice.ndjson",
        [
            {**entry, "refId": "K-1", "customField01": "first"},
            {**entry, "refId": "K-2", "customFieldLong01": "x"},  # rejected, batch 1
            {**entry, "refId": "K-3"},
            {**entry, "refId": "K-4"},
            {**entry, "refId": "K-1", "customField01": "second"},  # batch 2: waits
            {**entry, "refId": "K-5", "customFieldLong01": "y"},  # rejected, batch 2
            {**entry, "refId": "K-6"},
            {**entry, "refId": "K-7", "customFieldLong01": "z"},  # rejected, batch 3
            {**entry, "refId": "K-8"},
        ],
    )
    rejects = tmp_path / "rejects.ndjson"
    progress = []
    real_report = file_import._BatchWriter._report

    def report(self, batch, written):
        progress.append(batch.number)
        real_report(self, batch, written)

    monkeypatch.setattr(file_import._BatchWriter, "_report", report)

    out, _err = run(path, tenant, "--rejects", str(rejects))

    assert records(tenant)["K-1"]["customField01"] == "second"
    assert order.index("K-1") < order.index("K-4")  # the batch sharing K-1 waited
    assert [r["line"] for r in rejects_of(rejects)] == [2, 6, 8]
    assert progress == [0, 1, 2]
    assert "created 5, updated 1, unchanged 0, failed 3" in out


@pytest.mark.django_db(transaction=True)
def test_a_failing_writer_never_leaves_the_reader_waiting(tmp_path, monkeypatch):
    """The writer fails while the reader waits to queue the last batch, and the writer
    thread is slow to close its connection: the import still ends, with the error."""
    from django.db import connection as django_connection

    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    real_put = file_import._BatchWriter.put
    batches_put = 0
    last_prepared = threading.Event()
    writes = []

    def put(self, batch):
        nonlocal batches_put
        batches_put += 1
        # Batches 0 and 1 are being written, 2 and 3 queued: the reader waits to queue
        # this one (whether the batches were read in a process of their own or here).
        if batches_put == 5:
            last_prepared.set()
        return real_put(self, batch)

    def ingest_write(prepared):
        writes.append(1)
        last_prepared.wait(timeout=10)
        time.sleep(0.2)  # the reader is now waiting on the full queue
        raise RuntimeError("the database went away")

    class SlowToClose:
        def __getattr__(self, name):
            return getattr(django_connection, name)

        def close(self):
            time.sleep(0.5)
            django_connection.close()

    monkeypatch.setattr(file_import._BatchWriter, "put", put)
    monkeypatch.setattr(file_import, "ingest_write", ingest_write)
    monkeypatch.setattr(file_import, "connection", SlowToClose())
    path = _big_ndjson(tmp_path, tenant, 6000)  # six batches
    outcome: list[BaseException] = []

    def import_in_thread():
        try:
            run(path, tenant)
        except BaseException as error:
            outcome.append(error)
        finally:
            django_connection.close()  # this thread's own, which would outlive the test

    importer = threading.Thread(target=import_in_thread, daemon=True)
    importer.start()
    importer.join(timeout=30)

    assert not importer.is_alive(), "the import hung after its writer failed"
    assert [str(error) for error in outcome] == ["the database went away"]
    assert writes == [1] * file_import.WRITERS  # each writer's first batch failed
    # The waiting batch was queued once the writers stopped; the next one prepared finds
    # the error.
    assert batches_put == 6
    assert not EntityRecord.objects.filter(organization=tenant.organization).exists()
    assert not EntityRecord.objects.filter(organization=other.organization).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_staged_import_without_prepared_statements(tmp_path, settings):
    from tests.conftest import tenant_create

    settings.CDP_PREPARED_STATEMENTS = False
    tenant = tenant_create("Acme", "a@acme.test")
    path = _big_ndjson(tmp_path, tenant, 1200)  # past the staging threshold: rows by COPY

    first, _ = run(path, tenant)
    second, _ = run(path, tenant)

    assert "created 1,200, updated 0, unchanged 0, failed 0" in first
    assert "created 0, updated 0, unchanged 1,200, failed 0" in second
    assert EntityRecord.objects.filter(organization=tenant.organization).count() == 1200


@pytest.mark.django_db(transaction=True)
def test_a_staged_batch_of_new_and_stored_keys_creates_and_updates_each(tmp_path):
    """A batch past the staging threshold that mixes keys the database holds with new
    ones: the new rows are inserted, the stored ones merged, by batches written in the
    writers' own transactions one after the other on the same connections (the staging
    tables are emptied by each commit, never carried into the next batch)."""
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    run(_big_ndjson(tmp_path, tenant, 3000), tenant)  # three batches of 1,000
    run(_big_ndjson(tmp_path, other, 1000), other)
    mixed = write_ndjson(
        tmp_path / "mixed.ndjson",
        [
            # T-02000..T-04999: the first 1,000 stored, changed; the rest new.
            {"momCode": tenant.mom_code, "refId": f"T-{i:05d}", "customFieldDouble01": i / 2}
            for i in range(2000, 5000)
        ],
    )

    out, _ = run(mixed, tenant)

    assert "created 2,000, updated 1,000, unchanged 0, failed 0" in out
    records = EntityRecord.objects.filter(organization=tenant.organization)
    assert records.count() == 5000
    assert records.get(key="T-02500").data == {
        "refId": "T-02500",
        "customFieldLong01": 2500,
        "customFieldDouble01": 1250.0,
    }
    assert records.get(key="T-04000").data == {
        "refId": "T-04000",
        "customFieldDouble01": 2000.0,
    }
    assert records.get(key="T-00010").data["customFieldLong01"] == 10
    assert "customFieldDouble01" not in records.get(key="T-00010").data
    # The other organization's records, with the same keys, untouched.
    others = EntityRecord.objects.filter(organization=other.organization)
    assert others.count() == 1000
    assert others.get(key="T-00500").data == {
        "refId": "T-00500",
        "customFieldLong01": 500,
    }


@pytest.mark.parametrize(
    ("slots", "shape"),
    [
        (None, (2, 1000)),  # SQLite: no lock table
        (6400, (2, 1000)),  # PostgreSQL's defaults: 64 × (100 + 0)
        (6000, (2, 1000)),
        (5999, (1, 1000)),  # two batches would take more than a third
        (3000, (1, 1000)),
        (1500, (1, 500)),  # one batch would
        (2, (1, 1)),
    ],
)
def test_the_import_takes_at_most_a_third_of_the_lock_table(slots, shape):
    assert file_import.import_shape(slots) == shape


@pytest.mark.django_db
def test_the_lock_table_is_read_from_the_server():
    if connection.vendor != "postgresql":
        assert file_import.lock_table_slots() is None
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_locks_per_transaction")
        per_transaction = int(cursor.fetchone()[0])
        cursor.execute("SHOW max_connections")
        connections_allowed = int(cursor.fetchone()[0])
        cursor.execute("SHOW max_prepared_transactions")
        prepared = int(cursor.fetchone()[0])
    assert file_import.lock_table_slots() == per_transaction * (connections_allowed + prepared)


@pytest.mark.django_db(transaction=True)
def test_a_small_lock_table_makes_the_import_write_fewer_and_smaller_batches(
    tmp_path, monkeypatch, caplog
):
    from tests.conftest import tenant_create

    tenant = tenant_create("Acme", "a@acme.test")
    other = tenant_create("Globex", "g@globex.test")
    monkeypatch.setattr(file_import, "lock_table_slots", lambda: 1200)
    threads = []
    real_write = file_import._BatchWriter._write

    def write(self, batch):
        threads.append(threading.current_thread().name)
        return real_write(self, batch)

    monkeypatch.setattr(file_import._BatchWriter, "_write", write)

    out, _ = run(_big_ndjson(tmp_path, tenant, 1000), tenant)

    assert "created 1,000, updated 0, unchanged 0, failed 0" in out
    assert EntityRecord.objects.filter(organization=tenant.organization).count() == 1000
    assert not EntityRecord.objects.filter(organization=other.organization).exists()
    # One writer, batches of 400: three transactions, three log rows.
    assert threads == ["import-writer-0"] * 3
    assert IngestionRequest.objects.filter(organization=tenant.organization).count() == 3
    warning = "holds 1200 locks for every session: writing 1 batch(es) of 400 records"
    assert warning in caplog.text


class _RolledBack(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_a_batch_staged_in_a_rolled_back_transaction_leaves_the_next_one_working(
    tmp_path, tenant_a
):
    """Batches of 500 rows and more travel through session tables (PostgreSQL) made in
    the batch's transaction: one rolled back takes them with it, and the next batch on
    the same connection must make them again."""
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["momCode", "refId", "customFieldLong01"])
        writer.writerows([tenant_a.mom_code, f"S-{i:04d}", i] for i in range(600))

    # Inside a caller's transaction the import writes on this connection, in order.
    with pytest.raises(_RolledBack), transaction.atomic():
        run(path, tenant_a)
        raise _RolledBack
    assert not EntityRecord.objects.filter(organization=tenant_a.organization).exists()
    with transaction.atomic():
        out, _ = run(path, tenant_a)

    assert "created 600, updated 0, unchanged 0, failed 0" in out
    assert EntityRecord.objects.filter(organization=tenant_a.organization).count() == 600


def test_the_collector_skips_the_start_ups_objects_during_the_import(
    tmp_path, tenant_a, monkeypatch
):
    """Frozen while the batches are written (none of them is ever garbage), and given back
    to the collector afterwards."""
    import gc

    frozen = []
    real_ingest_write = file_import.ingest_write

    def ingest_write(prepared):
        frozen.append(gc.get_freeze_count())
        return real_ingest_write(prepared)

    monkeypatch.setattr(file_import, "ingest_write", ingest_write)

    run(write_ndjson(tmp_path / "one.ndjson", [sample_entries(tenant_a)[0]]), tenant_a)

    assert len(frozen) == 1 and frozen[0] > 10_000
    assert gc.get_freeze_count() == 0


def _pids_recorded(monkeypatch, pids: Path, *, fail_at: int | None = None) -> None:
    """Each batch's reading process id goes to the file `pids` (a process of its own
    cannot append to this one's lists); batch `fail_at` fails to be read."""
    real_batch_prepare = file_import._batch_prepare

    def batch_prepare(number, records, **options):
        with pids.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        if number == fail_at:
            raise RuntimeError("the disk went away")
        return real_batch_prepare(number, records, **options)

    monkeypatch.setattr(file_import, "_batch_prepare", batch_prepare)


@pytest.mark.django_db(transaction=True)
def test_batches_are_read_in_a_process_of_their_own_on_postgresql(tmp_path, monkeypatch):
    """On PostgreSQL the file is read and validated in a forked process, and its batches
    are written here as they would be: stored, rejected in file order, counted, the
    other organization untouched. Elsewhere they are read in the importing process."""
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    monkeypatch.setattr(file_import, "BATCH_SIZE", 4)
    pids = tmp_path / "pids"
    _pids_recorded(monkeypatch, pids)
    entries: list[Any] = [
        {"momCode": tenant.mom_code, "refId": f"P-{n}", "customFieldLong01": n} for n in range(10)
    ]
    entries[2]["customFieldLong01"] = "many"  # rejected: line 3
    entries[9] = {"refId": "P-9"}  # no momCode: line 10
    path = write_ndjson(tmp_path / "forked.ndjson", entries)
    with path.open("a") as handle:
        handle.write("{not json\n")  # line 11
    rejects = tmp_path / "rejects.ndjson"

    out, _err = run(path, tenant, "--rejects", str(rejects))

    readers = set(pids.read_text().split())
    if connection.vendor == "postgresql":
        assert len(readers) == 1 and readers != {str(os.getpid())}
    else:
        assert readers == {str(os.getpid())}
    assert len(pids.read_text().split()) == 3  # three batches: 4, 4 and 3 lines
    assert {k: v["customFieldLong01"] for k, v in records(tenant).items()} == {
        f"P-{n}": n for n in range(9) if n != 2
    }
    rejected = rejects_of(rejects)
    assert [r["line"] for r in rejected] == [3, 10, 11]
    assert [r["error"] for r in rejected[:2]] == [
        "Invalid value of customFieldLong01: must be an integer",
        "Missing momCode",
    ]
    assert rejected[2]["error"].startswith("not valid JSON")
    assert [r["entry"] for r in rejected] == [entries[2], entries[9], "{not json"]
    assert "created 8, updated 0, unchanged 0, failed 3" in out
    assert IngestionRequest.objects.filter(organization=tenant.organization).count() == 3
    assert not EntityRecord.objects.filter(organization=other.organization).exists()
    assert not IngestionRequest.objects.filter(organization=other.organization).exists()


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_fails_stops_the_import_with_its_error(tmp_path, monkeypatch):
    """The third batch cannot be read: the import stops with that error, having written
    whole batches of those before it only, and no reading process is left behind."""
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    _pids_recorded(monkeypatch, tmp_path / "pids", fail_at=2)

    with pytest.raises(RuntimeError, match="the disk went away"):
        run(_big_ndjson(tmp_path, tenant, 5000), tenant)

    stored = set(records(tenant))
    batches = {int(key[2:]) // 1000 for key in stored}
    assert batches <= {0, 1}
    assert stored == {f"T-{n:05d}" for b in batches for n in range(b * 1000, b * 1000 + 1000)}
    assert not EntityRecord.objects.filter(organization=other.organization).exists()
    assert not [p for p in multiprocessing.active_children() if p.name == "import-reader"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_restored_from_its_portable_form_plans_as_the_original(tenant_a, tenant_b):
    """What the reading process sends (pickled) gives back the batch: its entries, models,
    rejections and User Event, and writing it stores and fires what the original would."""
    from ingestion.pipeline import ingest_prepare, prepared_portable, prepared_restore

    config = journey_event_config_create(
        organization=tenant_a.organization,
        data_model=tenant_a.model,
        trigger="Created",
        settings=UserEventSettings(event_name="member_imported", category="UserIdentity"),
    )
    prepared = ingest_prepare(
        organization=tenant_a.organization,
        api_key=None,
        request_id="f" * 32,
        data={
            "objectType": "custom-model",
            "source": "import",
            "jeConfigId": config.config_id,
            "jeEventKey": None,
            "entries": [
                *sample_entries(tenant_a),
                # Values that must come back exactly: a double's last bit, a negative zero,
                # a 64-bit integer, text beyond ASCII.
                {
                    "momCode": tenant_a.mom_code,
                    "refId": "R-5",
                    "customFieldDouble01": 0.1 + 0.2,
                    "customFieldLong01": -(2**63),
                    "customField01": 'naïve ☃ \\ "',
                },
                {"momCode": tenant_a.mom_code, "refId": "R-6", "customFieldDouble01": -0.0},
            ],
        },
        init_data=False,
        limits=file_import.IMPORT_LIMITS,
    )

    restored = prepared_restore(
        pickle.loads(pickle.dumps(prepared_portable(prepared))),
        organization=tenant_a.organization,
        limits=file_import.IMPORT_LIMITS,
    )

    def entries_of(p):
        return [(e.index, e.key, e.model.pk, e.patch) for e in p.valid]

    assert entries_of(restored) == entries_of(prepared) and len(restored.valid) == 4
    doubles = [e.patch.get("customFieldDouble01") for e in restored.valid]
    assert doubles[2] == 0.30000000000000004 and str(doubles[3]) == "-0.0"
    assert restored.valid[2].patch["customFieldLong01"] == -(2**63)
    assert restored.rejected == prepared.rejected and len(restored.rejected) == 2
    assert restored.rules is not None and restored.rules.config.pk == config.pk
    assert restored.caller == prepared.caller
    assert len(restored.payload.entries) == 6
    assert restored.payload.object_type == "custom-model" and restored.payload.source == "import"
    response = file_import.ingest_write(restored)
    assert response.plan.log.created == 4 and response.plan.log.failed == 2
    assert set(records(tenant_a)) == {"R-1", "R-4", "R-5", "R-6"}
    assert records(tenant_a)["R-5"]["customFieldDouble01"] == 0.30000000000000004
    assert UserEvent.objects.filter(organization=tenant_a.organization).count() == 4
    assert not EntityRecord.objects.filter(organization=tenant_b.organization).exists()
    assert not UserEvent.objects.filter(organization=tenant_b.organization).exists()


@pytest.mark.django_db(transaction=True)
def test_a_staged_batch_stores_text_that_copy_must_escape_exactly(tmp_path):
    """Keys, values and the source holding what ends a COPY column or row, or escapes
    (tab, newline, carriage return, backslash, `\\.`), stored as sent: created, then
    changed, by batches past the staging threshold; the other organization's same keys
    untouched."""
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    odd = ["tab\there", "new\nline", "cr\rhere", "back\\slash", "\\.", 'quote"s', "naïve ✓", "\\N"]

    def batch(tenant, value: str) -> Path:
        entries = [
            {"momCode": tenant.mom_code, "refId": f"{text} {n}", "customField01": f"{value}{text}"}
            for n in range(100)
            for text in odd
        ]
        return write_ndjson(tmp_path / f"{tenant.group_key}-{value}.ndjson", entries)

    first, _ = run(batch(tenant, "one "), tenant, "--source", "crm\\exports\tq1")
    sources = EntityRecord.objects.filter(organization=tenant.organization).values_list(
        "source", flat=True
    )
    assert set(sources) == {"crm\\exports\tq1"}
    run(batch(other, "theirs "), other)
    second, _ = run(batch(tenant, "two "), tenant)

    assert "created 800, updated 0, unchanged 0, failed 0" in first
    assert "created 0, updated 800, unchanged 0, failed 0" in second
    stored = {r.key: r for r in EntityRecord.objects.filter(organization=tenant.organization)}
    assert len(stored) == 800
    for text in odd:
        record = stored[f"{text} 7"]
        assert record.data == {"refId": f"{text} 7", "customField01": f"two {text}"}
        assert record.source == "import"
    theirs = EntityRecord.objects.filter(organization=other.organization)
    assert {r.data["customField01"] for r in theirs} == {f"theirs {text}" for text in odd}
    assert theirs.count() == 800


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reading_process_that_dies_stops_the_import_with_a_clear_error(tmp_path, monkeypatch):
    """Killed before its last word (out of memory, a signal): the command says so, after
    the batches already written, and re-running the file finishes the import."""
    from tests.conftest import tenant_create

    if connection.vendor != "postgresql":
        pytest.skip("the batches are read in a process of their own on PostgreSQL only")
    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    real_batch_prepare = file_import._batch_prepare

    def batch_prepare(number, records, **options):
        if number == 3:
            os._exit(9)  # in the reading process: dies without a word
        return real_batch_prepare(number, records, **options)

    monkeypatch.setattr(file_import, "_batch_prepare", batch_prepare)
    path = _big_ndjson(tmp_path, tenant, 5000)

    with pytest.raises(CommandError) as stopped:
        run(path, tenant)

    assert str(stopped.value) == stopped_message(
        path, "the reading process ended unexpectedly (exit code 9)"
    )
    keys = set(records(tenant))
    # Whole batches of those read before (the ones queued when it died are not written).
    batches = {int(key[2:]) // 1000 for key in keys}
    assert 0 in batches and batches <= {0, 1, 2}
    assert keys == {f"T-{n:05d}" for b in batches for n in range(b * 1000, b * 1000 + 1000)}
    monkeypatch.setattr(file_import, "_batch_prepare", real_batch_prepare)
    out, _ = run(path, tenant)
    assert f"created {5000 - len(keys):,}, updated 0, unchanged {len(keys):,}, failed 0" in out
    assert EntityRecord.objects.filter(organization=tenant.organization).count() == 5000
    assert not EntityRecord.objects.filter(organization=other.organization).exists()


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


@pytest.mark.django_db(transaction=True)
def test_a_reading_error_that_does_not_pickle_still_reaches_the_importer(tmp_path, monkeypatch):
    from tests.conftest import tenant_create

    tenant = tenant_create("Acme", "a@acme.test")
    real_batch_prepare = file_import._batch_prepare

    def batch_prepare(number, records, **options):
        if number == 1:
            raise _Unpicklable("a socket in its arguments")
        return real_batch_prepare(number, records, **options)

    monkeypatch.setattr(file_import, "_batch_prepare", batch_prepare)

    with pytest.raises(Exception, match="a socket in its arguments"):
        run(_big_ndjson(tmp_path, tenant, 3000), tenant)

    keys = set(records(tenant))
    assert keys <= {f"T-{n:05d}" for n in range(1000)}


@pytest.mark.django_db(transaction=True)
def test_the_reading_process_logs_through_the_importers_handlers(tmp_path, monkeypatch, caplog):
    """What is logged while a batch is read reaches the importer's handlers (tqdm's, above
    the bar; here pytest's too), once, formatted, with its traceback, from whichever
    process read it; the other organization's import logs nothing of it."""
    from tests.conftest import tenant_create

    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    real_batch_prepare = file_import._batch_prepare

    def batch_prepare(number, records, **options):
        try:
            raise ValueError("odd record")
        except ValueError:
            logging.getLogger("cdp.import").warning(
                "batch %s of %s looked odd", number, options["organization"].name, exc_info=True
            )
        return real_batch_prepare(number, records, **options)

    monkeypatch.setattr(file_import, "_batch_prepare", batch_prepare)
    caplog.set_level(logging.WARNING, logger="cdp.import")

    out, _ = run(_big_ndjson(tmp_path, tenant, 2500), tenant)

    warnings = [r for r in caplog.records if r.name == "cdp.import"]
    assert [r.getMessage().splitlines()[0] for r in warnings] == [
        f"batch {n} of Acme looked odd" for n in range(3)
    ]
    assert all("ValueError: odd record" in logging.Formatter().format(r) for r in warnings)
    if connection.vendor == "postgresql":
        assert {r.process for r in warnings} != {os.getpid()}
    assert "created 2,500, updated 0, unchanged 0, failed 0" in out
    assert not EntityRecord.objects.filter(organization=other.organization).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_user_event_that_stops_applying_before_a_batch_is_written_stops_the_import(
    tmp_path, monkeypatch
):
    """Restoring a batch read in the reading process resolves its User Event again; when
    that fails (the User Event changed in between), the command stops with the reason,
    after the batches before it."""
    from cdp.errors import JourneyEventDisabled
    from tests.conftest import tenant_create

    if connection.vendor != "postgresql":
        pytest.skip("the batches are read in a process of their own on PostgreSQL only")
    tenant, other = tenant_create("Acme", "a@acme.test"), tenant_create("Globex", "g@globex.test")
    real_restore = file_import.prepared_restore
    restored = []

    def prepared_restore(portable, **kwargs):
        restored.append(portable.request_id)
        if len(restored) == 2:
            raise JourneyEventDisabled("User Event JE-1 is disabled")
        return real_restore(portable, **kwargs)

    monkeypatch.setattr(file_import, "prepared_restore", prepared_restore)
    path = _big_ndjson(tmp_path, tenant, 3000)

    with pytest.raises(CommandError) as stopped:
        run(path, tenant)

    assert str(stopped.value) == stopped_message(path, "batch 2: User Event JE-1 is disabled")
    keys = set(records(tenant))
    # The first batch, if a writer had begun it; never a part of one, never the second.
    assert keys in (set(), {f"T-{n:05d}" for n in range(1000)})
    assert not EntityRecord.objects.filter(organization=other.organization).exists()
