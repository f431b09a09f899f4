"""The records-file format (``stores/records.py``): ``parse_records`` and ``RecordsFile``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import examples

from requests_refreshauth import StoreReadError
from requests_refreshauth.stores.records import (
    FORMAT,
    VERSION,
    Records,
    RecordsFile,
    parse_records,
)

PATH = "/home/user/.config/mycli/tokens.json"


def doc(**fields: Any) -> str:
    base: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    base.update(fields)
    return json.dumps(base)


def record(revision: Any = 1, label: Any = None, **extra: Any) -> dict[str, Any]:
    # Any: the malformed cases below pass a revision or label of the wrong type on purpose.
    return {"label": label, "revision": revision, "bundle": {"access_token": "at-x"}, **extra}


# ----------------------------------------------------------------------------- valid files


def test_minimal_file() -> None:
    records = parse_records(doc(), PATH)
    assert records.accounts == {}
    assert records.default is None
    assert records.revision == 0
    assert records.extra == {}


def test_full_file() -> None:
    text = doc(
        revision=7,
        default="a",
        accounts={"a": record(3, "work"), "b": record(7)},
        future_key={"x": [1, 2]},
    )
    records = parse_records(text, PATH)
    assert list(records.accounts) == ["a", "b"]
    assert records.default == "a"
    assert records.revision == 7
    assert records.extra == {"future_key": {"x": [1, 2]}}


def test_revision_is_at_least_every_account_revision() -> None:
    # A file whose top-level counter lags (hand edit, older writer) must not reuse revisions.
    records = parse_records(doc(revision=2, accounts={"a": record(9), "b": record(4)}), PATH)
    assert records.revision == 9
    assert records.next_revision() == 10


def test_to_json_round_trip_keeps_unknown_keys() -> None:
    text = doc(revision=3, default="a", accounts={"a": record(3)}, zzz=1, aaa="keep")
    records = parse_records(text, PATH)
    again = parse_records(records.to_json(), PATH)
    assert again == records
    written = json.loads(records.to_json())
    assert written["zzz"] == 1
    assert written["aaa"] == "keep"
    assert written["format"] == FORMAT
    assert written["version"] == VERSION


def test_unknown_keys_cannot_override_known_ones() -> None:
    records = Records(extra={"format": "evil", "version": 99, "accounts": []})
    written = json.loads(records.to_json())
    assert written["format"] == FORMAT
    assert written["version"] == VERSION
    assert written["accounts"] == {}


# ----------------------------------------------------------------------------- invalid files


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "not json",
        "{",
        '{"format": "requests-refreshauth/records", "version": 1,',
        "[]",
        "null",
        "42",
        '"text"',
        "{}",
        json.dumps({"version": 1}),
        json.dumps({"format": "other-tool/tokens", "version": 1}),
        json.dumps({"format": FORMAT}),
        doc(version=0),
        doc(version=-1),
        doc(version="1"),
        doc(version=1.0),
        doc(version=True),
        doc(version=None),
        doc(accounts=[]),
        doc(accounts="a"),
        doc(accounts={"": record()}),
        doc(accounts={"a": "not a record"}),
        doc(accounts={"a": None}),
        doc(accounts={"a": record(label=5)}),
        doc(accounts={"a": record(label=["x"])}),
        doc(accounts={"a": record(revision=-1)}),
        doc(accounts={"a": record(revision=1.5)}),
        doc(accounts={"a": record(revision=True)}),
        doc(accounts={"a": record(revision="3")}),
        doc(default=5),
        doc(default=["a"]),
        doc(revision=-1),
        doc(revision=False),
        doc(revision="7"),
        doc(revision=2.0),
        '{"format": "requests-refreshauth/records", "version": NaN}',
    ],
)
def test_invalid_files_raise_store_read_error_naming_the_path(text: str) -> None:
    with pytest.raises(StoreReadError) as info:
        parse_records(text, PATH)
    assert info.value.code == "AUTH_STORE_READ_FAILED"
    assert PATH in str(info.value)


@pytest.mark.parametrize("version", [VERSION + 1, 99, 10**30])
def test_newer_version_is_refused(version: int) -> None:
    with pytest.raises(StoreReadError) as info:
        parse_records(doc(version=version, accounts={"a": record()}), PATH)
    message = str(info.value)
    assert PATH in message
    assert "newer" in message
    assert str(version) in message


def test_invalid_json_reports_the_line() -> None:
    with pytest.raises(StoreReadError) as info:
        parse_records('{\n"format": "x",\n oops\n}', PATH)
    assert "line 3" in str(info.value)


def test_error_message_does_not_quote_file_contents() -> None:
    text = (
        '{"format": "requests-refreshauth/records", '
        '"accounts": {"a": {"bundle": {"access_token": "at-secret-contents-1"}}}'
    )
    with pytest.raises(StoreReadError) as info:
        parse_records(text, PATH)
    leaked = "at-secret-contents-1" in str(info.value) or "at-secret" in repr(info.value)
    assert not leaked


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000])
def test_deeply_nested_file_is_a_store_read_error(text: str) -> None:
    with pytest.raises(StoreReadError):
        parse_records(text, PATH)


# ----------------------------------------------------------------------------- fuzz


def _check(text: str, path: str) -> None:
    try:
        records = parse_records(text, path)
    except StoreReadError as exc:  # anything else fails the test
        error: Optional[StoreReadError] = exc
    else:
        error = None
    if error is not None:
        assert path in str(error)
        assert error.code == "AUTH_STORE_READ_FAILED"
        return
    assert isinstance(records.accounts, dict)
    assert records.default is None or isinstance(records.default, str)
    assert records.revision >= 0
    for account_id, rec in records.accounts.items():
        assert account_id
        assert isinstance(rec, dict)
        assert records.revision >= rec.get("revision", 0)
    # Whatever parses is written back in a form that parses to the same thing (compared as
    # text: a NaN among unknown keys is never equal to itself).
    text_again = records.to_json()
    assert parse_records(text_again, path).to_json() == text_again


paths = st.sampled_from([PATH, "C:\\Users\\me\\tokens.json", "/tmp/with space/t.json"]) | st.text(
    min_size=1, max_size=30
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


@given(st.text(max_size=300), paths)
def test_fuzz_random_text(text: str, path: str) -> None:
    _check(text, path)


@given(json_values, paths)
def test_fuzz_random_json(value: Any, path: str) -> None:
    _check(json.dumps(value), path)


@st.composite
def near_valid_documents(draw: Any) -> str:
    """Documents that pass the format check, so the deeper validation is exercised."""
    revisions = st.integers(min_value=-2, max_value=2**70) | json_values
    records = st.fixed_dictionaries(
        {},
        optional={
            "label": st.none() | st.text(max_size=8) | json_values,
            "revision": revisions,
            "bundle": json_values,
            "updated_at": st.floats(),
        },
    )
    document: dict[str, Any] = {"format": FORMAT}
    document["version"] = draw(st.sampled_from([1, 1, 1, 2, 0, "1", True, None]) | json_values)
    if draw(st.booleans()):
        document["accounts"] = draw(
            st.dictionaries(st.text(max_size=8), records | json_values, max_size=4)
        )
    if draw(st.booleans()):
        document["default"] = draw(st.none() | st.text(max_size=8) | json_values)
    if draw(st.booleans()):
        document["revision"] = draw(revisions)
    document.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return json.dumps(document)


@settings(max_examples=examples(200))
@given(near_valid_documents(), paths)
def test_fuzz_near_valid_documents(text: str, path: str) -> None:
    _check(text, path)


@given(st.binary(max_size=200))
def test_fuzz_records_file_bytes(raw: bytes) -> None:
    # RecordsFile.load reads bytes: non-UTF-8 content is a StoreReadError too.
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "tokens.json")
        with open(path, "wb") as handle:
            handle.write(raw)
        message = path
        try:
            RecordsFile(path).load()
        except StoreReadError as exc:  # anything else fails the test
            message = str(exc)
        assert path in message
        with open(path, "rb") as handle:
            unchanged = handle.read() == raw
        assert unchanged


# ----------------------------------------------------------------------------- RecordsFile


def test_absent_file_is_an_empty_store(tmp_path: Path) -> None:
    records = RecordsFile(tmp_path / "missing.json").load()
    assert records == Records()
    assert not (tmp_path / "missing.json").exists()


def test_update_writes_and_returns(tmp_path: Path) -> None:
    rf = RecordsFile(tmp_path / "t.json")

    def mutate(records: Records) -> str:
        records.accounts["a"] = record(records.next_revision())
        return "done"

    assert rf.update(mutate) == "done"
    assert rf.load().accounts["a"]["revision"] == 1
    assert json.loads((tmp_path / "t.json").read_text("utf-8"))["format"] == FORMAT


def test_update_that_raises_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    rf = RecordsFile(path)
    rf.update(lambda records: records.accounts.update(a=record(records.next_revision())))
    before = path.read_bytes()

    def mutate(records: Records) -> None:
        records.accounts.clear()
        raise LookupError("abort")

    with pytest.raises(LookupError):
        rf.update(mutate)
    assert path.read_bytes() == before
    assert not rf.lock.held()


def test_update_that_changes_nothing_does_not_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    rf = RecordsFile(path)
    rf.update(lambda records: records.accounts.update(a=record(records.next_revision())))
    inode = os.stat(path).st_ino
    rf.update(lambda records: None)
    assert os.stat(path).st_ino == inode  # not replaced


def test_refresh_lock_path_hashes_the_account_id(tmp_path: Path) -> None:
    rf = RecordsFile(tmp_path / "t.json")
    one = rf.refresh_lock_path("alice@example.com")
    assert "alice" not in one
    assert one.startswith(rf.path)
    assert one == rf.refresh_lock_path("alice@example.com")
    assert one != rf.refresh_lock_path("bob@example.com")


def test_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rf = RecordsFile("relative.json")
    assert os.path.isabs(rf.path)
    assert rf.path == str(tmp_path / "relative.json")
