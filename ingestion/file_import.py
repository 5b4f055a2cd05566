"""Bulk import of a file into one object type of one organization (`manage.py
import_records`), through the same pipeline as the API: `ingest_data`, no HTTP.

The file is read as a stream, one batch in memory at a time, by the reader of its format
(`ingestion.import_formats`: a JSON array, NDJSON or CSV). Every record is numbered by
the file line it starts on. A record the file cannot give (an NDJSON line that is not
JSON, a CSV row with more cells than the header) or whose text no database stores
(U+0000, a lone surrogate such as the escape "\\ud800") is rejected on its own, like an
entry the pipeline rejects. A JSON array that is not valid JSON, a CSV header that is not
usable, or text that is not UTF-8 refuses the whole file, before anything is written: a
first pass counts the records and finds those.

Batches of BATCH_SIZE entries each go through the pipeline with a request id of their
own, so each is one transaction and one ingestion log row. Re-running a file is safe:
stored records come back `unchanged`.

On PostgreSQL the import keeps the planner's statistics of the tables it grows true
enough to plan on, during the import and for the requests that follow it, whatever
autovacuum does (`_Statistics`).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import pickle
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from django.db import connection, connections
from django.db.models import Model

from cdp.errors import ApiError
from cdp.models import EntityRecord, Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE
from cdp.selectors import organization_models
from ingestion.import_formats import (
    UNSTORABLE,
    CsvSchema,
    FileFormat,
    FileRecord,
    csv_records,
    json_array_records,
    ndjson_count,
    ndjson_records,
)
from ingestion.models import DestinationDelivery, RecordHistory
from ingestion.payload import holds_unstorable_text
from ingestion.pipeline import (
    IngestLimits,
    PreparedIngest,
    ingest_prepare,
    ingest_write,
    prepared_portable,
    prepared_restore,
)
from journeys.configs import config_resolve
from journeys.models import UserEvent

# Entries per transaction: large, so that the database does bulk work; no cap on the
# events of a batch (the API's cap is for one client request).
BATCH_SIZE = 1000
# Batches written at once, each in a transaction of its own (`_BatchWriter`): with the
# batch size, each takes a lock per key, and PostgreSQL's lock table holds 6,400 by
# default (max_locks_per_transaction 64 × max_connections 100) for every session.
WRITERS = 2
# An import takes at most this share of that table; with a smaller table, fewer writers
# and then smaller batches (`import_shape`).
LOCK_TABLE_SHARE = 1 / 3
IMPORT_LIMITS = IngestLimits(max_entries=None, events_cap=None)
logger = logging.getLogger("cdp.import")
# At most this many bytes of a JSON array file are read at a time (tests make it small,
# so that values straddle reads).
_CHUNK_CHARS = 1 << 16


class ImportRefused(Exception):
    """The import's settings are refused (unknown object type, User Event…)."""


class ImportStopped(Exception):
    """The import stopped part way, after the batches already committed (its reading
    process died, or a batch's User Event changed between its reading and its write)."""


@dataclass(frozen=True)
class Reject:
    line: int
    entry: Any
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "entry": self.entry, "error": self.error}


@dataclass
class ImportStats:
    total: int
    processed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    events_generated: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    # Rows inserted or changed, per table; the tables analyzed during the import.
    rows_written: Counter[type[Model]] = field(default_factory=Counter)
    analyzed: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


# ---------------------------------------------------------------------------------------
# Reading.


def records_read(
    path: Path,
    file_format: FileFormat,
    *,
    organization: Organization | None = None,
    object_type: str | None = None,
) -> Iterator[FileRecord]:
    """The file's records, in order. CSV cells of list fields are decoded when the
    organization and object type are given. Raises ImportFileInvalid."""
    if file_format == "json":
        return json_array_records(path, chunk_size=_CHUNK_CHARS)
    if file_format == "ndjson":
        return ndjson_records(path)
    schema = None
    if organization is not None and object_type is not None:
        schema = CsvSchema(organization, object_type)
    return csv_records(path, schema)


