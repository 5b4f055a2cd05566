from django.urls import path

from ingestion.api.views import RecordView, UserEventsView, ingest_endpoint

urlpatterns = [
    path("ingest", ingest_endpoint, name="ingest"),
    path("records/<str:object_type>/<path:key>", RecordView.as_view(), name="record"),
    path("user-events", UserEventsView.as_view(), name="user-events"),
]
