from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cdp.schema_cache import schema_cache_watch
        from journeys import console_panels  # noqa: F401 (registers its parts of model pages)
        from journeys.models import JourneyEventConfig

        # Ingest requests resolve User Events from each worker's copy of the schema.
        schema_cache_watch(JourneyEventConfig)
