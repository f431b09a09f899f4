"""The implementations the contract suites run against, one factory each.

A :class:`Backing` is one store on one place its data lives, plus what the contract needs
to look at from outside the public API: another store object on the same data
(``reopen``), whether the refresh token is inline in ``active().bundle``, the secret
backend's call counts (a status must read no secret) and a dump of everything persisted
(a refused save must write nothing). ``BACKINGS`` lists them; the next backend (Redis)
adds one :class:`BackingFactory` line.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import pytest
from keyring_fakes import CountingKeyring, MemoryKeyring

from requests_refreshauth import (
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    TokenBundle,
)
from requests_refreshauth.stores.base import TokenStore
from requests_refreshauth.stores.keyring import CredentialStorePolicy

__all__ = [
    "BACKINGS",
    "Backing",
    "BackingFactory",
    "backing_params",
    "essential",
    "make_bundle",
    "secrets_of",
]

#: The fixture (tests/contract/conftest.py) that starts the private Secret Service once.
SECRET_SERVICE_FIXTURE = "contract_secret_service"


class Backing(NamedTuple):
    """One store under test and the handles the contract checks it with."""

    store: TokenStore
    #: A NEW store object on the same data (a second process would open this); ``None``
    #: for a store whose data lives in the object (memory).
    reopen: Optional[Callable[[], TokenStore]]
    #: ``active().bundle.refresh_token`` carries the refresh token (memory, file, Redis);
    #: otherwise it may be ``None`` and ``read_refresh_token`` produces it.
    inline_refresh: bool
    #: Calls of one kind ("get", "set", "delete") the secret backend has seen so far;
    #: ``None`` when there is no separate secret backend.
    secret_calls: Optional[Callable[[str], int]] = None
    #: Everything persisted (records bytes, secret backend contents), for "nothing was
    #: written"; ``None`` when it cannot be seen from outside.
    persisted: Optional[Callable[[], Any]] = None
    #: Python source of an expression that opens the same store in another process
    #: (``None``: the store lives in this process only).
    child_store: Optional[str] = None
    #: What ``status().secrets`` says for this backing ("memory", "file", "keyring",
    #: "plaintext"): a backing that silently put them elsewhere tests the wrong thing.
    secrets: str = "file"


class BackingFactory(NamedTuple):
    name: str
    build: Callable[[pytest.FixtureRequest, Path], Backing]
    #: Needs a real component (marked ``integration``; fails under CI=true without it).
    integration: bool = False
    #: Every call is a round trip (D-Bus): in the default envs only the tests marked
    #: :func:`essential` run on it, the whole suite under ``reliability``.
    slow: bool = False


def essential(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a contract test that also runs on a slow backing in the default envs: the
    ones whose outcome depends on where the secrets live (written, read, removed)."""
    test._contract_essential = True  # type: ignore[attr-defined]
    return test


