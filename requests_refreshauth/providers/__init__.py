"""Providers: how tokens are obtained and renewed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .base import AuthProvider as AuthProvider
    from .client_credentials import ClientCredentialsProvider as ClientCredentialsProvider
    from .pkce import AuthorizationRequest as AuthorizationRequest
    from .pkce import PkceProvider as PkceProvider
    from .token_endpoint import RetryPolicy as RetryPolicy

_EXPORTS = {
    "AuthProvider": ".base",
    "AuthorizationRequest": ".pkce",
    "ClientCredentialsProvider": ".client_credentials",
    "PkceProvider": ".pkce",
    "RetryPolicy": ".token_endpoint",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [*_EXPORTS]
