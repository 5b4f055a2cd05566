"""Settings, read from the environment (and an optional `.env` file) with django-environ.

Every variable is documented in `.env.example`.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key is only acceptable while DEBUG is on; production must set its own.
_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment "
            "(or DEBUG=true for local development only)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # First, so that its `runserver` (which keeps the API_KEY header) is the one used.
    "cdp",
    "django.contrib.admin",
    "django.contrib.auth",
    # Console sign-in brute-force limit (per email and address).
    "axes",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ingestion",
    "journeys",
    # The task engine (`manage.py run_worker`): Django's Tasks framework, its backport,
    # with the database backend (docs/decisions.md, "One task engine").
    "django_tasks",
    "django_tasks_db",
]

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

MIDDLEWARE = [
    "cdp.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in.
    "axes.middleware.AxesMiddleware",
]

# The Console's sign-in (the JSON APIs authenticate with their own checks and limits): a
# wrong password counted per (email, client address); after CDP_CONSOLE_SIGNIN_FAILURES of
# them the pair is locked out for CDP_CONSOLE_SIGNIN_LOCKOUT_MINUTES, the right password
# included, while the same email from another address and other emails still sign in.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("CDP_CONSOLE_SIGNIN_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("CDP_CONSOLE_SIGNIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/signin_locked_out.html"
# The address the outermost trusted proxy saw (CDP_TRUSTED_PROXIES), as the APIs use it.
AXES_CLIENT_IP_CALLABLE = "cdp.console.console_client_address"
AXES_VERBOSE = False

# The JSON APIs (paths under /api/ and /dhub-i/) need none of the Console's middleware:
# cdp/handler.py runs them through this shorter chain.
API_MIDDLEWARE = [
    "cdp.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
]

ROOT_URLCONF = "cdp.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "cdp.wsgi.application"
ASGI_APPLICATION = "cdp.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Persistent connections in production (a new PostgreSQL connection costs more than a
# small request); none under DEBUG, whose development server runs a thread per request.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0 if DEBUG else 60))
# Off by default: the check is a round trip per request. A connection the database
# dropped fails one request (503) and is replaced for the next.
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=False))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent requests on the embedded default: every transaction takes the write lock
    # when it begins (no deadlock between two readers turning writers), a writer waits up
    # to `timeout` seconds for another instead of failing with "database is locked", and
    # WAL lets readers run beside the writer.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
    DATABASES["default"]["OPTIONS"].setdefault("timeout", env.int("SQLITE_TIMEOUT", default=20))
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    )
    # Two indexes carry extra columns for PostgreSQL's index-only scans (the dashboard's);
    # SQLite builds them without, which is all it needs, so its warning says nothing.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CACHE_URL (or REDIS_URL) selects the shared cache: verified tokens, rate-limit counters
# and schema versions live there (cdp/shared_store.py). Several workers need a shared one
# (a system check refuses local memory when DEBUG is off).
_cache_url = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
CACHES = {
    "default": env.cache_url_config(_cache_url)
    if _cache_url
    else {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "cdp",
    }
}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that stops answering (not one that is down, which refuses at once) fails
    # the request with a 503 after this many seconds instead of holding its worker.
    CACHES["default"].setdefault("OPTIONS", {})
    for _option in ("socket_connect_timeout", "socket_timeout"):
        CACHES["default"]["OPTIONS"].setdefault(_option, env.float("REDIS_TIMEOUT", default=2.0))

# How long a member's one-time set-password link works (seconds; Django's password-reset
# tokens, cdp/set_password.py): long enough to reach someone over a weekend.
PASSWORD_RESET_TIMEOUT = 3 * 24 * 60 * 60

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times read "2026-12-01 18:19 UTC" wherever Django formats them (the Console's lists).
FORMAT_MODULE_PATH = ["cdp.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["cdp.renderers.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "cdp.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "cdp — Authentication and Data Ingestion API",
    "DESCRIPTION": "Wire-compatible with PangoCDP's Authentication and Data Ingestion API.",
    "VERSION": "1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the installed drf-spectacular-sidecar (pinned with the
    # package), served as static files: no CDN, so the pages work on an offline network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# `plain`: one `key=value` line per record; `json`: one JSON object per line (cdp/log_format.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT is {LOG_FORMAT!r}: use plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "cdp.log_format.KeyValueFormatter"},
        "json": {"()": "cdp.log_format.JsonLinesFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # The task engine logs every task's start and end; an outbox drain runs every few
    # seconds. Its warnings and errors are kept.
    "loggers": {
        name: {"level": env.str("TASKS_LOG_LEVEL", default="WARNING")}
        for name in ("django_tasks", "django_tasks_db")
    },
}

# --- cdp ---------------------------------------------------------------------------------

CDP_TOKEN_TTL_SECONDS = env.int("CDP_TOKEN_TTL_SECONDS", default=1800)
# How long a verified (or refused) token is kept in the shared cache: revocation and
# deactivation through the services forget it at once; any other path (a bulk update, SQL)
# is seen within this many seconds.
CDP_TOKEN_CACHE_SECONDS = env.int("CDP_TOKEN_CACHE_SECONDS", default=5)

# Brute-force limits of the Authentication API: attempts per window, per username and per
# client address.
# Reverse proxies in front of the app that append the client's address to
# X-Forwarded-For (nginx: proxy_add_x_forwarded_for). 0: use the connection's address.
CDP_TRUSTED_PROXIES = env.int("CDP_TRUSTED_PROXIES", default=0)
CDP_AUTHEN_RATE_LIMITS = [
    (env.int("CDP_AUTHEN_ATTEMPTS_PER_MINUTE", default=10), 60),
    (env.int("CDP_AUTHEN_ATTEMPTS_PER_HOUR", default=100), 3600),
]

CDP_INGEST_MAX_BODY_BYTES = env.int("CDP_INGEST_MAX_BODY_BYTES", default=1024 * 1024)
CDP_INGEST_MAX_ENTRIES = env.int("CDP_INGEST_MAX_ENTRIES", default=50)
# The production server (cdp/asgi.py) reads each request body whole before the application
# sees it: within this many seconds of the headers (else a JSON 408), and never more than
# this many bytes (else a JSON 413). The endpoints' own limits above are smaller.
CDP_REQUEST_BODY_TIMEOUT = env.float("CDP_REQUEST_BODY_TIMEOUT", default=10.0)
CDP_REQUEST_MAX_BODY_BYTES = env.int("CDP_REQUEST_MAX_BODY_BYTES", default=10 * 1024 * 1024)


def _rate_limits(value: str) -> list[tuple[int, int]]:
    """`"50/1,1000/60"` → [(50, 1), (1000, 60)]: requests per window of seconds."""
    try:
        return [
            (int(limit), int(seconds))
            for limit, seconds in (part.strip().split("/") for part in value.split(","))
        ]
    except ValueError:
        raise ImproperlyConfigured(
            f"CDP_INGEST_RATE_LIMITS={value!r}: use requests/seconds pairs, e.g. 50/1,1000/60"
        ) from None


# Requests per window (seconds) per API key (the wire contract's).
CDP_INGEST_RATE_LIMITS = _rate_limits(
    env.str("CDP_INGEST_RATE_LIMITS", default="50/1,1000/60,5000/300,50000/3600,400000/86400")
)
# Tokens the database refused (unknown, revoked, inactive), per client address: past
# this, a token a worker has not seen answers 429 before any query.
CDP_REFUSED_TOKEN_RATE_LIMITS = _rate_limits(
    env.str("CDP_REFUSED_TOKEN_RATE_LIMITS", default="30/60,300/3600")
)
CDP_MAX_EVENTS_PER_REQUEST = env.int("CDP_MAX_EVENTS_PER_REQUEST", default=200)
# How long an ingest request's Idempotency-Key and its stored answer are kept after first use.
CDP_IDEMPOTENCY_KEY_TTL_SECONDS = env.int("CDP_IDEMPOTENCY_KEY_TTL_SECONDS", default=86400)
# Record history (models tagged KEEP_HISTORY) older than this many days is purged.
CDP_RECORD_HISTORY_DAYS = env.int("CDP_RECORD_HISTORY_DAYS", default=90)
# Ingestion log rows (and finished callbacks) older than this are purged by the worker.
CDP_INGESTION_LOG_DAYS = env.int("CDP_INGESTION_LOG_DAYS", default=30)
# The ingest statements are prepared once per database connection. Turn off behind a
# proxy that pools by transaction (PgBouncer's transaction mode), where the session that
# prepared them may be another: each request then sends them whole.
CDP_PREPARED_STATEMENTS = env.bool("CDP_PREPARED_STATEMENTS", default=True)

# Ingestion callbacks (docs/callbacks.md). Callback URLs must resolve to public addresses
# unless this is on (SSRF guard); on by default only with DEBUG, and in the test settings.
CDP_CALLBACK_ALLOW_PRIVATE = env.bool("CDP_CALLBACK_ALLOW_PRIVATE", default=DEBUG)
CDP_CALLBACK_TIMEOUT_SECONDS = env.int("CDP_CALLBACK_TIMEOUT_SECONDS", default=10)
# A failed attempt waits BASE seconds, doubling after each failure up to MAX; the row is
# marked failed after MAX_ATTEMPTS attempts.
CDP_CALLBACK_BACKOFF_BASE_SECONDS = env.int("CDP_CALLBACK_BACKOFF_BASE_SECONDS", default=60)
CDP_CALLBACK_BACKOFF_MAX_SECONDS = env.int("CDP_CALLBACK_BACKOFF_MAX_SECONDS", default=21600)
CDP_CALLBACK_MAX_ATTEMPTS = env.int("CDP_CALLBACK_MAX_ATTEMPTS", default=10)
# Each wait is lengthened by a random share of itself, up to this fraction, so that the
# callbacks of a partner back from an outage do not all come back in the same second.
CDP_CALLBACK_BACKOFF_JITTER = env.float("CDP_CALLBACK_BACKOFF_JITTER", default=0.1)
# How often `run_worker` drains the callback outbox (its schedule, cdp/schedules.py).
CDP_CALLBACK_POLL_SECONDS = env.float("CDP_CALLBACK_POLL_SECONDS", default=2.0)
