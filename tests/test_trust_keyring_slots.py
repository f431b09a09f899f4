"""Keyring slot names never collide (issue 8, item 13), and hostile account ids are safe.

An account's secrets live in ``<slot>``, ``<slot>/refresh`` and, on size-limited backends,
``<slot>#2``, ``<slot>/refresh#2``, ... . Account ids come from the server (userinfo or
JWT ``sub``), so an id such as ``alice/refresh`` must not land on alice's refresh slot.
Ordinary ids keep exactly the slot names they always had (persisted user state).

The fakes here model what real backends do with the "username": compare it ignoring case
(Windows Credential Manager target names, jaraco/keyring#736; macOS reports), or pass it
as a C string so everything after a NUL is lost (macOS ``CFStringCreateWithCString``,
Windows ``LPWSTR``). Token values never reach an assertion message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keyring.errors import PasswordDeleteError
from keyring_fakes import FaultyKeyring, MemoryKeyring, SizeLimitedKeyring
from support import examples, make_bundle

from requests_refreshauth import (
    Account,
    KeyringTokenStore,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
)
from requests_refreshauth.errors import SlotCollisionError
from requests_refreshauth.stores._slots import (
    default_slot,
    escaped_slot,
    slot_names,
    slots_overlap,
)

SERVICE = "refreshauth-slot-tests"


# --------------------------------------------------------------------------- helpers


class FoldingKeyring(MemoryKeyring):
    """A keyring whose item key is a *transformed* username (case folded, C string...)."""

    def key(self, username: str) -> str:
        return username

    def get_password(self, service: str, username: str) -> Optional[str]:
        return super().get_password(service, self.key(username))

    def set_password(self, service: str, username: str, password: str) -> None:
        super().set_password(service, self.key(username), password)

    def delete_password(self, service: str, username: str) -> None:
        super().delete_password(service, self.key(username))


class CaseInsensitiveKeyring(FoldingKeyring):
    """Like Windows Credential Manager: ``Alice`` and ``alice`` are the same item."""

    def key(self, username: str) -> str:
        return username.casefold()


class CStringKeyring(FoldingKeyring):
    """Like a backend handing the username to C: it ends at the first NUL."""

    def key(self, username: str) -> str:
        return username.split("\x00", 1)[0]


def long_token(size: int = 4000) -> str:
    return "ey" + secrets.token_urlsafe(size)[: size - 2]


def store_on(records: Path, backend: Any, **kwargs: Any) -> KeyringTokenStore:
    return KeyringTokenStore(SERVICE, records, backend=backend, **kwargs)


def holds(store: KeyringTokenStore, ref: str, bundle: TokenBundle) -> bool:
    """Whether ``ref`` reads back exactly ``bundle``'s two tokens (never raises)."""
    try:
        snap = store.active(ref)
        if snap is None or snap.account.id != ref:
            return False
        refresh = store.read_refresh_token(snap)
    except Exception:  # a read error is the failure we look for
        return False
    return snap.bundle.access_token == bundle.access_token and refresh == bundle.refresh_token


def record_of(records: Path, account_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(records.read_text())
    record: dict[str, Any] = doc["accounts"][account_id]
    return record


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "store" / "records.json"


@pytest.fixture(autouse=True)
def _no_user_keyring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every store here gets an explicit backend; make sure nothing reaches the user's."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


# --------------------------------------------------------------------------- the bug


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alice", "alice/refresh"),  # the reported case
        ("alice/refresh", "alice"),  # the other order
        ("alice", "alice/REFRESH"),  # same item on a case-insensitive backend
    ],
)
def test_an_id_ending_in_slash_refresh_never_touches_another_accounts_slots(
    records: Path, first: str, second: str
) -> None:
    for backend in (MemoryKeyring(), CaseInsensitiveKeyring()):
        path = records.with_name(f"{type(backend).__name__}.json")
        store = store_on(path, backend)
        one, two = make_bundle("one"), make_bundle("two")
        store.save(Account(first), one)
        store.save(Account(second), two)
        fresh = store_on(path, backend)
        assert holds(fresh, first, one), f"{first!r} lost its tokens on {backend!r}"
        assert holds(fresh, second, two), f"{second!r} lost its tokens on {backend!r}"


