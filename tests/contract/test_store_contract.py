"""The TokenStore contract: one suite that every store implementation runs.

:class:`StoreContract` holds the tests (its parts, one concern each, in ``_store_refs``,
``_store_saves``, ``_store_reads`` and ``_store_sharing``); they use a ``backing`` fixture
(:class:`~contract._backings.Backing`) and only the public store API. ``TestStoreContract``
runs them over ``_backings.BACKINGS`` (memory, file, keyring on a fake backend under the
"system" and "plaintext" policies, keyring on the real Secret Service). A new backend adds
one factory there, or subclasses :class:`StoreContract` with its own ``backing`` fixture.

What is checked: account references (``resolve_ref``), ``make_default``, revisions (no ABA),
compare-and-swap and fenced saves (a refused save writes nothing), what ``active``,
``status`` and ``accounts`` return, ``clear``/``set_default``, ``read_refresh_token``,
``mark_session_ended``, snapshots as pure values, no secret in a repr, and two store
objects on one backing. Token values never reach an assertion message.

On a slow backing (the real Secret Service: every call a D-Bus round trip) the default
envs run only the tests marked ``@essential`` (those whose outcome depends on where the
secrets live); the whole suite runs there under ``reliability`` (tests/contract/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from requests_refreshauth.stores.base import TokenStore

from ._backings import Backing, BackingFactory, backing_params
from ._store_reads import ReadsContract
from ._store_refs import RefsContract
from ._store_saves import SavesContract
from ._store_sharing import SharingContract


class StoreContract(RefsContract, SavesContract, ReadsContract, SharingContract):
    """The whole contract. Subclasses provide the ``backing`` fixture."""

    @pytest.fixture
    def backing(self) -> Backing:
        raise NotImplementedError("a contract subclass provides the backing fixture")

    @pytest.fixture
    def store(self, backing: Backing) -> TokenStore:
        return backing.store


@pytest.fixture(params=backing_params())
def _contract_backing(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    factory: BackingFactory = request.param
    return factory.build(request, tmp_path)


class TestStoreContract(StoreContract):
    """The contract over every store in ``_backings.BACKINGS``."""

    @pytest.fixture
    def backing(self, _contract_backing: Backing) -> Backing:
        return _contract_backing
