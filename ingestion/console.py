"""The Console's way into the ingest pipeline: a payload typed on a model's Data Ingestion
API tab, sent as the signed-in member with one of their own API keys (DESIGN §8)."""

from __future__ import annotations

import time

from django.conf import settings

from cdp.errors import ApiError, PayloadTooLarge, error_body
from cdp.models import ApiKey
from ingestion.log import ingestion_request_log
from ingestion.payload import body_parse
from ingestion.pipeline import IngestResponse, ingest_data
from ingestion.throttles import api_key_rate_limit_hit


def console_ingest(
    *, api_key: ApiKey, body: str, init_data: bool, request_id: str
) -> IngestResponse:
    """Ingest `body` (JSON text) as a client holding `api_key` would over HTTP.

    The key must be one the signed-in member holds (`cdp.selectors.api_keys_usable`): that
    replaces the TOKEN/API_KEY check. Everything after it is the HTTP path's: the key's rate
    limits, the body checks, `ingest_data`, the log row. Refusals come back as the response
    the API would have answered, never as an exception.
    """
    started = time.perf_counter()
    try:
        # Not logged, as over HTTP: a refused request never reaches the pipeline.
        api_key_rate_limit_hit(api_key=api_key)
    except ApiError as error:
        return IngestResponse(error.status, error_body(error, request_id))
    try:
        raw = body.encode("utf-8")
        limit = settings.CDP_INGEST_MAX_BODY_BYTES
        if len(raw) > limit:
            raise PayloadTooLarge(f"Body is larger than the limit of {limit} bytes")
        data = body_parse(raw, "application/json")
    except ApiError as error:
        ingestion_request_log(
            organization=api_key.organization,
            api_key=api_key,
            request_id=request_id,
            payload=None,
            config=None,
            status=error.status,
            body=error_body(error, request_id),
            started=started,
        )
        return IngestResponse(error.status, error_body(error, request_id))
    try:
        return ingest_data(
            organization=api_key.organization,
            api_key=api_key,
            data=data,
            init_data=init_data,
            request_id=request_id,
            started=started,
        )
    except ApiError as error:  # checks 8–13, already logged by the pipeline
        return IngestResponse(error.status, error_body(error, request_id))
