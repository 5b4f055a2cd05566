"""Bulk import of a file into one object type of one organization (`manage.py
import_records`), through the same pipeline as the API: `ingest_data`, no HTTP.

Formats, read as a stream (one batch in memory at a time):

- `json`: one array of entries;
- `ndjson`: one entry per line (blank lines skipped);
- `csv`: a header row of field names, then one entry per row. Custom fields go flat, by
  their own names (`customField01`, not `customFieldTexts`). An empty cell is absent, so
  a CSV import never clears a stored value (use JSON or NDJSON with `null` for that). A
  cell of a list field (`tags`, `customFieldListNN`, order `items`) holds a JSON array.

Every record is numbered by the file line it starts on. A record the file cannot give
(an NDJSON line that is not JSON, a CSV row with more cells than the header) or whose text
no database stores (U+0000, a lone surrogate such as the escape "\\ud800") is rejected on
its own, like an entry the pipeline rejects. A JSON array that is not valid JSON, a
CSV header that is not usable, or text that is not UTF-8 refuses the whole file, before
anything is written: a first pass counts the records and finds those.

Batches of 50 entries each go through `ingest_data` with a request id of their own, so
each is one transaction and one ingestion log row. Re-running a file is safe: stored
records come back `unchanged`.
"""

from __future__ import annotations

import csv
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
from django.db import connection

from cdp.errors import ApiError
from cdp.models import Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE, FieldType
from cdp.selectors import LoadedModel, organization_models
from ingestion.payload import holds_unstorable_text
from ingestion.pipeline import IngestLimits, PreparedIngest, ingest_prepare, ingest_write
from journeys.configs import config_resolve

FileFormat = Literal["json", "ndjson", "csv"]
FORMATS: tuple[FileFormat, ...] = ("json", "ndjson", "csv")
EXTENSIONS: dict[str, FileFormat] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}
# Entries per transaction: large, so that the database does bulk work; no cap on the
# events of a batch (the API's cap is for one client request).
BATCH_SIZE = 2000
IMPORT_LIMITS = IngestLimits(max_entries=None, events_cap=None, exclusive=True)
_CHUNK_CHARS = 1 << 16
_DELIMITERS = frozenset(" \t\r\n,]}")
_JSON_LIST_TYPES = (FieldType.LIST, FieldType.OBJECT_LIST)


class ImportFileInvalid(Exception):
    """The file cannot be read as a whole; nothing was imported."""


class ImportRefused(Exception):
    """The import's settings are refused (unknown object type, User Event…)."""


@dataclass(frozen=True)
class FileRecord:
    line: int
    entry: Any
    error: str | None = None  # the file could not give this record


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

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


def file_format_guess(path: str | Path) -> FileFormat | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


# ---------------------------------------------------------------------------------------
# Reading.


def _unicode_error(path: Path, error: UnicodeDecodeError) -> ImportFileInvalid:
    return ImportFileInvalid(f"{path} is not UTF-8 text (byte {error.start} of a chunk)")


def _open(path: Path) -> TextIO:
    try:
        # utf-8-sig: a byte-order mark, as spreadsheet exports write, is not part of the data.
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ImportFileInvalid(f"cannot read {path}: {error.strerror}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_array_records(handle: TextIO) -> Iterator[FileRecord]:
    """The elements of one top-level JSON array, decoded one at a time from a buffer, so
    a large file never sits in memory whole."""
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)
    buffer, pos, line, eof = "", 0, 1, False

    def fill() -> None:
        nonlocal buffer, pos, eof
        chunk = handle.read(_CHUNK_CHARS)
        eof = not chunk
        buffer, pos = buffer[pos:] + chunk, 0

    def peek() -> str | None:
        nonlocal pos, line
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                line += buffer[pos] == "\n"
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if eof:
                return None
            fill()

    def value() -> Any:
        nonlocal pos, line
        while True:
            try:
                decoded, end = decoder.raw_decode(buffer, pos)
                # Complete only if a delimiter follows it: "12" may be the start of
                # "123", and "-5" of "-5.0e3".
                if eof or (end < len(buffer) and buffer[end] in _DELIMITERS):
                    line += buffer.count("\n", pos, end)
                    pos = end
                    return decoded
            except json.JSONDecodeError as error:
                if eof:
                    at = line + buffer.count("\n", pos, error.pos)
                    raise ImportFileInvalid(f"line {at}: not valid JSON: {error.msg}") from None
            except ValueError as error:  # NaN, Infinity
                raise ImportFileInvalid(f"line {line}: not valid JSON: {error}") from None
            fill()

    if peek() != "[":
        raise ImportFileInvalid(f"line {line}: a JSON file holds one array of records")
    pos += 1
    if peek() == "]":
        pos += 1
    else:
        while True:
            if peek() is None:
                raise ImportFileInvalid(f"line {line}: the array is not closed")
            start = line
            yield FileRecord(start, value())
            following = peek()
            if following is None:
                raise ImportFileInvalid(f"line {line}: the array is not closed")
            pos += 1
            if following == "]":
                break
            if following != ",":
                raise ImportFileInvalid(f"line {line}: expected , or ] after a record")
    if peek() is not None:
        raise ImportFileInvalid(f"line {line}: text after the array")


