"""The Console pages of custom models and their fields: the list, "+ Add"
(`custom_model_create`), a model's page with its fields, and the page that refuses
deleting a model. Every write goes through `cdp.services`.

A model's page is tabs: Fields here, then the tabs apps register in its "tabs" slot
(journeys' User Events, ingestion's Data Ingestion API); the refused delete page shows
what apps put in its "delete_refused" slot (ConsoleSite.register_panel)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from cdp import services
from cdp.console import (
    COUNT_CAP,
    ConsoleInline,
    ConsoleModelAdmin,
    adopt,
    console_site,
    fresh,
    member_roles,
    service_errors,
)
from cdp.models import DataModel, EntityRecord, FieldDefinition
from cdp.schema import CUSTOM_FIELD_NAME_HELP, KNOWN_TAGS, custom_field_pattern


def _many_organizations(request: HttpRequest) -> bool:
    return request.user.is_superuser or len(member_roles(request)) > 1


class DataModelForm(forms.ModelForm):
    tags = forms.MultipleChoiceField(
        choices=[(tag, tag) for tag in KNOWN_TAGS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="SUPPORT_IGNORED_UPDATE_CFS: ingest requests may name custom fields in "
        "ignoredUpdateCfs to keep their stored values. KEEP_HISTORY: every write that creates "
        "or changes a record keeps a history entry (its changed fields, old and new values), "
        "read with GET /dhub-i/api/v1.0/record-history.",
    )
    service_error_fields = {"momCode": "name"}

    class Meta:
        model = DataModel
        fields = ["organization", "name", "tags"]


class FieldDefinitionForm(forms.ModelForm):
    service_error_fields = {"field": "name"}

    class Meta:
        model = FieldDefinition
        fields = ["name", "label", "required"]
        help_texts = {"name": f"Use {CUSTOM_FIELD_NAME_HELP}; the name sets the type."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # The name fixes the type and the wire group: clients send it.
            self.fields["name"].disabled = True


class FieldDefinitionFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Refuse two new rows with the same name on this save: the service, which writes
        them one by one, would accept the first and refuse the second only on the next
        save, the first then saved. A new row with an existing field's name is the
        service's to refuse ("already exists"), on this save too."""
        super().clean()
        rows_by_name: dict[str, list[forms.BaseForm]] = {}
        for row in self.forms:
            name = row.cleaned_data.get("name") if row.has_changed() else None
            if row.instance.pk is None and name:
                rows_by_name.setdefault(name, []).append(row)
        for name, rows in rows_by_name.items():
            if len(rows) > 1:
                for row in rows:
                    row.add_error("name", f"{name} appears twice")


class FieldDefinitionInline(ConsoleInline):
    model = FieldDefinition
    form = FieldDefinitionForm
    formset = FieldDefinitionFormSet
    fields = ("name", "label", "type", "wire_group", "required")
    readonly_fields = ("type", "wire_group")
    can_delete = False
    verbose_name = "custom field"
    verbose_name_plural = "Fields"

    @admin.display(description="wire group")
    def wire_group(self, obj: FieldDefinition) -> str:
        pattern = custom_field_pattern(obj.name) if obj.name else None
        return pattern.group if pattern else "—"


