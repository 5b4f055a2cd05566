"""The gunicorn worker `make serve` runs (gunicorn.conf.py): uvicorn's, tuned for cdp/asgi.py."""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    # uvloop and httptools (C parsers); Django has no lifespan protocol to run.
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off"}
