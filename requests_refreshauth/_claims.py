"""The OpenID Connect ``claims`` request parameter (OIDC Core §5.5), checked (pure).

Microsoft Entra answers a refresh that needs MFA or a policy with ``interaction_required``
and a claims challenge (kept on ``RefreshExpiredError.extra["claims"]``); the next
authorization request must carry it. A challenge is passed on exactly as the server sent
it; a mapping is serialised compactly. Anything else fails before the user is shown a
URL: a sign-in that cannot satisfy the policy would only fail again after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional, Union

from .errors import ConfigurationError

__all__ = ["Claims", "claims_parameter"]

Claims = Union[str, Mapping[str, Any]]


def _refused(what: str) -> ConfigurationError:
    return ConfigurationError(
        "The claims request parameter must be a JSON object (such as the claims "
        f"challenge of the server's answer), not {what}."
    )


def claims_parameter(claims: Optional[Claims]) -> Optional[str]:
    """The ``claims`` parameter's value, or ``None`` for none; a
    :class:`~requests_refreshauth.errors.ConfigurationError` (a ``ValueError``) if it is
    not a JSON object. The value is never quoted back (it is the server's text)."""
    if claims is None:
        return None
    if isinstance(claims, Mapping):
        try:
            return json.dumps(dict(claims), separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            raise _refused("a mapping JSON cannot represent") from None
    if not isinstance(claims, str):
        raise _refused(f"a {type(claims).__name__}")
    try:
        parsed = json.loads(claims)
    except (ValueError, RecursionError):
        raise _refused("invalid JSON") from None
    if not isinstance(parsed, dict):
        raise _refused(f"a JSON {_json_kind(parsed)}")
    return claims


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "array"
