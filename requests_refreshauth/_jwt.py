"""What a just-received access token says about itself: its JWT claims and its expiry.

Pure: no clock is read (callers pass ``now``), nothing is verified. The claims decide only
things that grant nothing (when to refresh, what to call the account), so an unverified
read is enough; a signature check would need the server's keys for no gain.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, NamedTuple, Optional

from ._numbers import finite as _finite

__all__ = [
    "SKEWED_TOKEN_LIFETIME",
    "TokenExpiry",
    "access_token_expiry",
    "jwt_claims",
    "jwt_expiry",
]


def jwt_claims(token: str) -> Optional[dict[str, Any]]:
    """The payload of a JWT, *unverified*, or ``None`` if ``token`` is not a readable JWT.

    Only for decisions that grant nothing: when to refresh (``exp``), what to call the
    account (``sub``). Never for authorization.
    """
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


def jwt_expiry(token: str) -> Optional[float]:
    """The ``exp`` claim of a JWT access token, or ``None`` if it is not a readable JWT.

    Only the payload is decoded: the value decides when *we* refresh, it grants nothing,
    so no signature check is needed.
    """
    claims = jwt_claims(token)
    return None if claims is None else _finite(claims.get("exp"))


#: Seconds a JWT access token is used when, by this machine's clock, its ``exp`` has
#: already passed on receipt and it carries no ``iat`` to tell its lifetime: the clocks
#: disagree, and refreshing again at once would loop. Tokens that die sooner are renewed
#: by the 401 path; with the default skew, one refresh per four minutes at most.
SKEWED_TOKEN_LIFETIME = 300.0
#: A local lifetime below this is not believed (it would mean a refresh per request).
_MIN_LIFETIME = 1.0
#: Without ``iat``, an ``exp`` fewer seconds ahead of our clock than this on receipt is
#: taken as clock skew, not as a token about to die: real access tokens live minutes, and
#: believing it would renew on every request (the skew clamps to half of what is left).
_SUSPECT_LIFETIME = 30.0


class TokenExpiry(NamedTuple):
    """When a just-received access token expires by the local clock.

    ``clock_suspect``: the JWT's ``exp`` had already passed by our clock and no ``iat``
    said how long the token lives, so :data:`SKEWED_TOKEN_LIFETIME` was assumed.
    """

    expires_at: Optional[float]
    clock_suspect: bool = False


def access_token_expiry(expires_in: Optional[float], access_token: str, now: float) -> TokenExpiry:
    """The local expiry of an access token received at ``now`` (pure).

    ``expires_in`` wins. Otherwise a JWT's ``exp`` is the *server's* clock: with ``iat``,
    ``exp - iat`` is a lifetime counted from ``now``, whatever the clocks say; without it
    ``exp`` is taken as is unless it has passed by our clock, or is less than
    ``_SUSPECT_LIFETIME`` ahead: the token was not born (nearly) dead, our clock is
    ahead, and it is used for :data:`SKEWED_TOKEN_LIFETIME` seconds. An unusable result
    (not finite) is "unknown".
    """
    if expires_in is not None:
        return TokenExpiry(_finite(now + expires_in))
    claims = jwt_claims(access_token)
    if claims is None:
        return TokenExpiry(None)
    exp = _finite(claims.get("exp"))
    if exp is None:
        return TokenExpiry(None)
    iat = _finite(claims.get("iat"))
    if iat is not None:
        lifetime = _finite(exp - iat)
        if lifetime is not None and lifetime >= _MIN_LIFETIME:
            at = _finite(now + lifetime)
            if at is not None and at - now >= _MIN_LIFETIME:
                return TokenExpiry(at)
    if exp - now >= _SUSPECT_LIFETIME:
        return TokenExpiry(exp)
    return TokenExpiry(now + SKEWED_TOKEN_LIFETIME, clock_suspect=True)
