"""The provider seam: ``renew(current, before_attempt=...)`` announces every attempt of
the POST, with its deadline, so the engine can check its lock before anything is sent."""

from __future__ import annotations

import time

import pytest

from requests_refreshauth import ClientCredentialsProvider
from requests_refreshauth.bundle import TokenBundle
from requests_refreshauth.errors import RefreshTransientError
from requests_refreshauth.providers.token_endpoint import RetryPolicy
from requests_refreshauth.testing import LocalAuthServer

QUICK = RetryPolicy(attempts=3, backoff=0.01, max_wait=1.0)


def _bundle(server: LocalAuthServer) -> TokenBundle:
    return server.login("alice")


class Recorder:
    def __init__(self, stop_at: int = 0) -> None:
        self.calls: list[tuple[float, float]] = []  # (deadline, monotonic at the call)
        self.stop_at = stop_at

    def __call__(self, deadline: float) -> None:
        self.calls.append((deadline, time.monotonic()))
        if len(self.calls) == self.stop_at:
            raise RefreshTransientError("the hold would not last (test)")


def test_before_attempt_is_called_once_per_attempt_with_increasing_deadlines(
    local_auth_server: LocalAuthServer,
) -> None:
    provider = local_auth_server.provider(retry=QUICK, timeout=2.0)
    current = _bundle(local_auth_server)
    local_auth_server.reset_stats()
    local_auth_server.inject("503", count=2, retry_after=0)
    hook = Recorder()
    renewed = provider.renew(current, before_attempt=hook)
    assert renewed.access_token != current.access_token
    assert local_auth_server.stats().token_requests == 3
    assert len(hook.calls) == 3
    deadlines = [deadline for deadline, _ in hook.calls]
    assert deadlines == sorted(deadlines) and len(set(deadlines)) == 3
    for deadline, at in hook.calls:
        assert deadline == pytest.approx(at + 4.0, abs=0.5)  # connect + read: 2 x 2 s


@pytest.mark.parametrize("stop_at", [1, 2])
def test_a_hook_that_raises_stops_before_anything_is_sent(
    local_auth_server: LocalAuthServer, stop_at: int
) -> None:
    provider = local_auth_server.provider(retry=QUICK)
    current = _bundle(local_auth_server)
    local_auth_server.reset_stats()
    local_auth_server.inject("503", count=2, retry_after=0)
    hook = Recorder(stop_at=stop_at)
    with pytest.raises(RefreshTransientError, match="would not last"):
        provider.renew(current, before_attempt=hook)
    assert local_auth_server.stats().token_requests == stop_at - 1
    assert len(hook.calls) == stop_at


def test_client_credentials_announce_their_attempts(local_auth_server: LocalAuthServer) -> None:
    provider = ClientCredentialsProvider(
        local_auth_server.confidential_client_id,
        local_auth_server.token_endpoint,
        client_secret=local_auth_server.confidential_client_secret,
        session=local_auth_server.session(),
        retry=QUICK,
    )
    hook = Recorder()
    provider.renew(None, before_attempt=hook)
    assert len(hook.calls) == 1
    hook = Recorder(stop_at=1)
    local_auth_server.reset_stats()
    with pytest.raises(RefreshTransientError):
        provider.renew(None, before_attempt=hook)
    assert local_auth_server.stats().token_requests == 0
