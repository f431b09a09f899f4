"""A store for fleets: records and refresh locks in Redis, shared by every host.

The file lock of the other stores excludes the processes of one host; a fleet sharing
one OAuth identity whose refresh token rotates needs one lock for all its hosts, or two
hosts refresh at once and the server revokes the grant. Here the refresh lock is a
Redis lease (:mod:`._redis_lock`, extended by a watchdog, confirmed before every
attempt) and every save is fenced on it atomically (:mod:`._redis_records`).

redis-py is an optional extra (``pip install 'requests-refreshauth[redis]'``), imported
only when a store is made.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Optional

from ..bundle import Account
from ._inline import InlineSecrets
from ._recordstore import RecordStore
from ._redis_records import RedisRecords, key_prefix

__all__ = ["RedisTokenStore"]

#: Longer than one attempt with the providers' default timeout (30 s connect + read:
#: 60 s) plus the engine's 3 s margin: a shorter lease makes the engine refuse to send.
DEFAULT_LEASE = 90.0


class _RedisLocks:
    def __init__(self, connection: Any, namespace: str, lease: float) -> None:
        self.connection, self.namespace, self.lease = connection, namespace, lease

    def refresh_lock(self, account: Account) -> Any:
        from ._redis_lock import RedisLock

        digest = hashlib.sha256(account.id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        key = f"{key_prefix(self.namespace)}lock:{digest}"
        return RedisLock(self.connection, key, lease=self.lease, account=account)


class RedisTokenStore(RecordStore):
    """Token bundles in Redis under ``namespace``, for every host of a fleet.

    ``url_or_client``: a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL (an ACL
    user and password may be in it: they never appear in messages), or a redis-py client
    (``redis.Redis``; ``redis.cluster.RedisCluster``, tested; a Sentinel ``master_for``
    client or Valkey's take the same API, untested) with ``socket_timeout`` and
    ``socket_connect_timeout`` set. ``timeout``: the deadline of
    every Redis call made through a URL. ``lease``: the refresh lock's lease (see
    :data:`DEFAULT_LEASE`). ``encryption``: a
    :class:`~.encryption.TokenEncryption`, so a dump of Redis reveals no token.

    Secrets are inline (decrypted on read when encrypted): ``active().bundle`` carries
    the refresh token. Unreachable Redis, a timeout or an ACL refusal is a
    :class:`~requests_refreshauth.errors.StoreReadError` or ``StoreWriteError``.

    Example::

        store = RedisTokenStore("rediss://app:secret@redis.internal:6380/0", namespace="billing")
        session.auth = RefreshAuth(store, provider)
    """

    def __init__(
        self,
        url_or_client: Any,
        namespace: str,
        *,
        lease: float = DEFAULT_LEASE,
        timeout: float = 5.0,
        encryption: Optional[Any] = None,
    ) -> None:
        from ._redis_client import connect

        lease = float(lease)
        if not (math.isfinite(lease) and lease > 0):
            raise ValueError("lease must be a positive, finite number of seconds")
        if encryption is not None:
            from .encryption import TokenEncryption

            if not isinstance(encryption, TokenEncryption):  # never echoed: it may be a key
                raise TypeError(
                    "encryption must be a TokenEncryption (e.g. "
                    "encryption=TokenEncryption({'2026-01': key})), not a "
                    f"{type(encryption).__name__}"
                )
        self.connection = connect(url_or_client, timeout)
        self.namespace = namespace
        self.lease = lease
        self.encryption = encryption
        self._redis_records = RedisRecords(self.connection, namespace, encryption)
        self.where = self._redis_records.where()
        label = "redis" if encryption is None else "redis-encrypted"
        super().__init__(
            self._redis_records,
            InlineSecrets(label),
            _RedisLocks(self.connection, namespace, lease),
        )

    def __repr__(self) -> str:
        return f"RedisTokenStore({self.connection.where!r}, namespace={self.namespace!r})"

    def reencrypt(self) -> int:
        """Rewrite every record under the encryption's primary key (after a key
        rotation, before the old key is dropped); how many records were rewritten."""
        if self.encryption is None:
            raise ValueError("this store has no encryption to re-encrypt with")
        if not self._redis_records.load().accounts:
            return 0  # nothing to rewrite: a mistyped namespace is not created
        return self._redis_records.update(lambda records: len(records.accounts), force=True)
