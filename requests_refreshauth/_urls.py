"""URL rules: https everywhere except loopback (RFC 8252 §8.3), and origins.

An endpoint URL is judged by the host urllib3 will connect to, and refused when the
parsers could disagree about it (backslashes, whitespace, control characters, userinfo).
``*.localhost`` names count as loopback only if they resolve only to loopback addresses
when judged (at construction, and again before each call); a name a DNS server answers
could still change in between, so prefer ``127.0.0.1``, ``[::1]`` or ``localhost``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Callable, Optional, Union
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "canonical_origin",
    "for_oauthlib",
    "is_loopback_host",
    "origin_of",
    "require_secure_url",
    "valid_origins",
]


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, a loopback IP literal, or a ``*.localhost`` name that resolves
    only to loopback addresses (RFC 6761 asks resolvers to, but many send such names to
    DNS, where anyone may answer). Resolution happens here, when the URL is judged."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return host.endswith(".localhost") and _resolves_only_to_loopback(host)


def _resolves_only_to_loopback(host: str) -> bool:
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except ValueError:
        return False


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Unsafe(Exception):
    """Why a URL is refused (internal; raised as ``ConfigurationError``)."""


def _host_and_port(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as urllib3 will connect, if urlsplit agrees; else ``_Unsafe``.

    The two parsers disagree on backslashes (``http://evil\\@127.0.0.1/``: urlsplit sees
    127.0.0.1, urllib3 connects to evil), so such characters and userinfo are refused
    outright, and whatever remains must parse the same way in both.
    """
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _Unsafe("must be a URL without backslashes, spaces or control characters")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise _Unsafe("must be a URL without user:password@ credentials")
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        port = parts.port
        seen = parse_url(url)
    except (ValueError, LocationParseError):
        raise _Unsafe("must be a well-formed URL") from None
    host = (parts.hostname or "").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Unsafe("must be a URL with a valid host name") from None
    connects_to = (seen.host or "").strip("[]").lower()
    if seen.auth is not None or connects_to != host or (seen.port or None) != port:
        raise _Unsafe("must be an unambiguous URL (urllib3 and urlsplit disagree on its host)")
    return parts.scheme.lower(), host, port


def require_secure_url(url: str, what: str) -> str:
    """Return ``url`` if it is https, or http on a loopback host; else raise
    ``ConfigurationError`` (also a ``ValueError``). The host judged is the one the HTTP
    stack will connect to."""
    from .errors import ConfigurationError

    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{what} must be an absolute https URL")
    try:
        scheme, host, _ = _host_and_port(url)
    except _Unsafe as exc:
        raise ConfigurationError(f"{what} {exc}") from None
    if scheme == "https" and host:
        return url
    if scheme == "http" and is_loopback_host(host):
        return url
    raise ConfigurationError(
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
    if parts.scheme == "http":  # only loopback URLs pass require_secure_url with http
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


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def canonical_origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) in the one form requests sends, or ``None`` if ``url`` does
    not parse (fail closed: no origin, no token).

    The host is lower case and IDNA-encoded the way requests encodes it when it prepares
    a URL (``bücher.example`` goes out as ``xn--bcher-kva.example``), so a mount on either
    spelling and a request for either spelling compare equal; the default port is filled
    in. An out-of-range port, an empty label, a character no host name has, or a
    punycode label that does not decode means no origin.

    So does a URL whose authority two parsers could read differently: urllib3 (which
    connects) reads ``https://evil.example\\@api.example.com/`` as host ``evil.example``
    where ``urlsplit`` sees ``api.example.com``. A backslash, ``%``, whitespace or a
    control character in the authority, or userinfo (``@``), means no origin, and the
    host must be the one urllib3 would connect to.
    """
    parts = urlsplit(url)
    if _AMBIGUOUS_AUTHORITY.search(_authority(url)):
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = _canonical_host(parts.hostname or "")
    if host is None or _connect_host(url) != host:
        return None
    scheme = parts.scheme.lower()
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, host, port


#: In an authority: what makes parsers disagree (urllib3 treats ``\\`` as ``/``), or
#: is never part of a host this library sends a token to.
_AMBIGUOUS_AUTHORITY = re.compile(r"[\\@%\s\x00-\x1f\x7f]")


def _authority(url: str) -> str:
    """The text between ``scheme://`` and the first ``/``, ``?`` or ``#`` (raw: no
    parser's normalisation)."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _connect_host(url: str) -> str | None:
    """The host urllib3 would connect to, in canonical form (``None``: it cannot parse)."""
    from urllib3.util import parse_url

    try:
        host = parse_url(url).host
    except ValueError:
        return None
    if host is None:
        return None
    return _canonical_host(host[1:-1] if host.startswith("[") else host)


def _canonical_host(host: str) -> str | None:
    if not host:
        return None
    if ":" in host:  # an IPv6 literal (urlsplit removed the brackets)
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if not host.isascii() or "xn--" in host.lower():
        # requests' own encoder (the ``idna`` package, UTS 46), which also checks the
        # punycode labels an ASCII spelling may carry.
        from requests.models import PreparedRequest

        try:
            host = PreparedRequest._get_idna_encoded_host(host)  # type: ignore[attr-defined]
        except UnicodeError:
            return None
    host = host.lower()
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not set(host) <= _HOST_CHARS or not all(labels):
        return None
    return host


Origin = tuple[str, str, Optional[int]]


def valid_origins(
    given: Union[str, Iterable[str]], parse: Callable[[str], Optional[Origin]]
) -> frozenset[Origin]:
    """The origins an ``origin=`` argument names (one URL or several), each read by
    ``parse`` (``None``: not an http(s) URL with a host); ``ValueError`` if any is not,
    or if none is given: a scope must never widen to every host."""
    urls = (given,) if isinstance(given, str) else tuple(given)
    origins = set()
    for url in urls:
        origin = parse(url) if isinstance(url, str) else None
        if origin is None:
            raise ValueError(
                f"origin must be an http(s) URL with a host, got {url!r} "
                "(a prefix such as 'https://' alone would send the token to every host)"
            )
        origins.add(origin)
    if not origins:
        raise ValueError("origin must name at least one http(s) URL with a host")
    return frozenset(origins)
