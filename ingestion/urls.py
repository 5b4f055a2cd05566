from django.urls import path

from ingestion.api.views import (
    ErasureView,
    RecordHistoryView,
    RecordView,
    UserEventsView,
    ingest_endpoint,
)

urlpatterns = [
    path("ingest", ingest_endpoint, name="ingest"),
    path("records/<str:object_type>/<path:key>", RecordView.as_view(), name="record"),
    path(
        "record-history/<str:object_type>/<path:key>",
        RecordHistoryView.as_view(),
        name="record-history",
    ),
    path("user-events", UserEventsView.as_view(), name="user-events"),
    path("erasure", ErasureView.as_view(), name="erasure"),
]
