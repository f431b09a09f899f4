"""The one way the Redis store and lock talk to Redis: a deadline on every call, typed errors.

``connect(url_or_client, timeout)`` gives a :class:`RedisConnection`. From a URL it builds its
own client whose sockets time out after ``timeout`` and which retries a call once after a
dropped connection (``CLIENT KILL``, a failover, an idle connection cut by a proxy): every
script the store runs is idempotent, so a retry after a lost reply is safe. Timeouts are not
retried — a server that does not answer in time would only make the caller wait twice.

A client the user passes (``redis.Redis``, a Sentinel ``master_for`` client, ``RedisCluster``,
a Valkey client with the same API) is used as it is — its pool is never changed — but it must
have socket timeouts, because a store call without a deadline can hang a CLI forever.

redis-py is imported here, lazily: ``import requests_refreshauth`` never imports it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union
from urllib.parse import parse_qs, unquote, urlsplit

from .._scrub import server_text
from ..errors import StoreReadError, StoreWriteError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisConnection", "connect", "describe_url"]

T = TypeVar("T")

MISSING_REDIS = "RedisTokenStore needs redis-py: pip install 'requests-refreshauth[redis]'"
NO_DEADLINE = (
    "every Redis call must have a deadline: create the client with socket_timeout=... and "
    "socket_connect_timeout=... (seconds), e.g. redis.Redis(..., socket_timeout=5, "
    "socket_connect_timeout=5), or pass a redis:// URL and timeout= instead"
)


def describe_url(url: str) -> str:
    """``redis://host:port/db`` (or the unix socket path) — never a username or password."""
    parts = urlsplit(url)
    scheme = parts.scheme or "redis"
    if scheme == "unix":
        return parts.path or "unix socket"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    db = parts.path.strip("/") or "0"
    if not db.isdigit():  # e.g. "redis:user:pw@host/0" (no "//"): the "path" holds secrets
        db = "?"
    return f"{scheme}://{host}:{port}/{db}"


def _connection_kwargs(client: Any) -> Optional[dict[str, Any]]:
    """The options the client's connections are made with, wherever this client keeps them."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict):
        return kwargs
    nodes = getattr(client, "nodes_manager", None)  # redis.cluster.RedisCluster
    kwargs = getattr(nodes, "connection_kwargs", None)
    if isinstance(kwargs, dict):
        return kwargs
    return None


def _describe_client(client: Any, kwargs: dict[str, Any]) -> str:
    if getattr(client, "nodes_manager", None) is not None:
        node = None
        try:
            node = client.get_default_node()
        except Exception:  # noqa: BLE001 - a description must not fail
            node = None
        if node is not None:
            return f"redis-cluster://{node.host}:{node.port}"
        return "redis-cluster"
    if kwargs.get("path"):
        return str(kwargs["path"])
    scheme = "rediss" if _uses_tls(client) else "redis"
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    pool = getattr(client, "connection_pool", None)
    service = getattr(pool, "service_name", None)  # Sentinel: the master moves
    if service:
        return f"redis-sentinel service {service!r} db {kwargs.get('db', 0)}"
    return f"{scheme}://{host}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _uses_tls(client: Any) -> bool:
    pool = getattr(client, "connection_pool", None)
    connection_class = getattr(pool, "connection_class", None)
    return connection_class is not None and "SSL" in getattr(connection_class, "__name__", "")


def _has_deadline(value: Any) -> bool:
    """A positive, finite number of seconds (``inf`` is no deadline at all)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class RedisConnection:
    """A redis-py client plus where it points (for messages) and the translation of its errors."""

    def __init__(
        self, client: Any, where: str, timeout: float, secrets: tuple[str, ...] = ()
    ) -> None:
        import redis.exceptions

        self.client: redis.Redis = client
        self.where = where
        self.timeout = timeout
        self._secrets = secrets  # scrubbed out of any server text, just in case
        self._exceptions = redis.exceptions
        # not a RedisError: a cluster client's own failures (no node reachable, ...)
        self._cluster_error: type[Exception] = getattr(
            redis.exceptions, "RedisClusterException", redis.exceptions.RedisError
        )

    def __repr__(self) -> str:
        return f"RedisConnection({self.where!r}, timeout={self.timeout})"

    def script(self, lua: str) -> Any:
        """A redis-py Script: EVALSHA, loading the script once when the server lacks it."""
        return self.client.register_script(lua)

    def call(self, what: str, fn: Callable[[], T], *, write: bool) -> T:
        """``fn()``, with every redis-py (or socket) failure as a typed store error."""
        try:
            return fn()
        except (self._exceptions.RedisError, OSError, self._cluster_error) as exc:
            raise self.error(what, exc, write=write) from None

    def error(
        self, what: str, exc: BaseException, *, write: bool
    ) -> Union[StoreReadError, StoreWriteError]:
        """The one message for a failed Redis call: what, where, why, what was kept, what next."""
        reason, forward = _diagnose(self._exceptions, exc, self.timeout)
        detail = server_text(str(exc), self._secrets, limit=200) or type(exc).__name__
        if write:
            kept = (
                "the stored tokens were not changed"
                if not isinstance(exc, self._exceptions.TimeoutError)
                else "the stored tokens are either unchanged or fully updated"
                " (the write is one atomic step)"
            )
            cls: type[Union[StoreReadError, StoreWriteError]] = StoreWriteError
        else:
            kept = "the stored tokens were not changed"
            cls = StoreReadError
        return cls(f"Could not {what} at {self.where}: {reason} ({detail}); {kept}. {forward}")


