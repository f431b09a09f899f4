"""Token bundles, accounts, snapshots and the expiry arithmetic over them.

Everything here is pure: no clock is read (callers pass ``now``), no I/O happens. Expiries
are absolute epoch seconds so a bundle written by one process means the same thing when
another process reads it an hour later. What a just-received JWT says about its own
expiry is in :mod:`._jwt`, the rules for a bundle's extra fields in :mod:`._extra` (both
re-exported here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple, Optional, Union

from ._account_display import describe_account
from ._deprecation import deprecated_attributes
from ._extra import ExtraFields, Scalar, for_bundle
from ._jwt import (
    SKEWED_TOKEN_LIFETIME,
    TokenExpiry,
    access_token_expiry,
    jwt_claims,
    jwt_expiry,
)
from ._numbers import finite
from ._values import Value

__all__ = [
    "SKEWED_TOKEN_LIFETIME",
    "Account",
    "ExtraFields",
    "Snapshot",
    "TokenBundle",
    "TokenExpiry",
    "TokenState",
    "WriteReport",
    "access_token_expiry",
    "describe_account",
    "effective_skew",
    "fingerprint",
    "is_fresh",
    "jwt_claims",
    "jwt_expiry",
    "seconds_left",
]

ScopeLike = Union[str, Iterable[str], None]
#: Under its old name, for the modules that import it from here.
_finite = finite


def _normalize_scope(scope: ScopeLike) -> Optional[tuple[str, ...]]:
    if scope is None:
        return None
    if isinstance(scope, str):
        return tuple(part for part in scope.split() if part)
    return tuple(str(part) for part in scope)


def _check_expiry(name: str, value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    number = _finite(value)
    if number is None:
        raise TypeError(f"{name} must be epoch seconds (a finite number) or None")
    return number


def _text(value: Any) -> bool:
    """A non-empty str that can be encoded (no lone surrogates, which JSON can smuggle in)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag for a token, safe to log ("which token was that?").

    >>> fingerprint("example-token")
    '4d1566a1d7'
    """
    # surrogatepass: a malformed string (a lone surrogate from a JSON escape) still has a tag.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:10]


class TokenBundle(Value):
    """What a token endpoint gave us, with absolute expiries.

    ``issued_at`` (when we received the access token) lets the skew be clamped to half
    the token's lifetime; ``None`` means "unknown" and disables the clamp. ``extra``: the
    response's other non-secret scalar fields (Salesforce's ``instance_url``), read-only,
    checked by :mod:`._extra` (a field carrying either token is dropped). Immutable;
    ``repr`` shows ``'***'`` for both tokens and only the names of the extra fields.
    """

    __slots__ = (
        "access_token",
        "refresh_token",
        "expires_at",
        "refresh_expires_at",
        "token_type",
        "scope",
        "issued_at",
        "extra",
    )
    _secret_fields = frozenset({"access_token", "refresh_token"})

    access_token: str
    refresh_token: Optional[str]
    expires_at: Optional[float]
    refresh_expires_at: Optional[float]
    token_type: str
    scope: Optional[tuple[str, ...]]
    issued_at: Optional[float]
    extra: ExtraFields

    def __init__(
        self,
        access_token: str,
        refresh_token: Optional[str] = None,
        expires_at: Optional[float] = None,
        refresh_expires_at: Optional[float] = None,
        token_type: str = "Bearer",
        scope: ScopeLike = None,
        issued_at: Optional[float] = None,
        extra: Optional[Mapping[str, Scalar]] = None,
    ) -> None:
        if not _text(access_token):
            raise TypeError("access_token must be a non-empty string of valid Unicode")
        if refresh_token is not None and not _text(refresh_token):
            raise TypeError("refresh_token must be a non-empty string of valid Unicode or None")
        if not isinstance(token_type, str) or not token_type:
            raise TypeError("token_type must be a non-empty string")
        self._set(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=_check_expiry("expires_at", expires_at),
            refresh_expires_at=_check_expiry("refresh_expires_at", refresh_expires_at),
            token_type=token_type,
            scope=_normalize_scope(scope),
            issued_at=_check_expiry("issued_at", issued_at),
            extra=for_bundle(extra, (access_token, refresh_token)),
        )

    def __str__(self) -> str:
        return repr(self)

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for this token.

        Only a token type that is an HTTP authentication scheme (``DPoP``, ``MAC``)
        becomes the scheme; anything else (Slack's ``"bot"``/``"user"``) is a Bearer token.

        >>> TokenBundle("abc123", token_type="bot").authorization
        'Bearer abc123'
        >>> TokenBundle("abc123", token_type="DPoP").authorization
        'DPoP abc123'
        """
        kind = self.token_type.lower()
        scheme = self.token_type if kind in ("dpop", "mac") else "Bearer"
        return f"{scheme} {self.access_token}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, secrets included: for stores, never for logs."""
        data: dict[str, Any] = {"access_token": self.access_token, "token_type": self.token_type}
        for name in ("refresh_token", "expires_at", "refresh_expires_at", "issued_at"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.scope is not None:
            data["scope"] = list(self.scope)
        if self.extra:  # absent when empty: files stay as older versions wrote them
            data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenBundle:
        """Inverse of :meth:`to_dict`; raises ``TypeError``/``KeyError`` on bad shapes."""
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=data.get("expires_at"),
            refresh_expires_at=data.get("refresh_expires_at"),
            token_type=data.get("token_type", "Bearer"),
            scope=data.get("scope"),
            issued_at=data.get("issued_at"),
            extra=data.get("extra"),
        )


