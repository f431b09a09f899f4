"""The README's main job: `python -m requests_refreshauth demo` works and tells the truth.

Its verdict is computed from the same figures its table shows, and says what was checked:
a run whose ttl/2 windows and refresh grants differ (3 grants in 4 windows is normal: the
last window may see no expiry) must not claim "one grant per window".
"""

from __future__ import annotations

import re
import subprocess
import sys

from requests_refreshauth.demo import Observed, verdict


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def table_of(stdout: str) -> dict[str, str]:
    return {
        cells[1].strip(): cells[2].strip()
        for cells in (line.split("|") for line in stdout.splitlines())
        if len(cells) == 4 and cells[1].strip()
    }


def first_int(text: str) -> int:
    found = re.search(r"\d+", text)
    assert found, text
    return int(found.group())


def observed(**changes: object) -> Observed:
    """The issue's 6-second run: 3 grants, 4 windows of ttl/2 begun."""
    values: dict[str, object] = {
        "workers": 8,
        "wall": 6.1,
        "ttl": 4.0,
        "requests": 700,
        "failures": {},
        "refresh_grants": 3,
        "renewed_tokens_carried": 3,
        "reuse_detected": 0,
        "grants_revoked": 0,
        "alive": True,
        "latencies": [0.004] * 700,
        "closest_renewals": 1.98,
    }
    values.update(changes)
    return Observed(**values)  # type: ignore[arg-type]


def test_verdict_states_what_was_checked_not_one_grant_per_window() -> None:
    ok, line = verdict(observed())
    assert ok
    assert line.startswith("PASS: ")
    assert "per refresh window" not in line
    assert "700 requests, 0 failed" in line
    assert "3 refresh grants for the 3 expiries the requests met" in line
    assert "at most 4 possible in 6.1 s, one per ttl/2 = 2 s, at least 2.0 s apart" in line
    assert "0 refresh-token reuse" in line
    assert "0 grants revoked" in line


def test_verdict_fails_a_grant_no_request_needed() -> None:
    ok, line = verdict(observed(refresh_grants=4))
    assert not ok
    assert line.startswith("FAIL: ")
    assert "4 refresh grants for 3 expiries the requests met" in line
    assert "PASS" not in line


def test_verdict_fails_more_renewals_than_windows() -> None:
    ok, line = verdict(observed(refresh_grants=5, renewed_tokens_carried=5))
    assert not ok
    assert "5 expiries in 6.1 s, at most 4 possible" in line


def test_verdict_fails_two_grants_for_one_expiry() -> None:
    """Two processes refreshing one expiry: as many grants as new tokens, ms apart."""
    ok, line = verdict(observed(refresh_grants=4, renewed_tokens_carried=4, closest_renewals=0.01))
    assert not ok
    assert "two renewals 0.01 s apart" in line


def test_verdict_without_two_renewals_claims_no_spacing() -> None:
    ok, line = verdict(observed(refresh_grants=1, renewed_tokens_carried=1, closest_renewals=None))
    assert ok
    assert "1 refresh grant for the 1 expiry the requests met" in line
    assert "apart" not in line


def test_verdict_fails_reuse_revocation_failures_and_a_dead_grant() -> None:
    for change, words in (
        ({"reuse_detected": 1}, "1 refresh-token reuse"),
        ({"grants_revoked": 1}, "1 grant revoked"),
        ({"failures": {"HTTP 401": 2}}, "2 of 700 requests failed"),
        ({"alive": False}, "the grant no longer works"),
        ({"requests": 0, "latencies": []}, "no request was made"),
    ):
        ok, line = verdict(observed(**change))
        assert not ok, change
        assert line.startswith("FAIL: ") and words in line, (change, line)


def test_demo_passes_and_its_verdict_matches_its_table() -> None:
    result = run_demo("--workers", "4", "--duration", "2", "--ttl", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    table = table_of(result.stdout)
    assert table["failures"] == "0"
    assert table["refresh-token reuse detected"] == "0"
    assert table["grants revoked"] == "0"
    assert table["grant alive afterwards"] == "yes"
    grants = first_int(table["refresh grants served"])
    carried = first_int(table["expiries the requests met"])
    windows = first_int(table["ttl/2 windows begun"])
    closest = table["closest two renewals"]
    requests = int(table["requests"])
    assert requests > 0
    assert 1 <= grants == carried <= windows
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASS: ")]
    assert len(passed) == 1, result.stdout
    assert f"{requests} requests, 0 failed" in passed[0]
    assert f"{grants} refresh grants for the {carried} expiries the requests met" in passed[0]
    assert f"at most {windows} possible" in passed[0]
    if grants >= 2:
        assert f"at least {closest.split()[0]} s apart" in passed[0]
    else:
        assert closest == "-" and "apart" not in passed[0]
    assert "Local authorization server at http://127.0.0.1:" in result.stderr
