"""gunicorn's configuration: `make serve` and the systemd unit of docs/deploy.md run
`gunicorn -c gunicorn.conf.py`, so the server's settings live here, in the repository.

Read from the environment: HOST and PORT (127.0.0.1:8000), WEB_CONCURRENCY (worker
processes; default two per core), GUNICORN_ACCESS_LOG (a path, or "-" for stderr; off by
default: every ingest request already writes its `cdp.ingest` line). Django's settings
come from the environment as usual (DATABASE_URL, CACHE_URL, SECRET_KEY, ...).
"""

import os

wsgi_app = "cdp.wsgi:application"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

# Sync workers: each request is a few milliseconds of CPU and three database round trips;
# two processes per core keep the cores busy while others wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
worker_class = "sync"
# Django is imported once, before the workers fork (faster start, shared memory); no
# connection is opened at import, so none is shared across the fork.
preload_app = True

# PangoCDP clients authenticate with an `API_KEY` header (an underscore): gunicorn drops
# such headers unless told otherwise (docs/deploy.md, "--header-map dangerous").
header_map = "dangerous"

timeout = 30
graceful_timeout = 30
# Recycle workers now and then, so that no slow growth of memory lasts.
max_requests = 20000
max_requests_jitter = 2000

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
