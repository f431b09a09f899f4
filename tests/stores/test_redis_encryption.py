"""``RedisTokenStore(..., encryption=TokenEncryption(...))`` against a real redis-server:
what Redis holds (GET, MONITOR, the AOF, an RDB dump, a rewritten AOF) carries no token,
while ``active().bundle`` hands the stored tokens back; key rotation and ``reencrypt()``;
sealed records read without the key, tampered with or moved are typed errors that change
nothing. The pure envelope (every field, malformed seals) is tests/stores/test_encryption.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Optional, Union

import pytest
from _redis_server import RedisServer, namespace, start_redis

from requests_refreshauth import (
    Account,
    FileTokenStore,
    RedisTokenStore,
    TokenBundle,
    TokenEncryption,
    refresh_access_token,
)
from requests_refreshauth.errors import ConfigurationError, StoreReadError
from requests_refreshauth.move import move_account
from requests_refreshauth.testing import LocalAuthServer
from requests_refreshauth.token_response import interpret_token_response

pytest.importorskip("cryptography")

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL = Account("alice", "Alice"), Account("bob"), Account("carol")
AT, RT, IDT = "at-alice-H2SECRET-0001", "rt-alice-H2SECRET-0002", "idt-alice-H2SECRET-0003"
BOB_AT, BOB_RT = "at-bob-H2SECRET-0004", "rt-bob-H2SECRET-0005"
TOKENS = (AT, RT, IDT, BOB_AT, BOB_RT)
KEY_A = TokenEncryption.generate_key()  # text
KEY_B = bytes(reversed(range(32)))  # raw bytes
KEYS = (KEY_A, KEY_B.hex(), repr(KEY_B), KEY_B.decode("latin-1"))
FUTURE = 4102444800.0


def alice_login() -> TokenBundle:
    """A bundle from a real-shaped token response that carries an ID token too."""
    body = {
        "access_token": AT,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": RT,
        "id_token": IDT,
        "scope": "openid api",
        "instance_url": "https://eu.example",
    }
    bundle = interpret_token_response(200, json.dumps(body), now=time.time(), grant="exchange")
    assert bundle.refresh_token == RT and list(bundle.extra) == ["instance_url"]
    return bundle


BOB_BUNDLE = TokenBundle(BOB_AT, BOB_RT, expires_at=FUTURE)


def store_of(
    server: RedisServer, ns: str, *key_ids: str, primary: Optional[str] = None
) -> RedisTokenStore:
    """A store of ``ns`` with the keys of ``key_ids`` ("key-a", "key-b"), or none."""
    every: dict[str, Union[str, bytes]] = {"key-a": KEY_A, "key-b": KEY_B}
    keys = {k: every[k] for k in key_ids}
    encryption = TokenEncryption(keys, primary) if keys else None
    return RedisTokenStore(server.url, namespace=ns, encryption=encryption)


def records_key(ns: str) -> str:
    return f"refreshauth:{{{ns}}}:records"


def raw(server: RedisServer, ns: str) -> bytes:
    with server.client() as client:
        value = client.get(records_key(ns))
    assert isinstance(value, bytes)
    return value


def kids(value: bytes) -> dict[str, Any]:
    accounts = json.loads(value)["accounts"]
    return {name: record.get("sealed", {}).get("kid") for name, record in accounts.items()}


def clean(text: str) -> None:
    """No token and no key material in ``text``."""
    for secret in (*TOKENS, *KEYS):
        assert secret not in text


def refused(
    server: RedisServer, ns: str, calls: Iterable[Callable[[], object]]
) -> list[StoreReadError]:
    """Every call raises StoreReadError, with no secret in it, and the value is unchanged."""
    before = raw(server, ns)
    errors = []
    for call in calls:
        with pytest.raises(StoreReadError) as info:
            call()
        assert info.value.code == "AUTH_STORE_READ_FAILED"
        clean(str(info.value) + repr(info.value))
        errors.append(info.value)
    assert raw(server, ns) == before
    return errors


def every_call(store: RedisTokenStore) -> list[Callable[[], object]]:
    """Reads and writes: none may get past a document it cannot open."""
    return [
        store.active,
        lambda: store.active("bob"),
        store.accounts,
        lambda: store.status("alice"),
        lambda: store.save(ALICE, TokenBundle("at-new-H2", "rt-new-H2")),
        lambda: store.save(CAROL, TokenBundle("at-new-H2", "rt-new-H2")),
        lambda: store.clear("bob"),
        lambda: store.set_default("bob"),
    ]


def saved_under_a(server: RedisServer, *accounts: Account) -> str:
    ns = namespace()
    store = store_of(server, ns, "key-a")
    for n, account in enumerate(accounts):
        bundle = TokenBundle(f"at-{account.id}-H2", f"rt-{account.id}-H2", expires_at=FUTURE)
        store.save(account, bundle, make_default=n == 0)
    assert set(kids(raw(server, ns)).values()) == {"key-a"}
    return ns


def tokens_of(store: RedisTokenStore, *accounts: Account) -> dict[str, tuple[str, Any, int]]:
    snaps = [store.active(account.id) for account in accounts]
    return {
        s.account.id: (s.bundle.access_token, s.bundle.refresh_token, s.revision)
        for s in snaps
        if s
    }


# ------------------------------------------------------------------ what Redis holds


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    data = b""
    deadline = time.monotonic() + 10.0
    while marker not in data:
        assert time.monotonic() < deadline, "MONITOR never showed the marker"
        data += conn.recv(65536)
    return data


def _rewrite_aof(server: RedisServer) -> bytes:
    """BGREWRITEAOF, waited for; the new base file(s) of appendonlydir."""
    with server.client(decode_responses=True) as client:
        client.bgrewriteaof()
        deadline = time.monotonic() + 30.0
        while True:
            info = client.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            assert time.monotonic() < deadline, "BGREWRITEAOF did not finish"
            time.sleep(0.05)
    return b"".join(p.read_bytes() for p in sorted((server.directory / "appendonlydir").glob("*")))


def exposure(server: RedisServer, store: RedisTokenStore) -> dict[str, bytes]:
    """Two logins saved and read back through ``store``; what each place then holds."""
    monitor = socket.create_connection(("127.0.0.1", server.port), timeout=10.0)
    try:
        monitor.sendall(b"MONITOR\r\n")
        assert _read_until(monitor, b"\r\n").startswith(b"+OK")
        store.save(ALICE, alice_login(), make_default=True)
        store.save(BOB, BOB_BUNDLE)
        alice, bob = store.active(), store.active("bob")
        assert alice is not None and alice.bundle.refresh_token == RT
        assert alice.bundle.access_token == AT
        assert bob is not None and bob.bundle.refresh_token == BOB_RT
        with server.client() as client:
            client.echo("h2-monitor-end")
            got = {"GET": raw(server, store.namespace)}
            got["MONITOR"] = _read_until(monitor, b"h2-monitor-end")
            aof = server.directory / "appendonlydir"
            got["AOF"] = b"".join(p.read_bytes() for p in sorted(aof.glob("*.incr.aof")))
            client.save()
    finally:
        monitor.close()
    got["RDB"] = (server.directory / "dump.rdb").read_bytes()
    got["rewritten AOF"] = _rewrite_aof(server)
    for place, data in got.items():  # each place does hold the records
        assert records_key(store.namespace).encode() in data or place == "GET", place
    return got


@pytest.fixture
def disk_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test with an AOF (fsync always) and uncompressed RDB strings, so
    a token in the data set is a plain byte string in the files."""
    server = start_redis(tmp_path / "redis", appendonly=True, extra=["--rdbcompression", "no"])
    yield server
    server.kill()