@pytest.mark.parametrize("suffix", ["#2", "#4", "/refresh#2", "/refresh#4"])
def test_an_id_named_like_a_chunk_never_overwrites_that_chunk(records: Path, suffix: str) -> None:
    backend = SizeLimitedKeyring()  # a 4000-character token takes 4 chunks here
    store = store_on(records, backend)
    alice = make_bundle("alice", access=long_token())
    alice = alice.replace(refresh_token=long_token())
    store.save(Account("alice"), alice)
    assert record_of(records, "alice").get("chunks") == {"access": 4, "refresh": 4}

    other = make_bundle("other")
    store.save(Account("alice" + suffix), other)
    fresh = store_on(records, backend)
    assert holds(fresh, "alice", alice)
    assert holds(fresh, "alice" + suffix, other)


def test_ids_differing_only_in_case_keep_apart_on_a_case_insensitive_backend(
    records: Path,
) -> None:
    backend = CaseInsensitiveKeyring()
    store = store_on(records, backend)
    upper, lower = make_bundle("upper"), make_bundle("lower")
    store.save(Account("00uAbCdEf"), upper)  # Okta-style ids are case-sensitive
    store.save(Account("00uabcdef"), lower)
    fresh = store_on(records, backend)
    assert holds(fresh, "00uAbCdEf", upper)
    assert holds(fresh, "00uabcdef", lower)
    # The first keeps its plain name; only the newcomer is escaped.
    assert record_of(records, "00uAbCdEf")["slot"] == "00uAbCdEf"
    assert record_of(records, "00uabcdef")["slot"] != "00uabcdef"


def test_an_id_with_a_nul_never_lands_on_the_id_before_it(records: Path) -> None:
    backend = CStringKeyring()
    store = store_on(records, backend)
    alice, evil = make_bundle("alice"), make_bundle("evil")
    store.save(Account("alice"), alice)
    store.save(Account("alice\x00evil"), evil)
    fresh = store_on(records, backend)
    assert holds(fresh, "alice", alice)
    assert holds(fresh, "alice\x00evil", evil)
    assert "\x00" not in record_of(records, "alice\x00evil")["slot"]


@pytest.mark.parametrize(
    "hostile",
    ["a\nb", "a\rb", "a\tb", "\x1b[2Jx", "a\x7fb", " alice", "alice ", "\u00a0", "x\ud800y"],
)
def test_control_characters_and_odd_whitespace_are_escaped(hostile: str) -> None:
    slot = default_slot(hostile)
    assert slot != hostile
    assert all(32 < ord(ch) < 127 for ch in slot), "escaped slots are printable ASCII"