def records_count(path: Path, file_format: FileFormat) -> int:
    """How many records the file holds; reading it whole first finds what would refuse
    it (bad JSON, a bad CSV header, text that is not UTF-8) before anything is written."""
    if file_format == "ndjson":
        return ndjson_count(path)
    return sum(1 for _record in records_read(path, file_format))


# ---------------------------------------------------------------------------------------
# Importing.


def _settings_check(
    *, organization: Organization, object_type: str, je_config_id: str | None
) -> None:
    """Refuse, before reading the file, what would refuse every batch."""
    models = organization_models(organization=organization)
    if object_type == CUSTOM_MODEL_OBJECT_TYPE:
        by_id = {m.pk: m for m in models.custom.values()}
    elif object_type in models.system:
        by_id = {models.system[object_type].pk: models.system[object_type]}
    else:
        raise ImportRefused(f"Unknown objectType: {object_type}")
    try:
        config_resolve(
            organization=organization, config_id=je_config_id, event_key=None, models=by_id
        )
    except ApiError as error:
        raise ImportRefused(error.message) from None


def lock_table_slots() -> int | None:
    """How many locks PostgreSQL's shared lock table holds for every session together
    (None elsewhere)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_locks_per_transaction')::int"
            " * (current_setting('max_connections')::int"
            " + current_setting('max_prepared_transactions')::int)"
        )
        (slots,) = cursor.fetchone()
    return int(slots)


def import_shape(slots: int | None) -> tuple[int, int]:
    """(writers, batch size): WRITERS batches of BATCH_SIZE at once, as long as their key
    locks fit in LOCK_TABLE_SHARE of a lock table of `slots` (None: no such table); past
    that, fewer writers, then smaller batches. A full lock table fails every transaction
    that asks for one more lock ("out of shared memory"), the API's requests included."""
    if slots is None:
        return WRITERS, BATCH_SIZE
    budget = max(1, int(slots * LOCK_TABLE_SHARE))
    batch_size = min(BATCH_SIZE, budget)
    return max(1, min(WRITERS, budget // batch_size)), batch_size


def _batches(records: Iterator[FileRecord], size: int) -> Iterator[list[FileRecord]]:
    while batch := list(islice(records, size)):
        yield batch


def records_import(
    *,
    organization: Organization,
    path: Path,
    file_format: FileFormat,
    object_type: str,
    source: str,
    init_data: bool = False,
    je_config_id: str | None = None,
    on_reject: Callable[[Reject], None],
    on_progress: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Import the file's records in batches through the ingest pipeline (api_key None).

    Each rejected record, whether the file could not give it or the pipeline refused it,
    goes to `on_reject`; `on_progress` hears after each batch; both are called from one
    thread, in file order. Raises ImportRefused or ImportFileInvalid before writing
    anything; an error while writing stops the import after the batches already
    committed (re-running the file is safe).

    While WRITERS batches are written, the next is read and validated (`ingest_prepare`
    in a reading process of its own on PostgreSQL, here elsewhere: `_BatchReader`;
    `ingest_write` in writer threads, each with its own database connection:
    `_BatchWriter`), so that Python's work and the database's overlap. Inside a caller's
    transaction (tests) the batches are read and written in this thread, which alone sees
    that transaction.
    """
    _settings_check(organization=organization, object_type=object_type, je_config_id=je_config_id)
    stats = ImportStats(total=records_count(path, file_format))
    slots = lock_table_slots()
    writers, batch_size = import_shape(slots)
    if (writers, batch_size) != (WRITERS, BATCH_SIZE):
        logger.warning(
            "PostgreSQL's lock table holds %s locks for every session: writing %s batch(es)"
            " of %s records at a time instead of %s of %s (raise max_locks_per_transaction"
            " for the full speed, docs/deploy.md)",
            slots,
            writers,
            batch_size,
            WRITERS,
            BATCH_SIZE,
        )
    reader = _BatchReader(
        organization=organization,
        path=path,
        file_format=file_format,
        object_type=object_type,
        source=source,
        init_data=init_data,
        je_config_id=je_config_id,
        batch_size=batch_size,
    )
    statistics = _Statistics(stats.rows_written)
    with (
        reader as batches,
        _BatchWriter(stats, on_reject, on_progress, statistics, writers=writers) as out,
    ):
        for batch in batches:
            out.put(batch)
    stats.analyzed = statistics.finish()
    return stats


class _Statistics:
    """Keeps the planner's counts of the tables an import writes true enough to plan on
    (PostgreSQL; nothing elsewhere, whose planners keep no such counts unless asked).

    PostgreSQL plans on the rows a table's last ANALYZE counted per page, times its pages
    now. An import that makes a table many times larger leaves the planner with old value
    distributions until autovacuum's next round, or for good where autovacuum is off; and
    a table analyzed while it had pages but no rows (emptied, say) reads as empty however
    much it grows: its lookups by key can then take the primary key and filter the whole
    tenant's rows, the import's own reads included (docs/decisions.md, "Imports analyze
    what they grew"). So:

    - after the first batch that writes a table, the table is analyzed if its statistics
      read as empty with pages (`batch_written`): one look at pg_class per table;
    - at the end, each table whose rows written since its last ANALYZE exceed
      autovacuum's own threshold for it (`autovacuum_analyze_threshold` +
      `autovacuum_analyze_scale_factor` × the rows its statistics count; a table never
      analyzed counts none) is analyzed (`finish`): what autovacuum would do at its next
      round, done before the import returns.
    """

    def __init__(self, written: Counter[type[Model]]) -> None:
        self.active = connection.vendor == "postgresql"
        self.written = written  # the import's rows so far, per table (ImportStats)
        self.at_analyze: Counter[type[Model]] = Counter()  # `written` when last analyzed
        self.looked_at: set[type[Model]] = set()
        self.analyzed: list[str] = []

    def batch_written(self, batch: Mapping[type[Model], int]) -> None:
        if not self.active:
            return
        first = {
            m._meta.db_table: m for m, rows in batch.items() if rows and m not in self.looked_at
        }
        if not first:
            return
        self.looked_at.update(first.values())
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname FROM pg_class WHERE oid = ANY(%s::regclass[])"
                " AND reltuples = 0 AND relpages > 0 ORDER BY relname",
                [sorted(first)],
            )
            for (table,) in cursor.fetchall():
                self._analyze(cursor, first[table])

    def finish(self) -> list[str]:
        """Analyze what the import grew past autovacuum's threshold; every table analyzed
        during the import, in order."""
        since = {m: rows - self.at_analyze[m] for m, rows in self.written.items()}
        grown = {m._meta.db_table: m for m, rows in since.items() if rows > 0}
        if not self.active or not grown:
            return self.analyzed
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname, greatest(reltuples, 0)"
                " * current_setting('autovacuum_analyze_scale_factor')::float8"
                " + current_setting('autovacuum_analyze_threshold')::int"
                " FROM pg_class WHERE oid = ANY(%s::regclass[]) ORDER BY relname",
                [sorted(grown)],
            )
            for table, threshold in cursor.fetchall():
                if since[grown[table]] > threshold:
                    self._analyze(cursor, grown[table])
        return self.analyzed

    def _analyze(self, cursor: Any, model: type[Model]) -> None:
        table = model._meta.db_table
        began = time.monotonic()
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        self.at_analyze[model] = self.written[model]
        if table not in self.analyzed:
            self.analyzed.append(table)
        logger.info("Analyzed %s for the planner (%.2f s)", table, time.monotonic() - began)


@dataclass(frozen=True)
class _Batch:
    number: int  # in file order, from 0
    size: int
    unreadable: list[Reject]
    # The records the pipeline rejected: those its validation rejected, or every one when
    # it refused the batch (a User Event of another model than its entries').
    rejects: list[Reject]
    prepared: PreparedIngest | None  # None: nothing to write

    @property
    def keys(self) -> frozenset[tuple[int, str]]:
        """The (model, key) of every entry the batch writes."""
        if self.prepared is None:
            return frozenset()
        return frozenset((entry.model.pk, entry.key) for entry in self.prepared.valid)


def _batch_prepare(
    number: int,
    records: list[FileRecord],
    *,
    organization: Organization,
    file_format: FileFormat,
    object_type: str,
    source: str,
    init_data: bool,
    je_config_id: str | None,
) -> _Batch:
    """One batch of the file's records, read and validated (`ingest_prepare`)."""
    unreadable: list[Reject] = []
    sendable: list[FileRecord] = []
    for record in records:
        # NDJSON lines were checked as they were read, cheaply; the other readers' text
        # may hold anything.
        if file_format != "ndjson" and record.error is None and holds_unstorable_text(record.entry):
            record = FileRecord(record.line, record.entry, UNSTORABLE)
        if record.error is None:
            sendable.append(record)
        else:
            unreadable.append(Reject(record.line, record.entry, record.error))
    if not sendable:
        return _Batch(number, len(records), unreadable, [], None)
    prepared = ingest_prepare(
        organization=organization,
        api_key=None,
        request_id=uuid.uuid4().hex,
        data={
            "objectType": object_type,
            "source": source,
            "jeConfigId": je_config_id,
            "jeEventKey": None,
            "entries": [r.entry for r in sendable],
        },
        init_data=init_data,
        limits=IMPORT_LIMITS,
    )
    if prepared.refusal is not None:
        error = prepared.refusal.error
        assert error is not None
        reason = f"{error.error_code}: {error.message}"
        refused = [Reject(r.line, r.entry, reason) for r in sendable]
        return _Batch(number, len(records), unreadable, refused, None)
    rejects = [
        Reject(sendable[e.index].line, sendable[e.index].entry, e.message)
        for e in prepared.rejected
    ]
    return _Batch(number, len(records), unreadable, rejects, prepared)


class _BatchReader:
    """The file's batches, read and validated: in a process of its own on PostgreSQL when
    the batches are written by `_BatchWriter`'s threads, in the importing thread otherwise.

    Reading and validating are most of the import's Python (docs/performance.md, "Bulk
    import"): in the writers' process they hold its interpreter lock while the writers
    wait for it with the database's answers in hand. The reading process is forked with
    the importer's state (Django set up, the schema's copy, the frozen start-up objects)
    and its own connections; it sends each batch pickled, in portable form (the models by
    id, the entries only where rejected: `prepared_portable`), and the batches are
    restored here (`prepared_restore`). Elsewhere (SQLite, whose in-memory databases a
    process of its own would not see, or inside a caller's transaction) the batches are
    read here, one at a time, as the writers write.
    """

    def __init__(self, *, organization: Organization, path: Path, batch_size: int, **options: Any):
        self.organization, self.path, self.batch_size = organization, path, batch_size
        self.options = options  # file_format, object_type, source, init_data, je_config_id
        self.forked = (
            connection.vendor == "postgresql"
            and not connection.in_atomic_block
            and connection.get_autocommit()  # no transaction the fork would close
            and "fork" in multiprocessing.get_all_start_methods()  # not on Windows
        )
        self.process: Any = None
        self.receiving: Any = None

    def _prepared(self) -> Iterator[_Batch]:
        records = records_read(
            self.path,
            self.options["file_format"],
            organization=self.organization,
            object_type=self.options["object_type"],
        )
        for number, batch in enumerate(_batches(records, self.batch_size)):
            yield _batch_prepare(number, batch, organization=self.organization, **self.options)

    def __enter__(self) -> Iterator[_Batch]:
        if not self.forked:
            return self._prepared()
        fork = multiprocessing.get_context("fork")
        receiving, sending = fork.Pipe(duplex=False)
        # The child must not share this process's database connections (nor close them:
        # closing one tells the server its session is over); this process reconnects.
        connections.close_all()
        self.process = fork.Process(
            target=self._send, args=(sending,), name="import-reader", daemon=True
        )
        self.process.start()
        sending.close()
        self.receiving = receiving
        return self._received(receiving)

    def _send(self, sending: Any) -> None:
        """The reading process: every batch, then None; or the error that stopped it. Its
        log records go the same way, to be logged by the importer's handlers (tqdm's,
        which print them above the progress bar): written from here they would land in
        the middle of the bar the importer draws."""
        logging.getLogger().handlers = [_Forwarded(sending)]
        try:
            for batch in self._prepared():
                prepared = batch.prepared
                portable = prepared_portable(prepared) if prepared is not None else None
                item = (replace(batch, prepared=None), portable)
                sending.send_bytes(pickle.dumps(item, pickle.HIGHEST_PROTOCOL))
            sending.send_bytes(pickle.dumps(None))
        except BaseException as error:  # re-raised in the importing process
            try:
                failed = pickle.dumps(_ReaderFailed(error))
            except Exception:  # an error that does not pickle goes as its words
                failed = pickle.dumps(_ReaderFailed(RuntimeError(repr(error))))
            with contextlib.suppress(OSError):  # the importer stopped reading: it knows
                sending.send_bytes(failed)
        finally:
            connections.close_all()

    def _received(self, receiving: Any) -> Iterator[_Batch]:
        while (item := pickle.loads(self._next(receiving))) is not None:
            if isinstance(item, _ReaderFailed):
                raise item.error
            if isinstance(item, logging.LogRecord):
                logging.getLogger(item.name).handle(item)
                continue
            batch, portable = item
            if portable is not None:
                try:
                    prepared = prepared_restore(
                        portable, organization=self.organization, limits=IMPORT_LIMITS
                    )
                except ApiError as error:  # its User Event changed since it was read
                    raise ImportStopped(f"batch {batch.number + 1}: {error.message}") from None
                batch = replace(batch, prepared=prepared)
            yield batch

    def _next(self, receiving: Any) -> bytes:
        try:
            return receiving.recv_bytes()
        except EOFError:  # killed (out of memory, a signal) before its last word
            self.process.join()
            raise ImportStopped(
                f"the reading process ended unexpectedly (exit code {self.process.exitcode})"
            ) from None

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if self.process is None:
            return
        if exc_type is not None or self.process.is_alive():
            self.process.terminate()  # stopped early: the rest of the file is not needed
        self.process.join()
        self.receiving.close()


@dataclass(frozen=True)
class _ReaderFailed:
    error: BaseException


class _Forwarded(logging.handlers.QueueHandler):
    """The reading process's log records, each prepared as a queue handler does (its
    message formatted, the traceback in its text), pickled into the pipe."""

    def __init__(self, sending: Any) -> None:
        super().__init__(queue=None)  # type: ignore[arg-type]
        self.sending = sending

    def enqueue(self, record: logging.LogRecord) -> None:
        self.sending.send_bytes(pickle.dumps(record, pickle.HIGHEST_PROTOCOL))


@dataclass(frozen=True)
class _Written:
    """What writing a batch gave: its log row's counts."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    events_generated: int = 0
    rows_written: Counter[type[Model]] = field(default_factory=Counter)


_DONE = None


class _BatchWriter:
    """Writes prepared batches, WRITERS at a time, each thread with its own database
    connection, unless the caller holds a transaction (then in the caller's thread, which
    alone sees it); reports each batch (`on_reject`, `on_progress`, the stats) from the
    importing thread, in file order, and re-raises there whatever stopped a writer.

    One writer leaves the database idle while it plans a batch and the next waits: two
    keep it busier (the writes alone 1.5 times as fast, the whole import about a fifth:
    docs/performance.md, "Bulk import"). A batch that
    writes a key of a batch still being written waits until that one has committed, so a
    key's last record in the file is the one stored, as with one writer; batches of
    different keys commit in any order, each under its keys' locks.
    """

    def __init__(
        self,
        stats: ImportStats,
        on_reject: Callable[[Reject], None],
        on_progress: Callable[[ImportStats], None] | None,
        statistics: _Statistics,
        *,
        writers: int = WRITERS,
    ) -> None:
        self.stats, self.on_reject, self.on_progress = stats, on_reject, on_progress
        self.statistics = statistics
        self.threaded = not connection.in_atomic_block
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=writers)
        self.error: BaseException | None = None
        self.stopping = False
        self.changed = threading.Condition()
        self.writing: dict[int, frozenset[tuple[int, str]]] = {}  # number → keys
        self.written: dict[int, _Written | None] = {}  # None: not written (after an error)
        self.batches: dict[int, _Batch] = {}
        self.reported = 0  # the next batch number to report
        self.threads = [
            threading.Thread(target=self._run, name=f"import-writer-{n}", daemon=True)
            for n in range(writers)
        ]

    def __enter__(self) -> _BatchWriter:
        if self.threaded:
            for thread in self.threads:
                thread.start()
        return self

    def put(self, batch: _Batch) -> None:
        if not self.threaded:
            self._report(batch, self._write(batch))
            return
        keys = batch.keys
        with self.changed:
            # A batch waits for those being written that share a key with it.
            self.changed.wait_for(
                lambda: (
                    self.error is not None
                    or all(keys.isdisjoint(others) for others in self.writing.values())
                )
            )
            if self.error is not None:
                raise self.error
            self.writing[batch.number] = keys
            self.batches[batch.number] = batch
        self.queue.put(batch)  # never blocks for good: the threads take batches until _DONE
        self._report_written()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if not self.threaded:
            return
        if exc_type is not None:
            self.stopping = True  # stop after the batches being written
        for _ in self.threads:
            self.queue.put(_DONE)
        for thread in self.threads:
            thread.join()
        self._report_written(everything=True)
        if exc_type is None and self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (batch := self.queue.get()) is not _DONE:
                written: _Written | None = None
                # After an error or a stop the batches are taken but not written, so that
                # no thread waits on another for good.
                if self.error is None and not self.stopping:
                    try:
                        written = self._write(batch)
                    except BaseException as error:  # re-raised in the importing thread
                        self.error = self.error or error
                with self.changed:
                    del self.writing[batch.number]
                    self.written[batch.number] = written
                    self.changed.notify_all()
        finally:
            connection.close()

    def _report_written(self, *, everything: bool = False) -> None:
        """Report the written batches that follow the last one reported, in order; with
        `everything`, past those that were not written too (the writers have stopped)."""
        while True:
            with self.changed:
                number = self.reported
                if number not in self.written:
                    if not everything or number not in self.batches:
                        return
                    written = None
                else:
                    written = self.written.pop(number)
                batch = self.batches.pop(number)
                self.reported += 1
            if written is not None:
                self._report(batch, written)

    def _write(self, batch: _Batch) -> _Written:
        prepared = batch.prepared
        if prepared is None:
            return _Written(failed=len(batch.rejects))  # refused, or nothing readable
        plan = ingest_write(prepared).plan
        assert plan is not None  # no Idempotency-Key: never a stored answer, always a plan
        log = plan.log
        return _Written(
            created=log.created,
            updated=log.updated,
            unchanged=log.unchanged,
            failed=log.failed,
            events_generated=log.events_generated,
            rows_written=Counter(
                {
                    # (`log.created` counts a `user-event` import's events, not records.)
                    EntityRecord: sum(1 for row in plan.records if row.created or row.dirty),
                    UserEvent: len(plan.events),
                    RecordHistory: len(plan.history),
                    DestinationDelivery: len(plan.deliveries),
                }
            ),
        )

    def _report(self, batch: _Batch, written: _Written) -> None:
        stats = self.stats
        # In file order: a batch's unreadable records among those the pipeline rejected.
        for reject in sorted([*batch.unreadable, *batch.rejects], key=lambda r: r.line):
            self.on_reject(reject)
        stats.failed += len(batch.unreadable) + written.failed
        stats.created += written.created
        stats.updated += written.updated
        stats.unchanged += written.unchanged
        stats.events_generated += written.events_generated
        stats.rows_written.update(written.rows_written)
        self.statistics.batch_written(written.rows_written)
        stats.processed += batch.size
        stats.batches += 1
        if self.on_progress is not None:
            self.on_progress(stats)
