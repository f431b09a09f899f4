"""Which of :class:`~.server.LocalAuthServer`'s answers an HTTP request gets.

Split from :mod:`.server` because routing is the protocol surface (paths, methods and
the error answers of a request oauthlib refuses outside its own handlers), while the
server is lifecycle and conveniences. A bug here answers 500: it must never hang the
client under test.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Optional, Protocol
from urllib.parse import urlsplit

from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .http_server import Reply
from .replies import authorize_reply, json_reply, resource_reply, token_reply

if TYPE_CHECKING:
    from .endpoints import OAuthServer
    from .faults import FaultQueue
    from .stats import Counters

__all__ = ["METADATA_PATHS", "Knobs", "Router"]

log = logging.getLogger("requests_refreshauth.testing")

METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class Knobs(Protocol):
    """What may change while the server runs (read on every request)."""

    @property
    def issuer(self) -> str:
        """The server's base URL, which the discovery document and the tokens name."""
        ...

    user: str
    approve: bool
    latency: float


class Router:
    """Routes requests to one started server's endpoints (built once, at start)."""

    def __init__(
        self, oauth: OAuthServer, counters: Counters, faults: FaultQueue, knobs: Knobs
    ) -> None:
        self._oauth, self._counters, self._faults, self._knobs = oauth, counters, faults, knobs

    def __call__(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Optional[Reply]:
        """The reply to ``method target`` (``None``: drop the connection without one)."""
        oauth, counters, knobs = self._oauth, self._counters, self._knobs
        parts = urlsplit(target)
        path = parts.path
        uri = knobs.issuer + target
        text = body.decode("utf-8", "replace")
        try:
            if path == "/authorize" and method == "GET":
                return authorize_reply(
                    oauth, counters, uri, parts.query, headers, knobs.user, knobs.approve
                )
            if path == "/token":
                return token_reply(oauth, self._faults, counters, method, uri, headers, text)
            if path == "/revoke":
                out, page, status = oauth.create_revocation_response(uri, method, text, headers)
                return Reply(status, out, page.encode("utf-8"))
            if path in METADATA_PATHS and method == "GET":
                return json_reply(200, oauth.metadata)
            if path == "/userinfo" or path == "/api" or path.startswith("/api/"):
                return resource_reply(oauth, counters, knobs.latency, method, uri, headers, path)
            return json_reply(404, {"error": "not_found", "path": path})
        except OAuth2Error as exc:  # raised outside oauthlib's own handlers (bad method...)
            return json_reply(exc.status_code, json.loads(exc.json), dict(exc.headers))
        except ValueError as exc:  # oauthlib refuses undecodable query strings this way
            return json_reply(400, {"error": "invalid_request", "error_description": str(exc)})
        except Exception:  # a bug here must not hang the client under test
            log.exception("LocalAuthServer failed on %s %s", method, path)
            return json_reply(500, {"error": "server_error"})
