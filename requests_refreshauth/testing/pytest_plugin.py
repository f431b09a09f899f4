"""pytest fixtures for :class:`~requests_refreshauth.testing.LocalAuthServer`.

Registered as a ``pytest11`` entry point, so every pytest run in an environment with
this package loads it. It therefore imports nothing heavy and starts nothing until a
test asks for a fixture: the server module (and oauthlib) is imported inside them.

- ``local_auth_server``: a fresh server per test. Configure it with the marker, whose
  keyword arguments go to :class:`LocalAuthServer` (the closest marker wins)::

      @pytest.mark.local_auth_server(access_token_ttl=2, jwt_access_tokens=True)
      def test_expiry(local_auth_server): ...

  or parametrize it indirectly with dicts of the same keyword arguments::

      @pytest.mark.parametrize("local_auth_server", [{"jwt_access_tokens": True}],
                               indirect=True)

- ``local_auth_session_server``: one server for the whole session, for suites that log
  in many times. It keeps state and counters across tests: call ``reset_stats()`` and
  ``clear_faults()`` in tests that assert on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import LocalAuthServer

__all__ = ["local_auth_server", "local_auth_session_server"]

MARKER = "local_auth_server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): keyword arguments for the {MARKER} fixture's "
        "LocalAuthServer (e.g. access_token_ttl=5)",
    )


@pytest.fixture
def local_auth_server(request: pytest.FixtureRequest) -> Iterator[LocalAuthServer]:
    """A started :class:`LocalAuthServer`, fresh for this test, stopped after it."""
    from .server import LocalAuthServer

    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        options.update(marker.kwargs)
    options.update(getattr(request, "param", None) or {})  # indirect parametrization
    with LocalAuthServer(**options) as server:
        yield server


@pytest.fixture(scope="session")
def local_auth_session_server() -> Iterator[LocalAuthServer]:
    """One started :class:`LocalAuthServer` shared by every test of the session."""
    from .server import LocalAuthServer

    with LocalAuthServer() as server:
        yield server
