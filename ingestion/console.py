"""The Data Ingestion API tab of a model's Console page: a sample payload, and a test
payload typed there sent through the real pipeline as the signed-in member with one of
their own API keys (`console_ingest`), with "Dry run" showing what it would change.

ingestion/admin/panels.py registers the tab (`data_ingestion_tab`) and its page
`<model id>/test-ingest/` (`test_ingest_view`) on the core's model page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse

from cdp import selectors
from cdp.console import MANAGE_ROLES, ConsoleModelAdmin, role_allows
from cdp.errors import ApiError, error_body
from cdp.models import ApiKey, DataModel, FieldDefinition
from cdp.samples import payload_sample
from ingestion.payload import http_request_id
from ingestion.pipeline import IngestResponse, ingest
from ingestion.rate_limits import api_key_rate_limit_hit


def console_ingest(
    *, api_key: ApiKey, body: str, init_data: bool, request_id: str, dry_run: bool = False
) -> IngestResponse:
    """Ingest `body` (JSON text) as a client holding `api_key` would over HTTP.

    The key must be one the signed-in member holds (`cdp.selectors.api_keys_usable`): that
    replaces the TOKEN/API_KEY check. Everything after it is the HTTP path's: the key's rate
    limits, then the pipeline's one door. Refusals come back as the response the API would
    have answered, never as an exception.
    """
    try:
        # Not logged, as over HTTP: a request refused here never reaches the pipeline.
        api_key_rate_limit_hit(api_key=api_key)
    except ApiError as error:
        answer = error_body(error, request_id)
        if dry_run:
            answer["dryRun"] = True
        return IngestResponse(error.status, orjson.dumps(answer), error=error)
    return ingest(
        organization=api_key.organization,
        api_key=api_key,
        request_id=request_id,
        body=body.encode("utf-8"),
        init_data=init_data,
        dry_run=dry_run,
    )


# --- the tab ------------------------------------------------------------------------------


class TestIngestForm(forms.Form):
    api_key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), label="API key", empty_label=None
    )
    init_data = forms.BooleanField(
        required=False, label="initData=true (a historical load: no User Event fires)"
    )
    payload = forms.CharField(
        label="Payload",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 20, "class": "payload-editor", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, api_keys: QuerySet[ApiKey], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["api_key"]).queryset = api_keys


def _sample(data_model: DataModel) -> str:
    schema = data_model.schema(
        list(
            FieldDefinition.objects.filter(
                organization_id=data_model.organization_id, data_model=data_model
            )
        )
    )
    return json.dumps(payload_sample(data_model=data_model, schema=schema), indent=2)


def data_ingestion_tab(
    request: HttpRequest,
    model_admin: ConsoleModelAdmin,
    data_model: DataModel,
    data: QueryDict | None = None,
) -> dict[str, Any]:
    """The context of the tab (ingestion_panel.html): the sample, and the test form bound
    to `data` (a POST) or holding the sample."""
    keys = selectors.api_keys_usable(organization=data_model.organization, user=request.user)
    sample = _sample(data_model)
    site = model_admin.admin_site.name
    return {
        "sample_payload": sample,
        "test_form": TestIngestForm(data, api_keys=keys, initial={"payload": sample}),
        "has_api_keys": keys.exists(),
        "can_test_ingest": model_admin.has_change_permission(request, data_model),
        "can_manage_keys": role_allows(request, data_model.organization_id, MANAGE_ROLES),
        "api_key_add_url": reverse(f"{site}:cdp_apikey_add")
        + f"?organization={data_model.organization_id}",
        "test_ingest_url": reverse(f"{site}:cdp_datamodel_test_ingest", args=[data_model.pk]),
    }


def test_ingest_view(
    request: HttpRequest, model_admin: ConsoleModelAdmin, data_model: DataModel
) -> HttpResponse:
    """Send a payload through the real pipeline as the signed-in member, with one of
    their own unrevoked API keys, and show the API's answer. With the "Dry run" button
    (`dry_run` in the POST) the pipeline plans the payload and stores nothing: the page
    also shows, entry by entry, what would change and the event it would generate.

    `data_model` is one of the member's organizations' (the registry looked it up);
    sending needs the right to change it."""
    if not model_admin.has_change_permission(request, data_model):
        raise PermissionDenied
    tab = data_ingestion_tab(
        request, model_admin, data_model, request.POST if request.method == "POST" else None
    )
    form = tab["test_form"]
    dry_run = request.method == "POST" and "dry_run" in request.POST
    result = None
    if form.is_valid():
        result = console_ingest(
            api_key=form.cleaned_data["api_key"],
            body=form.cleaned_data["payload"],
            init_data=form.cleaned_data["init_data"],
            request_id=http_request_id(request),
            dry_run=dry_run,
        )

    rows = _dry_run_rows(result.body) if dry_run and result is not None else []
    context = {
        **model_admin.admin_site.each_context(request),
        **model_admin.console_context(request),
        **tab,
        "title": "Data Ingestion API",
        "subtitle": str(data_model),
        "opts": model_admin.opts,
        "original": data_model,
        "result": result,
        "result_body": json.dumps(result.body, indent=2) if result else "",
        "dry_run": dry_run and result is not None,
        "dry_run_entries": rows,
    }
    return TemplateResponse(request, "admin/ingestion/datamodel/test_ingest.html", context)


# --- a dry run's answer, readably ---------------------------------------------------------


def _shown(value: Any) -> str | None:
    """A value of a dry run's changes as text (None: null, shown as a dash)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return None if value is None else str(value)


def _event_shown(event: dict[str, Any]) -> dict[str, Any]:
    at = datetime.fromtimestamp(event["eventAt"] / 1000, tz=UTC)
    return {
        **event,
        "value": _number(event.get("value")),
        "at_iso": at.isoformat(timespec="milliseconds"),
        "at_shown": f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d} UTC",
    }


def _dry_run_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A dry run's results as the Console's table shows them: each entry's action, its
    changes as text and the event it would generate."""
    rows = []
    for item in body.get("results") or []:
        rejected = item.get("status") != 200
        rows.append(
            {
                "index": item.get("index"),
                "ref_id": item.get("refId"),
                "rejected": rejected,
                "action": item.get("errorMessage", "")
                if rejected
                else f"would be {item.get('action')}",
                "cdp_id": item.get("cdpId"),
                "changes": [
                    {"field": name, "from": _shown(change["from"]), "to": _shown(change["to"])}
                    for name, change in (item.get("changes") or {}).items()
                ],
                "event": _event_shown(item["event"]) if item.get("event") else None,
            }
        )
    return rows
