"""The file formats of `manage.py import_records`: each reader yields a file's records, in
order, as a stream (a large file never sits in memory whole), each numbered by the file
line it starts on.

- `json`: one array of entries (read by ijson);
- `ndjson`: one entry per line, blank lines skipped (read by orjson, as the API reads
  bodies);
- `csv`: a header row of field names, then one entry per row. Custom fields go flat, by
  their own names (`customField01`, not `customFieldTexts`). An empty cell is absent, so
  a CSV import never clears a stored value (use JSON or NDJSON with `null` for that). A
  cell of a list field (`tags`, `customFieldListNN`, order `items`) holds a JSON array.

A record the file cannot give (an NDJSON line that is not JSON, a CSV row with more cells
than the header) comes with its `error`, to be rejected on its own. What spoils the whole
file (a JSON array that is not valid JSON, a CSV header that is not usable, text that is
not UTF-8) raises ImportFileInvalid. A byte-order mark, as spreadsheet exports write, is
not part of the data in any format.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

import ijson
import orjson

from cdp.models import Organization
from cdp.schema import CUSTOM_MODEL_OBJECT_TYPE, FieldType
from cdp.selectors import LoadedModel, organization_models
from ingestion.payload import holds_unstorable_text

FileFormat = Literal["json", "ndjson", "csv"]
FORMATS: tuple[FileFormat, ...] = ("json", "ndjson", "csv")
EXTENSIONS: dict[str, FileFormat] = {
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
}
UNSTORABLE = "holds text that cannot be stored (U+0000 or a lone surrogate)"
_BOM = codecs.BOM_UTF8
# The escape of a surrogate code point (U+D800 to U+DFFF), in either case.
_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_JSON_LIST_TYPES = (FieldType.LIST, FieldType.OBJECT_LIST)


class ImportFileInvalid(Exception):
    """The file cannot be read as a whole; nothing was imported."""


@dataclass(frozen=True)
class FileRecord:
    line: int
    entry: Any
    error: str | None = None  # the file could not give this record


def file_format_guess(path: str | Path) -> FileFormat | None:
    return EXTENSIONS.get(Path(path).suffix.lower())


def _open_bytes(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as error:
        raise ImportFileInvalid(f"cannot read {path}: {error.strerror}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# --- JSON: one array ---------------------------------------------------------------------

# ijson's fast backend (yajl, in C) turns a lone surrogate escape such as "\ud800" into "?"
# or fails on the whole file; its pure-Python backend keeps it, as the standard library
# does, so that the record is rejected for its text, with the record. The Python one is
# ten times slower: it reads only a file that holds a surrogate escape at all.
_EXACT_JSON = ijson.get_backend("python")
_SCAN_BYTES = 1 << 20
_VALUE_STARTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})
_CONTAINER_STARTS = frozenset({"start_map", "start_array"})
_CONTAINER_ENDS = frozenset({"end_map", "end_array"})
# Where the parse is in the file's array: before it, between records, inside one, after it.
_BEFORE, _BETWEEN, _INSIDE, _AFTER = "before", "between", "inside", "after"


def _holds_surrogate_escape(path: Path) -> bool:
    with _open_bytes(path) as handle:
        tail = b""
        while block := handle.read(_SCAN_BYTES):
            if _SURROGATE_ESCAPE_RE.search(tail + block):
                return True
            tail = block[-3:]  # an escape cut by the end of the block
    return False


class _LineReader:
    """The file's bytes as ijson reads them, never past the end of a line: what ijson
    yields or refuses after a read is on `line` (its events and errors carry no
    position). Also drops a byte-order mark, and checks that the text is UTF-8 itself:
    yajl takes the bytes of an encoded surrogate, and each backend names bad bytes in
    its own terms."""

    def __init__(self, handle: io.BufferedReader, path: Path) -> None:
        self.handle, self.path = handle, path
        self.line = 1
        self.at_end = False
        self._line_ended = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        if handle.peek(len(_BOM)).startswith(_BOM):
            handle.read(len(_BOM))

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks whether the file gives bytes or text
        if self._line_ended:
            self.line += 1
        chunk = self.handle.readline(size)
        self._line_ended = chunk.endswith(b"\n")
        self.at_end = not chunk
        try:
            self._utf8.decode(chunk, final=self.at_end)
        except UnicodeDecodeError:
            raise ImportFileInvalid(f"{self.path} is not UTF-8 text (line {self.line})") from None
        return chunk


class _ArrayEvents:
    """Follows ijson's events through a file that should hold one JSON array: the line
    each record starts on, and where the parse was when ijson refused the text, to say
    what is wrong in the terms of the file."""

    def __init__(self, reader: _LineReader) -> None:
        self.reader = reader
        self.starts: deque[int] = deque()
        self.where = _BEFORE

    def follow(self, events: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        reader, starts = self.reader, self.starts
        for parsed in events:
            prefix, event, value = parsed
            if prefix == "item":  # a record's own start or end (its contents are deeper)
                if event in _VALUE_STARTS:
                    starts.append(reader.line)
                    self.where = _INSIDE if event in _CONTAINER_STARTS else _BETWEEN
                elif event in _CONTAINER_ENDS:
                    self.where = _BETWEEN
            elif not prefix:
                if event == "start_array":
                    self.where = _BETWEEN
                elif event == "end_array":
                    self.where = _AFTER
                else:
                    raise ImportFileInvalid(
                        f"line {reader.line}: a JSON file holds one array of records"
                    )
            if value.__class__ is Decimal:
                # As the standard library reads them (ijson's floats refuse 1e400): the
                # pipeline rejects an infinite number with its record.
                parsed = (prefix, event, float(value))
            yield parsed

    def refusal(self, error: ijson.JSONError) -> ImportFileInvalid:
        line = self.reader.line
        if self.where == _BEFORE:
            return ImportFileInvalid(f"line {line}: a JSON file holds one array of records")
        if self.where == _AFTER:
            return ImportFileInvalid(f"line {line}: text after the array")
        if (
            self.where == _BETWEEN
            and self.reader.at_end
            and isinstance(error, ijson.IncompleteJSONError)
        ):
            return ImportFileInvalid(f"line {line}: the array is not closed")
        # yajl's message goes on with the text around the error, over several lines.
        reason = next(iter(str(error).splitlines()), "") or type(error).__name__
        return ImportFileInvalid(f"line {line}: not valid JSON: {reason}")


def json_array_records(path: Path, *, chunk_size: int) -> Iterator[FileRecord]:
    """The elements of the file's one top-level JSON array, read `chunk_size` bytes at a
    time at most. Numbers as the standard library reads them (integers of any size,
    1e400 as infinity); NaN and Infinity are not JSON. Raises ImportFileInvalid."""
    parser = _EXACT_JSON if _holds_surrogate_escape(path) else ijson
    with _open_bytes(path) as handle:
        reader = _LineReader(handle, path)
        array = _ArrayEvents(reader)
        events = array.follow(parser.parse(reader, buf_size=chunk_size))
        try:
            for entry in parser.items(events, "item"):
                yield FileRecord(array.starts.popleft(), entry)
        except ijson.JSONError as error:
            raise array.refusal(error) from None


# --- NDJSON: one record per line ---------------------------------------------------------


def _ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's non-blank lines, as bytes, with their numbers."""
    with _open_bytes(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if line and not line.isspace():  # the same ASCII whitespace as strip(), no copy
                yield number, line


def _unstorable_line(line: bytes) -> Any | None:
    """The record of an NDJSON line orjson refused, when the line is JSON but for a lone
    surrogate: read by the standard library, so that it is rejected for its text, with
    the record, as in every other format. None otherwise."""
    if not _SURROGATE_ESCAPE_RE.search(line):
        return None
    try:
        entry = json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not JSON anyway, or nested past the stack
        return None
    return entry if holds_unstorable_text(entry) else None


def ndjson_records(path: Path) -> Iterator[FileRecord]:
    """The file's records, each checked for text no database stores (UNSTORABLE)."""
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


def ndjson_count(path: Path) -> int:
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


# --- CSV: a header row, then one record per row ------------------------------------------


class CsvSchema:
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


def _csv_rows(handle: TextIO, schema: CsvSchema | None) -> Iterator[FileRecord]:
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


def csv_records(path: Path, schema: CsvSchema | None) -> Iterator[FileRecord]:
    """The file's rows as entries: cells of list fields decoded when `schema` is given,
    every cell as text otherwise."""
    try:
        # utf-8-sig: the byte-order mark is dropped.
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ImportFileInvalid(f"cannot read {path}: {error.strerror}") from None
    with handle:
        try:
            yield from _csv_rows(handle, schema)
        except UnicodeDecodeError as error:
            raise ImportFileInvalid(
                f"{path} is not UTF-8 text (byte {error.start} of a chunk)"
            ) from None
