"""Run the DOT test server: ``<venv python> serve.py [--port N] [--ttl SECONDS]``.

Migrates the SQLite database named by ``$DOT_TEST_DB``, creates the user ``alice``
(password ``test``) and the public PKCE client ``test-cli`` (redirect URI
``http://127.0.0.1/callback``: DOT lets a loopback redirect use any port, RFC 8252 §7.3),
then (unless ``--init-only``) serves on 127.0.0.1 with one thread per request
(Django's runserver server class) and prints one JSON line, ``{"port": N}``, once it
accepts connections. SIGTERM stops it.
"""

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENT_ID = "test-cli"
REDIRECT_URI = "http://127.0.0.1/callback"
USERS = {"alice": "test", "bob": "test"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttl", type=int, default=None, help="access token lifetime (s)")
    parser.add_argument("--init-only", action="store_true", help="migrate and seed, then exit")
    args = parser.parse_args()
    if args.ttl is not None:
        os.environ["DOT_ACCESS_TOKEN_TTL"] = str(args.ttl)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dotserver.settings"
    sys.path.insert(0, str(HERE))

    import django

    django.setup()

    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    _seed()
    if args.init_only:
        return

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    server = ThreadedWSGIServer(("127.0.0.1", args.port), WSGIRequestHandler)
    server.daemon_threads = True
    server.set_app(get_wsgi_application())

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


def _seed():
    """Users and the client, made to match this file at every start: the cached template
    database may have been seeded by an older version of it."""
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    users = get_user_model()
    for name, password in USERS.items():
        user, _ = users.objects.get_or_create(username=name)
        user.set_password(password)
        user.save()
    applications = get_application_model()
    applications.objects.update_or_create(
        client_id=CLIENT_ID,
        defaults={
            "name": CLIENT_ID,
            "client_type": applications.CLIENT_PUBLIC,
            "authorization_grant_type": applications.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": REDIRECT_URI,
            "skip_authorization": True,  # no consent page: straight to the redirect
            "user": users.objects.get(username="alice"),
        },
    )


if __name__ == "__main__":
    main()
