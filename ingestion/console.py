"""The Console's way into the ingest pipeline: a payload typed on a model's Data Ingestion
API tab, sent as the signed-in member with one of their own API keys."""

from __future__ import annotations

import orjson

from cdp.errors import ApiError, error_body
from cdp.models import ApiKey
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
        body = error_body(error, request_id)
        if dry_run:
            body["dryRun"] = True
        return IngestResponse(error.status, orjson.dumps(body), error=error)
    return ingest(
        organization=api_key.organization,
        api_key=api_key,
        request_id=request_id,
        body=body.encode("utf-8"),
        init_data=init_data,
        dry_run=dry_run,
    )
