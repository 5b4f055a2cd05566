"""The ingestion app's Console pages, one module per page (Django's admin autodiscovery
imports this package, and each module registers its ModelAdmins on the Console):

- `request_log`: the Ingestion log;
- `callbacks`: the Callback deliveries;
- `destinations`: the Destinations and their deliveries;
- `backfill`: a User Event's backfill page;
- `erasure`: the Erasure requests;
- `panels`: what ingestion adds to the core's pages (a model's Data Ingestion API tab,
  an organization's callback deliveries);
- `record_panels`: a record's history and the requests that wrote it, on its page;
- `dashboard`: the home page's ingestion, rejection and delivery panels.
"""

from ingestion.admin import (  # noqa: F401 (each registers its pages on import)
    backfill,
    callbacks,
    dashboard,
    destinations,
    erasure,
    panels,
    record_panels,
    request_log,
)
