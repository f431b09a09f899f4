"""Whether the running thread is sending one of this library's own calls.

Its own module so that :class:`~requests_refreshauth.RefreshAdapter`, which reads it on
every request to stand aside for the provider's calls (sent by :mod:`._http`), imports
this flag and not the whole HTTP machinery.
"""

from __future__ import annotations

import threading

__all__ = ["PROVIDER_CALL"]


class _ProviderCall(threading.local):
    #: True in a thread while it sends one of our own calls. A class attribute, so the
    #: hot path's read never raises (a missing attribute on a ``local`` costs ~1 µs).
    active = False


PROVIDER_CALL = _ProviderCall()
