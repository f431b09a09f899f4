"""Issue 11 item 9: one fingerprint function; the testing kit counts tokens by it."""

from __future__ import annotations

from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.testing import stats, token_id


def test_token_id_is_the_library_fingerprint() -> None:
    assert token_id is fingerprint
    assert stats.token_id is fingerprint


def test_a_malformed_token_is_still_counted() -> None:
    counters = stats.Counters()
    odd = "at-\udcff"  # a lone surrogate, as a JSON escape can smuggle in
    counters.token_used(odd)
    assert counters.snapshot().requests_with(odd) == 1
