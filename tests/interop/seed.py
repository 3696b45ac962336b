"""Creates the user and OAuth2 applications the interop tests use, and a logged-in
session for the headless authorization-code flow. Prints the session key."""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_server.settings")
django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

user = User.objects.create_user("alice", password="wonderland-pw")

APPS = [
    # (client_id, secret, grant type, redirect uris)
    ("special client", "p@ss:w/rd+%&=", Application.GRANT_CLIENT_CREDENTIALS, ""),
    ("cc-client", "cc-secret", Application.GRANT_CLIENT_CREDENTIALS, ""),
    ("pw-client", "pw-secret", Application.GRANT_PASSWORD, ""),
    ("code-client", "code-secret", Application.GRANT_AUTHORIZATION_CODE, "http://127.0.0.1/callback"),
    ("rs-client", "rs-secret", Application.GRANT_CLIENT_CREDENTIALS, ""),
]
for client_id, secret, grant, redirect in APPS:
    Application.objects.create(
        name=client_id,
        client_id=client_id,
        client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
        redirect_uris=redirect,
        skip_authorization=True,
        user=user,
        algorithm="",
    )

session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key)
