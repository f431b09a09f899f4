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
    # Exactly the names and modules of _EXPORTS (tests/test_public_api.py checks it);
    # ``X as X`` marks each as re-exported for type checkers.
    from .adapter import RefreshAdapter as RefreshAdapter
    from .auth import RefreshAuth as RefreshAuth
    from .bundle import Account as Account
    from .bundle import Snapshot as Snapshot
    from .bundle import TokenBundle as TokenBundle
    from .errors import AccountNotFoundError as AccountNotFoundError
    from .errors import AuthError as AuthError
    from .errors import CallbackTimeoutError as CallbackTimeoutError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import InternalError as InternalError
    from .errors import KeyringUnavailableError as KeyringUnavailableError
    from .errors import MoveRefusedError as MoveRefusedError
    from .errors import NoAccountSelectedError as NoAccountSelectedError
    from .errors import NotAuthenticatedError as NotAuthenticatedError
    from .errors import OAuthFlowError as OAuthFlowError
    from .errors import RefreshExpiredError as RefreshExpiredError
    from .errors import RefreshRejectedError as RefreshRejectedError
    from .errors import RefreshTransientError as RefreshTransientError
    from .errors import RefreshUnavailableError as RefreshUnavailableError
    from .errors import SaveFailedError as SaveFailedError
    from .errors import SecretsInKeyringError as SecretsInKeyringError
    from .errors import SlotCollisionError as SlotCollisionError
    from .errors import StoreReadError as StoreReadError
    from .errors import StoreWriteError as StoreWriteError
    from .errors import TokenExchangeError as TokenExchangeError
    from .events import AuthEvent as AuthEvent
    from .events import add_listener as add_listener
    from .events import remove_listener as remove_listener
    from .migrate import ImportResult as ImportResult
    from .migrate import import_legacy_token as import_legacy_token
    from .move import move_account as move_account
    from .providers.base import AuthProvider as AuthProvider
    from .providers.client_credentials import ClientCredentialsProvider as ClientCredentialsProvider
    from .providers.pkce import AuthorizationRequest as AuthorizationRequest
    from .providers.pkce import PkceProvider as PkceProvider
    from .providers.token_endpoint import RetryPolicy as RetryPolicy
    from .refresh import refresh_access_token as refresh_access_token
    from .standalone import StandaloneConfig as StandaloneConfig
    from .stores.base import AccountStatus as AccountStatus
    from .stores.base import SessionEnded as SessionEnded
    from .stores.base import TokenStore as TokenStore
    from .stores.encryption import TokenEncryption as TokenEncryption
    from .stores.file import FileTokenStore as FileTokenStore
    from .stores.keyring import KeyringTokenStore as KeyringTokenStore
    from .stores.keyring import WriteReport as WriteReport
    from .stores.memory import MemoryTokenStore as MemoryTokenStore
    from .stores.redis import RedisTokenStore as RedisTokenStore

__version__ = "0.1.0"

#: The public API, the one table: name -> the module defining it (loaded on first use).
_EXPORTS = {
    "Account": ".bundle",
    "AccountNotFoundError": ".errors",
    "AccountStatus": ".stores.base",
    "AuthError": ".errors",
    "AuthEvent": ".events",
    "AuthProvider": ".providers.base",
    "AuthorizationRequest": ".providers.pkce",
    "CallbackTimeoutError": ".errors",
    "ClientCredentialsProvider": ".providers.client_credentials",
    "ConfigurationError": ".errors",
    "FileTokenStore": ".stores.file",
    "ImportResult": ".migrate",
    "InternalError": ".errors",
    "KeyringTokenStore": ".stores.keyring",
    "KeyringUnavailableError": ".errors",
    "MemoryTokenStore": ".stores.memory",
    "MoveRefusedError": ".errors",
    "RedisTokenStore": ".stores.redis",
    "TokenEncryption": ".stores.encryption",
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
    "SecretsInKeyringError": ".errors",
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
    "move_account": ".move",
    "refresh_access_token": ".refresh",
    "remove_listener": ".events",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# Like requests and urllib3: without logging configured by the application, the library
# never prints bare "lastResort" lines (a CLI prints its own messages, once).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", *_EXPORTS]
