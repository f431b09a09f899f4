"""Silent, rotation-safe OAuth 2.0 token refresh for ``requests``.

    session.auth = RefreshAuth(store, provider)

Importing this package imports ``requests`` and the standard library only; oauthlib,
fasteners and keyring are imported on first use.
"""

from __future__ import annotations

from .adapter import RefreshAdapter
from .auth import RefreshAuth
from .bundle import Account, Snapshot, TokenBundle
from .errors import (
    AccountNotFoundError,
    AuthError,
    CallbackTimeoutError,
    NoAccountSelectedError,
    NotAuthenticatedError,
    OAuthFlowError,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    RefreshUnavailableError,
    StoreReadError,
    StoreWriteError,
    TokenExchangeError,
)
from .events import AuthEvent, add_listener, remove_listener
from .migrate import ImportResult, import_legacy_token
from .providers import AuthorizationRequest, AuthProvider, PkceProvider, RetryPolicy
from .refresh import refresh_access_token
from .stores import (
    AccountStatus,
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    TokenStore,
    WriteReport,
)

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountNotFoundError",
    "AccountStatus",
    "AuthError",
    "AuthEvent",
    "AuthProvider",
    "AuthorizationRequest",
    "CallbackTimeoutError",
    "FileTokenStore",
    "ImportResult",
    "KeyringTokenStore",
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
    "Snapshot",
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
