"""``httpx2.Client(auth=RefreshAuth(store, provider))``: the httpx flow for the ``httpx2``
fork (Python >= 3.11), which accepts only its own ``Auth`` subclasses.

The same code as :mod:`requests_refreshauth.httpx` (:mod:`._httpx_flow`), bound to httpx2's
classes. Needs httpx2 installed (``pip install httpx2``).
"""

from __future__ import annotations

try:
    import httpx2
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "requests_refreshauth.httpx2 needs httpx2 (Python >= 3.11): pip install httpx2"
    ) from exc

from ._httpx_flow import RefreshFlow

__all__ = ["RefreshAuth"]


class RefreshAuth(RefreshFlow[httpx2.Request, httpx2.Response], httpx2.Auth):
    """An ``httpx2.Auth`` that keeps a stored OAuth 2.0 token fresh, sync and async: see
    :class:`requests_refreshauth.httpx.RefreshAuth` (same arguments, same behaviour)."""

    _url_class = httpx2.URL
    _invalid_url = httpx2.InvalidURL
    _replayable = httpx2.ByteStream
