"""The clients :class:`~.server.LocalAuthServer` knows, and how a request names one.

Split from :mod:`.validator` (the server's memory of grants and tokens) because who a
client is and how it proves it (HTTP Basic, form-decoded per RFC 6749 §2.3.1; a loopback
redirect URI per RFC 8252 §7.3) holds no state at all.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import unquote_plus, urlsplit

from .._urls import is_loopback_host

__all__ = ["Client", "basic_credentials", "is_loopback_redirect_uri"]


@dataclass(frozen=True)
class Client:
    """A registered client. ``secret=None``: a public client (PKCE, no authentication)."""

    client_id: str
    secret: Optional[str]
    grant_types: frozenset[str]

    def __repr__(self) -> str:
        kind = "public" if self.secret is None else "confidential"
        return f"Client({self.client_id!r}, {kind}, grant_types={sorted(self.grant_types)})"


def is_loopback_redirect_uri(uri: str) -> bool:
    """RFC 8252 §7.3: ``http://`` on a loopback host, any port, any path, no fragment."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and not parts.fragment
        and parts.username is None
        and is_loopback_host(parts.hostname)
    )


def basic_credentials(request: Any) -> Optional[tuple[str, str]]:
    """(client_id, secret) from ``Authorization: Basic`` (form-decoded, RFC 6749 §2.3.1).

    A malformed Basic header yields empty credentials, so it fails authentication
    instead of silently falling back to "public client".
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return "", ""
    return unquote_plus(client_id), unquote_plus(secret)