class Account(Value):
    """Who a bundle belongs to. ``id`` is stable (``sub``, email); ``label`` is for people."""

    __slots__ = ("id", "label")
    id: str
    label: Optional[str]

    def __init__(self, id: str, label: Optional[str] = None) -> None:
        if not isinstance(id, str) or not id:
            raise TypeError("Account.id must be a non-empty string")
        if label is not None and not isinstance(label, str):
            raise TypeError("Account.label must be a string or None")
        self._set(id=id, label=label)


class TokenState(Value):
    """The non-secret facts the refresh decision needs about a stored access token."""

    __slots__ = ("revision", "expires_at", "issued_at", "access_fingerprint")
    revision: int
    expires_at: Optional[float]
    issued_at: Optional[float]
    access_fingerprint: Optional[str]

    def __init__(
        self,
        revision: int,
        expires_at: Optional[float],
        issued_at: Optional[float],
        access_fingerprint: Optional[str],
    ) -> None:
        self._set(
            revision=revision,
            expires_at=expires_at,
            issued_at=issued_at,
            access_fingerprint=access_fingerprint,
        )

    def is_fresh(self, now: float, skew: float) -> bool:
        """Same rule as :func:`is_fresh`, on metadata alone."""
        if self.expires_at is None:
            return True
        return self.expires_at - now > _clamp_skew(skew, self.expires_at, self.issued_at)


class WriteReport(NamedTuple):
    """Where a save put an account's secrets, and what to tell the user about it (the
    plaintext fallback's warning): what a login prints after its save."""

    account: Account
    location: Literal["keyring", "plaintext"]
    warning: Optional[str] = None