def _diagnose(errors: Any, exc: BaseException, timeout: float) -> tuple[str, str]:
    """(what went wrong, the way forward) for one redis-py exception."""
    text = str(exc)
    upper = text.upper()
    no_permission = getattr(errors, "NoPermissionError", ())
    if isinstance(exc, errors.AuthenticationError) or upper.startswith(("WRONGPASS", "NOAUTH")):
        return (
            "Redis refused the credentials",
            "Check the username and password of the Redis URL or client (an ACL user needs "
            "user:password in the URL), then retry.",
        )
    if (no_permission and isinstance(exc, no_permission)) or upper.startswith("NOPERM"):
        return (
            "the Redis user lacks a permission",
            "Give this ACL user the commands GET SET DEL PEXPIRE PTTL EVAL EVALSHA SCRIPT on keys "
            "refreshauth:* (e.g. ACL SETUSER <user> ~refreshauth:* +@read +@write +@scripting).",
        )
    if isinstance(exc, errors.ReadOnlyError) or upper.startswith("READONLY"):
        return (
            "this Redis server is a read-only replica",
            "Connect to the primary (or through Sentinel, which follows failovers).",
        )
    if isinstance(exc, errors.BusyLoadingError) or upper.startswith("LOADING"):
        return ("Redis is still loading its data set", "Retry in a moment.")
    if upper.startswith("OOM"):
        return (
            "Redis is out of memory (maxmemory)",
            "Free memory or raise maxmemory on the Redis server, then retry.",
        )
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        return (
            "the Redis server's TLS certificate is not trusted here",
            "Give the CA that signed it: rediss://...?ssl_ca_certs=/path/to/ca.pem (or the "
            "client's ssl_ca_certs=), then retry.",
        )
    if isinstance(exc, errors.TimeoutError):
        return (
            f"Redis did not answer within {timeout:g} s",
            "Check that the Redis server is up and not overloaded, or give the store a "
            "longer timeout=.",
        )
    if isinstance(exc, (errors.ConnectionError, OSError)):
        return (
            "Redis is unreachable",
            "Check that the Redis server is running and reachable from this host (address, port, "
            "TLS, firewall), then retry.",
        )
    if isinstance(exc, errors.ResponseError):
        return (
            "Redis refused the command",
            "Check the Redis server's configuration and version (>= 5).",
        )
    return (
        "the Redis client failed",
        "Retry; if it persists, check the Redis server and redis-py version.",
    )


def _url_options(redis: Any, scheme: str, timeout: float) -> dict[str, Any]:
    """The options of a client made from a URL that its connection class takes: the
    connect deadline (redis-py 4.x's unix sockets have none: a local connect does not
    wait), and a lean handshake, so a new connection costs at most one round trip
    (AUTH, with credentials): RESP2, so no ``HELLO 3`` (nor maintenance notifications,
    which need RESP3), and no ``CLIENT SETINFO`` pair. A cold CLI process opens a
    connection on every run; redis-py 4.5 sends none of these, 5-7 the SETINFO pair,
    8 all four (7.2.0, 7.2.1, 7.3.0 and 7.4.0 send the pair whatever they are told: two
    more round trips per new connection there)."""
    import inspect

    kind = {"unix": redis.UnixDomainSocketConnection, "rediss": redis.SSLConnection}.get(
        scheme, redis.Connection
    )
    accepted: set[str] = set()
    for cls in kind.__mro__:  # an __init__ taking **kwargs passes them to its base's
        if "__init__" in vars(cls):
            parameters = inspect.signature(vars(cls)["__init__"]).parameters.values()
            accepted.update(parameter.name for parameter in parameters)
            if all(parameter.kind is not parameter.VAR_KEYWORD for parameter in parameters):
                break
    wanted: dict[str, Any] = {"socket_connect_timeout": timeout, "protocol": 2}
    if "driver_info" in accepted:
        wanted["driver_info"] = None
    else:
        wanted.update(lib_name=None, lib_version=None)
    return {name: value for name, value in wanted.items() if name in accepted}


def connect(url_or_client: Any, timeout: float) -> RedisConnection:
    """A :class:`RedisConnection` from a ``redis://``/``rediss://``/``unix://`` URL or a client."""
    if not _has_deadline(timeout):
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout!r}")
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ImportError(MISSING_REDIS) from None
    if isinstance(url_or_client, str):
        parts = urlsplit(url_or_client)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"not a Redis URL: {describe_url(url_or_client)!r} (use redis://, rediss:// or unix://)"
            )
        given = [parts.password, *parse_qs(parts.query).get("password", [])]
        secrets = tuple(unquote(s) for s in given if s)  # a ?password= counts too
        client = redis.Redis.from_url(
            url_or_client,
            socket_timeout=timeout,
            # one retry after a dropped connection, none after a timeout (see the module docs)
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            retry_on_error=[redis.exceptions.ConnectionError],
            retry_on_timeout=False,
            **_url_options(redis, parts.scheme, timeout),
        )
        return RedisConnection(client, describe_url(url_or_client), timeout, secrets)
    kwargs = _connection_kwargs(url_or_client)
    if kwargs is None or not callable(getattr(url_or_client, "register_script", None)):
        raise TypeError(
            f"expected a redis:// URL or a redis-py client, not {type(url_or_client).__name__}"
        )
    missing = [
        name
        for name in ("socket_timeout", "socket_connect_timeout")
        if not _has_deadline(kwargs.get(name))
    ]
    if missing:
        raise ValueError(f"{NO_DEADLINE} (missing: {', '.join(missing)})")
    password = kwargs.get("password")
    secrets = (password,) if isinstance(password, str) and password else ()
    return RedisConnection(
        url_or_client,
        _describe_client(url_or_client, kwargs),
        float(kwargs["socket_timeout"]),
        secrets,
    )
