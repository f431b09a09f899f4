"""``TokenBundle.extra`` hardened: files stay readable across Python versions, no secret
rides along under a harmless name, and a bundle with extra fields can always be rescued.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keyring_fakes import MemoryKeyring
from localhttp import ServerFactory, TokenEndpointScript, client_session

from requests_refreshauth import (
    Account,
    FileTokenStore,
    KeyringTokenStore,
    PkceProvider,
    RetryPolicy,
    TokenBundle,
    _extra,
    refresh_access_token,
)
from requests_refreshauth import _rescue_file as rescue_file
from requests_refreshauth.stores._keyring_records import meta_of
from requests_refreshauth.stores.keyring import CredentialStorePolicy
from requests_refreshauth.token_response import interpret_token_response

NOW = 1_750_000_000.0
INSTANCE = "https://na1.my.salesforce.com"
LIVE_RT = "rt-live-5Aep861TSESvWeug"
#: Unassigned (Cn) in Python 3.11's Unicode 14, a format control (Cf) in 3.12's 15.
LATE = "\U00013439"
#: A noncharacter: unassigned (Cn) in every Unicode version.
NONCHAR = "\ufdd0"


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    with ServerFactory() as factory:
        yield factory


def interpret(body: dict[str, Any], **kwargs: Any) -> TokenBundle:
    kwargs.setdefault("now", NOW)
    return interpret_token_response(200, json.dumps(body), **kwargs)


def newer_unicode(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Python, as a newer one that assigned LATE as a format control sees it."""
    real = unicodedata.category
    monkeypatch.setattr(unicodedata, "category", lambda c: "Cf" if c == LATE else real(c))


