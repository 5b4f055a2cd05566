"""gunicorn's configuration: `make serve` and the systemd unit of docs/deploy.md run
`gunicorn -c gunicorn.conf.py`, so the server's settings live here, in the repository.

Read from the environment: HOST and PORT (127.0.0.1:8000), WEB_CONCURRENCY (worker
processes; default one per core), WEB_THREADS (application threads per worker; default 8),
GUNICORN_ACCESS_LOG (a path, or "-" for stderr; off by default: every ingest request
already writes its `cdp.ingest` line). Django's settings come from the environment as
usual (DATABASE_URL, CACHE_URL, SECRET_KEY, ...).
"""

import gc
import os
from typing import Any

wsgi_app = "cdp.asgi:application"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

# uvicorn workers (cdp/server_worker.py), one process per core: each reads every
# connection on its event loop and hands a request to one of its WEB_THREADS application
# threads only once the request has arrived whole (cdp/asgi.py, which reads WEB_THREADS),
# so clients that trickle their bodies hold sockets, never threads; a body that does not
# arrive within CDP_REQUEST_BODY_TIMEOUT gets a JSON 408. Threads let a process serve
# another request while one waits on the database; each holds its own database
# connection. Connections are kept alive between requests, as integrators' clients do.
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = "cdp.server_worker.Worker"
keepalive = 5
# Django is imported once, before the workers fork (faster start, shared memory); no
# connection is opened at import, so none is shared across the fork.
preload_app = True

timeout = 30
graceful_timeout = 30
# Recycle workers now and then, so that no slow growth of memory lasts.
max_requests = 20000
max_requests_jitter = 2000

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")


# The garbage collector. Everything imported before the fork (Django, the apps, the URL
# configuration: about 100,000 objects) lives as long as the process, so it is frozen out
# of the collector: a full collection no longer walks it (60 ms and more each time, a
# worker stalled), and the workers' collections no longer write to its pages, which stay
# shared with the master. A request allocates thousands of short-lived objects (a 50-entry
# batch, its plan, its answer); collecting the youngest generation every 10,000
# allocations instead of 700 runs it a tenth as often, for a few more MB of garbage held
# between runs (docs/decisions.md, "The server's garbage collector").
GC_THRESHOLDS = (10_000, 10, 10)


def when_ready(server: object) -> None:
    """In the master, once the application is imported, before the first worker forks."""
    gc.collect()
    gc.freeze()


def post_fork(server: object, worker: object) -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def child_exit(server: object, worker: Any) -> None:
    """In the master, once a worker has exited: its slot in the table of connections per
    worker (cdp/server_worker.py) is free."""
    from cdp.server_worker import WORKERS

    WORKERS.release(worker.pid)
