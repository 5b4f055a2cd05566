"""The Console: Django's admin as a site scoped to the signed-in member's
organizations.

Who may sign in: an active staff user (`services.console_access_grant`) holding at least
one membership, or a superuser. What they see and may do is decided in one place, the
`TenantScoped` mixin every Console ModelAdmin and inline derives from:

- querysets hold only the objects of the member's organizations, so another tenant's
  object id answers 404 on every page (change, delete, history, custom views), exactly
  like a missing one;
- foreign-key choices hold only objects of the organizations where the member may write;
- writes follow the member's role in the object's organization: viewers read, editors
  also change models, fields and User Events, admins and owners also members, API keys
  and organization settings (each admin's `write_roles`). Superusers see and do all.

Writes go through the services, which hold every business rule. A service's
ValidationError is shown on the form that caused it (`service_errors` below).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    PermissionDenied,
    ValidationError,
)
from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.urls import path as url_path  # `path` names an error's path below
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from cdp.models import Membership, Organization, Role
from cdp.ratelimit import client_address_of
from cdp.services import MANAGER_ROLES

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_stubs_ext import StrOrPromise

ALL_ROLES = frozenset(Role.values)
EDIT_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.EDITOR})
MANAGE_ROLES = frozenset(MANAGER_ROLES)
READ_ONLY: frozenset[str] = frozenset()

_M = TypeVar("_M", bound=models.Model)


# --- who the signed-in member is ----------------------------------------------------------


class ConsoleRequest(HttpRequest):
    """For annotations only: what the Console keeps on Django's request while it handles it
    (HttpRequest declares none of it). Never instantiated; reads use getattr with a default."""

    _console_roles: dict[int, str]
    console_service_errors: dict[str, ValidationError]


def signed_in_user(request: HttpRequest) -> User:
    """The signed-in user of a Console page: every page is behind the site's sign-in
    (`ConsoleSite.has_permission`), so never the anonymous user."""
    user = request.user
    assert user.is_authenticated
    return user


def member_roles(request: HttpRequest) -> dict[int, str]:
    """The signed-in user's role in each of their organizations (one query per request)."""
    roles = getattr(request, "_console_roles", None)
    if roles is None:
        user = request.user
        roles = (
            dict(Membership.objects.filter(user=user).values_list("organization_id", "role"))
            if user.is_authenticated
            else {}
        )
        cast(ConsoleRequest, request)._console_roles = roles
    return roles


def role_allows(request: HttpRequest, organization_id: int | None, roles: frozenset[str]) -> bool:
    if request.user.is_superuser:
        return True
    roles_by_organization = member_roles(request)
    # An object without an organization (None) is in none of the member's organizations.
    return organization_id is not None and roles_by_organization.get(organization_id) in roles


def organizations_where(request: HttpRequest, roles: frozenset[str]) -> QuerySet[Organization]:
    """The organizations in which the signed-in user holds one of `roles` (all for a
    superuser)."""
    if request.user.is_superuser:
        return Organization.objects.all()
    ids = [org_id for org_id, role in member_roles(request).items() if role in roles]
    return Organization.objects.filter(pk__in=ids)


class OrganizationOwned(Protocol):
    """A Console object other than an organization: it belongs to one."""

    @property
    def organization_id(self) -> int | None: ...


def organization_id_of(obj: models.Model) -> int | None:
    if isinstance(obj, Organization):
        return obj.pk
    # Every model of the Console but Organization has its organization's foreign key.
    return cast(OrganizationOwned, obj).organization_id


# --- the site -----------------------------------------------------------------------------

# The Console's words for the apps, in menu order.
SECTIONS = {"cdp": "Setup", "journeys": "Data Manipulation", "ingestion": "Data Ingestion"}


# What an app contributes to a core model's page: (request, model admin, object) → the
# fragment's context; and a page under one object's: (request, model admin, object) → response.
# The object is one of the model it is registered for (`PanelContext[DataModel]`).
PanelContext = Callable[[HttpRequest, "ConsoleModelAdmin", _M], dict[str, Any]]
ObjectView = Callable[[HttpRequest, "ConsoleModelAdmin", _M], HttpResponse]
# What an app contributes to the home page: (request, organization) → the panel's context.
DashboardContext = Callable[[HttpRequest, Organization], dict[str, Any]]

# The home page's choice of organization lists at most this many (a superuser sees all).
DASHBOARD_ORGANIZATIONS = 200
DASHBOARD_HOURS = 24


