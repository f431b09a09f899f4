"""Envelope encryption of the token fields (``stores/encryption.py``), as pure functions:
sealed records round-trip, old keys still open, saves use the primary, and anything
altered, moved or unkeyed is a typed error that names the account and key id, never a
secret."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from requests_refreshauth.bundle import TokenBundle
from requests_refreshauth.errors import StoreReadError
from requests_refreshauth.stores import FileTokenStore
from requests_refreshauth.stores.encryption import TokenEncryption, open_doc, seal_doc

pytest.importorskip("cryptography")

NS = "mycli"
WHERE = "redis://127.0.0.1:6379/0 namespace 'mycli'"
K1 = bytes(range(32))
K2 = TokenEncryption.generate_key()
TOKENS = ("at-alice-SECRET", "rt-alice-SECRET", "at-bob-SECRET", "rt-bob-SECRET")


def plain_doc() -> dict[str, Any]:
    alice = TokenBundle(
        "at-alice-SECRET",
        "rt-alice-SECRET",
        expires_at=2e9,
        scope=("api", "read"),
        issued_at=1.9e9,
        extra={"instance_url": "https://eu.example"},
    )
    bob = TokenBundle("at-bob-SECRET", "rt-bob-SECRET", expires_at=2.1e9)
    return {
        "format": "requests-refreshauth/records",
        "version": 2,
        "revision": 7,
        "default": "alice",
        "accounts": {
            "alice": {
                "label": "Alice",
                "revision": 6,
                "updated_at": 1.9e9,
                "secrets": "plaintext",
                "bundle": alice.to_dict(),
            },
            "bob": {
                "label": None,
                "revision": 7,
                "updated_at": 1.9e9,
                "secrets": "plaintext",
                "bundle": bob.to_dict(),
            },
        },
    }


def no_token_in(text: str) -> None:
    for token in TOKENS:
        assert token not in text


def sealed_doc(enc: TokenEncryption, namespace: str = NS) -> dict[str, Any]:
    return seal_doc(plain_doc(), enc, namespace)


def raised(doc: dict[str, Any], enc: Any, namespace: str = NS) -> StoreReadError:
    before = copy.deepcopy(doc)
    with pytest.raises(StoreReadError) as info:
        open_doc(doc, enc, namespace, WHERE)
    assert doc == before  # nothing changed
    no_token_in(str(info.value) + repr(info.value))
    return info.value


# ------------------------------------------------------------------ round trips


def test_a_sealed_doc_opens_to_the_plaintext_doc() -> None:
    enc = TokenEncryption({"k1": K1})
    doc = plain_doc()
    sealed = seal_doc(doc, enc, NS)
    assert doc == plain_doc()  # the input is not changed
    assert open_doc(sealed, enc, NS, WHERE) == plain_doc()


def test_a_sealed_record_keeps_status_metadata_in_clear_and_no_token() -> None:
    sealed = sealed_doc(TokenEncryption({"k1": K1}))
    no_token_in(json.dumps(sealed))
    record = sealed["accounts"]["alice"]
    assert record["secrets"] == "encrypted"
    assert (record["label"], record["revision"]) == ("Alice", 6)
    clear = record["bundle"]
    assert clear["expires_at"] == 2e9 and clear["scope"] == ["api", "read"]
    assert clear["issued_at"] == 1.9e9 and clear["token_type"] == "Bearer"
    assert clear["extra"] == {"instance_url": "https://eu.example"}
    assert "access_token" not in clear and "refresh_token" not in clear
    assert len(clear["access_fingerprint"]) == 10 and len(clear["refresh_fingerprint"]) == 10
    blob = record["sealed"]
    assert set(blob) == {"v", "kid", "wrapped_key", "key_nonce", "nonce", "ciphertext"}
    assert (blob["v"], blob["kid"]) == (1, "k1")
    assert len(base64.b64decode(blob["key_nonce"])) == len(base64.b64decode(blob["nonce"])) == 12
    assert len(base64.b64decode(blob["wrapped_key"])) == 48  # 32-byte data key + GCM tag


def test_every_seal_uses_a_fresh_data_key_and_nonces() -> None:
    enc = TokenEncryption({"k1": K1})
    one, two = (sealed_doc(enc)["accounts"]["alice"]["sealed"] for _ in range(2))
    for name in ("wrapped_key", "key_nonce", "nonce", "ciphertext"):
        assert one[name] != two[name]


def test_plaintext_records_read_as_they_are_with_or_without_a_key() -> None:
    assert open_doc(plain_doc(), None, NS, WHERE) == plain_doc()
    assert open_doc(plain_doc(), TokenEncryption({"k1": K1}), NS, WHERE) == plain_doc()


def test_a_doc_sealed_in_part_opens_every_record() -> None:
    enc = TokenEncryption({"k1": K1})
    mixed = plain_doc()
    mixed["accounts"]["alice"] = sealed_doc(enc)["accounts"]["alice"]
    assert open_doc(mixed, enc, NS, WHERE) == plain_doc()


def test_records_not_in_the_record_shape_are_left_for_validation() -> None:
    enc = TokenEncryption({"k1": K1})
    odd = {"format": "x", "accounts": {"a": "not a record", "k": {"secrets": "keyring"}}}
    assert seal_doc(odd, enc, NS) == odd
    assert open_doc(odd, enc, NS, WHERE) == odd
    assert open_doc({"accounts": []}, enc, NS, WHERE) == {"accounts": []}


# ------------------------------------------------------------------ rotation


def test_rotation_old_keys_open_and_saves_use_the_primary() -> None:
    old = sealed_doc(TokenEncryption({"k1": K1}))
    rotated = TokenEncryption({"k2": K2, "k1": K1}, primary="k2")
    opened = open_doc(old, rotated, NS, WHERE)
    assert opened == plain_doc()
    resealed = seal_doc(opened, rotated, NS)
    assert {r["sealed"]["kid"] for r in resealed["accounts"].values()} == {"k2"}
    only_new = TokenEncryption({"k2": K2})
    assert open_doc(resealed, only_new, NS, WHERE) == plain_doc()
    error = raised(old, only_new)
    assert "'alice'" in str(error) and "'k1'" in str(error) and WHERE in str(error)


def test_primary_defaults_to_the_first_key() -> None:
    enc = TokenEncryption({"k2": K2, "k1": K1})
    assert enc.primary == "k2" and enc.key_ids == ("k2", "k1")
    assert TokenEncryption({"k2": K2, "k1": K1}, primary="k1").primary == "k1"


# ------------------------------------------------------------------ refusals


def test_a_sealed_record_without_a_key_is_a_typed_error_saying_which_key() -> None:
    error = raised(sealed_doc(TokenEncryption({"k2": K2})), None)
    text = str(error)
    assert "'alice'" in text and WHERE in text and "sealed with key id 'k2'" in text
    assert "RedisTokenStore(..., encryption=TokenEncryption({...}))" in text
    assert "Nothing was" in text


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


@pytest.mark.parametrize("field", ["wrapped_key", "key_nonce", "nonce", "ciphertext"])
def test_each_tampered_field_fails_authentication(field: str) -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    doc["accounts"]["alice"]["sealed"][field] = _flip(doc["accounts"]["alice"]["sealed"][field])
    text = str(raised(doc, enc))
    assert "'alice'" in text and "'k1'" in text and "left unchanged" in text


@pytest.mark.parametrize(
    "change",
    [
        {"ciphertext": "not base64!"},
        {"nonce": base64.b64encode(b"short").decode()},
        {"key_nonce": None},
        {"v": 1.0},
        {"kid": 5},
    ],
)
def test_a_malformed_seal_is_a_typed_error(change: dict[str, Any]) -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    doc["accounts"]["alice"]["sealed"].update(change)
    assert "'alice'" in str(raised(doc, enc))


def test_a_missing_seal_is_a_typed_error() -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    del doc["accounts"]["alice"]["sealed"]
    assert "'alice'" in str(raised(doc, enc))
    doc["accounts"]["alice"]["sealed"] = "x"
    assert "'alice'" in str(raised(doc, enc))


def test_a_seal_of_a_newer_format_asks_for_an_upgrade() -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    doc["accounts"]["alice"]["sealed"]["v"] = 2
    assert "newer requests-refreshauth" in str(raised(doc, enc))


def test_a_blob_swapped_between_accounts_fails() -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    accounts = doc["accounts"]
    accounts["alice"]["sealed"], accounts["bob"]["sealed"] = (
        accounts["bob"]["sealed"],
        accounts["alice"]["sealed"],
    )
    accounts["bob"]["revision"] = accounts["alice"]["revision"]  # only the id differs now
    raised(doc, enc)


def test_a_blob_moved_to_another_namespace_fails() -> None:
    enc = TokenEncryption({"k1": K1})
    raised(sealed_doc(enc, namespace="other"), enc, namespace=NS)


def test_a_blob_rolled_onto_another_revision_fails() -> None:
    enc = TokenEncryption({"k1": K1})
    doc = sealed_doc(enc)
    doc["accounts"]["alice"]["revision"] = 7
    assert "'alice'" in str(raised(doc, enc))


def test_a_same_named_other_key_fails_authentication() -> None:
    doc = sealed_doc(TokenEncryption({"k1": K1}))
    raised(doc, TokenEncryption({"k1": K2}))


# ------------------------------------------------------------------ keys


def test_keys_are_raw_32_bytes_or_their_urlsafe_base64() -> None:
    text = base64.urlsafe_b64encode(K1).decode()
    by_text = TokenEncryption({"k1": text + "\n"})  # a trailing newline from a file is fine
    by_bytes = TokenEncryption({"k1": K1})
    assert open_doc(sealed_doc(by_text), by_bytes, NS, WHERE) == plain_doc()
    TokenEncryption({"k1": text.rstrip("=")})  # unpadded
    generated = TokenEncryption.generate_key()
    assert len(base64.urlsafe_b64decode(generated)) == 32
    assert generated != TokenEncryption.generate_key()


@pytest.mark.parametrize(
    "key",
    [b"short-key-material", K1 + b"x", "c2hvcnQta2V5LW1hdGVyaWFs", "not base64 at all!!", 12345],
)
def test_a_bad_key_is_a_value_error_that_does_not_echo_it(key: Any) -> None:
    with pytest.raises(ValueError) as info:
        TokenEncryption({"k1": key})
    assert "'k1'" in str(info.value)
    assert str(key) not in str(info.value) and repr(key) not in str(info.value)


@pytest.mark.parametrize(
    ("keys", "primary"), [({}, None), ({"k1": K1}, "k9"), ({"": K1}, None), ({"a\nb": K1}, None)]
)
def test_bad_key_ids_or_primary_are_value_errors(keys: dict[str, Any], primary: Any) -> None:
    with pytest.raises(ValueError):
        TokenEncryption(keys, primary=primary)


def test_repr_shows_key_ids_only() -> None:
    text = base64.urlsafe_b64encode(K1).decode()
    enc = TokenEncryption({"k1": text, "k2": K2}, primary="k2")
    shown = repr(enc) + str(enc)
    assert "k1" in shown and "k2" in shown
    assert text not in shown and K2 not in shown and repr(K1) not in shown
    assert K1 not in repr(vars(enc)).encode() and text not in repr(vars(enc))


def test_a_missing_cryptography_is_an_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ImportError, match=r"pip install 'requests-refreshauth\[encryption\]'"):
        TokenEncryption({"k1": K1})


def test_importing_the_package_and_module_does_not_import_cryptography() -> None:
    code = (
        "import sys, requests_refreshauth, requests_refreshauth.stores.encryption as e\n"
        "assert not [m for m in sys.modules if m.startswith('cryptography')], 'imported'\n"
        "e.TokenEncryption({'k': bytes(32)})\n"
        "assert 'cryptography.hazmat.primitives.ciphers.aead' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------ other readers


def test_a_file_store_reading_sealed_records_is_a_typed_error(tmp_path: Path) -> None:
    """A dump copied into a records file: the file store cannot open it and says so."""
    path = tmp_path / "records.json"
    path.write_text(json.dumps(sealed_doc(TokenEncryption({"k1": K1}))), encoding="utf-8")
    path.chmod(0o600)
    store = FileTokenStore(path)
    for call in (store.active, store.accounts, lambda: store.status("bob")):
        with pytest.raises(StoreReadError) as info:
            call()
        assert "encrypt" in str(info.value) and "'k1'" in str(info.value)
        no_token_in(str(info.value))
    assert json.loads(path.read_text())["accounts"]["alice"]["secrets"] == "encrypted"