def test_a_huge_id_gets_a_short_slot(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    huge, near = "a" * 100_000, "a" * 99_999 + "b"
    one, two = make_bundle("one"), make_bundle("two")
    store.save(Account(huge), one)
    store.save(Account(near), two)
    # Windows limits the username to 513 UTF-16 units; slots stay far below.
    assert all(len(name) <= 300 for (_service, name) in backend.data)
    fresh = store_on(records, backend)
    assert holds(fresh, huge, one) and holds(fresh, near, two)


def test_messages_about_a_huge_id_stay_short(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend, slot_for=lambda account_id: "shared")
    store.save(Account("bob"), make_bundle("bob"))
    with pytest.raises(SlotCollisionError) as caught:
        store.save(Account("x" * 100_000), make_bundle("huge"))
    assert len(str(caught.value)) < 1000


def test_read_errors_about_a_huge_or_hostile_id_stay_short_and_escaped(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend)
    hostile = "\x1b]0;pwned\x07" + "x" * 100_000
    store.save(Account(hostile), make_bundle("huge"))
    backend.data.clear()  # removed outside the library
    with pytest.raises(StoreReadError) as caught:
        store_on(records, backend).active(hostile)
    message = str(caught.value)
    assert len(message) < 1000
    assert "\x1b" not in message and "\x07" not in message


# --------------------------------------------------------------------------- pinned names


ORDINARY_IDS = [
    "alice",
    "alice@example.com",
    "Alice.Smith+cli@Example.COM",
    "1234567890",
    "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "F47AC10B-58CC-4372-A567-0E02B2C3D479",
    "auth0|5f7c8ec7c33c6c004bbafe82",
    "google-oauth2|112233445566778899000",
    "github|12345",
    "samlp|corp|jdoe",
    "00u1abcd2EFGH3ijk4x7",
    "CgYxMjM0NTYSBGxkYXA",  # Dex: base64
    "https://accounts.example.com/users/42",
    "user/with/slashes",
    "refresh",
    "alice/refreshed",
    "a#b",
    "issue#1",
    "x#0",
    "x#02",
    "josé@example.com",
    "用户",
    "a" * 255,
]


@pytest.mark.parametrize("account_id", ORDINARY_IDS)
def test_ordinary_ids_keep_exactly_their_old_slot_names(records: Path, account_id: str) -> None:
    """Every existing login lives under these names: they must not change."""
    assert default_slot(account_id) == account_id
    backend = MemoryKeyring()
    store_on(records, backend).save(Account(account_id), make_bundle("x"))
    assert backend.slots(SERVICE) == sorted([account_id, account_id + "/refresh"])
    assert record_of(records, account_id)["slot"] == account_id


def test_ordinary_ids_keep_their_names_together(records: Path) -> None:
    """All of them in one store: none is escaped because of another."""
    backend = MemoryKeyring()
    store = store_on(records, backend)
    ids = [i for i in ORDINARY_IDS if i != "F47AC10B-58CC-4372-A567-0E02B2C3D479"]
    for account_id in ids:
        store.save(Account(account_id), make_bundle("x"))
    for account_id in ids:
        assert record_of(records, account_id)["slot"] == account_id


def test_escaped_slot_names_are_pinned_too() -> None:
    """Escaped names become stored state the moment an account is saved under one."""
    assert default_slot("alice/refresh") == "%alice%2frefresh"
    assert default_slot("Alice#2") == "%%41lice%232"
    assert default_slot("50%") == "%50%25"
    assert default_slot("a\x00b") == "%a%00b"
    assert default_slot(" ") == "%%20"
    assert escaped_slot("Alice") == "%%41lice"
    long_id = "x" * 300
    assert default_slot(long_id) == "%~" + hashlib.sha256(long_id.encode()).hexdigest()


_PLAIN_ALPHABET = string.ascii_letters + string.digits + "@._-+|:=~!$&'()*,;/#é用"


@given(st.text(alphabet=_PLAIN_ALPHABET, min_size=1, max_size=40))
def test_every_id_that_cannot_collide_maps_to_itself(account_id: str) -> None:
    endings = ("/refresh",)
    folded = account_id.casefold()
    could_collide = folded.endswith(endings) or _ends_with_chunk_number(account_id)
    if not could_collide:
        assert default_slot(account_id) == account_id


def _ends_with_chunk_number(text: str) -> bool:
    _head, sep, digits = text.rpartition("#")
    return (
        bool(sep)
        and digits.isascii()
        and digits.isdigit()
        and digits[0] != "0"
        and int(digits) >= 2
    )


# --------------------------------------------------------------------------- injectivity

_TRICKY = st.sampled_from(
    [
        "/refresh",
        "/REFRESH",
        "#2",
        "#3",
        "#10",
        "#1",
        "%",
        "%2f",
        "%25",
        "/",
        "#",
        "\x00",
        " ",
        "\ud800",
    ]
)
_IDS = (
    st.lists(
        st.one_of(st.text(min_size=0, max_size=6), _TRICKY, st.sampled_from(["a", "A", "b"])),
        min_size=1,
        max_size=5,
    )
    .map("".join)
    .filter(bool)
)

_KINDS = ("access", "refresh")


def _all_names(account_id: str, chunks: int = 4) -> set[str]:
    return set(slot_names(default_slot(account_id), {kind: chunks for kind in _KINDS}))


@settings(max_examples=examples(400), deadline=None)
@given(_IDS, _IDS)
def test_no_two_id_kind_chunk_triples_share_a_slot_name(first: str, second: str) -> None:
    if first == second:
        return
    a, b = _all_names(first), _all_names(second)
    assert not a & b
    # Slot families only ever meet ignoring case (then the store escapes the newcomer).
    assert not slots_overlap(default_slot(first), default_slot(second)) or (
        first.casefold() == second.casefold() or first.upper() == second.upper()
    )


@settings(max_examples=examples(200), deadline=None)
@given(_IDS)
def test_one_accounts_names_are_distinct(account_id: str) -> None:
    names = slot_names(default_slot(account_id), {kind: 5 for kind in _KINDS})
    assert len(names) == len(set(names)) == 10


@settings(max_examples=examples(200), deadline=None)
@given(_IDS, _IDS)
def test_escaped_slots_never_collide_even_ignoring_case(first: str, second: str) -> None:
    """The fallback for case twins is distinct from everything, case-insensitively."""
    if first == second:
        return
    assert escaped_slot(first).casefold() != escaped_slot(second).casefold()
    assert not slots_overlap(escaped_slot(first), escaped_slot(second))
    assert not slots_overlap(escaped_slot(first), default_slot(second))


def test_overlap_covers_every_generated_name() -> None:
    assert slots_overlap("alice", "alice/refresh")
    assert slots_overlap("alice", "alice#2")
    assert slots_overlap("alice", "alice/refresh#7")
    assert slots_overlap("alice/refresh", "alice")
    assert slots_overlap("Alice", "alice")  # case-insensitive backends
    assert not slots_overlap("alice", "alice#1")
    assert not slots_overlap("alice", "alice/refreshed")
    assert not slots_overlap("alice", "bob")


# --------------------------------------------------------------------------- custom slot_for


def _snapshot_state(backend: MemoryKeyring, records: Path) -> tuple[dict[Any, str], str]:
    return dict(backend.data), records.read_text()


@pytest.mark.parametrize(
    "slot_for",
    [
        lambda account_id: "shared",  # not injective at all
        lambda account_id: "bob/refresh" if account_id == "eve" else account_id,
        lambda account_id: "bob#2" if account_id == "eve" else account_id,
        lambda account_id: "BOB" if account_id == "eve" else account_id,
    ],
    ids=["constant", "refresh-slot", "chunk-slot", "case-twin"],
)
def test_a_colliding_custom_slot_is_refused_and_nothing_is_overwritten(
    records: Path, slot_for: Any
) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend, slot_for=slot_for)
    bob = make_bundle("bob")
    store.save(Account("bob"), bob)
    before = _snapshot_state(backend, records)
    eve = make_bundle("eve")

    with pytest.raises(SlotCollisionError) as caught:
        store.save(Account("eve"), eve)

    error = caught.value
    assert isinstance(error, StoreWriteError)
    assert error.code == "AUTH_STORE_WRITE_FAILED"
    assert error.account_id == "eve" and error.other_account_id == "bob"
    assert "'eve'" in str(error) and "'bob'" in str(error)
    text = str(error) + repr(error)
    assert bob.access_token not in text and eve.access_token not in text
    assert _snapshot_state(backend, records) == before
    assert holds(store_on(records, backend), "bob", bob)