UNSTORABLE = "holds text that cannot be stored (U+0000 or a lone surrogate)"
_BOM = b"\xef\xbb\xbf"


def _ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's non-blank lines, as bytes, with their numbers (a byte-order mark, as
    spreadsheet exports write, is not part of the data)."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ImportFileInvalid(f"cannot read {path}: {error.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if line.strip():
                yield number, line


# The escape of a surrogate code point (U+D800 to U+DFFF), in either case.
_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _unstorable_line(line: bytes) -> Any | None:
    """The record of an NDJSON line orjson refused, when the line is JSON but for a lone
    surrogate: read by the standard library (as JSON array files are), so that it is
    rejected for its text, with the record, as in every other format. None otherwise."""
    if not _SURROGATE_ESCAPE_RE.search(line):
        return None
    try:
        entry = json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not JSON anyway, or nested past the stack
        return None
    return entry if holds_unstorable_text(entry) else None


def _ndjson_records(path: Path) -> Iterator[FileRecord]:
    for number, line in _ndjson_lines(path):
        try:
            # orjson, as the API parses bodies: strict UTF-8, no NaN or Infinity, no lone
            # surrogates; U+0000 reaches the data only through the escape "\u0000".
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            unstorable = _unstorable_line(line)
            if unstorable is not None:
                yield FileRecord(number, unstorable, UNSTORABLE)
                continue
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            yield FileRecord(number, text, f"not valid JSON: {error}")
            continue
        if b"\\u0000" in line and holds_unstorable_text(entry):
            yield FileRecord(number, entry, UNSTORABLE)
        else:
            yield FileRecord(number, entry)


def _ndjson_count(path: Path) -> int:
    """The records of an NDJSON file, and whether it is all UTF-8, without parsing them
    (a line that is not JSON is rejected on its own, when it is read)."""
    count = 0
    for number, line in _ndjson_lines(path):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportFileInvalid(
                f"{path} is not UTF-8 text (byte {error.start} of line {number})"
            ) from None
        count += 1
    return count


class _CsvSchema:
    """Which columns hold JSON arrays, by the model each row belongs to."""

    def __init__(self, organization: Organization, object_type: str) -> None:
        self.object_type = object_type
        self.models = organization_models(organization=organization)

    def model(self, row: dict[str, str]) -> LoadedModel | None:
        if self.object_type == CUSTOM_MODEL_OBJECT_TYPE:
            return self.models.custom.get(row.get("momCode", "").strip())
        return self.models.system.get(self.object_type)

    def entry(self, row: dict[str, str]) -> dict[str, Any]:
        model = self.model(row)
        entry: dict[str, Any] = {}
        for name, cell in row.items():
            if cell == "":
                continue  # an empty cell is absent
            field_ = model.schema.fields.get(name) if model is not None else None
            if field_ is not None and field_.type in _JSON_LIST_TYPES and cell.lstrip()[:1] == "[":
                try:
                    entry[name] = json.loads(cell)
                    continue
                except ValueError:
                    pass  # kept as text: validation says the field needs a list
            entry[name] = cell
        return entry


def _csv_header(reader: Any) -> list[str]:
    header = next(reader, None)
    if header is None:
        raise ImportFileInvalid("line 1: the CSV file has no header row")
    names = [name.strip() for name in header]
    if any(not name for name in names):
        raise ImportFileInvalid("line 1: every CSV column needs a name (the field's name)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImportFileInvalid(f"line 1: columns named twice: {', '.join(duplicates)}")
    return names


def _csv_records(handle: TextIO, schema: _CsvSchema | None) -> Iterator[FileRecord]:
    reader = csv.reader(handle, strict=True)
    try:
        names = _csv_header(reader)
        line = reader.line_num + 1
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names):
                yield FileRecord(
                    start, cells, f"has {len(cells)} cells; the header names {len(names)} columns"
                )
                continue
            row = dict(zip(names, cells, strict=False))
            yield FileRecord(start, schema.entry(row) if schema is not None else row)
    except csv.Error as error:
        raise ImportFileInvalid(f"line {reader.line_num}: not valid CSV: {error}") from None


def records_read(
    path: Path,
    file_format: FileFormat,
    *,
    organization: Organization | None = None,
    object_type: str | None = None,
) -> Iterator[FileRecord]:
    """The file's records, in order. CSV cells of list fields are decoded when the
    organization and object type are given. Raises ImportFileInvalid."""
    if file_format == "ndjson":
        yield from _ndjson_records(path)
        return
    with _open(path) as handle:
        try:
            if file_format == "json":
                yield from _json_array_records(handle)
            else:
                schema = None
                if organization is not None and object_type is not None:
                    schema = _CsvSchema(organization, object_type)
                yield from _csv_records(handle, schema)
        except UnicodeDecodeError as error:
            raise _unicode_error(path, error) from None


def records_count(path: Path, file_format: FileFormat) -> int:
    """How many records the file holds; reading it whole first finds what would refuse
    it (bad JSON, a bad CSV header, text that is not UTF-8) before anything is written."""
    if file_format == "ndjson":
        return _ndjson_count(path)
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

    While one batch is written, the next is read and validated (`ingest_prepare` here,
    `ingest_write` in a writer thread with its own database connection), so that
    Python's work and the database's overlap. Inside a caller's transaction (tests) the
    batches are written in this thread, which alone sees that transaction.
    """
    _settings_check(organization=organization, object_type=object_type, je_config_id=je_config_id)
    stats = ImportStats(total=records_count(path, file_format))
    records = records_read(path, file_format, organization=organization, object_type=object_type)
    with _BatchWriter(stats, on_reject, on_progress) as batch_writer:
        for batch in _batches(records, BATCH_SIZE):
            unreadable: list[Reject] = []
            sendable: list[FileRecord] = []
            for record in batch:
                # NDJSON lines were checked as they were read, cheaply; the other readers'
                # text may hold anything.
                if (
                    file_format != "ndjson"
                    and record.error is None
                    and holds_unstorable_text(record.entry)
                ):
                    record = FileRecord(record.line, record.entry, UNSTORABLE)
                if record.error is None:
                    sendable.append(record)
                else:
                    unreadable.append(Reject(record.line, record.entry, record.error))
            prepared = None
            if sendable:
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
            batch_writer.put(_Batch(len(batch), unreadable, sendable, prepared))
    return stats


@dataclass(frozen=True)
class _Batch:
    size: int
    unreadable: list[Reject]
    records: list[FileRecord]
    prepared: PreparedIngest | None


_DONE = None


class _BatchWriter:
    """Writes prepared batches in order, in a thread of its own unless the caller holds a
    transaction; re-raises, in the caller's thread, whatever stopped it."""

    def __init__(
        self,
        stats: ImportStats,
        on_reject: Callable[[Reject], None],
        on_progress: Callable[[ImportStats], None] | None,
    ) -> None:
        self.stats, self.on_reject, self.on_progress = stats, on_reject, on_progress
        self.threaded = not connection.in_atomic_block
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="import-writer", daemon=True)

    def __enter__(self) -> _BatchWriter:
        if self.threaded:
            self.thread.start()
        return self

    def put(self, batch: _Batch) -> None:
        if not self.threaded:
            self._write(batch)
            return
        if self.error is not None:
            raise self.error
        self.queue.put(batch)  # never blocks for good: the thread takes batches until _DONE

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if not self.threaded:
            return
        if exc_type is not None:
            self.stopping = True  # stop after the batch being written
        self.queue.put(_DONE)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (batch := self.queue.get()) is not _DONE:
                # After an error or a stop the batches are taken but not written, so that
                # neither thread waits on the other for good.
                if self.error is not None or self.stopping:
                    continue
                try:
                    self._write(batch)
                except BaseException as error:  # re-raised in the importing thread
                    self.error = error
        finally:
            connection.close()

    def _write(self, batch: _Batch) -> None:
        stats = self.stats
        for reject in batch.unreadable:
            self.on_reject(reject)
        stats.failed += len(batch.unreadable)
        prepared = batch.prepared
        if prepared is not None and prepared.refusal is not None:
            # A refusal of this batch only (a User Event of another model than its entries').
            error = prepared.refusal.error
            assert error is not None
            for record in batch.records:
                self.on_reject(
                    Reject(record.line, record.entry, f"{error.error_code}: {error.message}")
                )
            stats.failed += len(batch.records)
        elif prepared is not None:
            log = ingest_write(prepared).plan.log
            stats.created += log.created
            stats.updated += log.updated
            stats.unchanged += log.unchanged
            stats.failed += log.failed
            stats.events_generated += log.events_generated
            for rejected in prepared.rejected:
                record = batch.records[rejected.index]
                self.on_reject(Reject(record.line, record.entry, rejected.message))
        stats.processed += batch.size
        stats.batches += 1
        if self.on_progress is not None:
            self.on_progress(stats)
