"""RedisTokenStore over TLS (``rediss://``) against a real redis-server with a TLS port.

A throwaway CA and a server certificate for 127.0.0.1 (an IP SAN) are made here with
``cryptography``. The server keeps its plain port too: ``RedisServer`` PINGs the plain
port to see that it is up (``--port 0`` would leave it nothing to PING), and the tests use
it to see what went through the TLS port. The TLS port is a second free port.

With the CA (``?ssl_ca_certs=``) the store works; without it (the system CAs) or with
another CA the certificate is not trusted and the store fails with a typed error naming
the address, no token in it, quickly; a plain ``redis://`` URL to the TLS port fails
typed too, without hanging.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import pytest
from _redis_server import (
    IN_CI,
    RedisServer,
    _free_port,
    namespace,
    require_redis_server,
    start_redis,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support import full_text

from requests_refreshauth import Account, RedisTokenStore, TokenBundle
from requests_refreshauth.errors import StoreReadError, StoreWriteError

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")
FRESH = 4102444800.0
TIMEOUT = 2.0
DEADLINE = 20.0  # "no hang": a 2 s timeout (and its one retry) must end well within this
TOKENS = ("at-1", "rt-1")


def bundle() -> TokenBundle:
    return TokenBundle("at-1", "rt-1", expires_at=FRESH)


# --- a throwaway PKI ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate (PEM) a client trusts
    cert: Path  # the server certificate (PEM), signed by ``ca``, for IP 127.0.0.1
    key: Path  # the server's private key (PEM, mode 0600)


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # whatever the umask
    return path


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("refreshauth test CA")
    key, cert = _server_cert(ca_key, ca_cert)
    pem = serialization.Encoding.PEM
    return Pki(
        ca=_write(directory / "ca.pem", ca_cert.public_bytes(pem)),
        cert=_write(directory / "server.pem", cert.public_bytes(pem)),
        key=_write(
            directory / "server-key.pem",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            0o600,
        ),
    )


def other_ca(directory: Path) -> Path:
    """A CA certificate that did not sign the server's certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    _, cert = _ca("some other CA")
    return _write(directory / "other-ca.pem", cert.public_bytes(serialization.Encoding.PEM))


# --- the server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsRedis:
    server: RedisServer  # its plain port (.port, .client()) stays open
    tls_port: int
    pki: Pki

    def url(self, scheme: str = "rediss", query: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.tls_port}/0{query}"

    @property
    def where(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"


def _no_tls_support(error: RuntimeError) -> bool:
    """A redis-server built without TLS rejects the tls-* directives at startup."""
    text = str(error)
    return "Bad directive" in text and "tls-" in text


def start_tls_redis(directory: Path, pki: Pki) -> TlsRedis:
    require_redis_server()  # under CI=true: fail, never skip
    error: Optional[RuntimeError] = None
    for _ in range(3):  # the free TLS port can be taken between probe and bind
        tls_port = _free_port()
        extra = [
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(pki.cert),
            "--tls-key-file", str(pki.key),
            "--tls-ca-cert-file", str(pki.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
        try:
            return TlsRedis(start_redis(directory, extra=extra), tls_port, pki)
        except RuntimeError as exc:
            if _no_tls_support(exc):
                reason = f"this redis-server has no TLS support (built without BUILD_TLS): {exc}"
                if IN_CI:
                    pytest.fail(f"CI=true but {reason}")
                pytest.skip(reason)
            error = exc
    assert error is not None
    raise error


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    base = tmp_path_factory.mktemp("redis-tls")
    running = start_tls_redis(base / "redis", make_pki(base / "pki"))
    yield running
    running.server.kill()


# --- the tests -----------------------------------------------------------------------------


def test_the_server_certificate_files(tls_redis: TlsRedis) -> None:
    assert tls_redis.pki.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(tls_redis.pki.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_rediss_url_with_the_ca_round_trips(tls_redis: TlsRedis) -> None:
    ns = namespace()
    store = RedisTokenStore(
        tls_redis.url(query=f"?ssl_ca_certs={tls_redis.pki.ca}"), ns, timeout=TIMEOUT
    )
    try:
        assert store.where.startswith("rediss://")
        assert store.where == f"{tls_redis.where} namespace {ns!r}"
        assert str(tls_redis.pki.ca) not in store.where  # the query is not part of it
        saved = store.save(ALICE, bundle(), make_default=True)
        active = store.active()
        assert active is not None
        assert active.account == ALICE
        assert active.bundle.access_token == "at-1"
        assert active.bundle.refresh_token == "rt-1"
        assert active.revision == saved.revision
        assert [(s.account, s.is_default) for s in store.accounts()] == [(ALICE, True)]
        connection_class = store.connection.client.connection_pool.connection_class
        assert "SSL" in connection_class.__name__  # it really spoke TLS
    finally:
        store.connection.client.close()
    plain = tls_redis.server.client()  # the same server, through its plain port
    try:
        assert plain.exists(f"refreshauth:{{{ns}}}:records") == 1
    finally:
        plain.close()


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_untrusted_certificate_is_a_typed_read_error(
    tls_redis: TlsRedis, tmp_path: Path, trust: str
) -> None:
    ns = namespace()
    trusted = RedisTokenStore(
        tls_redis.url(query=f"?ssl_ca_certs={tls_redis.pki.ca}"), ns, timeout=TIMEOUT
    )
    try:
        trusted.save(ALICE, bundle(), make_default=True)  # tokens a leak could show
    finally:
        trusted.connection.client.close()
    query = "" if trust == "system CAs" else f"?ssl_ca_certs={other_ca(tmp_path)}"
    store = RedisTokenStore(tls_redis.url(query=query), ns, timeout=TIMEOUT)
    started = time.monotonic()
    try:
        with pytest.raises(StoreReadError) as caught:
            store.active()
    finally:
        store.connection.client.close()
    assert time.monotonic() - started < DEADLINE
    message = str(caught.value)
    assert tls_redis.where in message
    assert "certificate is not trusted" in message and "ssl_ca_certs=" in message  # the fix
    text = full_text(caught.value)
    for token in TOKENS:
        assert token not in text
    assert caught.value.code == "AUTH_STORE_READ_FAILED"


def test_plain_url_to_the_tls_port_fails_typed_without_hanging(tls_redis: TlsRedis) -> None:
    url = tls_redis.url(scheme="redis")
    store = RedisTokenStore(url, namespace(), timeout=TIMEOUT)
    where = f"redis://127.0.0.1:{tls_redis.tls_port}/0"
    try:
        started = time.monotonic()
        with pytest.raises(StoreReadError) as read:
            store.active()
        assert time.monotonic() - started < DEADLINE
        assert where in str(read.value)

        started = time.monotonic()
        failed: Union[StoreReadError, StoreWriteError]
        try:
            store.save(ALICE, bundle(), make_default=True)
        except (StoreReadError, StoreWriteError) as exc:
            failed = exc
        else:
            pytest.fail("a save through a plain connection to the TLS port succeeded")
        assert time.monotonic() - started < DEADLINE
        assert where in str(failed)
        text = full_text(failed)
        for token in TOKENS:
            assert token not in text
    finally:
        store.connection.client.close()