def test_an_encrypted_store_leaves_no_token_in_redis_or_its_files(
    disk_redis: RedisServer,
) -> None:
    store = store_of(disk_redis, "fleet", "key-a")
    for place, data in exposure(disk_redis, store).items():
        for token in TOKENS:
            assert token.encode() not in data, f"{token} in {place}"
        assert b"encrypted" in data, place
    assert set(kids(raw(disk_redis, "fleet")).values()) == {"key-a"}


def test_without_encryption_the_same_checks_find_the_tokens(disk_redis: RedisServer) -> None:
    """The control: the search above does see tokens when they are there."""
    store = store_of(disk_redis, "fleet")
    for place, data in exposure(disk_redis, store).items():
        for token in (AT, RT, BOB_AT, BOB_RT):
            assert token.encode() in data, f"{token} not in {place}"
        assert IDT.encode() not in data, place  # an ID token is never kept at all


def test_a_refresh_through_an_encrypted_store_seals_the_new_tokens(
    redis_server: RedisServer,
) -> None:
    """The engine's fenced save goes through the same sealing as a plain save."""
    store = store_of(redis_server, namespace(), "key-a")
    with LocalAuthServer() as server:
        old = server.login("alice").replace(expires_at=1.0)
        store.save(ALICE, old, make_default=True)
        got = refresh_access_token(store, server.provider(timeout=(5.0, 5.0)))
        assert server.stats().refresh_served == 1
    new = got.bundle
    assert new.refresh_token not in (None, old.refresh_token)
    value = raw(redis_server, store.namespace)
    for token in (old.access_token, old.refresh_token, new.access_token, new.refresh_token):
        assert token is not None and token.encode() not in value
    stored = store.active()
    assert stored is not None and stored.bundle.refresh_token == new.refresh_token


