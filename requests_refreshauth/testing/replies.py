"""LocalAuthServer's answers at its authorization and token endpoints and its protected
resource.

The authorization endpoint signs in whom the headless browser says (:mod:`.approver`),
without a page; the token endpoint plays the faults a test asked for (:mod:`.faults`) and
counts every grant (:mod:`.stats`); the resource answers a bad token with the
``WWW-Authenticate`` challenge a real API sends, so the client's 401 path runs unmodified.
The protocol itself is oauthlib's (:mod:`.endpoints`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Optional
from urllib.parse import parse_qs

from oauthlib.oauth2.rfc6749.tokens import get_token_from_header

from .approver import DECISION_HEADER, USER_HEADER
from .endpoints import OAuthServer
from .faults import FaultQueue
from .http_server import Reply
from .stats import Counters

__all__ = ["authorize_reply", "json_reply", "resource_reply", "token_reply"]

log = logging.getLogger("requests_refreshauth.testing")

_REALM = 'Bearer realm="local-auth-server"'
_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def json_reply(status: int, payload: Any, headers: Optional[dict[str, str]] = None) -> Reply:
    """A JSON reply: ``payload`` serialised, ``Content-Type: application/json`` and
    ``Cache-Control: no-store`` plus ``headers``.
    """
    return Reply(status, {**_JSON, **(headers or {})}, json.dumps(payload).encode("utf-8"))


def authorize_reply(
    oauth: OAuthServer,
    counters: Counters,
    uri: str,
    query: str,
    headers: dict[str, str],
    user: str,
    approve: bool,
) -> Reply:
    """``GET /authorize``, decided at once: ``user`` and ``approve`` are the server's
    defaults (:func:`_decision`)."""
    counters.add("authorization_requests")
    user, approve = _decision(query, headers, user, approve)
    status, out, page = oauth.authorize(uri, user=user, approve=approve)
    return Reply(status, out, page.encode("utf-8"))


def _decision(
    query: str, headers: dict[str, str], default_user: str, default_approve: bool
) -> tuple[str, bool]:
    """Who signs in and whether they approve: what the approver's headers say (the
    person at the browser), else ``login_hint``, else the server's ``user``/``approve``."""
    given = {name.lower(): value for name, value in headers.items()}
    hint = parse_qs(query).get("login_hint")
    user = given.get(USER_HEADER.lower()) or (hint[0] if hint else default_user)
    decision = given.get(DECISION_HEADER.lower())
    approve = default_approve if decision not in ("approve", "deny") else decision == "approve"
    return user, approve


def token_reply(
    oauth: OAuthServer,
    faults: FaultQueue,
    counters: Counters,
    method: str,
    uri: str,
    headers: dict[str, str],
    body: str,
) -> Optional[Reply]:
    """The token endpoint: the next injected fault if any, else oauthlib's answer;
    ``None`` drops the connection unanswered (``drop_after_rotate``)."""
    counters.add("token_requests")
    fault = faults.take()
    if fault is not None:
        counters.add("faults_injected")
        log.debug("token endpoint: injected fault %s", fault.kind)
        retry = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.kind == "503":
            return json_reply(503, {"error": "temporarily_unavailable"}, retry)
        if fault.kind == "429":
            return json_reply(429, {"error": "temporarily_unavailable"}, retry)
        if fault.kind == "500":
            return json_reply(500, {"error": "server_error"})
        if fault.kind == "malformed":
            page = str(fault.options["body"]).encode("utf-8")
            return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, page)
        if fault.kind == "delay":
            time.sleep(float(fault.options["seconds"]))
    out, page, status = oauth.create_token_response(uri, method, body, headers)
    _count_token_outcome(counters, body, status, page)
    if fault is not None and fault.kind == "drop_after_rotate":
        return None
    return Reply(status, dict(out), page.encode("utf-8"))


def _count_token_outcome(counters: Counters, body: str, status: int, page: str) -> None:
    grant_type = (parse_qs(body).get("grant_type") or [""])[0]
    error = None
    if status != 200:
        try:
            error = json.loads(page).get("error")
        except (ValueError, AttributeError):
            error = None
    if error == "invalid_grant":
        counters.add("invalid_grant")
    if grant_type == "refresh_token":
        counters.add("refresh_served" if status == 200 else "refresh_failed")
    elif status == 200 and grant_type == "authorization_code":
        counters.add("authorization_code_grants")
    elif status == 200 and grant_type == "client_credentials":
        counters.add("client_credentials_grants")


def resource_reply(
    oauth: OAuthServer,
    counters: Counters,
    latency: float,
    method: str,
    uri: str,
    headers: dict[str, str],
    path: str,
) -> Reply:
    """``/userinfo`` and ``/api/...``: who the token is for, or a 401 with its challenge;
    ``latency`` seconds later."""
    if latency > 0:
        time.sleep(latency)
    valid, request = oauth.verify_request(uri, method, None, headers, scopes=[])
    token = get_token_from_header(request)
    if token:
        counters.token_used(token)
    if not valid:
        counters.add("resource_unauthorized")
        challenge = _REALM
        if token or "Authorization" in request.headers:
            challenge += (
                ', error="invalid_token", error_description="The access token is '
                'invalid, expired or revoked"'
            )
        return json_reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})
    counters.add("resource_ok")
    if path == "/userinfo":
        return json_reply(200, oauth.userinfo_claims(request))
    payload = {
        "sub": request.subject,
        "client_id": request.client_id,
        "scope": " ".join(request.scopes),
        "method": method,
        "path": path,
    }
    return json_reply(200, payload)
