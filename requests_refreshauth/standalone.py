"""Where the standalone CLI (``python -m requests_refreshauth``) keeps its login.

One value, :class:`StandaloneConfig`, says which provider and which store: the CLI builds
it from its flags over ``REFRESHAUTH_*`` environment variables, and any other front end
(an httpie auth plugin, a script) builds it from the same variables, so both find the
SAME login::

    config = StandaloneConfig.from_env()
    session.auth = RefreshAuth(config.store(), config.provider())

The provider is an issuer (metadata discovered) or, for a provider that publishes no
discovery document (GitHub), its endpoints given one by one. A confidential client's
secret is never part of the configuration: only the NAME of the environment variable
holding it, read when the provider is built.

``store_kind="redis"``: the tokens are in Redis at ``redis_url``, a fleet's store (its
hosts use the same configuration). Its password is never shown; on the command line
``ps`` shows it to every user, so ``REFRESHAUTH_REDIS_URL`` is the safer place for it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._standalone_redis import redis_store, settings_problem, shown_url
from ._standalone_redis import url_for_hint as hint_url
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .providers.pkce import PkceProvider
    from .stores.base import TokenStore

__all__ = ["ENV", "FLAGS", "STORE_KINDS", "StandaloneConfig", "hint_url", "records_path"]

#: The environment variable of each setting (the CLI's flags default to them).
ENV: dict[str, str] = {
    "issuer": "REFRESHAUTH_ISSUER",
    "client_id": "REFRESHAUTH_CLIENT_ID",
    "scopes": "REFRESHAUTH_SCOPE",
    "authorization_endpoint": "REFRESHAUTH_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "REFRESHAUTH_TOKEN_ENDPOINT",
    "device_authorization_endpoint": "REFRESHAUTH_DEVICE_AUTHORIZATION_ENDPOINT",
    "revocation_endpoint": "REFRESHAUTH_REVOCATION_ENDPOINT",
    "client_secret_env": "REFRESHAUTH_CLIENT_SECRET_ENV",
    "client_auth": "REFRESHAUTH_CLIENT_AUTH",
    "store_kind": "REFRESHAUTH_STORE",
    "records": "REFRESHAUTH_RECORDS",
    "redis_url": "REFRESHAUTH_REDIS_URL",
    "redis_namespace": "REFRESHAUTH_REDIS_NAMESPACE",
}

#: The standalone CLI's flag of each setting.
FLAGS: dict[str, str] = {
    "issuer": "--issuer",
    "client_id": "--client-id",
    "scopes": "--scope",
    "authorization_endpoint": "--authorization-endpoint",
    "token_endpoint": "--token-endpoint",
    "device_authorization_endpoint": "--device-authorization-endpoint",
    "revocation_endpoint": "--revocation-endpoint",
    "client_secret_env": "--client-secret-env",
    "client_auth": "--client-auth",
    "store_kind": "--store",
    "records": "--records",
    "redis_url": "--redis-url",
    "redis_namespace": "--redis-namespace",
}

#: Where the server is: an issuer, or endpoints. Flags giving any of them name another
#: configuration than the environment's, so none of the environment is used: its records,
#: client secret, client id, scopes and store belong to the server it names (mixed in,
#: they would send that server's refresh token and secret to the one on the command line).
_LOCATION = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
)
_ENDPOINTS = _LOCATION[1:]

#: What an issuer configuration asks for when no scope is given (as before this module).
ISSUER_SCOPES: tuple[str, ...] = ("openid", "offline_access")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: The ``--store`` kinds.
STORE_KINDS = ("keyring", "file", "redis")


def _named(field: str) -> str:
    """``--issuer (REFRESHAUTH_ISSUER)``: how a message names a setting."""
    return f"{FLAGS[field]} ({ENV[field]})"


def records_path(issuer: str, client_id: str, store: str, records: Optional[Path]) -> Path:
    """The records file: ``records``, else one per issuer (or token endpoint) and client.

    Every store kind shares it (one record schema says where each account's tokens
    are), so ``--store file login`` then a plain ``status`` finds the account. The
    ``--store file`` records file of an earlier version (``tokens-<key>-file.json``) is
    moved into it, whatever ``store`` is (see :mod:`.stores._legacy_records`).
    """
    from ._paths import user_dir

    if records:
        return Path(records)
    key = _server_client_key(issuer, client_id)
    shared = user_dir("config") / f"tokens-{key}.json"
    legacy = shared.with_name(f"tokens-{key}-file.json")
    if legacy.exists():
        from .stores._legacy_records import migrate_records

        migrate_records(shared, legacy)
    return shared


def _server_client_key(server: str, client_id: str) -> str:
    """16 hex digits naming one server and client (the records file's and Redis's name)."""
    return hashlib.sha256(f"{server}\n{client_id}".encode()).hexdigest()[:16]


class StandaloneConfig:
    """How the standalone CLI finds its provider and store (frozen; checked when made).

    Exactly one of ``issuer`` (metadata discovered) and ``token_endpoint`` (with the
    other endpoints given too, as a provider without discovery needs) is set.
    ``scopes``: ``None`` asks for ``openid offline_access`` with an issuer and for no
    scope (the server's default) with manual endpoints. ``client_secret_env`` is the
    NAME of the variable holding a confidential client's secret. A
    :class:`~requests_refreshauth.errors.ConfigurationError` (a ``ValueError``) names the
    flag and the variable of what is wrong. (Not a dataclass: importing ``dataclasses``
    costs the CLI's start-up more than this module.)

    Raises:
        ConfigurationError: a setting is missing or invalid (the message names it).
    """

    __slots__ = tuple(ENV)

    issuer: Optional[str]
    client_id: str
    scopes: tuple[str, ...]
    authorization_endpoint: Optional[str]
    token_endpoint: Optional[str]
    device_authorization_endpoint: Optional[str]
    revocation_endpoint: Optional[str]
    client_secret_env: Optional[str]
    client_auth: str
    store_kind: str
    records: Optional[Path]
    redis_url: Optional[str]
    redis_namespace: Optional[str]

    def __init__(
        self,
        *,
        issuer: Optional[str] = None,
        client_id: str = "",
        scopes: Optional[Iterable[str]] = None,
        authorization_endpoint: Optional[str] = None,
        token_endpoint: Optional[str] = None,
        device_authorization_endpoint: Optional[str] = None,
        revocation_endpoint: Optional[str] = None,
        client_secret_env: Optional[str] = None,
        client_auth: str = "basic",
        store_kind: str = "keyring",
        records: Optional[os.PathLike[str] | str] = None,
        redis_url: Optional[str] = None,
        redis_namespace: Optional[str] = None,
    ) -> None:
        values: dict[str, Any] = dict(
            issuer=issuer,
            client_id=client_id,
            scopes=None if scopes is None else tuple(scopes),
            authorization_endpoint=authorization_endpoint,
            token_endpoint=token_endpoint,
            device_authorization_endpoint=device_authorization_endpoint,
            revocation_endpoint=revocation_endpoint,
            client_secret_env=client_secret_env,
            client_auth=client_auth,
            store_kind=store_kind,
            records=None if records is None else Path(records),
            redis_url=redis_url,
            redis_namespace=redis_namespace,
        )
        problem = _problem(values)
        if problem:
            raise ConfigurationError(problem)
        if values["scopes"] is None:
            values["scopes"] = ISSUER_SCOPES if issuer else ()
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"StandaloneConfig is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"StandaloneConfig is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StandaloneConfig):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:  # no secret: the secret's variable name; no Redis password
        shown = ", ".join(
            f"{name}={self.redis_where if name == 'redis_url' else getattr(self, name)!r}"
            for name in self.__slots__
            if getattr(self, name) not in (None, ())
        )
        return f"StandaloneConfig({shown})"

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **given: Any
    ) -> StandaloneConfig:
        """The configuration in ``environ`` (default ``os.environ``); ``given`` settings
        that are not ``None`` (the CLI's flags) win. An empty variable is an unset one.

        The variables describe ONE whole configuration: when ``given`` names a server (an
        issuer or any endpoint), none of them is used, ``REFRESHAUTH_STORE``,
        ``REFRESHAUTH_RECORDS`` and ``REFRESHAUTH_REDIS_URL`` included (all or nothing:
        the variables' store holds the tokens of the variables' server)."""
        env = os.environ if environ is None else environ
        unknown = set(given) - set(ENV)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        chosen = {field: value for field, value in given.items() if value is not None}
        if any(field in chosen for field in _LOCATION):
            return cls(**chosen)
        found: dict[str, Any] = {}
        for field, variable in ENV.items():
            value = env.get(variable, "").strip()
            if value:
                found[field] = value
        if "scopes" in found:
            found["scopes"] = tuple(found["scopes"].split())
        found.update(chosen)
        return cls(**found)

    # ------------------------------------------------------------------ where the login is

    @property
    def server_key(self) -> str:
        """What identifies the server in the records' name (with the client id): the
        issuer, else the token endpoint (where the tokens are issued and renewed)."""
        return self.issuer or self.token_endpoint or ""

    @property
    def records_file(self) -> Path:
        """The records file: ``records``, else one per server, client and store kind."""
        return records_path(self.server_key, self.client_id, self.store_kind, self.records)

    @property
    def keyring_service(self) -> str:
        """The keyring service: one per server and client. With endpoints the service
        names the client (two apps of one token endpoint, GitHub's, both log in as
        ``default``); ``#`` never occurs in a token endpoint (RFC 6749 3.2: no fragment).
        An issuer's service is unchanged (existing logins): its new slots name the
        client instead (:meth:`store`)."""
        if self.issuer:
            return f"requests-refreshauth:{self.issuer}"
        return f"requests-refreshauth:{self.token_endpoint}#client_id={self.client_id}"

    @property
    def namespace(self) -> str:
        """The Redis namespace: ``redis_namespace``, else ``tokens-<key>``, the records
        file's name: one per server and client, and always a valid hash tag."""
        key = _server_client_key(self.server_key, self.client_id)
        return self.redis_namespace or f"tokens-{key}"

    @property
    def redis_where(self) -> Optional[str]:
        """``redis_url`` without user, password or options (``None`` without a URL)."""
        return None if self.redis_url is None else shown_url(self.redis_url)

    def store(self) -> TokenStore:
        """The token store: the OS keyring (records file beside), the records file, or
        Redis (``redis_url``, :attr:`namespace`; redis-py missing: a
        :class:`~requests_refreshauth.errors.ConfigurationError` naming the extra)."""
        if self.store_kind == "redis":
            assert self.redis_url is not None  # checked when made
            return redis_store(self.redis_url, self.namespace, _named("redis_url"))
        if self.store_kind == "file":
            from .stores.file import FileTokenStore

            return FileTokenStore(self.records_file)
        from .stores.keyring import KeyringTokenStore

        slot_for = _client_slots(self.client_id) if self.issuer else None
        return KeyringTokenStore(self.keyring_service, self.records_file, slot_for=slot_for)

    # ------------------------------------------------------------------ the provider

    def client_secret(self, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
        """The secret from the variable ``client_secret_env`` names (``None`` for a
        public client); unset or empty is a ``ConfigurationError``, which shows no value.

        Raises:
            ConfigurationError: ``client_secret_env`` names a variable that is unset or empty.
        """
        if not self.client_secret_env:
            return None
        env = os.environ if environ is None else environ
        secret = env.get(self.client_secret_env, "")
        if not secret:
            raise ConfigurationError(
                f"{_named('client_secret_env')} names an environment variable that is not "
                "set or is empty: set it to the client secret, or leave "
                f"{FLAGS['client_secret_env']} out for a public client."
            )
        return secret

    def provider(
        self, *, environ: Optional[Mapping[str, str]] = None, **options: Any
    ) -> PkceProvider:
        """The provider; with an issuer its metadata is discovered (cached on disk).
        ``options`` go to :class:`~requests_refreshauth.PkceProvider` (``session``,
        ``timeout``…); ``environ`` is where the client secret is read."""
        from .providers.pkce import PkceProvider

        scopes: Iterable[str] = self.scopes or ()
        options.setdefault("client_auth", self.client_auth)
        secret = self.client_secret(environ)
        if secret is not None:
            options.setdefault("client_secret", secret)
        if self.issuer:
            return PkceProvider.from_issuer(self.issuer, self.client_id, scopes, **options)
        assert self.token_endpoint is not None  # checked when made
        return PkceProvider(
            self.client_id,
            token_endpoint=self.token_endpoint,
            authorization_endpoint=self.authorization_endpoint,
            scopes=scopes,
            revocation_endpoint=self.revocation_endpoint,
            device_authorization_endpoint=self.device_authorization_endpoint,
            **options,
        )


def _client_slots(client_id: str) -> Callable[[str], str]:
    """Keyring slots of NEW accounts of an issuer configuration: the client's tag, then the
    account id escaped (``c-<16 hex>:%alice``), so two clients of one issuer with the same
    ``sub`` never share a slot. An existing login keeps the slot its record names (the
    plain id of earlier versions). Escaped ids have no ``:``, ``/``, ``#`` or upper case, so
    these slots meet neither each other nor plain ones (which have no ``%``)."""
    from .stores._slots import escaped_slot

    tag = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return lambda account_id: f"c-{tag}:{escaped_slot(account_id)}"


def _problem(config: Mapping[str, Any]) -> Optional[str]:
    """What is wrong with the settings, in words naming flags and variables (pure)."""
    endpoints = [field for field in _ENDPOINTS if config[field]]
    if not config["issuer"] and not config["token_endpoint"]:
        if endpoints:
            return (
                f"{_named('token_endpoint')} is required with "
                f"{', '.join(_named(f) for f in endpoints)}."
            )
        if not config["client_id"]:
            return (
                f"--issuer and --client-id are required for this command ({ENV['issuer']}, "
                f"{ENV['client_id']}); for a provider without discovery, give "
                f"{_named('token_endpoint')} and its other endpoints instead of --issuer."
            )
        return (
            f"{_named('issuer')} is required, or for a provider without discovery "
            f"{_named('token_endpoint')} and its other endpoints."
        )
    if config["issuer"] and endpoints:
        return (
            f"{_named('issuer')} and {', '.join(_named(f) for f in endpoints)} exclude each "
            f"other: the issuer's metadata names its endpoints. Give one or the other."
        )
    if not config["client_id"]:
        return f"{_named('client_id')} is required."
    if config["client_auth"] not in ("basic", "post"):
        return f"{_named('client_auth')} must be 'basic' or 'post'."
    if config["store_kind"] not in STORE_KINDS:
        return f"{_named('store_kind')} must be 'keyring', 'file' or 'redis'."
    name = config["client_secret_env"]
    if name is not None and not _ENV_NAME.match(name):  # never echoed: it may be the secret
        return (
            f"{_named('client_secret_env')} takes the NAME of an environment variable "
            "holding the client secret (letters, digits, _), never the secret itself."
        )
    return settings_problem(config, _named)