def test_a_login_moved_into_an_encrypted_store_arrives_sealed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    laptop = FileTokenStore(tmp_path / "tokens.json")
    laptop.save(ALICE, alice_login(), make_default=True)
    fleet = store_of(redis_server, namespace(), "key-a")
    moved = move_account(laptop, fleet)
    assert moved.bundle.refresh_token == RT
    value = raw(redis_server, fleet.namespace)
    assert AT.encode() not in value and RT.encode() not in value
    assert kids(value) == {"alice": "key-a"}


def test_a_move_into_records_the_target_cannot_open_moves_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ns = saved_under_a(redis_server, BOB)
    laptop = FileTokenStore(tmp_path / "tokens.json")
    laptop.save(ALICE, alice_login(), make_default=True)
    wrong_key = store_of(redis_server, ns, "key-b")
    refused(redis_server, ns, [lambda: move_account(laptop, wrong_key)])
    kept = laptop.active()
    assert kept is not None and kept.bundle.refresh_token == RT


# ------------------------------------------------------------------ rotation


def test_a_rotated_store_reads_old_records_and_seals_every_save_with_the_new_key(
    redis_server: RedisServer,
) -> None:
    ns = saved_under_a(redis_server, ALICE, BOB)
    rotated = store_of(redis_server, ns, "key-a", "key-b", primary="key-b")
    before = tokens_of(rotated, ALICE, BOB)
    assert before["bob"][:2] == ("at-bob-H2", "rt-bob-H2")
    rotated.save(ALICE, TokenBundle("at-alice-H2-2", "rt-alice-H2-2", expires_at=FUTURE))
    # Every write seals every record with the primary key, the untouched bob's too.
    assert kids(raw(redis_server, ns)) == {"alice": "key-b", "bob": "key-b"}
    after = tokens_of(store_of(redis_server, ns, "key-b"), BOB)
    assert after["bob"] == before["bob"]


def test_reencrypt_moves_every_record_and_then_the_old_key_alone_is_refused(
    redis_server: RedisServer,
) -> None:
    ns = saved_under_a(redis_server, ALICE, BOB, CAROL)
    before = tokens_of(store_of(redis_server, ns, "key-a"), BOB)
    rotated = store_of(redis_server, ns, "key-a", "key-b", primary="key-b")
    assert rotated.reencrypt() == 3
    assert kids(raw(redis_server, ns)) == {"alice": "key-b", "bob": "key-b", "carol": "key-b"}
    new_only = store_of(redis_server, ns, "key-b")
    got = tokens_of(new_only, ALICE, BOB, CAROL)
    assert got["bob"] == before["bob"]  # same tokens, same revision
    assert got["carol"][:2] == ("at-carol-H2", "rt-carol-H2")
    old_only = store_of(redis_server, ns, "key-a")
    errors = refused(redis_server, ns, [*every_call(old_only), old_only.reencrypt])
    for error in errors:
        assert "'key-b'" in str(error) and "'key-a'" in str(error)  # needed and given
    assert tokens_of(new_only, ALICE, BOB, CAROL) == got  # nothing lost


def test_reencrypt_seals_records_saved_before_encryption_was_on(
    redis_server: RedisServer,
) -> None:
    ns = namespace()
    store_of(redis_server, ns).save(ALICE, alice_login(), make_default=True)
    assert RT.encode() in raw(redis_server, ns)
    store = store_of(redis_server, ns, "key-a")
    snap = store.active()  # plaintext records read as they are
    assert snap is not None and snap.bundle.refresh_token == RT
    assert store.reencrypt() == 1
    value = raw(redis_server, ns)
    assert AT.encode() not in value and RT.encode() not in value
    assert kids(value) == {"alice": "key-a"}
    again = store.active()
    assert again is not None and again.bundle.refresh_token == RT


# ------------------------------------------------------------------ unkeyed, altered, moved


def test_a_store_without_encryption_refuses_sealed_records_and_changes_nothing(
    redis_server: RedisServer,
) -> None:
    ns = saved_under_a(redis_server, ALICE, BOB)
    plain = store_of(redis_server, ns)
    for error in refused(redis_server, ns, every_call(plain)):
        text = str(error)
        assert "are encrypted" in text and "'key-a'" in text and "'alice'" in text
        assert f"namespace '{ns}'" in text and f":{redis_server.port}/" in text
        assert "encryption=TokenEncryption" in text  # the way forward
    with pytest.raises(ValueError, match="no encryption"):
        plain.reencrypt()
    assert kids(raw(redis_server, ns)) == {"alice": "key-a", "bob": "key-a"}


