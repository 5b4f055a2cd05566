"""`manage.py import_records FILE --org GROUPKEY --object-type TYPE …`: bulk import.

The work is `ingestion.file_import` (its readers of each format: `ingestion.import_formats`);
this command shows the progress (a tqdm bar on stderr: records, rate, time left, the
counts so far; log lines are printed above it, not through it), prints the summary, and
writes the rejects file.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cdp.models import Organization
from ingestion.file_import import (
    ImportRefused,
    ImportStats,
    ImportStopped,
    Reject,
    records_import,
)
from ingestion.import_formats import FORMATS, ImportFileInvalid, file_format_guess

DEFAULT_SOURCE = "import"


class Command(BaseCommand):
    help = (
        "Import a JSON array, NDJSON or CSV file of records into one object type of one "
        "organization, through the Data Ingestion pipeline, in large batches. Safe to "
        "re-run: records already stored come back unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the file to import")
        parser.add_argument("--org", required=True, metavar="GROUPKEY", help="the cdpGKey")
        parser.add_argument(
            "--object-type",
            required=True,
            metavar="TYPE",
            help="custom-model (records carry their momCode), user-event, order, …",
        )
        parser.add_argument(
            "--source", default=DEFAULT_SOURCE, help=f"the source (default {DEFAULT_SOURCE!r})"
        )
        parser.add_argument(
            "--init-data",
            action="store_true",
            help="a historical load: records are written, no user event fires",
        )
        parser.add_argument(
            "--je-config-id", default=None, metavar="ID", help="a User Event's jeConfigId"
        )
        parser.add_argument(
            "--rejects",
            default=None,
            metavar="PATH",
            help="where rejected records go, as NDJSON (default FILE.rejects.ndjson, "
            "written only when a record is rejected)",
        )
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="the file's format (default: from its extension: .json, .ndjson/.jsonl, .csv)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # What Django's start-up made (hundreds of thousands of objects) never becomes
        # garbage: frozen for the import, the collector stops scanning it at every full
        # collection, which the import's many short-lived records set off (a fifth of its
        # CPU; docs/performance.md, "Bulk import").
        gc.freeze()
        try:
            self._import(options)
        finally:
            gc.unfreeze()

    def _import(self, options: dict[str, Any]) -> None:
        path = Path(options["file"])
        file_format = options["format"] or file_format_guess(path)
        if file_format is None:
            raise CommandError(
                f"Cannot tell the format of {path} from its extension: give --format "
                f"({', '.join(FORMATS)})."
            )
        if not path.is_file():
            raise CommandError(f"File not found: {path}")
        organization = Organization.objects.filter(group_key=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization has the group key {options['org']!r}.")
        if not organization.is_active:
            raise CommandError(f"Organization {organization.name!r} is inactive.")
        source = options["source"].strip()
        if not source:
            raise CommandError("--source must not be blank.")
        rejects = _RejectsFile(
            Path(options["rejects"])
            if options["rejects"]
            else path.with_name(path.name + ".rejects.ndjson")
        )
        progress = _Progress(_Stream(self.stderr), enabled=options["verbosity"] >= 1)
        try:
            with logging_redirect_tqdm(), progress:
                stats = records_import(
                    organization=organization,
                    path=path,
                    file_format=file_format,
                    object_type=options["object_type"].strip(),
                    source=source,
                    init_data=options["init_data"],
                    je_config_id=options["je_config_id"],
                    on_reject=rejects.write,
                    on_progress=progress.update,
                )
        except (ImportRefused, ImportFileInvalid) as refused:
            raise CommandError(f"{path} was not imported: {refused}") from None
        except ImportStopped as stopped:
            raise CommandError(
                f"The import of {path} stopped: {stopped}. The batches committed before it"
                " stopped stay; re-running the file is safe."
            ) from None
        except OSError as error:
            raise CommandError(f"Cannot write the rejects file: {error}") from None
        finally:
            rejects.close()
        self.stdout.write(_summary(path, organization, options, stats, rejects))


class _Stream:
    """The command's stderr as tqdm writes to a file: no line ending added."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class _Progress:
    """A tqdm bar of records, created at the first batch (when the total is known)."""

    def __init__(self, stream: Any, *, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.bar: tqdm | None = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, stats: ImportStats) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(
                total=stats.total,
                unit=" records",
                file=self.stream,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        self.bar.set_postfix_str(
            f"created {stats.created:,} updated {stats.updated:,} "
            f"unchanged {stats.unchanged:,} failed {stats.failed:,}",
            refresh=False,
        )
        self.bar.update(stats.processed - self.bar.n)


def _summary(
    path: Path,
    organization: Organization,
    options: dict[str, Any],
    stats: ImportStats,
    rejects: _RejectsFile,
) -> str:
    lines = [
        f"Imported {path} into {organization.name} ({options['object_type']}, source "
        f"{options['source']!r}{', initData' if options['init_data'] else ''}): "
        f"{stats.processed:,} records in {stats.elapsed:.1f} s ({stats.rate:,.0f}/s), "
        f"{stats.batches:,} batches.",
        f"  created {stats.created:,}, updated {stats.updated:,}, unchanged "
        f"{stats.unchanged:,}, failed {stats.failed:,}; user events generated "
        f"{stats.events_generated:,}.",
    ]
    if stats.analyzed:
        lines.append(f"  Statistics refreshed (ANALYZE): {', '.join(stats.analyzed)}.")
    if rejects.count:
        lines.append(f"  {rejects.count:,} rejected records written to {rejects.path}.")
    return "\n".join(lines)


class _RejectsFile:
    """NDJSON lines `{"line", "entry", "error"}`; created at the first reject only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: TextIO | None = None

    def write(self, reject: Reject) -> None:
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8")
        try:
            line = json.dumps(reject.as_json(), ensure_ascii=False)
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it, escaped
            line = json.dumps(reject.as_json())
        self._handle.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
