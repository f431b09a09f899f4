"""Settings of the test authorization server (django-oauth-toolkit), not a deployment.

Environment (set by tests/_dot_server.py):

- ``DOT_TEST_DB`` (required): the SQLite file, in a temporary directory;
- ``DOT_ACCESS_TOKEN_TTL``: ``ACCESS_TOKEN_EXPIRE_SECONDS`` (default 300);
- ``DOT_SQLITE_TRANSACTION_MODE``: ``IMMEDIATE`` unless told otherwise (``DEFERRED``
  shows the "database is locked" 500s this setting exists to avoid).
"""

import os

SECRET_KEY = "dot-test-server-not-a-secret"  # a throwaway test server
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
ROOT_URLCONF = "dotserver.urls"
LOGIN_URL = "/accounts/login/"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "dotserver",
]

MIDDLEWARE = [
    "dotserver.views.CountingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DOT_TEST_DB"],  # never a file in the source tree
        # SQLite's default (deferred) transactions answer concurrent refreshes with
        # "database is locked" (HTTP 500): a reader cannot upgrade to a writer while
        # another writes. IMMEDIATE takes the write lock at BEGIN (Django >= 5.1).
        "OPTIONS": {
            "transaction_mode": os.environ.get("DOT_SQLITE_TRANSACTION_MODE", "IMMEDIATE"),
            "timeout": 20,
        },
    }
}

# A fast hasher: the test user's password is hashed at every server start.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("DOT_ACCESS_TOKEN_TTL", "300")),
    "SCOPES": {"read": "Read", "write": "Write"},
    "DEFAULT_SCOPES": ["read"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
        "django.server": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
