"""Silent, rotation-safe OAuth 2.0 token refresh for ``requests``.

    session.auth = RefreshAuth(store, provider)

Public names are loaded on first use (PEP 562), so a CLI's start-up pays only for what
it touches; oauthlib, fasteners and keyring are imported when first needed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from .adapter import RefreshAdapter
    from .auth import RefreshAuth
    from .bundle import Account, Snapshot, TokenBundle
    from .errors import (
        AccountNotFoundError,
        AuthError,
        CallbackTimeoutError,
        ConfigurationError,
        InternalError,
        KeyringUnavailableError,
        NoAccountSelectedError,
        NotAuthenticatedError,
        OAuthFlowError,
        RefreshExpiredError,
        RefreshRejectedError,
        RefreshTransientError,
        RefreshUnavailableError,
        SaveFailedError,
        SlotCollisionError,
        StoreReadError,
        StoreWriteError,
        TokenExchangeError,
    )
    from .events import AuthEvent, add_listener, remove_listener
    from .migrate import ImportResult, import_legacy_token
    from .providers import AuthorizationRequest, AuthProvider, PkceProvider, RetryPolicy
    from .refresh import refresh_access_token
    from .standalone import StandaloneConfig
    from .stores import (
        AccountStatus,
        FileTokenStore,
        KeyringTokenStore,
        MemoryTokenStore,
        SessionEnded,
        TokenStore,
        WriteReport,
    )

__version__ = "0.1.0"

_EXPORTS = {
    "Account": ".bundle",
    "AccountNotFoundError": ".errors",
    "AccountStatus": ".stores.base",
    "AuthError": ".errors",
    "AuthEvent": ".events",
    "AuthProvider": ".providers.base",
    "AuthorizationRequest": ".providers.pkce",
    "CallbackTimeoutError": ".errors",
    "ConfigurationError": ".errors",
    "FileTokenStore": ".stores.file",
    "ImportResult": ".migrate",
    "InternalError": ".errors",
    "KeyringTokenStore": ".stores.keyring",
    "KeyringUnavailableError": ".errors",
    "MemoryTokenStore": ".stores.memory",
    "NoAccountSelectedError": ".errors",
    "NotAuthenticatedError": ".errors",
    "OAuthFlowError": ".errors",
    "PkceProvider": ".providers.pkce",
    "RefreshAdapter": ".adapter",
    "RefreshAuth": ".auth",
    "RefreshExpiredError": ".errors",
    "RefreshRejectedError": ".errors",
    "RefreshTransientError": ".errors",
    "RefreshUnavailableError": ".errors",
    "RetryPolicy": ".providers.token_endpoint",
    "SaveFailedError": ".errors",
    "SessionEnded": ".stores.base",
    "SlotCollisionError": ".errors",
    "Snapshot": ".bundle",
    "StandaloneConfig": ".standalone",
    "StoreReadError": ".errors",
    "StoreWriteError": ".errors",
    "TokenBundle": ".bundle",
    "TokenExchangeError": ".errors",
    "TokenStore": ".stores.base",
    "WriteReport": ".stores.keyring",
    "add_listener": ".events",
    "import_legacy_token": ".migrate",
    "refresh_access_token": ".refresh",
    "remove_listener": ".events",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# Like requests and urllib3: without logging configured by the application, the library
# never prints bare "lastResort" lines (a CLI prints its own messages, once).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Account",
    "AccountNotFoundError",
    "AccountStatus",
    "AuthError",
    "AuthEvent",
    "AuthProvider",
    "AuthorizationRequest",
    "CallbackTimeoutError",
    "ConfigurationError",
    "FileTokenStore",
    "ImportResult",
    "InternalError",
    "KeyringTokenStore",
    "KeyringUnavailableError",
    "MemoryTokenStore",
    "NoAccountSelectedError",
    "NotAuthenticatedError",
    "OAuthFlowError",
    "PkceProvider",
    "RefreshAdapter",
    "RefreshAuth",
    "RefreshExpiredError",
    "RefreshRejectedError",
    "RefreshTransientError",
    "RefreshUnavailableError",
    "RetryPolicy",
    "SaveFailedError",
    "SessionEnded",
    "SlotCollisionError",
    "Snapshot",
    "StandaloneConfig",
    "StoreReadError",
    "StoreWriteError",
    "TokenBundle",
    "TokenExchangeError",
    "TokenStore",
    "WriteReport",
    "__version__",
    "add_listener",
    "import_legacy_token",
    "refresh_access_token",
    "remove_listener",
]
