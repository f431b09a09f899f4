"""What the local server counts, so tests can assert on the server's side of the story.

A client can only say what it *did*; the server knows what it *served*. "8 processes, one
refresh" is only proven by the server counting exactly one refresh grant, so every
handler increments a counter here, and tests read an immutable snapshot.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ..bundle import fingerprint

__all__ = ["Counters", "ServerStats", "token_id"]


#: The key a token is counted under: the library's own :func:`~..bundle.fingerprint`
#: (a SHA-256 prefix, never the token itself), the ``token#…`` tag its logs show, so a
#: failing test can print the stats without printing a credential.
token_id = fingerprint


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the counters; ``stats["refresh_served"]`` works as well as the attribute."""

    #: Every request that reached ``POST /token`` (faulted ones included).
    token_requests: int = 0
    #: Every ``GET /authorize``.
    authorization_requests: int = 0
    #: Authorization codes exchanged for tokens.
    authorization_code_grants: int = 0
    #: Refresh grants answered with new tokens (a dropped response still counts: the
    #: server rotated).
    refresh_served: int = 0
    #: Refresh grants refused with an OAuth error (injected faults are not counted here).
    refresh_failed: int = 0
    #: Token-endpoint answers with ``error=invalid_grant``, whatever the grant type.
    invalid_grant: int = 0
    #: Rotated refresh tokens (or used codes) presented again.
    reuse_detected: int = 0
    #: Grants revoked as a whole, by reuse detection or by revoking a refresh token.
    grants_revoked: int = 0
    client_credentials_grants: int = 0
    #: Tokens revoked through ``POST /revoke``.
    revocations: int = 0
    #: Protected-resource answers (``/api/…`` and ``/userinfo``) by status.
    resource_ok: int = 0
    resource_unauthorized: int = 0
    #: Token-endpoint requests answered by an injected fault.
    faults_injected: int = 0
    #: Resource requests per access token, keyed by :func:`token_id`.
    requests_per_token: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for JSON and for comparing in tests)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def requests_with(self, access_token: str) -> int:
        """How many resource requests carried ``access_token``."""
        return self.requests_per_token.get(token_id(access_token), 0)


_FIELDS = tuple(f.name for f in fields(ServerStats))
_COUNTERS = frozenset(_FIELDS) - {"requests_per_token"}


class Counters:
    """Thread-safe counters behind :meth:`LocalAuthServer.stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()
        self._per_token: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` more of ``name``; raises ``KeyError`` for an unknown counter."""
        if name not in _COUNTERS:
            raise KeyError(name)  # a typo would otherwise count into the void
        with self._lock:
            self._values[name] += amount

    def token_used(self, token: str) -> None:
        """Count one resource request that carried ``token`` (kept by a fingerprint only)."""
        with self._lock:
            self._per_token[token_id(token)] += 1

    def snapshot(self) -> ServerStats:
        """The counters now, as an immutable :class:`ServerStats`."""
        with self._lock:
            per_token = MappingProxyType(dict(self._per_token))
            return ServerStats(**self._values, requests_per_token=per_token)

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._values.clear()
            self._per_token.clear()
