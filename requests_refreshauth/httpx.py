"""``httpx.Client(auth=RefreshAuth(store, provider))``: the same refresh for httpx.

Works as ``auth=`` on both ``httpx.Client`` and ``httpx.AsyncClient``, on the same stores,
providers, locks and events as the requests side: one refresh per account across threads,
coroutines and processes. Needs the ``httpx`` extra (``pip install
'requests-refreshauth[httpx]'``); ``import requests_refreshauth`` never imports httpx.

Token requests still go through the provider's ``requests`` session: give the provider
one (``PkceProvider(..., session=s)``) with the proxies, CA bundle and client certificate
your httpx client uses (``s.proxies``, ``s.verify``, ``s.cert``). The flow itself is in
:mod:`._httpx_flow`; ``requests_refreshauth.httpx2`` is the same for the ``httpx2`` fork.
"""

from __future__ import annotations

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "requests_refreshauth.httpx needs httpx: pip install 'requests-refreshauth[httpx]'"
    ) from exc

from ._httpx_flow import RefreshFlow

__all__ = ["RefreshAuth"]


class RefreshAuth(RefreshFlow[httpx.Request, httpx.Response], httpx.Auth):
    """An ``httpx.Auth`` that keeps a stored OAuth 2.0 token fresh, sync and async.

    ``account`` picks the stored account (id or label; ``None``: the default).
    ``skew``: seconds before expiry at which the token is renewed ahead of time.
    ``origin``: an http(s) URL, or several, whose origins alone get the token (``None``:
    every request the client sends, as ``httpx.BasicAuth`` does).
    Share one instance across threads, tasks and clients freely.

    >>> client = httpx.AsyncClient(auth=RefreshAuth(store, provider))  # doctest: +SKIP

    Raises :class:`~requests_refreshauth.errors.AuthError` subclasses (which are
    ``requests`` exceptions, not ``httpx.HTTPError``) when no usable token can be had.
    """

    _url_class = httpx.URL
    _invalid_url = httpx.InvalidURL
    _replayable = httpx.ByteStream
