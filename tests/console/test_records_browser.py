"""The Console's Records browser (cdp/admin/records.py): a model's records listed by key,
searched exactly by key, customerId, email or phone through their indexes, and a record's
page with its fields by label, its history, its events and the requests that wrote it.
Read-only for everyone; another organization's records are out of sight (404)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cdp import console as console_module
from cdp import services
from cdp.models import DataModel, EntityRecord, ModelKind
from cdp.schema import TAG_KEEP_HISTORY, TAG_SUPPORT_IGNORED_UPDATE_CFS
from ingestion.console import console_ingest
from ingestion.models import IngestionRequest, RecordHistory
from journeys.models import UserEvent
from tests.conftest import Tenant, records_bulk_create
from tests.console.conftest import url, user_event_create

# 2024-03-01 08:30:00 UTC, in epoch milliseconds.
JOINED_MS = 1_709_281_800_000


def _send(tenant: Tenant, entries: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    body.setdefault("objectType", "custom-model")
    response = console_ingest(
        api_key=tenant.api_key,
        body=json.dumps({"source": "CRM", "entries": entries, **body}),
        init_data=False,
        request_id=uuid.uuid4().hex,
    )
    assert response.status == 200, response.body
    answer = response.body
    assert all(r["status"] == 200 for r in answer["results"]), answer
    return answer


def _member(tenant: Tenant, key: str, **fields: Any) -> dict[str, Any]:
    return {"momCode": tenant.mom_code, "refId": key, **fields}


def _keep_history(tenant: Tenant) -> None:
    services.custom_model_tags_set(
        organization=tenant.organization,
        data_model=tenant.model,
        tags=[TAG_SUPPORT_IGNORED_UPDATE_CFS, TAG_KEEP_HISTORY],
    )


def _system_model(tenant: Tenant, object_type: str) -> DataModel:
    return DataModel.objects.get(
        organization=tenant.organization, kind=ModelKind.SYSTEM, object_type=object_type
    )


def _record(tenant: Tenant, key: str) -> EntityRecord:
    return EntityRecord.objects.get(organization=tenant.organization, key=key)


def _order(key: str, email: str, phone: str) -> dict[str, Any]:
    return {
        "orderId": key,
        "orderStatus": "paid",
        "customerId": f"C-{key}",
        "customerName": "Mai Tran",
        "customerEmail": email,
        "customerPhone": phone,
        "items": [{"productSku": "SKU-1", "productName": "Tea"}],
    }


@pytest.fixture
def records(tenant_a: Tenant, tenant_b: Tenant) -> dict[str, Any]:
    """A's Membership model keeps history and has a User Event; its records R-1 (written
    twice), R-2, R-3 (no identifier) and one keyed like B's customerId; an Order that names
    its email customerEmail; a Customer Identity (no history). B holds records with A's
    very identifiers and keys."""
    _keep_history(tenant_a)
    config = user_event_create(tenant_a)
    first = _send(
        tenant_a,
        [
            _member(
                tenant_a,
                "R-1",
                customerId="C-1",
                email="Lan@Acme.test",
                phone="0901",
                customFieldTexts={"customField01": "gold"},
                customFieldTimestamps={"customFieldTimestamp01": JOINED_MS},
            ),
            _member(tenant_a, "R-2", customerId="C-2", email="minh@acme.test", phone="0902"),
            _member(tenant_a, "R-3"),
            _member(tenant_a, "C-B", email="keyed@acme.test"),
        ],
        jeConfigId=config.config_id,
    )
    second = _send(
        tenant_a,
        [_member(tenant_a, "R-1", customFieldTexts={"customField01": "silver"})],
    )
    _send(tenant_a, [_order("O-1", "Buyer@Acme.test", "0903")], objectType="order")
    _send(
        tenant_a,
        [{"customerId": "C-9", "email": "hoa@acme.test", "fullName": "Hoa Le"}],
        objectType="customer-identity",
    )
    _send(
        tenant_b,
        [
            _member(tenant_b, "R-1", customerId="C-1", email="lan@acme.test", phone="0901"),
            _member(tenant_b, "R-9", customerId="C-B", phone="0902"),
        ],
    )
    return {"config": config, "first": first, "second": second}


def _row(page: str, marker: str) -> str:
    """The table row of `page` that holds `marker`."""
    at = page.index(marker)
    return page[page.rindex("<tr", 0, at) : page.index("</tr>", at)]


def _keys(response) -> list[str]:
    return [record.key for record in response.context["cl"].result_list]


def _changelist(**params: Any) -> tuple[str, dict[str, Any]]:
    return url("cdp_entityrecord_changelist"), params


# --- the list -----------------------------------------------------------------------------


def test_the_list_shows_the_members_records_only_with_their_columns(
    console, admin_a, tenant_a, records
):
    console.force_login(admin_a)

    response = console.get(url("cdp_entityrecord_changelist"))

    assert response.status_code == 200
    assert set(_keys(response)) == {"R-1", "R-2", "R-3", "C-B", "O-1", "C-9"}
    page = response.content.decode()
    r1 = _record(tenant_a, "R-1")
    row = _row(page, f'id="cdp-id-{r1.pk}"')
    assert f">{r1.cdp_id[:8]}…</code>" in row
    assert f'<span id="cdp-id-{r1.pk}" hidden>{r1.cdp_id}</span>' in page
    assert "C-1" in row and "Lan@<wbr>Acme.test" in row and "0901" in row and "CRM" in row
    updated = r1.updated_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f">{updated}\u00a0UTC</time>" in row
    assert str(tenant_a.model) in row  # the model column: the list holds several
    # The Order's email and phone are its customerEmail and customerPhone.
    order_row = _row(page, f'id="cdp-id-{_record(tenant_a, "O-1").pk}"')
    assert "Buyer@<wbr>Acme.test" in order_row and "0903" in order_row and ">Order<" in order_row
    # Nothing of B's shows, nor a way to write.
    assert "Globex" not in page and "R-9" not in page
    assert 'name="_selected_action"' not in page
    assert url("cdp_entityrecord_add") not in page


def test_the_model_filter_lists_one_models_records_in_key_order(
    console, admin_a, tenant_a, records
):
    console.force_login(admin_a)

    response = console.get(url("cdp_entityrecord_changelist"), {"data_model": tenant_a.model.pk})

    assert _keys(response) == ["C-B", "R-1", "R-2", "R-3"]
    assert response.context["title"] == f"Records of {tenant_a.model}"
    assert 'class="field-model_shown"' not in response.content.decode()


def test_another_organizations_records_are_out_of_sight(
    console, admin_b, tenant_a, tenant_b, records
):
    console.force_login(admin_b)
    a_record = _record(tenant_a, "R-2")
    changelist = url("cdp_entityrecord_changelist")

    listed = console.get(changelist)
    by_a_model = console.get(changelist, {"data_model": tenant_a.model.pk})
    by_a_identifiers = [
        console.get(changelist, {"q": term}) for term in ("R-2", "C-2", "minh@acme.test", "0903")
    ]

    assert set(_keys(listed)) == {"R-1", "R-9"}
    assert {r.organization_id for r in listed.context["cl"].result_list} == {
        tenant_b.organization.pk
    }
    assert _keys(by_a_model) == []
    assert str(tenant_a.model) not in by_a_model.content.decode()
    assert [_keys(found) for found in by_a_identifiers] == [[], [], [], []]
    for page in ("change", "history", "delete"):
        assert console.get(url(f"cdp_entityrecord_{page}", a_record.pk)).status_code == 404
        assert console.get(url(f"cdp_entityrecord_{page}", 999_999)).status_code == 404


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("R-2", ["R-2"]),  # a key
        ("C-1", ["R-1"]),  # a customerId
        ("lan@acme.TEST", ["R-1"]),  # an email, in any case
        ("buyer@acme.test", ["O-1"]),  # an Order's customerEmail
        ("0902", ["R-2"]),  # a phone
        ("0903", ["O-1"]),  # an Order's customerPhone
        ("C-B", ["C-B"]),  # A's key (B's record with that customerId is not A's)
        ("C-9", ["C-9"]),  # a Customer Identity's key and customerId
        ("  R-3  ", ["R-3"]),
        ("R-", []),  # exact: no prefix,
        ("acme.test", []),  # no substring,
        ("gold", []),  # no other field
    ],
)
def test_the_search_finds_exactly_the_records_an_identifier_names(
    console, admin_a, records, term, expected
):
    console.force_login(admin_a)

    with CaptureQueriesContext(connection) as queries:
        response = console.get(url("cdp_entityrecord_changelist"), {"q": term})

    assert sorted(_keys(response)) == expected
    searched = [q["sql"] for q in queries.captured_queries if "cdp_entityrecord" in q["sql"]]
    assert searched and not [sql for sql in searched if "LIKE" in sql or "UPPER(" in sql]


def test_the_search_inside_a_model_finds_only_that_models_records(
    console, admin_a, tenant_a, records
):
    console.force_login(admin_a)
    changelist = url("cdp_entityrecord_changelist")
    orders = _system_model(tenant_a, "order")

    in_membership = console.get(changelist, {"data_model": tenant_a.model.pk, "q": "0903"})
    in_orders = console.get(changelist, {"data_model": orders.pk, "q": "0903"})

    assert _keys(in_membership) == []
    assert _keys(in_orders) == ["O-1"]


def test_past_the_cap_the_list_says_more_than_and_counts_no_further(
    console, admin_a, records, monkeypatch
):
    monkeypatch.setattr(console_module, "COUNT_CAP", 3)
    console.force_login(admin_a)

    with CaptureQueriesContext(connection) as queries:
        response = console.get(url("cdp_entityrecord_changelist"))
        # The filter's counts ("Show counts") would count each model's records: not offered.
        faceted = console.get(url("cdp_entityrecord_changelist"), {"_facets": "1"})

    assert re.search(r'id="capped-count">more than 3 records', response.content.decode())
    assert len(response.context["cl"].result_list) == 6
    assert "Show counts" not in response.content.decode()
    assert faceted.status_code == 200 and not faceted.context["cl"].add_facets
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 2
    assert all(re.search(r"LIMIT \d+", sql, re.IGNORECASE) for sql in counts), counts


# --- a record's page ----------------------------------------------------------------------


def test_a_records_page_shows_its_fields_by_label_and_type(console, admin_a, tenant_a, records):
    console.force_login(admin_a)
    record = _record(tenant_a, "R-1")

    response = console.get(url("cdp_entityrecord_change", record.pk))

    assert response.status_code == 200
    fields = {f.name: f for f in response.context["record_fields"]}
    assert (fields["customField01"].label, fields["customField01"].type) == ("Tier", "text")
    assert fields["customField01"].custom and fields["customField01"].text == "silver"
    joined = fields["customFieldTimestamp01"]
    assert (joined.label, joined.type, joined.text) == ("Joined", "timestamp", str(JOINED_MS))
    assert ">2024-03-01 08:30:00\u00a0UTC</time>" in joined.moment
    assert (fields["email"].label, fields["email"].custom) == ("email", False)
    assert fields["email"].text == "Lan@Acme.test"
    page = response.content.decode()
    assert 'data-field="customField01"' in page and ">Tier <span" in page
    assert record.cdp_id in page and 'id="record-cdp-id"' in page
    created = record.created_at.strftime("%Y-%m-%d %H:%M:%S")
    updated = record.updated_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f">{created}\u00a0UTC</time>" in page and f">{updated}\u00a0UTC</time>" in page
    assert url("cdp_datamodel_change", tenant_a.model.pk) in page


def test_a_records_page_shows_its_history_events_and_the_requests_that_wrote_it(
    console, admin_a, tenant_a, records
):
    console.force_login(admin_a)
    record = _record(tenant_a, "R-1")
    first, second = records["first"]["requestId"], records["second"]["requestId"]
    logged = {
        r.request_id: r.pk for r in IngestionRequest.objects.filter(request_id__in=[first, second])
    }
    event = UserEvent.objects.get(organization=tenant_a.organization, source_id="R-1")

    response = console.get(url("cdp_entityrecord_change", record.pk))

    page = response.content.decode()
    history = page.split('id="record-history-table"', 1)[1].split("</table>", 1)[0]
    history = re.sub(r"\s+", " ", history)
    entries = re.findall(r'class="record-history-entry" data-request-id="(\w+)"', history)
    assert entries == [second, first]  # newest first
    newest = history.split("</tr>", 2)[1]
    assert "<code>customField01</code>: <code>gold</code> → <code>silver</code>" in newest
    assert 'title="null">—</span> → <code>gold</code>' in history  # created: from null
    events = page.split('id="record-events-table"', 1)[1].split("</table>", 1)[0]
    assert url("journeys_userevent_change", event.pk) in events
    assert "membership_created" in events and event.event_id in events
    assert events.count('class="record-event"') == 1
    log = url("journeys_userevent_changelist") + f"?q=R-1&amp;source={tenant_a.mom_code}"
    assert log in page
    requests = page.split('id="record-requests-table"', 1)[1].split("</table>", 1)[0]
    links = re.findall(r'href="([^"]+)"', requests)
    assert links == [
        url("ingestion_ingestionrequest_change", logged[second]),
        url("ingestion_ingestionrequest_change", logged[first]),
    ]
    # The panels come in their order: history, events, requests.
    assert page.index('id="record-history"') < page.index('id="record-events"')
    assert page.index('id="record-events"') < page.index('id="record-requests"')


def test_a_record_of_a_model_without_history_says_where_its_requests_are(
    console, admin_a, tenant_a, records
):
    console.force_login(admin_a)
    record = _record(tenant_a, "C-9")

    response = console.get(url("cdp_entityrecord_change", record.pk))

    page = response.content.decode()
    assert 'id="record-history-off"' in page and "keeps no history" in page
    requests = page.split('id="record-requests-off"', 1)[1].split("</p>", 1)[0]
    assert "searchable by requestId" in requests
    assert url("ingestion_ingestionrequest_changelist") in requests
    assert 'id="record-events-empty"' in page
    assert RecordHistory.objects.filter(key="C-9").count() == 0
    fields = {f.name: f for f in response.context["record_fields"]}
    assert (fields["fullName"].text, fields["fullName"].type) == ("Hoa Le", "text")


def test_the_models_page_has_a_records_tab_with_its_search(console, admin_a, tenant_a, records):
    console.force_login(admin_a)

    page = console.get(url("cdp_datamodel_change", tenant_a.model.pk)).content.decode()

    assert 'id="tab-link-records"' in page
    tab = page.split('id="tab-records"', 1)[1].split("</section>", 1)[0]
    assert f'href="{url("cdp_entityrecord_changelist")}?data_model={tenant_a.model.pk}"' in tab
    assert f'name="data_model" value="{tenant_a.model.pk}"' in tab and 'name="q"' in tab


# --- roles --------------------------------------------------------------------------------


def test_records_are_read_only_for_every_role_and_the_superuser(
    console, viewer_a, owner_a, superuser, tenant_a, tenant_b, records
):
    record = _record(tenant_a, "R-2")
    before = EntityRecord.objects.filter(pk=record.pk).values().get()
    change = url("cdp_entityrecord_change", record.pk)

    for user in (viewer_a, owner_a, superuser):
        console.force_login(user)
        assert console.get(url("cdp_entityrecord_changelist")).status_code == 200
        response = console.get(change)
        assert response.status_code == 200
        assert not response.context["has_change_permission"]
        assert console.post(change, {"key": "Hijacked"}).status_code == 403
        assert console.get(url("cdp_entityrecord_add")).status_code == 403
        assert (
            console.post(url("cdp_entityrecord_delete", record.pk), {"post": "yes"}).status_code
            == 403
        )

    assert EntityRecord.objects.filter(pk=record.pk).values().get() == before


def test_a_superuser_sees_every_organizations_records(
    console, superuser, tenant_a, tenant_b, records
):
    console.force_login(superuser)
    changelist = url("cdp_entityrecord_changelist")

    listed = console.get(changelist)
    found = console.get(changelist, {"q": "C-1"})

    assert {"R-9", "C-9"} <= set(_keys(listed))
    assert sorted((r.organization_id, r.key) for r in found.context["cl"].result_list) == [
        (tenant_a.organization.pk, "R-1"),
        (tenant_b.organization.pk, "R-1"),
    ]
    assert "Globex" in listed.content.decode() and "Acme Retail" in listed.content.decode()
    b_record = _record(tenant_b, "R-9")
    assert console.get(url("cdp_entityrecord_change", b_record.pk)).status_code == 200


# --- queries ------------------------------------------------------------------------------

# The session and its user, the member's roles, the member's models (the filter, the model
# column), the capped count, the page.
LIST_QUERIES = 6
# The session and its user, the member's roles, the record, its model, the model's custom
# fields (its schema), its history (once for both ingestion panels), the Ingestion log rows
# of the history's requests, its events.
RECORD_QUERIES = 9


@pytest.mark.parametrize("extra", [0, 60])
def test_the_list_makes_the_same_few_queries_however_many_records(
    console, admin_a, tenant_a, records, django_assert_num_queries, extra
):
    for start in range(0, extra, 30):  # 30 entries a request, under its limit
        _send(
            tenant_a,
            [
                _member(tenant_a, f"X-{n:03}", email=f"x{n}@acme.test")
                for n in range(start, start + 30)
            ],
        )
    console.force_login(admin_a)
    changelist = url("cdp_entityrecord_changelist")

    with django_assert_num_queries(LIST_QUERIES):
        console.get(changelist)
    with django_assert_num_queries(LIST_QUERIES):
        console.get(changelist, {"data_model": tenant_a.model.pk, "q": "lan@acme.test"})


def test_a_records_page_makes_a_fixed_number_of_queries(
    console, admin_a, tenant_a, records, django_assert_num_queries
):
    console.force_login(admin_a)
    record = _record(tenant_a, "R-1")

    with django_assert_num_queries(RECORD_QUERIES):
        response = console.get(url("cdp_entityrecord_change", record.pk))

    assert response.status_code == 200


def _filler(tenant: Tenant, count: int) -> None:
    """`count` more records of the tenant's model, each with its own identifiers, and the
    table analyzed: the planner then prices the lookups as it would on a large table."""
    records_bulk_create(
        tenant,
        count,
        "F",
        lambda n, key: {"customerId": f"FC-{n}", "email": f"f{n}@acme.test", "phone": f"09{n:08}"},
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cdp_entityrecord")


def test_every_lookup_of_the_list_is_served_by_an_index(console, admin_a, tenant_a, records):
    """The list's, the model filter's and the search's SELECTs on records, on a table of
    some thousands: the list reads the unique index in its order (no sort of the
    organization's records); the search is one index probe per alternative, the key's and
    each identifier's, never a read of the organization's records."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the plans are PostgreSQL's")
    _filler(tenant_a, 5000)
    console.force_login(admin_a)
    changelist = url("cdp_entityrecord_changelist")
    pages = [
        {},
        {"data_model": tenant_a.model.pk},
        {"q": "lan@acme.test"},
        {"data_model": tenant_a.model.pk, "q": "0901"},
    ]
    plans = []
    for params in pages:
        with CaptureQueriesContext(connection) as queries:
            console.get(changelist, params)
        lookups = [
            q["sql"] for q in queries.captured_queries if 'FROM "cdp_entityrecord"' in q["sql"]
        ]
        assert len(lookups) == 2, lookups  # the capped count and the page
        with connection.cursor() as cursor:
            for sql in lookups:
                cursor.execute("EXPLAIN " + sql)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    for plan in plans:
        assert "Seq Scan" not in plan, plan
    listed = plans[1::2][:2]  # the rows of the list and of the model filter
    for plan in listed:
        assert "Index Scan using record_unique_key" in plan and "Sort" not in plan, plan
    for plan in plans[4:]:
        assert "BitmapOr" in plan, plan
        for index in ("record_unique_key", "record_org_customer_id", "record_org_email"):
            assert f"Bitmap Index Scan on {index}" in plan, plan
        assert "Bitmap Index Scan on record_org_phone" in plan, plan
