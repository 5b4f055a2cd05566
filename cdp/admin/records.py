"""The Console's Records (Setup): a read-only browser of the records of an organization's
models, for everyone who may sign in (viewers included); nobody writes here, superusers
neither (records are written by the ingest pipeline only).

- The list: every record of the member's organizations, or of one model (the "model"
  filter, which a model's "Records" tab links to). Built for tables of millions of rows:
  the count stops at the cap (LargeListAdmin), the order is the unique index's
  (organization, model, key), so a model's records come by key, and the columns cannot
  be re-sorted. The search is an exact match on the key, customerId, email (any case) or
  phone, each served by its index (cdp.models: `record_unique_key`, `record_org_*`).
- A record's page: its fields by label and type (the model's schema), its times with
  their zone, then what apps put in its "record" slot (ConsoleSite.register_panel):
  ingestion's history and the requests that wrote it, journeys' events.

Another organization's record is missing (404), as on every Console page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html

from cdp.console import (
    READ_ONLY,
    ConsoleModelAdmin,
    LargeListAdmin,
    console_site,
    copyable,
    member_roles,
    visible_organization_ids,
)
from cdp.console_columns import CsvExportAdmin, short_id
from cdp.models import (
    RECORD_IDENTIFIER_KEYS,
    RECORD_IDENTIFIERS,
    DataModel,
    EntityRecord,
    FieldDefinition,
)
from cdp.schema import Field, FieldType
from cdp.selectors import record_identifier_condition

# How a time reads on these pages: to the second, with its zone (the Console's, UTC); a
# narrow column breaks it between the date and the time only.
MOMENT_FORMAT = "Y-m-d H:i:s\u00a0T"
# The characters of a cdpId the list shows; its Copy button copies the whole one.


def moment_shown(moment: datetime) -> str:
    """A time as the Console's records pages show it, in a <time> element."""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}">{}</time>',
        local.isoformat(timespec="seconds"),
        dateformat.format(local, MOMENT_FORMAT),
    )


def _many_organizations(request: HttpRequest) -> bool:
    return request.user.is_superuser or len(member_roles(request)) > 1


def record_models(request: HttpRequest) -> dict[int, DataModel]:
    """The models of the signed-in member's organizations (every one for a superuser), by
    id, with their organization: one query per request, kept on it (the model filter, the
    model column and the key search all read it)."""
    cached: dict[int, DataModel] | None = getattr(request, "_console_record_models", None)
    if cached is None:
        models = DataModel.objects.select_related("organization").order_by(
            "organization__name", "kind", "name"
        )
        if (ids := visible_organization_ids(request)) is not None:
            models = models.filter(organization__in=ids)
        cached = {model.pk: model for model in models}
        setattr(request, "_console_record_models", cached)  # noqa: B010 (not a declared one)
    return cached


def chosen_model(request: HttpRequest) -> DataModel | None:
    """The model the list is narrowed to (?data_model=<id>), when it is one the member
    sees; another tenant's id is none of them."""
    raw = request.GET.get(RecordModelFilter.parameter_name, "")
    return record_models(request).get(int(raw)) if raw.isdigit() else None