def older_unicode(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Python, as an older one to which LATE is not assigned yet sees it."""
    real = unicodedata.category
    monkeypatch.setattr(unicodedata, "category", lambda c: "Cn" if c == LATE else real(c))


def extra_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "extra" in r.getMessage()]


# --------------------------------------------------------------------------- 1. Unicode


def test_unassigned_characters_are_never_written() -> None:
    bundle = interpret({"access_token": "at-12345678", "org": f"Acme {NONCHAR}", "ok": "x"})
    assert dict(bundle.extra) == {"ok": "x"}
    with pytest.raises(TypeError):
        TokenBundle("at-12345678", extra={"org": f"Acme {NONCHAR}"})


def test_a_character_unassigned_here_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    older_unicode(monkeypatch)
    bundle = interpret({"access_token": "at-12345678", "org": f"Acme {LATE}"})
    assert dict(bundle.extra) == {}


def test_records_written_on_an_older_unicode_are_readable_on_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    # What an older version (that let unassigned characters in) wrote.
    doc_extra = {"org": f"Acme {LATE}", "instance_url": INSTANCE}
    store.save(Account("alice"), TokenBundle("at-12345678", "rt-12345678"), make_default=True)
    store.save(Account("bob"), TokenBundle("at-bob12345", "rt-bob12345"))
    doc = json.loads(path.read_text())
    doc["accounts"]["alice"]["bundle"]["extra"] = doc_extra
    path.write_text(json.dumps(doc, indent=2))
    content = path.read_bytes()

    newer_unicode(monkeypatch)
    caplog.set_level(logging.WARNING)
    reopened = FileTokenStore(path)
    assert {a.account.id for a in reopened.accounts()} == {"alice", "bob"}
    alice = reopened.active("alice")
    assert alice is not None and dict(alice.bundle.extra) == {"instance_url": INSTANCE}
    assert reopened.active("bob") is not None
    assert path.read_bytes() == content  # reading changes nothing

    (warning,) = extra_warnings(caplog)
    assert str(path) in warning and "'alice'" in warning and "'org'" in warning
    assert "Acme" not in warning

    # Saving another account works, and keeps alice's record as it was.
    reopened.save(Account("bob"), TokenBundle("at-bob23456", "rt-bob23456"))
    after = json.loads(path.read_text())
    assert after["accounts"]["alice"] == doc["accounts"]["alice"]
    assert len(extra_warnings(caplog)) == 1  # one warning, however often the file is read
    # The next save of alice herself drops the field this Python cannot read.
    reopened.save(Account("alice"), alice.bundle)
    assert "org" not in json.loads(path.read_text())["accounts"]["alice"]["bundle"]["extra"]


@pytest.mark.parametrize(
    "bad",
    [
        {"org": f"Acme {NONCHAR}", "instance_url": INSTANCE},
        {"x": "\x1b[2J", "instance_url": INSTANCE},
        ["instance_url"],
        {f"f{i}": i for i in range(40)},
    ],
)
@pytest.mark.parametrize("kind", ["file", "keyring", "plaintext"])
def test_a_malformed_extra_on_disk_costs_only_that_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, bad: Any
) -> None:
    path = tmp_path / "tokens.json"
    backend = MemoryKeyring()

    def open_store() -> Any:
        if kind == "file":
            return FileTokenStore(path)
        policy: CredentialStorePolicy = "system" if kind == "keyring" else "plaintext"
        return KeyringTokenStore("svc", path, backend=backend, credential_store=policy)

    open_store().save(Account("alice"), TokenBundle("at-12345678", "rt-12345678"), True)
    open_store().save(Account("bob"), TokenBundle("at-bob12345", "rt-bob12345"))
    doc = json.loads(path.read_text())
    record = doc["accounts"]["alice"]
    (record["bundle"] if "bundle" in record else record["meta"])["extra"] = bad
    path.write_text(json.dumps(doc))
    content = path.read_bytes()
    caplog.set_level(logging.WARNING)

    store = open_store()
    alice = store.active("alice")
    assert alice is not None
    assert store.read_refresh_token(alice) == "rt-12345678"
    if isinstance(bad, dict) and "instance_url" in bad:
        assert dict(alice.bundle.extra) == {"instance_url": INSTANCE}
    assert len(store.accounts()) == 2
    assert path.read_bytes() == content
    warnings = extra_warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0] and "'alice'" in warnings[0]
    assert "\x1b" not in warnings[0] and "Acme" not in warnings[0]
    store.save(Account("bob"), TokenBundle("at-bob23456", "rt-bob23456"))


def test_a_rescue_written_on_an_older_unicode_is_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    records = str(tmp_path / "tokens.json")
    bundle = TokenBundle("at-12345678", "rt-rotated-1234", extra={"instance_url": INSTANCE})
    doc = json.loads(
        rescue_file.encode(rescue_file.Rescue(Account("a"), bundle, 0, None, 1), records)
    )
    doc["bundle"]["extra"]["org"] = f"Acme {LATE}"
    path = str(tmp_path / "rescue.json")
    rescue_file.write(path, json.dumps(doc).encode("ascii"))
    newer_unicode(monkeypatch)
    caplog.set_level(logging.WARNING)
    verdict, found = rescue_file.load(path, records, Account("a"))
    assert verdict == rescue_file.OURS and found is not None
    assert found.bundle == bundle
    (warning,) = extra_warnings(caplog)
    assert path in warning and "'a'" in warning and "'org'" in warning and "Acme" not in warning


# --------------------------------------------------------------------------- 2. secrets


def test_a_refresh_echoing_the_kept_refresh_token_keeps_it_out_of_extra() -> None:
    previous = TokenBundle("at-old-12345678", LIVE_RT, expires_at=1.0)
    bundle = interpret(
        {"access_token": "at-new-12345678", "instance_url": f"https://x/?rt={LIVE_RT}", "k": 1},
        previous=previous,
    )
    assert dict(bundle.extra) == {"k": 1}


def test_a_refresh_echoing_the_old_access_token_keeps_it_out_of_extra() -> None:
    previous = TokenBundle("at-old-12345678", LIVE_RT, expires_at=1.0)
    bundle = interpret(
        {"access_token": "at-new-12345678", "was": "at-old-12345678", "k": 1}, previous=previous
    )
    assert dict(bundle.extra) == {"k": 1}


def test_an_id_token_echoed_under_another_name_is_not_extra() -> None:
    idt = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0.c2ln"
    bundle = interpret({"access_token": "at-12345678", "id_token": idt, "id": idt, "k": 1})
    assert dict(bundle.extra) == {"k": 1}


def test_a_token_sent_as_a_field_name_is_not_extra_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bundle = interpret({"access_token": "AbCdEf12345678", "AbCdEf12345678": 1, "k": 1})
    assert dict(bundle.extra) == {"k": 1}
    leaked = "AbCdEf12345678" in caplog.text or "AbCdEf12345678" in repr(bundle)
    assert not leaked


def test_the_requests_own_secrets_are_not_extra() -> None:
    bundle = interpret(
        {
            "access_token": "at-12345678",
            "issued_for": "s3cr3t-client-value",
            "verifier-echo": "x-code-verifier-value",
            "k": 1,
        },
        secrets=("s3cr3t-client-value", "code-verifier-value", None),
    )
    assert dict(bundle.extra) == {"k": 1}


def test_the_client_secret_echoed_by_a_real_endpoint_is_not_extra(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers()
    server.route("/token", TokenEndpointScript(extra={"issued_for": "s3cr3t-client-value"}))
    store = FileTokenStore(tmp_path / "t.json")
    store.save(Account("a"), TokenBundle("at-12345678", "rt-12345678", expires_at=1.0), True)
    provider = PkceProvider(
        client_id="c",
        client_secret="s3cr3t-client-value",
        token_endpoint=server.url_for("/token"),
        session=client_session(),
        timeout=5.0,
        retry=RetryPolicy(attempts=1),
    )
    snap = refresh_access_token(store, provider)
    assert "issued_for" not in snap.bundle.extra
    leaked = "s3cr3t-client-value" in (tmp_path / "t.json").read_text()
    assert not leaked


def test_a_non_rotating_refresh_echoing_the_refresh_token_keeps_it_out_of_the_records(
    servers: ServerFactory, tmp_path: Path
) -> None:
    server = servers()
    script = TokenEndpointScript(rotate=False, extra={"instance_url": f"https://na1/?rt={LIVE_RT}"})
    server.route("/token", script)
    records = tmp_path / "tokens.json"
    store = KeyringTokenStore("svc", records, backend=MemoryKeyring(), credential_store="system")
    store.save(Account("alice"), TokenBundle("at-old-12345678", LIVE_RT, expires_at=1.0), True)
    provider = PkceProvider(
        client_id="c",
        token_endpoint=server.url_for("/token"),
        session=client_session(),
        timeout=5.0,
        retry=RetryPolicy(attempts=1),
    )
    refresh_access_token(store, provider)
    leaked = LIVE_RT in records.read_text()
    assert not leaked


def test_a_bundle_never_carries_its_own_tokens_in_extra() -> None:
    bundle = TokenBundle(
        "at-12345678",
        "rt-12345678",
        extra={"echo": "Bearer at-12345678", "rt-12345678": 1, "at-12345678x": 2, "k": 1},
    )
    assert dict(bundle.extra) == {"k": 1}
    shown = repr(bundle) + json.dumps(bundle.to_dict()["extra"]) + json.dumps(meta_of(bundle))
    leaked = "at-12345678" in shown.replace('"access_fingerprint"', "") or "rt-12345678" in shown
    assert not leaked
    # Also when the refresh token arrives later (the keyring store loads it lazily).
    shell = TokenBundle("at-12345678", extra={"later": "rt-12345678", "k": 1})
    assert dict(shell.replace(refresh_token="rt-12345678").extra) == {"k": 1}


# --------------------------------------------------------------------------- 3. size


def test_extra_is_capped_in_total_size_keeping_the_first_fields() -> None:
    body: dict[str, Any] = {"access_token": "at-12345678", "refresh_token": "rt-rotated-1234"}
    body.update({f"f{i:02d}": "\u00e9" * 2048 for i in range(32)})
    bundle = interpret(body)
    size = len(json.dumps(dict(bundle.extra), ensure_ascii=True))
    assert 0 < size <= _extra.MAX_BYTES
    assert list(bundle.extra) == [f"f{i:02d}" for i in range(len(bundle.extra))]
    with pytest.raises(TypeError):
        TokenBundle("at-12345678", extra={f"f{i:02d}": "\u00e9" * 2048 for i in range(32)})


def test_a_rescue_of_a_bundle_with_legal_extra_fields_reads_back(tmp_path: Path) -> None:
    body: dict[str, Any] = {"access_token": "at-12345678", "refresh_token": "rt-rotated-1234"}
    body.update({f"f{i}": "\u00e9" * 2048 for i in range(32)})  # 131 KB: under MAX_BODY
    bundle = interpret_token_response(200, json.dumps(body, ensure_ascii=False), now=time.time())
    records, path = str(tmp_path / "tokens.json"), str(tmp_path / "rescue.json")
    rescue = rescue_file.Rescue(Account("a"), bundle, 0, None, 1)
    rescue_file.write(path, rescue_file.encode(rescue, records))
    verdict, found = rescue_file.load(path, records, Account("a"))
    assert verdict == rescue_file.OURS and found is not None
    assert found.bundle == bundle


def test_a_rescue_too_large_with_its_extra_keeps_the_tokens(tmp_path: Path) -> None:
    access, refresh = "a" * (127 * 1024), "r" * (127 * 1024)  # with extra: > 256 KiB
    extra = {f"f{i:02d}": "x" * 240 for i in range(30)}
    bundle = TokenBundle(access, refresh, extra=extra)
    records, path = str(tmp_path / "tokens.json"), str(tmp_path / "rescue.json")
    rescue = rescue_file.Rescue(Account("a"), bundle, 0, None, 1)
    assert len(rescue_file._encode(rescue, records)) > rescue_file._MAX_BYTES
    rescue_file.write(path, rescue_file.encode(rescue, records))
    verdict, found = rescue_file.load(path, records, Account("a"))
    assert verdict == rescue_file.OURS and found is not None
    assert found.bundle == bundle.replace(extra=None)
