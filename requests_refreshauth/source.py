"""Deprecated: renamed :mod:`requests_refreshauth.token_cache` (kept for one release).

``TokenSource`` was the per-client token cache; it is now ``TokenCache``. Importing this
module warns; so does every use of ``TokenSource`` here or in ``token_cache``. The
package itself never imports this module, so ``import requests_refreshauth`` stays free
of it.
"""

from __future__ import annotations

import warnings

from ._deprecation import deprecated_attributes
from .token_cache import TokenCache

__all__: list[str] = []

warnings.warn(
    "requests_refreshauth.source is deprecated: renamed requests_refreshauth.token_cache "
    "(TokenSource is now TokenCache)",
    DeprecationWarning,
    stacklevel=2,
)

__getattr__ = deprecated_attributes(
    __name__,
    {"TokenSource": (TokenCache, "renamed TokenCache: use requests_refreshauth.token_cache")},
)