@admin.register(DataModel, site=console_site)
class DataModelAdmin(ConsoleModelAdmin):
    form = DataModelForm
    console_section = "Custom Model"
    console_item = "Custom Model"
    console_order = 10
    inlines = [FieldDefinitionInline]
    land_on_change_page_after_add = True
    list_display = ("name", "kind", "object_type", "mom_code", "key_field", "tags_shown")
    list_filter = ("kind",)
    search_fields = ("name", "mom_code", "object_type")
    ordering = ("kind", "name")
    change_form_template = "admin/cdp/datamodel/change_form.html"
    console_slots = ("tabs",)

    def get_list_display(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        columns = super().get_list_display(request)
        return (*columns, "organization") if _many_organizations(request) else columns

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = super().get_list_filter(request)
        if _many_organizations(request):
            filters.append(("organization", admin.RelatedOnlyFieldListFilter))
        return filters

    @admin.display(description="tags")
    def tags_shown(self, obj: DataModel) -> str:
        return ", ".join(obj.tags) or "—"

    def get_fields(self, request: HttpRequest, obj: DataModel | None = None) -> tuple:
        if obj is None:
            return ("organization", "name", "tags")
        # A system model's tags are fixed, shown as words rather than as the stored list.
        tags = "tags" if obj.is_custom else "tags_shown"
        return ("name", "kind", "object_type", "mom_code", "key_field", tags, "organization")

    def get_readonly_fields(self, request: HttpRequest, obj: DataModel | None = None) -> tuple:
        if obj is None:
            return ()
        fixed = ("name", "kind", "object_type", "mom_code", "key_field", "organization")
        # A system model keeps the tags its spec gives it.
        return fixed if obj.is_custom else (*fixed, "tags", "tags_shown")

    def get_inlines(self, request: HttpRequest, obj: DataModel | None) -> list:
        return self.inlines if obj is not None else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_changeform_initial_data(request)
        organizations = list(self.writable_organizations(request)[:2])
        if "organization" not in initial and len(organizations) == 1:
            initial["organization"] = organizations[0].pk
        return initial

    def save_model(self, request: HttpRequest, obj: DataModel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        with service_errors():
            if not change:
                saved = services.custom_model_create(
                    organization=data["organization"], name=data["name"], tags=data["tags"]
                )
            elif "tags" in data:
                saved = services.custom_model_tags_set(
                    organization=obj.organization, data_model=fresh(obj), tags=data["tags"]
                )
            else:
                return
        adopt(obj, saved)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        data_model = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.forms:
            if not row.has_changed():
                continue
            data = row.cleaned_data
            with service_errors(row.prefix):
                if row.instance.pk is None:
                    created = services.field_definition_create(
                        organization=data_model.organization,
                        data_model=data_model,
                        name=data["name"],
                        label=data["label"],
                        required=data["required"],
                    )
                    formset.new_objects.append(created)
                else:
                    services.field_definition_update(
                        organization=data_model.organization,
                        field_definition=fresh(row.instance),
                        label=data["label"],
                        required=data["required"],
                    )
                    formset.changed_objects.append((row.instance, row.changed_data))

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A model is never deleted in the Console (docs/decisions.md): one with records
        would take them with it (the records' foreign key cascades), and clients and User
        Events name every model. The delete page, GET or POST, says why and deletes nothing
        (403, as the permission says). Another tenant's id is 404, as on every page."""
        data_model = cast(DataModel, self.get_object(request, unquote(object_id)))
        # Capped, as the large lists count: one bounded scan of the model's key index.
        records = EntityRecord.objects.filter(
            organization_id=data_model.organization_id, data_model=data_model
        )[: COUNT_CAP + 1].count()
        shown = f"{COUNT_CAP:,}+" if records > COUNT_CAP else f"{records:,}"
        paragraphs = []
        if records:
            paragraphs.append(
                format_html(
                    "A model with records cannot be deleted: “{}” holds {} record{}, and "
                    "deleting the model would delete its records, their history and its User "
                    "Events.",
                    data_model,
                    shown,
                    "" if records == 1 else "s",
                )
            )
        if not data_model.is_custom:
            paragraphs.append(
                format_html(
                    "“{}” is a system model: every organization has it, as the Data Ingestion "
                    "API's objectType <code>{}</code>.",
                    data_model,
                    data_model.object_type,
                )
            )
        else:
            paragraphs.append(
                format_html(
                    "Custom models are not deleted: clients send its entries with momCode "
                    "<code>{}</code>, and its User Events and their events name it.",
                    data_model.mom_code,
                )
            )
        # What apps say about the model (journeys: disable its User Events instead) goes
        # before the last word, which holds for every model.
        contributed = self.console_panels(request, data_model, "delete_refused")
        last = (
            "To stop writes to it, stop the clients that send its entries (or revoke their "
            "API keys); a model that receives nothing costs nothing and can stay."
        )
        context = {
            **self.admin_site.each_context(request),
            **self.console_context(request),
            "opts": self.opts,
            "object": data_model,
            "title": f"Cannot delete {self.console_item_name()} “{data_model}”",
            "content": format_html(
                '<div class="delete-refused">{}{}<p>{}</p></div>',
                format_html_join("", "<p>{}</p>", ((p,) for p in paragraphs)),
                format_html_join("", "{}", ((panel.html,) for panel in contributed)),
                last,
            ),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/base_site.html", context, status=403)
