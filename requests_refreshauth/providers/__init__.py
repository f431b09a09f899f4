"""Providers: how tokens are obtained and renewed."""

from __future__ import annotations

from .base import AuthProvider
from .pkce import AuthorizationRequest, PkceProvider
from .token_endpoint import RetryPolicy

__all__ = ["AuthProvider", "AuthorizationRequest", "PkceProvider", "RetryPolicy"]
