"""No token in a test's DEBUG logs from the server half of oauthlib.

:class:`~requests_refreshauth.testing.LocalAuthServer` runs oauthlib's server endpoints
in-process, and they log the tokens they validate and issue at DEBUG. A test that turns
DEBUG on (to check that the library logs no secret) must not find them there, so their
DEBUG records are dropped; oauthlib's client side, which the library uses, is untouched.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_server_side_oauthlib"]

_SERVER_SIDE = ("oauthlib.oauth2.rfc6749.grant_types", "oauthlib.oauth2.rfc6749.endpoints")


class _BelowInfoDropped(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_DROP_DEBUG = _BelowInfoDropped()


def quiet_server_side_oauthlib() -> None:
    """Put the filter on each server module's logger (a logger's filters see only its own
    records, not its children's), once they are imported; idempotent."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not name.startswith(_SERVER_SIDE):
            continue
        if _DROP_DEBUG not in logger.filters:
            logger.addFilter(_DROP_DEBUG)