class Snapshot(Value):
    """One consistent read of an account's stored state: a value, it does no I/O.

    ``revision`` increases on every save of the account, so "did someone refresh while I
    waited for the lock?" can be answered without comparing secrets. Stores that hold
    secrets inline (memory, file) fill ``bundle.refresh_token``; a store that keeps it
    elsewhere (the keyring) leaves it ``None`` with ``has_refresh_token`` set, and hands
    it out through ``store.read_refresh_token(snapshot)`` when a refresh is about to
    send it.

    ``write_report``: on the snapshot a store's ``save`` returns, where that save put the
    secrets (``None`` from stores with one place for them, and on reads). It belongs to
    this save alone, unlike a store-wide "last write", which another thread may replace
    in between; it takes no part in ``==``.
    """

    __slots__ = (
        "account",
        "bundle",
        "revision",
        "is_default",
        "has_refresh_token",
        "write_report",
    )
    _uncompared_fields = frozenset({"write_report"})

    account: Account
    bundle: TokenBundle
    revision: int
    is_default: bool
    has_refresh_token: bool
    write_report: Optional[WriteReport]

    def __init__(
        self,
        account: Account,
        bundle: TokenBundle,
        revision: int = 0,
        is_default: bool = False,
        has_refresh_token: Optional[bool] = None,
        write_report: Optional[WriteReport] = None,
    ) -> None:
        self._set(
            account=account,
            bundle=bundle,
            revision=revision,
            is_default=is_default,
            has_refresh_token=(
                bundle.refresh_token is not None if has_refresh_token is None else has_refresh_token
            ),
            write_report=write_report,
        )

    @property
    def state(self) -> TokenState:
        """The non-secret facts the refresh decision needs (revision, expiry, and a
        fingerprint of the access token, never the token).
        """
        return TokenState(
            revision=self.revision,
            expires_at=self.bundle.expires_at,
            issued_at=self.bundle.issued_at,
            access_fingerprint=fingerprint(self.bundle.access_token),
        )

    def load_refresh_token(self) -> Optional[str]:
        """Deprecated: use ``store.read_refresh_token(snapshot)``. The inline refresh
        token; no I/O (a token held elsewhere raises :class:`StoreReadError`)."""
        _deprecated_loader("load_refresh_token")
        return self._inline_refresh()

    def full_bundle(self) -> TokenBundle:
        """Deprecated: use ``store.read_refresh_token(snapshot)``. The bundle, when its
        refresh token is inline; no I/O (one held elsewhere raises ``StoreReadError``)."""
        _deprecated_loader("full_bundle")
        self._inline_refresh()
        return self.bundle

    def _inline_refresh(self) -> Optional[str]:
        if self.bundle.refresh_token is None and self.has_refresh_token:
            from .errors import StoreReadError

            raise StoreReadError(
                f"The refresh token of account {describe_account(self.account)} is not in this "
                "snapshot (its store keeps it elsewhere): call "
                "store.read_refresh_token(snapshot) instead."
            )
        return self.bundle.refresh_token


def _deprecated_loader(name: str) -> None:
    import warnings

    warnings.warn(
        f"Snapshot.{name}() is deprecated (a snapshot does no I/O): call "
        "store.read_refresh_token(snapshot)",
        DeprecationWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- expiry math


def seconds_left(bundle: TokenBundle, now: float) -> Optional[float]:
    """Seconds until the access token expires (negative once expired); ``None`` if unknown."""
    if bundle.expires_at is None:
        return None
    return bundle.expires_at - now


def effective_skew(bundle: TokenBundle, skew: float) -> float:
    """``skew`` clamped to half the token's lifetime.

    A 60 s skew on a 30 s token would otherwise refresh on every request.
    """
    return _clamp_skew(skew, bundle.expires_at, bundle.issued_at)


def _clamp_skew(skew: float, expires_at: Optional[float], issued_at: Optional[float]) -> float:
    skew = max(0.0, skew)
    if expires_at is not None and issued_at is not None:
        return min(skew, max(0.0, expires_at - issued_at) / 2.0)
    return skew


def is_fresh(bundle: TokenBundle, now: float, skew: float) -> bool:
    """Whether the access token can be used as is: more than the (clamped) skew left.

    No known expiry counts as fresh: the token is used until the server rejects it
    (the 401 path then refreshes).
    """
    return TokenState(0, bundle.expires_at, bundle.issued_at, None).is_fresh(now, skew)


def _refresh_token_expired(bundle: TokenBundle, now: float) -> bool:
    """Deprecated: the engine's one rule is :func:`.refresh.refresh_expired`."""
    from .refresh import refresh_expired

    return refresh_expired(bundle.refresh_expires_at, now)


# Deprecated in 0.x, removed in the next release: the rule lives in the engine.
__getattr__ = deprecated_attributes(
    __name__,
    {
        "refresh_token_expired": (
            _refresh_token_expired,
            "use requests_refreshauth.refresh.refresh_expired(bundle.refresh_expires_at, now)",
        )
    },
)