class RecordModelFilter(admin.SimpleListFilter):
    """The records of one model. Its choices are the member's models (never a DISTINCT
    over the records)."""

    title = "model"
    parameter_name = "data_model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        many = _many_organizations(request)
        return [
            (str(pk), f"{model} ({model.organization})" if many else str(model))
            for pk, model in record_models(request).items()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        model = chosen_model(request)
        if model is None:
            return queryset.none()
        # Both leading columns of the unique index: the model's records come in key order.
        return queryset.filter(organization_id=model.organization_id, data_model_id=model.pk)


def _identifier(record: EntityRecord, kind: str) -> str:
    """customerId, email or phone as the identifier indexes read it (`RECORD_IDENTIFIERS`:
    the first of its fields the record holds, so an Order's customerEmail and
    customerPhone); a dash when the record has none."""
    return _identifier_value(record, kind) or "—"


def _identifier_value(record: EntityRecord, kind: str) -> str:
    """The identifier as `_identifier` finds it; "" when the record has none."""
    for name in RECORD_IDENTIFIER_KEYS[kind]:
        value = record.data.get(name)
        if value is not None:
            return str(value)
    return ""


# --- a record's fields, by the model's schema -------------------------------------------


@dataclass(frozen=True)
class RecordField:
    """One stored field of a record as its page shows it."""

    name: str
    label: str  # a custom field's label; a built-in field's name
    type: str
    custom: bool
    in_schema: bool
    text: str | None  # the value as text; None: null
    moment: str = ""  # a timestamp's time, with its zone
    block: bool = False  # shown as a block of JSON (an object list)


def _value_text(field: Field | None, value: Any) -> tuple[str | None, str, bool]:
    if value is None or isinstance(value, str):
        return value, "", False
    if field is not None and field.type == FieldType.OBJECT_LIST:
        return json.dumps(value, ensure_ascii=False, indent=2), "", True
    moment = ""
    if field is not None and field.type == FieldType.TIMESTAMP and isinstance(value, int):
        try:
            moment = moment_shown(datetime.fromtimestamp(value / 1000, tz=UTC))
        except (OverflowError, OSError, ValueError):
            moment = ""  # out of the platform's range: the number alone
    return json.dumps(value, ensure_ascii=False), moment, False


def record_fields(record: EntityRecord, schema_fields: dict[str, Field]) -> list[RecordField]:
    """The record's stored fields in the schema's order (built-in, then custom), then any
    the schema does not name."""
    data = record.data
    ordered = [name for name in schema_fields if name in data]
    ordered += [name for name in data if name not in schema_fields]
    rows = []
    for name in ordered:
        field = schema_fields.get(name)
        text, moment, block = _value_text(field, data[name])
        rows.append(
            RecordField(
                name=name,
                label=(field.label or name) if field is not None else name,
                type=field.type.value if field is not None else "—",
                custom=field is not None and field.custom,
                in_schema=field is not None,
                text=text,
                moment=moment,
                block=block,
            )
        )
    return rows


# --- the pages ----------------------------------------------------------------------------


@admin.register(EntityRecord, site=console_site)
class EntityRecordAdmin(CsvExportAdmin, LargeListAdmin, ConsoleModelAdmin):
    console_section = "Records"
    console_item = "Record"
    console_order = 20
    write_roles = READ_ONLY
    superuser_writes = False
    actions = None
    list_display = (
        "key",
        "cdp_id_short",
        "customer_id",
        "email",
        "phone",
        "source",
        "updated_shown",
    )
    # "Export CSV": the records the model filter and the search choose, full ids.
    csv_columns = (
        ("key", lambda r: r.key),
        ("cdpId", lambda r: r.cdp_id),
        ("customerId", lambda r: _identifier_value(r, "customerId")),
        ("email", lambda r: _identifier_value(r, "email")),
        ("phone", lambda r: _identifier_value(r, "phone")),
        ("source", lambda r: r.source),
        ("updatedAt", lambda r: r.updated_at),
        ("model", lambda r: r.data_model),
        ("organization", lambda r: r.data_model.organization),
    )
    list_filter = (RecordModelFilter,)

    def csv_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("data_model__organization")

    # Shows the search box; `get_search_results` makes the lookups (exact, indexed).
    search_fields = ("key",)
    search_help_text = (
        "Exact match: a record's key, customerId, email (any case) or phone. Choose a "
        "model to narrow it."
    )
    # The unique index's order: inside a model, by key. No column re-sorts the list (a sort
    # on any other column would read every record of the organization).
    ordering = ("organization_id", "data_model_id", "key")
    sortable_by = ()
    list_per_page = 50
    change_list_template = "admin/cdp/entityrecord/change_list.html"
    change_form_template = "admin/cdp/entityrecord/change_form.html"
    console_slots = ("record",)
    fields = (
        "key_shown",
        "model_link",
        "cdp_id_shown",
        "source",
        "created_shown",
        "updated_shown",
    )
    readonly_fields = fields

    def get_list_display(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        """The model column when the list holds several models, the organization column
        when several organizations: both read from the request's models (no join)."""
        columns: tuple[Any, ...] = tuple(super().get_list_display(request))
        models = record_models(request)

        @admin.display(description="model")
        def model_shown(record: EntityRecord) -> str:
            return str(models[record.data_model_id])

        @admin.display(description="organization")
        def organization_shown(record: EntityRecord) -> str:
            return str(models[record.data_model_id].organization)

        if chosen_model(request) is None:
            columns += (model_shown,)
        if _many_organizations(request):
            columns += (organization_shown,)
        return columns

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_fields(request, obj))
        return (*fields, "organization") if _many_organizations(request) else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Records whose key, customerId, email (any case) or phone is the term exactly.
        Each alternative is one its index serves: the key with the organization's models
        (the unique index's leading columns), each identifier with the organization (its
        expression index)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        models = record_models(request)
        chosen = chosen_model(request)
        matches = Q(data_model_id__in=[chosen.pk] if chosen else list(models), key=term)
        for kind in RECORD_IDENTIFIERS:
            matches |= record_identifier_condition(kind=kind, value=term)
        if request.user.is_superuser:
            # Every index leads with the organization: name them, as a member's list does.
            queryset = queryset.filter(
                organization_id__in=sorted({m.organization_id for m in models.values()})
            )
        return queryset.filter(matches), False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        model = chosen_model(request)
        context: dict[str, Any] = {"records_model": model}
        if model is not None:
            context["title"] = f"Records of {model}"
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None:
            record: EntityRecord = obj
            definitions = FieldDefinition.objects.filter(
                organization_id=record.organization_id, data_model_id=record.data_model_id
            ).order_by("name")
            schema = record.data_model.schema(list(definitions))
            context["record_fields"] = record_fields(record, schema.fields)
            context["records_url"] = self._model_records_url(record.data_model)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _model_records_url(self, data_model: DataModel) -> str:
        changelist = reverse(f"{self.admin_site.name}:cdp_entityrecord_changelist")
        return f"{changelist}?{RecordModelFilter.parameter_name}={data_model.pk}"

    # --- columns and fields

    @admin.display(description="cdpId")
    def cdp_id_short(self, record: EntityRecord) -> str:
        return short_id(record.cdp_id, f"cdp-id-{record.pk}")

    @admin.display(description="ID (cdpId)")
    def cdp_id_shown(self, record: EntityRecord) -> str:
        return copyable(record.cdp_id, "record-cdp-id")

    @admin.display(description="customerId")
    def customer_id(self, record: EntityRecord) -> str:
        return _identifier(record, "customerId")

    @admin.display(description="email")
    def email(self, record: EntityRecord) -> str:
        # A narrow column breaks an address after its @ rather than inside a name.
        local, at, domain = _identifier(record, "email").partition("@")
        return format_html("{}{}<wbr>{}", local, at, domain) if at else local

    @admin.display(description="phone")
    def phone(self, record: EntityRecord) -> str:
        return _identifier(record, "phone")

    @admin.display(description="updated at")
    def updated_shown(self, record: EntityRecord) -> str:
        return moment_shown(record.updated_at)

    @admin.display(description="created at")
    def created_shown(self, record: EntityRecord) -> str:
        return moment_shown(record.created_at)

    @admin.display(description="key")
    def key_shown(self, record: EntityRecord) -> str:
        return format_html(
            '<code>{}</code> <span class="record-key-field">({})</span>',
            record.key,
            record.data_model.key_field,
        )

    @admin.display(description="model")
    def model_link(self, record: EntityRecord) -> str:
        data_model = record.data_model
        model_url = reverse(f"{self.admin_site.name}:cdp_datamodel_change", args=[data_model.pk])
        return format_html(
            '<a href="{}">{}</a> · <a id="model-records-link" href="{}">its records</a>',
            model_url,
            data_model,
            self._model_records_url(data_model),
        )


def records_tab(
    request: HttpRequest, model_admin: ConsoleModelAdmin, data_model: DataModel
) -> dict[str, Any]:
    """A model's Records tab: a search of its records and the way to their list."""
    changelist = reverse(f"{model_admin.admin_site.name}:cdp_entityrecord_changelist")
    return {
        "records_url": f"{changelist}?{RecordModelFilter.parameter_name}={data_model.pk}",
        "records_changelist_url": changelist,
        "records_filter": RecordModelFilter.parameter_name,
    }


console_site.register_panel(
    DataModel,
    "tabs",
    key="records",
    title="Records",
    template="admin/cdp/entityrecord/model_tab.html",
    context=records_tab,
    order=5,
)
