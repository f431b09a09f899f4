"""Records in Redis: the :class:`~._parts.RecordsPlace` of :class:`~.redis.RedisTokenStore`.

One string key per namespace holds the same format-2 records document a
:class:`~.file.FileTokenStore` writes, so every rule of the account model (revisions that
are never reused, the pinned default) is the file store's. A write is one Lua script: a
compare-and-swap on the whole document, and, for a fenced save, on the refresh lock's
key holding the hold's token, in the same atomic step (a holder whose lease ran out can
never overwrite a newer bundle). Optimistic, so ``mutate`` may run again after a
conflict. A value that is not a records document is reported with where it is, never
reset. Every key of a namespace shares one hash tag, so the script runs on a Cluster.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, TypeVar

from ..errors import StoreReadError, StoreWriteError
from ._parts import Held
from .base import StaleFence
from .records import Records, decode_records, records_from_doc

__all__ = ["RedisRecords", "check_namespace", "key_prefix"]

log = logging.getLogger("requests_refreshauth.store")

T = TypeVar("T")

#: ARGV[1] when the records key must not exist yet (a records document is never empty).
_ABSENT = ""

# KEYS[1] records, KEYS[2] the lock (KEYS[1] again when unfenced);
# ARGV[1] expected text ("" = absent), ARGV[2] new text, ARGV[3] the hold's token ("" = none)
_CAS = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return 2 end
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _is_cluster(client: Any) -> bool:
    return getattr(client, "nodes_manager", None) is not None  # redis.cluster.RedisCluster


def _wrong_type(exc: BaseException) -> bool:
    return str(exc).upper().startswith("WRONGTYPE")


def check_namespace(namespace: object) -> str:
    """A namespace that can sit inside a hash tag (``{...}``) and a message."""
    if not isinstance(namespace, str) or not namespace:
        raise ValueError("a Redis namespace must be a non-empty string")
    if len(namespace) > 128:
        raise ValueError("a Redis namespace must be at most 128 characters")
    if any(c in "{}" or c.isspace() or not c.isprintable() for c in namespace):
        raise ValueError(
            "a Redis namespace must be printable, without whitespace, '{' or '}' "
            "(it is the keys' hash tag)"
        )
    return namespace


def key_prefix(namespace: str) -> str:
    return f"refreshauth:{{{namespace}}}:"


def eviction_warning(policy: str, where: str) -> Optional[str]:
    """What a ``maxmemory-policy`` risks for token records (pure)."""
    if policy == "noeviction" or not policy:
        return None
    if policy.startswith("allkeys-"):
        risk = "the token records can be evicted under memory pressure: every host is logged out"
    else:
        risk = (
            "the refresh-lock keys have a TTL and can be evicted under memory pressure: two "
            "hosts may then refresh at once, and a rotating server revokes the grant"
        )
    return (
        f"Redis at {where} has maxmemory-policy {policy}: {risk}. Use noeviction for the "
        "database that holds the tokens."
    )


class RedisRecords:
    """Records of one namespace in one Redis string key."""

    def __init__(self, connection: Any, namespace: str, encryption: Any = None) -> None:
        self.connection = connection
        self.namespace = check_namespace(namespace)
        self.key = key_prefix(namespace) + "records"
        self.encryption = encryption
        self._cas: Any = None
        self._checked_policy = False
        self._local = threading.Lock()

    def where(self) -> str:
        return f"{self.connection.where} namespace {self.namespace!r}"

    # ------------------------------------------------------------------ reading

    def _get(self, *, write: bool = False) -> Optional[str]:
        """The stored text; the first read also asks for the eviction policy, in the same
        round trip (a refused CONFIG, as on managed Redis, is ignored). ``write``: the
        read of a save, whose failure to reach Redis is a failed save."""
        what = "save the tokens" if write else "read the tokens"
        client = self.connection.client

        def one() -> Any:
            try:
                return client.get(self.key)
            except Exception as exc:  # only WRONGTYPE is an answer here
                if _wrong_type(exc):
                    return exc
                raise

        if self._checked_policy:
            raw = self.connection.call(what, one, write=write)
        elif _is_cluster(client):  # a cluster refuses CONFIG in a pipeline: asked apart
            raw = self.connection.call(what, one, write=write)
            self._checked_policy = True
            self._warn_policy(self._cluster_policy(client))
        else:

            def both() -> list[Any]:
                pipe = client.pipeline(transaction=False)
                pipe.get(self.key)
                pipe.config_get("maxmemory-policy")
                result: list[Any] = pipe.execute(raise_on_error=False)
                return result

            got = self.connection.call(what, both, write=write)
            self._checked_policy = True
            raw, policy = got[0], got[1]
            self._warn_policy(policy)
        if isinstance(raw, Exception):
            if _wrong_type(raw):
                raise self._foreign(f"holds a Redis {self._type(what, write)}, not a string")
            raise self.connection.error(what, raw, write=write)
        if raw is None:
            return None
        if isinstance(raw, bytes):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self._foreign("is not UTF-8 text") from None
        return str(raw)

    def _cluster_policy(self, client: Any) -> Any:
        """The policy of the node holding the records key (one more round trip, once);
        a refusal (a managed cluster) is ignored, as in the pipeline."""
        try:
            return client.config_get(
                "maxmemory-policy", target_nodes=client.get_node_from_key(self.key)
            )
        except Exception:  # noqa: BLE001 - the warning is advice, never a failure
            return None

    def _type(self, what: str, write: bool) -> str:
        """The Redis type of the records key (for a message)."""
        kind = self.connection.call(
            what, lambda: self.connection.client.type(self.key), write=write
        )
        return kind.decode("ascii", "replace") if isinstance(kind, bytes) else str(kind)

    def _warn_policy(self, policy: Any) -> None:
        if not isinstance(policy, dict):
            return
        value = policy.get("maxmemory-policy", policy.get(b"maxmemory-policy"))
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        message = eviction_warning(str(value or ""), self.connection.where)
        marker = (self.connection.where, str(value))
        if message is not None:
            with _warned_lock:
                if marker in _warned:
                    return
                _warned.add(marker)
            log.warning("%s", message)

    def _foreign(self, why: str) -> StoreReadError:
        return StoreReadError(
            f"The Redis key {self.key!r} at {self.where()} {why}. It was left unchanged; fix "
            "it, or use another namespace and log in again."
        )

    def _decode(self, text: Optional[str]) -> Records:
        if text is None:
            return Records()
        from .encryption import open_doc

        named = f"in Redis key {self.key!r} at {self.where()}"
        doc = open_doc(decode_records(text, named), self.encryption, self.namespace, self.where())
        return records_from_doc(doc, named)

    def load(self) -> Records:
        return self._decode(self._get())

    # ------------------------------------------------------------------ writing

    def _encode(self, records: Records) -> str:
        text = records.to_json()
        if self.encryption is None:
            return text
        from .encryption import seal_doc

        return json.dumps(
            seal_doc(json.loads(text), self.encryption, self.namespace), indent=2, ensure_ascii=True
        )

    def update(
        self, mutate: Callable[[Records], T], *, held: Optional[Held] = None, force: bool = False
    ) -> T:
        """Read, ``mutate``, compare-and-swap; again after a conflict, until the
        connection's timeout has passed (then :class:`StoreWriteError`)."""
        lock_key = self.key
        if held is not None:
            found = getattr(held.lock, "key", None)
            if not isinstance(found, str) or not found.startswith(key_prefix(self.namespace)):
                raise StoreWriteError(
                    f"A fenced save into {self.where()} needs this store's own refresh lock; "
                    "nothing was changed."
                )
            lock_key = found
        if self._cas is None:
            self._cas = self.connection.script(_CAS)
        deadline = time.monotonic() + max(1.0, float(self.connection.timeout))
        delay = 0.001
        while True:
            text = self._get(write=True)
            records = self._decode(text)
            before = records.to_json()
            result = mutate(records)
            if not force and records.to_json() == before:
                return result
            new = self._encode(records)
            args = [_ABSENT if text is None else text, new, "" if held is None else held.token]
            cas = self._cas
            outcome = self.connection.call(
                "save the tokens",
                lambda cas=cas, args=args: cas(keys=[self.key, lock_key], args=args),
                write=True,
            )
            if outcome in (1, 2):
                return result
            if outcome == -1:
                assert held is not None
                raise StaleFence(held.account_id)
            if time.monotonic() >= deadline:
                raise StoreWriteError(
                    f"Could not save the tokens at {self.where()}: other writers kept changing "
                    "them; the stored tokens were not changed. Try again."
                )
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2, 0.05)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Only this process's threads: inline secrets are one atomic read with the
        records, so no reader needs to exclude another host's writer."""
        with self._local:
            yield

    def preflight(self) -> None:
        """Reachability, authentication and the document's format, writing nothing: the
        error a save would raise."""
        self._decode(self._get(write=True))
