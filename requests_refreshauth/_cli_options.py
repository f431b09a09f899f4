"""Option values and help texts the argparse and click wirings share (one check each, so
both CLIs accept and refuse the same values)."""

from __future__ import annotations

RETRY_HELP = "after the server ended the session, try its refresh token once more (or log in)"


#: Where ``--user`` given before the verb (``mycli auth --user bob status``) is kept.
USER_BEFORE = "refreshauth_user_before_verb"


def port_number(text: str) -> int:
    """argparse ``type``: a TCP port, or 0 for any free one (a usage error otherwise)."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number 1-65535 (or 0 for any free port), not {text!r}"
        )
    return port


def positive_seconds(text: str) -> float:
    """argparse ``type``: a positive, finite number of seconds."""
    import argparse
    import math

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return seconds


def claims_json(text: str) -> str:
    """argparse ``type``: the OIDC ``claims`` parameter, a JSON object (usage error else)."""
    import argparse

    from ._claims import claims_parameter
    from .errors import ConfigurationError

    try:
        return claims_parameter(text) or ""
    except ConfigurationError:
        raise argparse.ArgumentTypeError("must be a JSON object (a claims challenge)") from None


CLAIMS_HELP = "ask for these claims (a JSON object, e.g. the server's claims challenge)"
PORT_HELP = "listen for the redirect on this exact port (for a registered redirect URI)"
TIMEOUT_HELP = "seconds to wait for the browser sign-in (default: 180)"
