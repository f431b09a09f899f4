"""The standalone configuration's Redis store (``--store redis``): its checks, how its
URL is shown, and the store itself (redis-py imported only here, when
the store is made).

The URL may carry an ACL user and password (``rediss://app:secret@redis.internal:6380/0``):
it is shown only through :func:`~.stores._redis_client.describe_url` (no credentials), and
no message here quotes any part of it. On the command line it is visible to every user of
the machine (``ps``), so the variable ``REFRESHAUTH_REDIS_URL`` is the safer place for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from .stores.base import TokenStore

__all__ = [
    "REDIS_SCHEMES",
    "namespace_problem",
    "redis_store",
    "settings_problem",
    "shown_url",
    "url_for_hint",
    "url_problem",
]

#: What a Redis URL may start with (those of ``connect``: redis-py's ``from_url``).
REDIS_SCHEMES = ("redis", "rediss", "unix")

MISSING_EXTRA = (
    "--store redis needs redis-py, which is not installed: "
    "pip install 'requests-refreshauth[redis]'"
)


def settings_problem(config: Mapping[str, Any], named: Callable[[str], str]) -> Optional[str]:
    """What is wrong with the Redis settings of a configuration (``named``: a setting's
    flag and variable). They are checked whenever given, so a typo shows before the
    first ``--store redis``."""
    url, namespace = config["redis_url"], config["redis_namespace"]
    if config["store_kind"] == "redis" and not url:
        return (
            f"--store redis needs {named('redis_url')}, e.g. redis://host:6379/0 (when "
            "--issuer or an endpoint option names the server, no REFRESHAUTH_* variable "
            "is used)."
        )
    problem = url_problem(url, named("redis_url")) if url else None
    if problem is None and namespace is not None:
        problem = namespace_problem(namespace, named("redis_namespace"))
    return problem


def url_problem(url: str, named: str) -> Optional[str]:
    """What is wrong with a Redis URL, in words that quote none of it (it may hold a
    password, even where a scheme-less ``user:password@host`` puts it in the "path")."""
    try:
        parts = urlsplit(url)
        if parts.scheme in REDIS_SCHEMES:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"{named} is not a valid URL (check the host and port)."
    if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.netloc):
        return (
            f"{named} must start with redis://, rediss:// (TLS) or unix:// "
            "(e.g. redis://host:6379/0)."
        )
    return None


def namespace_problem(namespace: str, named: str) -> Optional[str]:
    """What the store would say of this namespace (it is the keys' hash tag)."""
    from .stores._redis_records import check_namespace

    try:
        check_namespace(namespace)
    except ValueError as exc:
        return f"{named}: {exc}."
    return None


def shown_url(url: str) -> str:
    """The URL without user, password or options: where the tokens are, for people."""
    from .stores._redis_client import describe_url

    return describe_url(url)


def url_for_hint(url: str) -> Optional[str]:
    """The URL as a printed command may repeat it: as given, unless it holds credentials
    (then ``None``: the hint leaves it out rather than print a password)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # (hints are made before the configuration is checked)
        return None
    options = {name.lower() for name in parse_qs(parts.query, keep_blank_values=True)}
    if "@" in parts.netloc or "password" in options or parts.scheme not in REDIS_SCHEMES:
        return None  # credentials (in the address or as ?password=): never printed
    return url


def redis_store(url: str, namespace: str, named: str) -> TokenStore:
    """The :class:`~requests_refreshauth.RedisTokenStore`; without redis-py a
    :class:`~.errors.ConfigurationError` (exit 9: nothing to retry) naming the extra.
    Nothing is sent to Redis here: an unreachable server fails the first read (exit 6)."""
    from ._scrub import server_text
    from .errors import ConfigurationError

    try:
        from .stores.redis import RedisTokenStore

        return RedisTokenStore(url, namespace=namespace)
    except ImportError:  # redis-py missing, broken or too old
        raise ConfigurationError(MISSING_EXTRA) from None
    except ValueError as exc:  # redis-py's own checks of the URL (its options, its db)
        password = urlsplit(url).password
        secrets = [password, unquote(password)] if password else []
        detail = server_text(str(exc), secrets, limit=200)
        raise ConfigurationError(f"{named} cannot be used: {detail}") from None
