"""Test helpers: a local OAuth 2.0 authorization server and its pytest plugin.

    from requests_refreshauth.testing import LocalAuthServer

    with LocalAuthServer(access_token_ttl=5) as server:
        bundle = server.login("alice")                     # headless, in one call
        login(store, server.provider(), open_browser=server.approver("alice"))
        subprocess.run(["mycli", "auth", "login"], env={**os.environ, **server.browser_env()})

With the package installed, pytest gets the ``local_auth_server`` and
``local_auth_session_server`` fixtures automatically (see :mod:`.pytest_plugin`).
Names load lazily: importing this package does not import oauthlib or bind a socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .approver import Approver, ApproverError, URLRefusedError
    from .faults import FAULT_KINDS
    from .server import DEFAULT_SCOPES, LocalAuthServer
    from .stats import ServerStats, token_id

_EXPORTS = {
    "Approver": ".approver",
    "ApproverError": ".approver",
    "URLRefusedError": ".approver",
    "DEFAULT_SCOPES": ".server",
    "FAULT_KINDS": ".faults",
    "LocalAuthServer": ".server",
    "ServerStats": ".stats",
    "token_id": ".stats",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_SCOPES",
    "FAULT_KINDS",
    "Approver",
    "ApproverError",
    "LocalAuthServer",
    "ServerStats",
    "URLRefusedError",
    "token_id",
]
