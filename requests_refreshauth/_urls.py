"""URL rules: https everywhere except loopback (RFC 8252 §8.3), and origins."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

__all__ = ["for_oauthlib", "is_loopback_host", "origin_of", "require_secure_url"]


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def require_secure_url(url: str, what: str) -> str:
    """Return ``url`` if it is https, or http on a loopback host; else ``ValueError``."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"{what} must be an absolute https URL")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise ValueError(
        f"{what} must use https (plain http is allowed only for loopback hosts such as "
        f"127.0.0.1): {_redacted(url)}"
    )


def for_oauthlib(url: str) -> str:
    """The URL as oauthlib's transport check wants it.

    oauthlib refuses ``http://`` unless the process-wide ``OAUTHLIB_INSECURE_TRANSPORT``
    is set, which would also allow it for every non-loopback host. We check the rule
    ourselves (:func:`require_secure_url`) and show oauthlib an https spelling of a
    loopback URL; the caller swaps the scheme back with :func:`from_oauthlib`.
    """
    parts = urlsplit(url)
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return urlunsplit(("https", *parts[1:]))
    return url


def from_oauthlib(built: str, original: str) -> str:
    """Undo :func:`for_oauthlib` on a URL oauthlib built from ``original``."""
    if urlsplit(original).scheme == "http" and built.startswith("https://"):
        return "http://" + built[len("https://") :]
    return built


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in, for same-origin checks."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, host, port
