"""gunicorn's configuration: `make serve` and the systemd unit of docs/deploy.md run
`gunicorn -c gunicorn.conf.py`, so the server's settings live here, in the repository.

Read from the environment: HOST and PORT (127.0.0.1:8000), WEB_CONCURRENCY (worker
processes; default one per core), WEB_THREADS (threads per worker; default 8),
GUNICORN_ACCESS_LOG (a path, or "-" for stderr; off by default: every ingest request
already writes its `cdp.ingest` line). Django's settings come from the environment as
usual (DATABASE_URL, CACHE_URL, SECRET_KEY, ...).
"""

import os

wsgi_app = "cdp.wsgi:application"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

# Threaded workers: one process per core, each serving several connections, so that a
# request waiting on the database or a client leaves the core to another; connections are
# kept alive between requests, as integrators' HTTP clients keep them (a sync worker
# closes every connection, and waits for the client to close its side, per request:
# docs/performance.md measures both). Each thread holds its own database connection.
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", 8))
keepalive = 5
# Django is imported once, before the workers fork (faster start, shared memory); no
# connection is opened at import, so none is shared across the fork.
preload_app = True

# PangoCDP clients authenticate with an `API_KEY` header (an underscore): gunicorn drops
# such headers unless told otherwise (docs/deploy.md, "--header-map dangerous").
header_map = "dangerous"

timeout = 30
graceful_timeout = 30
# The longest request line gunicorn takes (its maximum); longer ones get its own 414 page,
# documented in the OpenAPI document.
limit_request_line = 8190
# Recycle workers now and then, so that no slow growth of memory lasts.
max_requests = 20000
max_requests_jitter = 2000

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
