"""Preview of a User Event on real data: what it would fire for the model's most recently
updated records, and why, for its saved settings or for changes not saved yet. It reads;
it never writes.

Each record is judged by the very rules the ingest path compiles (journeys/configs.py),
as the write that triggers the User Event would present it: a `Created` User Event sees
the record as created now; a `Changed` one sees it as just updated, with no earlier value
stored (its `previous.` fields read as empty). Every condition is worded with its result
(`filter_explain`), and a record that passes shows the event it would produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from cdp.models import DataModel, EntityRecord, Organization
from cdp.selectors import organization_models
from journeys.changes import CREATED, UPDATED, RecordChange
from journeys.configs import config_rules
from journeys.events import event_as_json
from journeys.filters import filter_explain, with_previous
from journeys.generation import events_plan
from journeys.models import JourneyEventConfig, Trigger
from journeys.services import config_attributes, config_settings_validate, model_schema
from journeys.user_event_settings import UserEventSettings

PREVIEW_DEFAULT = 20
PREVIEW_MAX = 200


@dataclass
class RecordPreview:
    key: str
    fires: bool
    conditions: list[tuple[str, bool]]
    event: dict[str, Any] | None = None
    # The event as the Console's preview page shows it (JSON text), set by that page.
    event_json: str = ""


@dataclass
class Preview:
    records: list[RecordPreview] = field(default_factory=list)

    @property
    def firing(self) -> int:
        return sum(r.fires for r in self.records)

    @property
    def summary(self) -> str:
        return f"{self.firing} of {len(self.records)} would fire"


def user_event_preview(
    *,
    organization: Organization,
    data_model: DataModel,
    trigger: str,
    settings: UserEventSettings,
    limit: int = PREVIEW_DEFAULT,
) -> Preview:
    """The preview of a User Event with these `settings` on `data_model`'s `limit`
    (1–200) most recently updated records. Raises ValidationError for settings the User
    Event could not be saved with."""
    limit = max(1, min(int(limit), PREVIEW_MAX))
    schema = model_schema(organization=organization, data_model=data_model)
    problems = config_settings_validate(settings, schema, trigger=trigger)
    if problems:
        raise ValidationError(problems)
    config = JourneyEventConfig(
        organization=organization,
        data_model=data_model,
        trigger=trigger,
        config_id="",
        event_key="",
        **config_attributes(settings),
    )
    loaded = organization_models(organization=organization).by_pk()[data_model.pk]
    rules = config_rules(config, loaded)
    explain = filter_explain(config.filters or {}, schema)
    action = CREATED if trigger == Trigger.CREATED else UPDATED
    records = EntityRecord.objects.filter(
        organization=organization, data_model=data_model
    ).order_by("-updated_at", "-id")[:limit]
    now_ms = int(timezone.now().timestamp() * 1000)
    preview = Preview()
    for index, record in enumerate(records):
        change = RecordChange(
            index, loaded.pk, loaded.source, record.key, action, None, record.data, record.cdp_id
        )
        view = with_previous(record.data, None) if rules.reads_previous else record.data
        planned = events_plan(
            rules=rules,
            changes=[change],
            fired=(),
            init_data=False,
            cap=None,
            written_at_ms=now_ms,
        )
        event = None
        if planned.rows:
            row = planned.rows[0]
            event = event_as_json(
                row, event_at_ms=row.event_at_ms, je_config_id=None, je_event_key=None
            )
        preview.records.append(RecordPreview(record.key, bool(planned.rows), explain(view), event))
    return preview
