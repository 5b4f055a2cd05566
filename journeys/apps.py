from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import journeys.dashboard  # noqa: F401 (registers its home page panel)
        from cdp.schema_cache import schema_cache_watch
        from journeys import (
            console_panels,  # noqa: F401 (registers its parts of model pages)
            record_panels,  # noqa: F401 (registers its part of record pages)
        )
        from journeys.models import JourneyEventConfig

        # Ingest requests resolve User Events from each worker's copy of the schema.
        schema_cache_watch(JourneyEventConfig)
