"""Authorization-server metadata (RFC 8414, OpenID Connect Discovery), cached on disk.

A CLI that configures itself from an issuer URL should not fetch the metadata on every
invocation: the document changes rarely, and the fetch would double the start-up latency
of every command. It is cached per issuer for ``ttl`` seconds in the user's cache
directory; a cache that cannot be read or written is only a missed optimisation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

import requests

from ._fs import UnsafeFile, check_trusted, ensure_private_dir, open_regular
from ._paths import user_dir
from ._urls import require_secure_url
from .errors import OAuthFlowError, RefreshTransientError

__all__ = ["default_cache_dir", "discover", "metadata_urls"]

log = logging.getLogger("requests_refreshauth.discovery")

DEFAULT_TTL = 24 * 3600.0


def default_cache_dir() -> Path:
    """The per-user cache directory of this library (XDG, macOS, Windows conventions)."""
    override = os.environ.get("REFRESHAUTH_CACHE_DIR")
    return Path(override) if override else user_dir("cache")


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may live, in the order RFC 8414 §3.1 and OIDC give."""
    parts = urlsplit(issuer.rstrip("/"))
    path = parts.path
    oauth = "/.well-known/oauth-authorization-server" + path
    oidc = path + "/.well-known/openid-configuration"
    return [urlunsplit((parts.scheme, parts.netloc, p, "", "")) for p in (oauth, oidc)]


def discover(
    issuer: str,
    *,
    session: Optional[requests.Session] = None,
    cache_dir: Optional[os.PathLike[str] | str] = None,
    ttl: float = DEFAULT_TTL,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The issuer's metadata, from the cache when younger than ``ttl`` seconds.

    Raises :class:`~requests_refreshauth.errors.OAuthFlowError` when no valid document
    is found, or when the document names another issuer (RFC 8414 §3.3), and
    :class:`~requests_refreshauth.errors.RefreshTransientError` when the server cannot
    be reached at all.
    """
    require_secure_url(issuer, "issuer")
    cache = _cache_file(issuer, cache_dir) if ttl > 0 else None
    cached = _read_cache(cache, issuer, ttl) if cache is not None else None
    if cached is not None:
        return cached
    own = session is None
    http = session or requests.Session()
    try:
        metadata = _fetch(http, issuer, timeout)
    finally:
        if own:
            http.close()
    if cache is not None:
        _write_cache(cache, issuer, metadata)
    return metadata


#: The endpoints this library calls or sends users to.
_ENDPOINTS = (
    "token_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
)


def _fetch(http: requests.Session, issuer: str, timeout: float) -> dict[str, Any]:
    """GET the metadata: no credentials (not even netrc), no redirects (RFC 8414 §3.2
    wants a 200; another origin must not get to define our endpoints), a deadline and
    a size cap per URL; every endpoint it names must pass the https rule."""
    from . import _http

    problems: list[str] = []
    unreachable = 0
    for url in metadata_urls(issuer):
        try:
            response = _http.call(
                http,
                "GET",
                url,
                what="discovery endpoint",
                headers={"Accept": "application/json"},
                timeout=timeout,
            )
        except _http.ResponseTooLarge as exc:
            problems.append(f"{url}: {exc}")
            continue
        except requests.RequestException as exc:
            problems.append(f"{url}: {type(exc).__name__}")
            unreachable += 1
            continue
        if response.status_code != 200:
            redirect = " (redirects are not followed)" if response.is_redirect else ""
            problems.append(f"{url}: HTTP {response.status_code}{redirect}")
            continue
        try:
            metadata = response.json()
        except ValueError:
            problems.append(f"{url}: not JSON")
            continue
        problem = _validate(metadata, issuer)
        if problem:
            problems.append(f"{url}: {problem}")
            continue
        for key in _ENDPOINTS:  # an empty optional endpoint is absent, as for the provider
            if key == "token_endpoint" or metadata.get(key) not in (None, ""):
                require_secure_url(metadata[key], f"{key} (from {issuer}'s metadata)")
        return dict(metadata)
    message = f"Could not discover the authorization server of {issuer} ({'; '.join(problems)})."
    if unreachable == len(problems):  # the network, not the server's answer: try later
        raise RefreshTransientError(message + " Check the network and try again.")
    raise OAuthFlowError(message)


def _validate(metadata: Any, issuer: str) -> Optional[str]:
    if not isinstance(metadata, dict):
        return "not a JSON object"
    if str(metadata.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        return "the document names a different issuer"
    if not isinstance(metadata.get("token_endpoint"), str):
        return "no token_endpoint"
    return None


def _cache_file(issuer: str, cache_dir: Optional[os.PathLike[str] | str]) -> Path:
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(issuer.rstrip("/").encode("utf-8")).hexdigest()[:24]
    return base / "discovery" / f"{digest}.json"


def _read_cache(path: Path, issuer: str, ttl: float) -> Optional[dict[str, Any]]:
    """The cached metadata, or ``None`` (refetch) when absent, stale, unreadable, or in a
    file or directory another user owns or can write: metadata names the token endpoint,
    so a swapped entry would send the refresh token to another user's server."""
    try:
        with open(open_regular(str(path), os.O_RDONLY), "rb") as handle:
            check_trusted(str(path), os.fstat(handle.fileno()))
            raw = handle.read()
        entry = json.loads(raw.decode("utf-8"))
        fetched_at = float(entry["fetched_at"])
        metadata = entry["metadata"]
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        log.warning("not using the discovery cache: %s", exc)
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("ignoring unreadable discovery cache %s (%s)", path, type(exc).__name__)
        return None
    if not 0 <= time.time() - fetched_at < ttl or _validate(metadata, issuer):
        return None
    return dict(metadata)


def _write_cache(path: Path, issuer: str, metadata: dict[str, Any]) -> None:
    entry = {"issuer": issuer, "fetched_at": time.time(), "metadata": metadata}
    try:
        ensure_private_dir(str(path.parent))  # 0700 whatever the umask, parents included
        check_trusted(str(path))  # not worth writing where another user can swap it
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".discovery.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                json.dump(entry, handle)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except UnsafeFile as exc:
        log.warning("not caching discovery metadata: %s", exc)
    except OSError as exc:
        log.info("could not cache discovery metadata in %s (%s)", path, exc.strerror)