def test_a_case_twin_whose_escaped_slot_is_taken_too_is_refused(records: Path) -> None:
    """Only a custom slot_for (here, of an earlier store) can take an escaped slot."""
    backend = CaseInsensitiveKeyring()
    store_on(records, backend).save(Account("Alice"), make_bundle("upper"))
    squatter = store_on(records, backend, slot_for=lambda account_id: "%alice")
    squatter.save(Account("bob"), make_bundle("bob"))
    before = dict(backend.data)
    with pytest.raises(SlotCollisionError) as caught:
        store_on(records, backend).save(Account("alice"), make_bundle("lower"))
    assert caught.value.other_account_id == "bob"
    assert backend.data == before


def test_a_custom_slot_is_checked_against_slots_of_another_policy(records: Path) -> None:
    """The other account's slot came from the default naming; the check still sees it."""
    backend = MemoryKeyring()
    store_on(records, backend).save(Account("alice"), make_bundle("alice"))
    custom = store_on(records, backend, slot_for=lambda account_id: "alice/refresh")
    with pytest.raises(SlotCollisionError):
        custom.save(Account("mallory"), make_bundle("mallory"))


@pytest.mark.parametrize("bad", ["", "a\x00b", "a\nb", "x\ud800", "x" * 600, 42, None])
def test_a_custom_slot_that_no_backend_can_hold_is_refused(records: Path, bad: Any) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend, slot_for=lambda account_id: bad)
    with pytest.raises(StoreWriteError):
        store.save(Account("alice"), make_bundle("alice"))
    assert backend.data == {}
    assert not records.exists() or "alice" not in json.loads(records.read_text())["accounts"]


def test_an_injective_custom_slot_for_works(records: Path) -> None:
    backend = MemoryKeyring()
    store = store_on(records, backend, slot_for=lambda account_id: f"user:{account_id}")
    one, two = make_bundle("one"), make_bundle("two")
    store.save(Account("alice"), one)
    store.save(Account("bob"), two)
    assert backend.slots(SERVICE) == sorted(
        ["user:alice", "user:alice/refresh", "user:bob", "user:bob/refresh"]
    )


# --------------------------------------------------------------------------- existing records


def _legacy_pair(records: Path, backend: MemoryKeyring) -> tuple[TokenBundle, TokenBundle]:
    """Records as the old code left them after ``alice`` then ``alice/refresh`` logged in:
    both records name their raw id as slot, and the second's access token sits where
    alice's refresh token was."""
    store = store_on(records, backend, slot_for=lambda account_id: f"tmp-{len(account_id)}")
    alice, other = make_bundle("alice"), make_bundle("other")
    store.save(Account("alice"), alice)
    store.save(Account("alice/refresh"), other)
    doc = json.loads(records.read_text())
    doc["accounts"]["alice"]["slot"] = "alice"
    doc["accounts"]["alice/refresh"]["slot"] = "alice/refresh"
    records.write_text(json.dumps(doc))
    backend.data.clear()
    assert alice.refresh_token is not None and other.refresh_token is not None
    backend.poke(SERVICE, "alice", alice.access_token)
    backend.poke(SERVICE, "alice/refresh", other.access_token)  # overwrote alice's
    backend.poke(SERVICE, "alice/refresh/refresh", other.refresh_token)
    return alice, other


