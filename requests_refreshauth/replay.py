"""Deprecated: renamed :mod:`requests_refreshauth.resend` (kept for one release).

Importing this module warns; its functions are those of ``resend``. The package itself
never imports this module, so ``import requests_refreshauth`` stays free of it.
"""

from __future__ import annotations

import warnings

from .resend import can_replay, release, renew_after_401, resend_copy, resendable, rewind

__all__ = ["can_replay", "release", "renew_after_401", "resend_copy", "resendable", "rewind"]

warnings.warn(
    "requests_refreshauth.replay is deprecated: renamed requests_refreshauth.resend",
    DeprecationWarning,
    stacklevel=2,
)