def mark_slow_variants(items: list[pytest.Item]) -> None:
    """``reliability`` on the non-essential tests of slow backings (conftest hook)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        factory = None if callspec is None else callspec.params.get("_contract_backing")
        if not isinstance(factory, BackingFactory) or not factory.slow:
            continue
        if not getattr(getattr(item, "function", None), "_contract_essential", False):
            item.add_marker(pytest.mark.reliability)


def make_bundle(tag: str = "x", *, refresh: bool = True, **fields: Any) -> TokenBundle:
    """A bundle with every field set and unique token values (never in assertion text)."""
    nonce = secrets.token_hex(8)
    now = time.time()
    values: dict[str, Any] = {
        "access_token": f"at-{tag}-{nonce}",
        "refresh_token": f"rt-{tag}-{nonce}" if refresh else None,
        "expires_at": now + 3600.25,
        "refresh_expires_at": now + 86400.5,
        "issued_at": now,
        "token_type": "Bearer",
        "scope": ("openid", "api"),
        "extra": {"instance_url": "https://eu.example.test", "tier": 2},
    }
    values.update(fields)
    return TokenBundle(**values)


def secrets_of(bundle: TokenBundle) -> list[str]:
    return [s for s in (bundle.access_token, bundle.refresh_token) if s is not None]


def _file_bytes(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------- factories


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    return Backing(store=MemoryTokenStore(), reopen=None, inline_refresh=True, secrets="memory")


def _file(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    path = tmp_path / "file-store" / "tokens.json"
    return Backing(
        store=FileTokenStore(path),
        reopen=lambda: FileTokenStore(path),
        inline_refresh=True,
        persisted=lambda: _file_bytes(path),
        child_store=f"FileTokenStore({str(path)!r})",
    )


def _keyring_on(
    backend: MemoryKeyring, policy: CredentialStorePolicy, tmp_path: Path, secrets: str
) -> Backing:
    service = f"refreshauth-contract-{uuid.uuid4().hex[:8]}"
    records = tmp_path / "keyring-store" / "records.json"

    def open_store() -> TokenStore:
        return KeyringTokenStore(
            service,
            records,
            credential_store=policy,
            backend=backend,
        )

    return Backing(
        store=open_store(),
        reopen=open_store,
        inline_refresh=False,
        secret_calls=lambda op: len(backend.ops(op)),
        persisted=lambda: (_file_bytes(records), sorted(backend.data.items())),
        child_store=(
            f"KeyringTokenStore({service!r}, {str(records)!r}, credential_store='plaintext')"
        ),
        secrets=secrets,
    )


def _keyring_fake(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    """Secrets in a (fake) OS keyring: ``credential_store="system"``."""
    return _keyring_on(MemoryKeyring(), "system", tmp_path, "keyring")


def _keyring_plaintext(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    """The same store under the "plaintext" policy: secrets in the records file."""
    return _keyring_on(MemoryKeyring(), "plaintext", tmp_path, "plaintext")


def _keyring_secret_service(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    """The real Secret Service (gnome-keyring on a private bus, one per session)."""
    from keyring.backends import SecretService as SecretServiceBackend

    service = request.getfixturevalue(SECRET_SERVICE_FIXTURE)
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in service.env.items():  # secretstorage connects on every call
        monkeypatch.setenv(name, value)
    backend = CountingKeyring(SecretServiceBackend.Keyring())
    name = f"refreshauth-contract-{uuid.uuid4().hex[:8]}"
    records = tmp_path / "keyring-store" / "records.json"

    def open_store() -> TokenStore:
        return KeyringTokenStore(name, records, credential_store="system", backend=backend)

    return Backing(
        store=open_store(),
        reopen=open_store,
        inline_refresh=False,
        secret_calls=backend.total,
        persisted=lambda: (_file_bytes(records), _secret_service_items(name)),
        child_store=f"KeyringTokenStore({name!r}, {str(records)!r}, credential_store='plaintext')",
        secrets="keyring",
    )


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    """The real redis-server (one per session), a namespace of its own per test."""
    from requests_refreshauth import RedisTokenStore

    server = request.getfixturevalue("redis_server")
    namespace = f"contract-{uuid.uuid4().hex[:8]}"
    client = server.client()

    def open_store() -> TokenStore:
        return RedisTokenStore(server.url, namespace=namespace, lease=10.0)

    def persisted() -> Any:  # the records (a lock key comes and goes with each hold)
        return client.get(f"refreshauth:{{{namespace}}}:records")

    return Backing(
        store=open_store(),
        reopen=open_store,
        inline_refresh=True,
        persisted=persisted,
        child_store=f"RedisTokenStore({server.url!r}, namespace={namespace!r}, lease=10.0)",
        secrets="redis",
    )


def _secret_service_items(service: str) -> list[Any]:
    """Every item keyring made for ``service`` on the private daemon: (username, secret)."""
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return sorted(
            (json.dumps(item.get_attributes(), sort_keys=True), item.get_secret())
            for item in collection.search_items({"service": service})
        )
    finally:
        connection.close()


BACKINGS: list[BackingFactory] = [
    BackingFactory("memory", _memory),
    BackingFactory("file", _file),
    BackingFactory("keyring-fake", _keyring_fake),
    BackingFactory("keyring-plaintext", _keyring_plaintext),
    BackingFactory("keyring-secret-service", _keyring_secret_service, integration=True, slow=True),
    BackingFactory("redis", _redis, integration=True),
]


def backing_params() -> list[Any]:
    """``BACKINGS`` as pytest params (the real-component ones marked ``integration``)."""
    return [
        pytest.param(f, id=f.name, marks=[pytest.mark.integration] if f.integration else [])
        for f in BACKINGS
    ]
