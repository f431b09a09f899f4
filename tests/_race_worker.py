"""One "CLI invocation" for the parallel-process race tests.

Run as ``python _race_worker.py CONFIG_JSON``. It imports everything, builds its session,
prints ``ready`` and blocks until a line arrives on stdin, so the parent can release all
workers at once after their start-up cost. Then it makes one request through
``RefreshAuth`` (or ``RefreshAdapter``) and prints one JSON line: the HTTP status, or the
error code. Tokens are never printed.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import requests

from requests_refreshauth import (
    AuthError,
    FileTokenStore,
    PkceProvider,
    RefreshAdapter,
    RefreshAuth,
)

if TYPE_CHECKING:
    from requests_refreshauth.stores import TokenStore


def main() -> None:
    config = json.loads(sys.argv[1])
    store: TokenStore
    if config.get("store") == "keyring":
        from requests_refreshauth import KeyringTokenStore

        store = KeyringTokenStore(config["service"], config["records"])
    else:
        store = FileTokenStore(config["records"])
    session = requests.Session()
    session.trust_env = False
    provider = PkceProvider(
        client_id=config["client_id"],
        token_endpoint=config["token_endpoint"],
        session=session,
        timeout=10.0,
    )
    http = requests.Session()
    http.trust_env = False
    if config.get("mode") == "adapter":
        RefreshAdapter.mount(http, config["origin"], store, provider)
    else:
        http.auth = RefreshAuth(store, provider)
    print("ready", flush=True)
    sys.stdin.readline()
    result: dict[str, Any]
    try:
        response = http.get(config["url"], timeout=15)
        result = {"status": response.status_code}
    except AuthError as exc:
        result = {"error": exc.code, "message": str(exc)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