def tamper_ciphertext(doc: dict[str, Any]) -> None:
    blob = doc["accounts"]["alice"]["sealed"]
    text = blob["ciphertext"]
    blob["ciphertext"] = ("B" if text[5] == "A" else "A").join((text[:5], text[6:]))


def tamper_revision(doc: dict[str, Any]) -> None:
    doc["accounts"]["alice"]["revision"] -= 1  # the AAD binds the record's revision


def tamper_account(doc: dict[str, Any]) -> None:
    accounts = doc["accounts"]  # alice's blob under bob's name and the other way round
    accounts["alice"]["sealed"], accounts["bob"]["sealed"] = (
        accounts["bob"]["sealed"],
        accounts["alice"]["sealed"],
    )


@pytest.mark.parametrize("tamper", [tamper_ciphertext, tamper_revision, tamper_account])
def test_an_altered_sealed_value_is_a_typed_error_and_nothing_is_reset(
    redis_server: RedisServer, tamper: Callable[[dict[str, Any]], None]
) -> None:
    ns = saved_under_a(redis_server, ALICE, BOB)
    doc = json.loads(raw(redis_server, ns))
    tamper(doc)
    with redis_server.client() as client:
        client.set(records_key(ns), json.dumps(doc, indent=2))
    store = store_of(redis_server, ns, "key-a", "key-b", primary="key-b")
    for error in refused(redis_server, ns, [*every_call(store), store.reencrypt]):
        assert "failed authentication" in str(error) and "'key-a'" in str(error)
        assert "left unchanged" in str(error)


def test_a_value_copied_into_another_namespace_does_not_open_there(
    redis_server: RedisServer,
) -> None:
    """A namespace's records restored (COPY, a dump) under another namespace's key."""
    ns, other = saved_under_a(redis_server, ALICE, BOB), namespace()
    with redis_server.client() as client:
        assert client.copy(records_key(ns), records_key(other))
    store = store_of(redis_server, other, "key-a")
    for error in refused(redis_server, other, every_call(store)):
        assert "failed authentication" in str(error) and f"namespace '{other}'" in str(error)
    assert tokens_of(store_of(redis_server, ns, "key-a"), BOB)


# ------------------------------------------------------------------ bad keys


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        pytest.param({"2026-01": bytes(range(16))}, "32-byte key", id="AES-128 bytes"),
        pytest.param({"2026-01": bytes(range(32)).hex()}, "32-byte key", id="hex text"),
        pytest.param({"2026-01": KEY_A[:-4]}, "32-byte key", id="truncated base64"),
        pytest.param({"2026-01": bytearray(range(31))}, "32-byte key", id="31 bytes"),
        pytest.param({"2026-01": None}, "32-byte key", id="None"),
        pytest.param({"2026-01": [KEY_A]}, "32-byte key", id="a list as the key"),
        pytest.param(KEY_A, "not a str", id="a bare key text"),
        pytest.param(bytes(range(32)), "not a bytes", id="bare key bytes"),
        pytest.param([KEY_A, TokenEncryption.generate_key()], "not a list", id="a key list"),
    ],
)
def test_a_wrong_key_is_a_value_error_that_says_what_is_wrong_not_the_key(
    keys: Any, says: str
) -> None:
    with pytest.raises(ValueError) as info:
        TokenEncryption(keys)
    text = str(info.value)
    assert isinstance(info.value, ConfigurationError) and says in text
    assert "'2026-01'" in text if isinstance(keys, dict) else "{key id: key}" in text
    assert "at least one" not in text  # a key was given: its shape or size is wrong
    given = list(keys.values()) if isinstance(keys, dict) else [keys]
    given += [item for key in given if isinstance(key, list) for item in key]
    for key in given:
        assert str(key) not in text and repr(key) not in text


@pytest.mark.parametrize("encryption", [KEY_A, {"key-a": KEY_A}], ids=["key text", "key dict"])
def test_a_store_given_a_key_instead_of_a_token_encryption_says_so_at_once(
    redis_server: RedisServer, encryption: Any
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        RedisTokenStore(redis_server.url, namespace=namespace(), encryption=encryption)
    assert "TokenEncryption" in str(info.value)
    clean(str(info.value))


def test_reencrypt_of_an_empty_namespace_writes_nothing(redis_server: RedisServer) -> None:
    ns = namespace()  # a mistyped namespace must not be created by a rotation script
    assert store_of(redis_server, ns, "key-a").reencrypt() == 0
    client = redis_server.client()
    try:
        assert client.exists(f"refreshauth:{{{ns}}}:records") == 0
    finally:
        client.close()
