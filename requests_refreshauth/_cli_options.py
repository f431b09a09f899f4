"""The checks of option values (argparse ``type`` functions; the click front-end runs the
same ones), so both CLIs accept and refuse the same values."""

from __future__ import annotations


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