def test_existing_records_keep_reading_from_the_slot_they_name(records: Path) -> None:
    backend = MemoryKeyring()
    legacy = store_on(records, backend, slot_for=lambda account_id: "legacy/" + account_id)
    bundle = make_bundle("old")
    legacy.save(Account("alice#2"), bundle)  # an id the new default would escape
    doc = json.loads(records.read_text())
    doc["accounts"]["alice#2"]["slot"] = "alice#2"  # as the old default wrote it
    records.write_text(json.dumps(doc))
    backend.data.clear()
    assert bundle.refresh_token is not None
    backend.poke(SERVICE, "alice#2", bundle.access_token)
    backend.poke(SERVICE, "alice#2/refresh", bundle.refresh_token)

    store = store_on(records, backend)
    assert holds(store, "alice#2", bundle)
    newer = make_bundle("new")
    store.save(Account("alice#2"), newer)  # nobody else overlaps: the slot is kept
    assert record_of(records, "alice#2")["slot"] == "alice#2"
    assert holds(store_on(records, backend), "alice#2", newer)


def test_relogin_of_a_legacy_colliding_account_moves_it_off_the_shared_slot(
    records: Path,
) -> None:
    backend = MemoryKeyring()
    _alice, other = _legacy_pair(records, backend)
    store = store_on(records, backend)
    assert holds(store, "alice/refresh", other)
    assert not holds(store, "alice", _alice)  # the damage the old code did

    fresh = make_bundle("alice-again")
    store.save(Account("alice"), fresh)  # alice logs in again

    reader = store_on(records, backend)
    assert holds(reader, "alice", fresh)
    assert holds(reader, "alice/refresh", other), "the re-login overwrote the other account"
    assert not slots_overlap(record_of(records, "alice")["slot"], "alice/refresh")


def test_clearing_one_of_a_legacy_colliding_pair_keeps_the_other(records: Path) -> None:
    backend = MemoryKeyring()
    _alice, other = _legacy_pair(records, backend)
    store = store_on(records, backend)
    assert store.clear("alice") == Account("alice")
    assert holds(store_on(records, backend), "alice/refresh", other)


def test_a_record_claiming_absurdly_many_chunks_costs_few_keyring_calls(records: Path) -> None:
    """A corrupt chunk count must not turn one read into a million keyring calls."""
    backend = FaultyKeyring(fail_when=lambda _op, _slot, number: number > 50)
    bundle = make_bundle("alice")
    store_on(records, backend).save(Account("alice"), bundle)
    doc = json.loads(records.read_text())
    doc["accounts"]["alice"]["chunks"] = {"access": 10**6, "refresh": 10**6}
    records.write_text(json.dumps(doc))
    backend.reset_calls()
    with contextlib.suppress(StoreReadError):
        store_on(records, backend).active("alice")
    assert len(backend.ops("get")) <= 10


# --------------------------------------------------------------------------- real Secret Service


@pytest.fixture(scope="module")
def secret_service() -> Iterator[None]:
    from _secret_service import environment_of, require_secret_service

    service = require_secret_service()
    try:
        with environment_of(service):
            yield
    finally:
        service.stop()


@pytest.mark.integration
def test_alice_slash_refresh_on_a_real_secret_service(secret_service: None, records: Path) -> None:
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    service = f"refreshauth-slots-{secrets.token_hex(5)}"
    store = KeyringTokenStore(service, records, backend=backend, credential_store="system")
    alice, other, nul = make_bundle("alice"), make_bundle("other"), make_bundle("nul")
    store.save(Account("alice"), alice)
    store.save(Account("alice/refresh"), other)
    store.save(Account("alice\x00x"), nul)  # D-Bus strings cannot carry a NUL
    reader = KeyringTokenStore(service, records, backend=backend, credential_store="system")
    assert holds(reader, "alice", alice)
    assert holds(reader, "alice/refresh", other)
    assert holds(reader, "alice\x00x", nul)
    for account_id in ("alice", "alice/refresh", "alice\x00x"):
        reader.clear(account_id)
    with pytest.raises(PasswordDeleteError):
        backend.delete_password(service, "alice")
