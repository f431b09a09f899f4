"""Contract suites: one suite per seam (token store, refresh lock) that every implementation
runs. A new backend adds one factory to ``_backings.BACKINGS`` (or subclasses the contract
class with its own fixture) and passes the suite, or it is not done."""

import pytest

# The store contract's parts live in helper modules (mixins): rewrite their asserts too, as
# pytest does for test modules, so that a failure shows the compared values.
pytest.register_assert_rewrite(
    *(
        f"{__name__}.{module}"
        for module in (
            "_backings",
            "_helpers",
            "_store_reads",
            "_store_refs",
            "_store_saves",
            "_store_sharing",
        )
    )
)
