from django.urls import path

from ingestion.api.views import IngestView, RecordView, UserEventsView

urlpatterns = [
    path("ingest", IngestView.as_view(), name="ingest"),
    path("records/<str:object_type>/<path:key>", RecordView.as_view(), name="record"),
    path("user-events", UserEventsView.as_view(), name="user-events"),
]
