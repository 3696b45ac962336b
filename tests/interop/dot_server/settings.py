"""A minimal Django project serving django-oauth-toolkit on 127.0.0.1, for tests only."""
import os

SECRET_KEY = "interop-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "dot_server.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DOT_DB"],
        # Concurrent token requests write from several threads: take the write
        # lock up front and wait for it, rather than fail with "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
USE_TZ = True
LOGIN_URL = "/login/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
OAUTH2_PROVIDER = {
    # Short-lived access tokens, so tests span several lifetimes.
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("DOT_TOKEN_SECONDS", "2")),
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "PKCE_REQUIRED": True,
    "SCOPES": {"read": "Read", "write": "Write", "introspection": "Introspect tokens"},
    "DEFAULT_SCOPES": ["read", "write"],
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "WARNING"},
        # Tracebacks of 500s land in the server log run.sh prints on failure.
        "django.request": {"handlers": ["console"], "level": "ERROR"},
    },
}
# django-oauth-toolkit hashes client secrets with the password hasher; Django's
# default (PBKDF2, a million rounds) costs about a second of CPU per client
# authentication, which on two cores turns every introspection into a queue.
# A test server needs no slow hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