def dashboard_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The hours every dashboard panel counts: the last DASHBOARD_HOURS whole hours of the
    current time zone, the current one last, as [start, end) in UTC (so that arithmetic
    on hours crosses no daylight-saving change)."""
    hour = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    end = hour.astimezone(UTC) + timedelta(hours=1)
    return end - timedelta(hours=DASHBOARD_HOURS), end


@dataclass(frozen=True)
class Panel:
    """A part of a core model's Console page that an app contributes (`register_panel`)."""

    key: str
    template: str
    context: PanelContext[Any]
    title: str = ""
    order: int = 50


@dataclass(frozen=True)
class DashboardPanel:
    """A part of the Console's home page that an app contributes
    (`register_dashboard_panel`)."""

    key: str
    template: str
    context: DashboardContext
    title: str = ""
    order: int = 50


@dataclass(frozen=True)
class RenderedPanel:
    """A panel as its page's template shows it: `html` is its fragment, rendered."""

    key: str
    title: str
    html: SafeString


class ConsoleSite(admin.AdminSite):
    """The Console, and the registry through which apps contribute to the core's pages.

    The core imports no app, so an app adds its parts of a core model's pages from its own
    modules when Django loads it (its `admin.py`, or a module its AppConfig.ready()
    imports), as it registers its ModelAdmins:

    - `register_view(route, view, name)`: a page of its own beside the model pages.
    - `register_object_view(model, route, view, name)`: a page under one object's page,
      `<object_id>/<route>`, named `<app_label>_<model_name>_<name>` (e.g.
      `admin:cdp_datamodel_test_ingest`). The view is called as `view(request,
      model_admin, obj)` with the object already looked up in the member's organizations
      (another tenant's id is 404) and viewable; it checks any write permission itself.
    - `register_panel(model, slot, key=…, template=…, context=…)`: a template fragment
      shown in a named slot of the model's pages, rendered with `original` (the object),
      `opts` and what `context(request, model_admin, obj)` returns. A page's admin lists
      the slots of its change page in `console_slots`; its template shows them:

      - `cdp.DataModel` "tabs": a tab of the model's page (`key` makes its element ids
        `tab-<key>`, `title` is its label and heading, `order` its place after Fields);
      - `cdp.DataModel` "delete_refused": paragraphs on the page that refuses deleting it;
      - `cdp.Organization` "callback_tools": links beside the callback settings.
    - `register_dashboard_panel(key, template=…, context=…, title=…, order=…)`: a panel of
      the home page, the dashboard of one organization. The member picks it
      (`?organization=<id>`, first by name when absent; another tenant's id is 404, as
      elsewhere). Each panel is rendered with `organization` and what `context(request,
      organization)` returns, in an element `dashboard-<key>` headed `title`, by `order`.
      Every panel counts the same hours, `dashboard_window()`. Its queries must stay cheap
      on large tables: filtered by the organization and a time range on an indexed column,
      or LIMITed.
    """

    site_title = "cdp Console"
    site_header = "Console"
    index_title = "Models, User Events and ingestion of your organizations"
    site_url = None  # there is no public site to go back to
    enable_nav_sidebar = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._views: list[tuple[str, Any, str]] = []
        self._object_views: dict[type[models.Model], list[tuple[str, ObjectView[Any], str]]] = {}
        self._panels: dict[tuple[type[models.Model], str], list[Panel]] = {}
        self._dashboard_panels: list[DashboardPanel] = []

    def register_view(self, route: str, view: Any, name: str) -> None:
        """A page an app adds to the Console beside its model pages (its admin module
        registers it, as it registers its models): behind the Console's sign-in, at
        `route`, named `name` in the `admin` namespace."""
        self._views.append((route, view, name))

    def register_object_view(
        self, model: type[_M], route: str, view: ObjectView[_M], name: str
    ) -> None:
        """A page an app adds under each object's page of `model` (see the class)."""
        self._object_views.setdefault(model, []).append((route, view, name))

    def object_views(self, model: type[models.Model]) -> list[tuple[str, ObjectView[Any], str]]:
        return list(self._object_views.get(model, []))

    def register_panel(
        self,
        model: type[_M],
        slot: str,
        *,
        key: str,
        template: str,
        context: PanelContext[_M],
        title: str = "",
        order: int = 50,
    ) -> None:
        """A fragment an app adds to `slot` of `model`'s pages (see the class)."""
        panels = self._panels.setdefault((model, slot), [])
        if any(panel.key == key for panel in panels):
            # Two panels with one key would give the page two elements with one id.
            raise ImproperlyConfigured(f"A panel {key!r} is already in {model.__name__} {slot}.")
        panels.append(Panel(key=key, template=template, context=context, title=title, order=order))

    def panels(self, model: type[models.Model], slot: str) -> list[Panel]:
        return sorted(self._panels.get((model, slot), []), key=lambda panel: panel.order)

    def register_dashboard_panel(
        self,
        key: str,
        *,
        template: str,
        context: DashboardContext,
        title: str = "",
        order: int = 50,
    ) -> None:
        """A panel an app adds to the home page (see the class)."""
        if any(panel.key == key for panel in self._dashboard_panels):
            raise ImproperlyConfigured(f"A dashboard panel {key!r} is already registered.")
        self._dashboard_panels.append(
            DashboardPanel(key=key, template=template, context=context, title=title, order=order)
        )

    def dashboard_panels(self) -> list[DashboardPanel]:
        return sorted(self._dashboard_panels, key=lambda panel: panel.order)

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The home page: the sections, and the dashboard of one of the member's
        organizations (the panels apps registered)."""
        choice = organizations_where(request, ALL_ROLES).order_by("name", "pk")
        organizations = list(choice[:DASHBOARD_ORGANIZATIONS])
        organization = self._dashboard_organization(request, organizations)
        rendered = []
        if organization is not None:
            for panel in self.dashboard_panels():
                context = {"organization": organization, **panel.context(request, organization)}
                html = render_to_string(panel.template, context, request)
                rendered.append(RenderedPanel(panel.key, panel.title, mark_safe(html.strip())))
        context = {
            "dashboard_organizations": organizations,
            "dashboard_organization": organization,
            "dashboard_panels": rendered,
            **(extra_context or {}),
        }
        return super().index(request, context)

    def _dashboard_organization(
        self, request: HttpRequest, organizations: list[Organization]
    ) -> Organization | None:
        """The organization `?organization=` names among the member's (another tenant's,
        or no organization's, id is 404), else the first of them."""
        wanted = request.GET.get("organization")
        if not wanted:
            return organizations[0] if organizations else None
        if not wanted.isdigit():
            raise Http404("No such organization in your organizations.")
        chosen = next((o for o in organizations if o.pk == int(wanted)), None)
        if chosen is None and request.user.is_superuser:
            # Past the first DASHBOARD_ORGANIZATIONS of the choice.
            chosen = Organization.objects.filter(pk=int(wanted)).first()
        if chosen is None:
            raise Http404("No such organization in your organizations.")
        return chosen

    def get_urls(self) -> list[Any]:
        extra = [
            url_path(route, self.admin_view(view), name=name) for route, view, name in self._views
        ]
        return [*extra, *super().get_urls()]

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(
            user.is_active and user.is_staff and (user.is_superuser or member_roles(request))
        )

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = self._build_app_dict(request, app_label)
        for label, app in apps.items():
            app["name"] = SECTIONS.get(label, app["name"])
            for entry in app["models"]:
                entry["name"] = self._console_admin(entry["model"]).console_section_name()
            app["models"].sort(key=lambda e: self._console_admin(e["model"]).console_order)
        order = list(SECTIONS)
        return sorted(
            apps.values(),
            key=lambda a: order.index(a["app_label"]) if a["app_label"] in order else 99,
        )

    def _console_admin(self, model: type[models.Model]) -> ConsoleModelAdmin:
        # Every model of the Console is registered with a ConsoleModelAdmin.
        return cast(ConsoleModelAdmin, self._registry[model])

    def app_index(
        self, request: HttpRequest, app_label: str, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        context = {"title": SECTIONS.get(app_label, app_label), **(extra_context or {})}
        return super().app_index(request, app_label, context)


console_site = ConsoleSite(name="admin")


# --- service errors on forms --------------------------------------------------------------


class ServiceRejected(Exception):
    """A service refused a write; `errors` maps a form prefix ("" for the main form) to
    the service's ValidationError."""

    def __init__(self, error: ValidationError, prefix: str = "") -> None:
        super().__init__(str(error))
        self.errors = {prefix: error}


@contextlib.contextmanager
def service_errors(prefix: str = "") -> Iterator[None]:
    """Run a service call; a ValidationError it raises is shown on the form with `prefix`.

    The admin's change form runs in a transaction: ServiceRejected rolls back what was
    written, and the view renders the same POST again with the errors on the form.
    """
    try:
        yield
    except ValidationError as error:
        raise ServiceRejected(error, prefix) from error


_PATH_ROOT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)([.\[][^:]*)?: (.*)\Z", re.DOTALL)


def _service_messages(error: ValidationError) -> list[tuple[str, str, str]]:
    """(root key, full path, text) for each message; a root of "" means no path."""
    found = []
    if hasattr(error, "error_dict"):
        for key, errors in error.error_dict.items():
            for message in ValidationError(errors).messages:
                found.append((key, key, message))
        return found
    for message in error.messages:
        match = _PATH_ROOT.match(message)
        if match:
            found.append((match.group(1), match.group(1) + (match.group(2) or ""), message))
        else:
            found.append(("", "", message))
    return found


def service_errors_apply(
    form: forms.BaseForm, error: ValidationError, *, skip_fields_with_errors: bool = False
) -> None:
    """Attach a service's errors to `form`: a message whose key or path root names a form
    field (through the form's `service_error_fields`, wire name → field name) goes to that
    field, others to the form. A widget that `shows_errors_by_path` (an editor of rows) also
    gets them as `data-errors`, {path: [messages]}, to show each on the row its path
    (`filter.conditions[1].value`) names. `skip_fields_with_errors`: say nothing more about
    a field the form has already refused (its "This field is required." says it)."""
    mapping = getattr(form, "service_error_fields", {})
    refused = set(form.errors) if skip_fields_with_errors else set()
    for key, path, message in _service_messages(error):
        name = mapping.get(key, key)
        field = form.fields.get(name)
        if name in refused:
            continue
        if field is None or field.disabled:
            form.add_error(None, message)
            continue
        form.add_error(name, message)
        if getattr(field.widget, "shows_errors_by_path", False):
            attrs = field.widget.attrs
            by_path = json.loads(attrs.get("data-errors", "{}"))
            by_path.setdefault(path, []).append(message.removeprefix(f"{path}: "))
            attrs["data-errors"] = json.dumps(by_path)


class _ServiceErrorsForm:
    console_service_errors: dict[str, ValidationError] = {}

    def clean(self) -> Any:
        cleaned = super().clean()  # type: ignore[misc]
        error = self.console_service_errors.get(self.prefix or "")  # type: ignore[attr-defined]
        if error is not None:
            service_errors_apply(self, error)  # type: ignore[arg-type]
        return cleaned


def with_service_errors(form_class: type[forms.BaseForm], request: HttpRequest) -> type:
    errors = getattr(request, "console_service_errors", None)
    if not errors:
        return form_class
    metaclass: type[type] = type(form_class)  # the form's (DeclarativeFieldsMetaclass)
    return metaclass(
        form_class.__name__,
        (_ServiceErrorsForm, form_class),
        {"console_service_errors": errors, "__module__": form_class.__module__},
    )


def adopt(obj: models.Model, saved: models.Model) -> None:
    """Make the admin's form instance `obj` the row a service saved, so the admin's
    logging and redirects that follow see its primary key and generated values."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def fresh(obj: _M) -> _M:
    """The stored row of `obj`: the admin's ModelForm has already copied the posted values
    onto `obj`, and services compare against what is stored."""
    return type(obj)._default_manager.get(pk=obj.pk)


# --- the mixin ----------------------------------------------------------------------------


class TenantScoped:
    """Tenant scoping and role permissions for a Console ModelAdmin or inline.

    `write_roles`: roles that may add and change (empty: read-only for everyone but
    superusers, who are also refused when `superuser_writes` is False). Deleting needs
    `allow_delete` on top. For an inline, permissions follow the parent object's
    organization.
    """

    write_roles: frozenset[str] = EDIT_ROLES
    allow_delete = False
    superuser_writes = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return queryset
        ids = list(member_roles(request))
        if queryset.model is Organization:
            return queryset.filter(pk__in=ids)
        return queryset.filter(organization__in=ids)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> models.Model:
        """Another tenant's object is looked up inside the member's organizations, so it
        is missing: 404 on every page, never a redirect nor a 403."""
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object in your organizations.")
        return obj

    def _may_write(self, request: HttpRequest, obj: models.Model | None) -> bool:
        if request.user.is_superuser:
            return self.superuser_writes
        if not self.write_roles:
            return False
        if obj is None:
            return any(role in self.write_roles for role in member_roles(request).values())
        return role_allows(request, organization_id_of(obj), self.write_roles)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(member_roles(request))

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return role_allows(request, organization_id_of(obj), ALL_ROLES)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._may_write(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._may_write(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.allow_delete and self._may_write(request, obj)

    def writable_organizations(self, request: HttpRequest) -> QuerySet[Organization]:
        if request.user.is_superuser and not self.superuser_writes:
            return Organization.objects.none()
        return organizations_where(request, self.write_roles)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """A related-field filter lists only values found in the scoped queryset: the
        default one would list every organization's objects."""
        scoped: list[Any] = []
        for item in super().get_list_filter(request):  # type: ignore[misc]
            if isinstance(item, str) and self._is_relation(item):
                item = (item, admin.RelatedOnlyFieldListFilter)
            scoped.append(item)
        return scoped

    def _is_relation(self, name: str) -> bool:
        try:
            return self.opts.get_field(name).is_relation  # type: ignore[attr-defined]
        except FieldDoesNotExist:  # a lookup path: write its filter out in full
            return False

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        """Choices come from the organizations where the member may write, only."""
        related = db_field.remote_field.model
        writable = self.writable_organizations(request)
        if related is Organization:
            kwargs["queryset"] = writable
        elif any(f.name == "organization" for f in related._meta.fields):
            kwargs["queryset"] = related._default_manager.filter(organization__in=writable)
        else:
            kwargs["queryset"] = related._default_manager.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class ConsoleModelAdmin(TenantScoped, admin.ModelAdmin):
    """Base of every Console ModelAdmin: scoping, the Console's names, service errors."""

    # The Console's name of this page (menu, breadcrumbs, titles) and of one object.
    console_section = ""
    console_item = ""
    console_order = 50
    # After "+ Add", show the new object's page (its generated identifiers).
    land_on_change_page_after_add = False
    actions_on_bottom = False
    # The slots of the change page where apps' panels go (ConsoleSite.register_panel); the
    # change_form template shows each as `console_panels.<slot>`.
    console_slots: tuple[str, ...] = ()
    admin_site: ConsoleSite  # every Console ModelAdmin is registered with `console_site`

    def console_section_name(self) -> StrOrPromise:
        plural = self.opts.verbose_name_plural
        assert plural is not None  # Django sets it when the model class is created
        return self.console_section or capfirst(plural)

    def console_item_name(self) -> StrOrPromise:
        name = self.opts.verbose_name
        assert name is not None  # Django sets it when the model class is created
        return self.console_item or capfirst(name)

    def console_context(self, request: HttpRequest) -> dict[str, Any]:
        return {
            "console_section": self.console_section_name(),
            "console_item": self.console_item_name(),
        }

    def formfield_for_dbfield(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and isinstance(formfield.widget, RelatedFieldWidgetWrapper):
            # No add/change/view pop-ups next to a choice: each object has its own page.
            widget = formfield.widget
            widget.can_add_related = widget.can_change_related = False
            widget.can_view_related = widget.can_delete_related = False
        return formfield

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change, **kwargs)
        return with_service_errors(form, request)

    # What apps contribute to this admin's pages (ConsoleSite's registry).

    def get_urls(self) -> list[URLPattern]:
        contributed = [
            object_view_url(self, route, self._with_object(view), name)
            for route, view, name in self.admin_site.object_views(self.model)
        ]
        return [*contributed, *super().get_urls()]

    def _with_object(self, view: ObjectView[Any]) -> Callable[[HttpRequest, str], HttpResponse]:
        def resolved(request: HttpRequest, object_id: str) -> HttpResponse:
            obj = self.get_object(request, unquote(object_id))  # another tenant's: 404
            if not self.has_view_permission(request, obj):
                raise PermissionDenied
            return view(request, self, obj)

        return resolved

    def console_panels(
        self, request: HttpRequest, obj: models.Model, slot: str
    ) -> list[RenderedPanel]:
        """The panels apps registered in `slot` of this model's pages, rendered for `obj`."""
        rendered = []
        for panel in self.admin_site.panels(self.model, slot):
            context = {"original": obj, "opts": self.opts, **panel.context(request, self, obj)}
            html = render_to_string(panel.template, context, request)
            rendered.append(RenderedPanel(panel.key, panel.title, mark_safe(html.strip())))
        return rendered

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: models.Model | None = None,
    ) -> HttpResponse:
        if change and obj is not None and self.console_slots:
            context["console_panels"] = {
                slot: self.console_panels(request, obj, slot) for slot in self.console_slots
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "title": self.console_section_name(),
            **self.console_context(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {**self.console_context(request), **(extra_context or {})}
        item = self.console_item_name()
        context.setdefault("title", item if object_id else f"Add {item}")
        try:
            return super().changeform_view(request, object_id, form_url, context)
        except ServiceRejected as rejected:
            if getattr(request, "console_service_errors", None):
                # The errors could not be put on the form they came from: say so rather
                # than loop.
                self.message_user(request, str(rejected), messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            # The first pass was rolled back; render the same POST with the errors.
            cast(ConsoleRequest, request).console_service_errors = rejected.errors
            return super().changeform_view(request, object_id, form_url, context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**self.console_context(request), **(extra_context or {})}
        return super().delete_view(request, object_id, context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**self.console_context(request), **(extra_context or {})}
        return super().history_view(request, object_id, context)

    def response_add(
        self, request: HttpRequest, obj: models.Model, post_url_continue: str | None = None
    ) -> HttpResponse:
        if (
            self.land_on_change_page_after_add
            and IS_POPUP_VAR not in request.POST
            and "_addanother" not in request.POST
        ):
            self.message_user(request, f"{self.console_item_name()} “{obj}” was added.")
            return HttpResponseRedirect(
                reverse(
                    f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
                    args=[obj.pk],
                )
            )
        return super().response_add(request, obj, post_url_continue)


def object_view_url(
    model_admin: admin.ModelAdmin,
    route: str,
    view: Callable[[HttpRequest, str], HttpResponse],
    name: str,
) -> URLPattern:
    """The URL of a page under one object's page of `model_admin`: `<object_id>/<route>`,
    behind the Console's sign-in, named `<app_label>_<model_name>_<name>`. `view` is called
    with the object's id as it is in the URL (quoted)."""
    opts = model_admin.opts
    return url_path(
        f"<path:object_id>/{route}",
        model_admin.admin_site.admin_view(view),
        name=f"{opts.app_label}_{opts.model_name}_{name}",
    )


class ConsoleInline(TenantScoped, admin.TabularInline):
    """Base of every Console inline; permissions follow the parent's organization."""

    extra = 1

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = with_service_errors(formset.form, request)
        return formset


def copyable(value: str, element_id: str) -> str:
    """A value in <code> with a copy button (console/console.js)."""
    return format_html(
        '<code id="{}" class="copy-source">{}</code> '
        '<button type="button" class="button copy-button" data-copy-target="{}">Copy</button>',
        element_id,
        value,
        element_id,
    )


# --- Lists of large tables (events, the ingestion log) ------------------------------------

# A list page counts at most this many rows: past it, the page says "10,000+", and no view
# counts a million rows to say how many there are.
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """A paginator whose count stops at COUNT_CAP (one bounded index scan)."""

    @cached_property
    def count(self) -> int:
        # The admin's list pages paginate a QuerySet.
        object_list = cast(QuerySet[Any], self.object_list)
        counted = object_list[: COUNT_CAP + 1].count()  # a LIMITed subquery
        self.capped = counted > COUNT_CAP
        return min(counted, COUNT_CAP)

    capped = False


class LargeListAdmin:
    """For a ModelAdmin whose table grows without bound: a capped count and no second count
    of the whole table. (Its model's manager finds dates by probing, for the date
    hierarchy: cdp.querysets.ProbedDatesQuerySet.)"""

    paginator: ClassVar[type[Paginator]] = CappedCountPaginator
    show_full_result_count = False
    # No "Show counts" beside the filters: each count would scan the table.
    show_facets = admin.ShowFacets.NEVER


class ValueFilter(admin.SimpleListFilter):
    """Filter on one column's exact value, with choices a subclass finds cheaply (from the
    organization's models or User Events), never with a DISTINCT over the table, as
    Django's AllValuesFieldListFilter does."""

    field_name = ""

    def choice_values(self, request: HttpRequest) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in sorted(set(self.choice_values(request)))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(**{self.field_name: value}) if value else queryset


def visible_organization_ids(request: HttpRequest) -> list[int] | None:
    """The organizations the signed-in member sees, or None for a superuser (all)."""
    return None if request.user.is_superuser else list(member_roles(request))


def console_client_address(request: HttpRequest | None) -> str | None:
    """The sign-in's client address for its brute-force limit (django-axes'
    AXES_CLIENT_IP_CALLABLE): the address the outermost trusted proxy saw, as the APIs'
    limits use it."""
    if request is None or not hasattr(request, "META"):
        return None  # a sign-in without a request (force_login): axes stores no address
    address = client_address_of(request.META)
    return None if address == "unknown" else address  # axes keeps addresses as inet
