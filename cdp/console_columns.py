"""Columns of the Console's lists, shared by the apps' admins: long identifiers shown short
with a Copy button for the whole, and an "Export CSV" of a list's filtered rows.

Every list fits a laptop's 1366 px screen (tests/browser/test_console_lists_fit.py): a list
shows the columns a reader scans, identifiers by their first ID_SHOWN characters (as
cdp/admin/records.py shows a cdpId), and the object's page shows the rest.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import slugify

from cdp.console import ConsoleModelAdmin

# The characters of a long identifier (requestId, eventId, webhook id) a list shows.
ID_SHOWN = 8
# An export stops after this many rows and says so in its last line: past it, narrow the
# filters (a date, a source) rather than stream a table of millions.
CSV_EXPORT_CAP = 100_000
CSV_CHUNK = 2_000


def short_id(value: str, element_id: str, *, copy: bool = True, from_end: bool = False) -> str:
    """`value`'s first ID_SHOWN characters (the whole in the tooltip), and a Copy button
    that copies the whole (console/console.js); a short value is shown whole. `copy=False`
    for a list's first column, which Django makes the row's link: a button inside a link
    would open the row. `from_end`: the last ones instead, for ids that differ only at
    their end (every jeConfigId of an organization begins with its group key)."""
    if len(value) <= ID_SHOWN + 1:
        return format_html('<code class="short-id">{}</code>', value)
    shown = short_text(value, from_end=from_end)
    if not copy:
        return format_html('<code class="short-id" title="{}">{}</code>', value, shown)
    return format_html(
        '<code class="short-id" title="{}">{}</code>'
        '<span id="{}" hidden>{}</span>'
        '<button type="button" class="button copy-button" data-copy-target="{}"'
        ' aria-label="Copy {}">Copy</button>',
        value,
        shown,
        element_id,
        value,
        element_id,
        value,
    )


def short_text(value: str, *, from_end: bool = False) -> str:
    """ID_SHOWN characters of `value` and an ellipsis where the rest was (or `value`)."""
    if len(value) <= ID_SHOWN + 1:
        return value
    return f"…{value[-ID_SHOWN:]}" if from_end else f"{value[:ID_SHOWN]}…"


# A CSV column: its header, and the value of one row.
CsvColumn = tuple[str, Callable[[Any], Any]]


class _Echo:
    """A file-like object whose write returns what it is given (Django's "Streaming
    large CSV files" recipe): csv.writer formats each row, the response streams it."""

    def write(self, value: str) -> str:
        return value


def csv_rows(
    queryset: QuerySet[Any], columns: Sequence[CsvColumn], *, cap: int = CSV_EXPORT_CAP
) -> Iterator[str]:
    """The header, then one line per row of `queryset` (at most `cap`), then, when there
    were more, a last line that says the export stopped."""
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _value in columns])
    for n, obj in enumerate(queryset[: cap + 1].iterator(chunk_size=CSV_CHUNK)):
        if n == cap:
            yield writer.writerow(
                [f"# Stopped at {cap:,} rows: narrow the filters to export the rest."]
            )
            return
        yield writer.writerow([_cell(value(obj)) for _header, value in columns])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class CsvExportAdmin:
    """For a ConsoleModelAdmin: an "Export CSV" link on its list
    (templates/admin/change_list_object_tools.html) to `<changelist>/export.csv`, which
    streams the list's rows as its filters, search and date choose them, in the list's
    order, with `csv_columns` (full identifiers). The rows are the admin's queryset, so
    the member's organizations only, as on the list; at most CSV_EXPORT_CAP."""

    csv_columns: Sequence[CsvColumn] = ()

    def csv_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The list's rows as the export reads them: join what `csv_columns` read."""
        return queryset

    def get_urls(self) -> list[URLPattern]:
        admin_self: Any = self
        opts = admin_self.opts
        export = path(
            "export.csv",
            admin_self.admin_site.admin_view(self.csv_export_view),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
        return [export, *super().get_urls()]  # type: ignore[misc]

    def csv_export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        model_admin: ConsoleModelAdmin = self  # type: ignore[assignment]
        if not model_admin.has_view_or_change_permission(request):
            raise PermissionDenied
        changelist = model_admin.get_changelist_instance(request)
        # Filtered, searched and ordered as the list (the member's organizations only).
        queryset = self.csv_queryset(changelist.queryset)
        name = slugify(model_admin.console_section_name()) or model_admin.opts.model_name
        response = StreamingHttpResponse(
            csv_rows(queryset, self.csv_columns), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        model_admin: Any = self
        opts = model_admin.opts
        export_url = reverse(
            f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_export"
        )
        query = request.GET.urlencode()
        context = {
            "csv_export_url": f"{export_url}?{query}" if query else export_url,
            "csv_export_cap": CSV_EXPORT_CAP,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)  # type: ignore[misc]
