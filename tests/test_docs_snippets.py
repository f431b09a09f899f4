"""Every snippet of README.md and docs/ runs (``tox -e docs``; marker ``docs``).

Each page with runnable blocks runs in a worker process of its own (``_doc_snippets``):
a fresh sandbox for HOME, XDG and cwd, a private Secret Service (never the developer's
keyring), a ``LocalAuthServer`` logged in as "alice" through the headless browser. A
block that cannot run is marked ``<!-- illustrative: REASON -->`` on the line before it.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _doc_snippets import REPO, Page, load_page, parse_page, redact, run_page
from _secret_service import SecretService, require_secret_service

pytestmark = pytest.mark.docs

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture
def sandbox() -> Iterator[SecretService]:
    service = require_secret_service()
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.root, ignore_errors=True)


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_markers_are_well_formed(path: Path) -> None:
    """A runnable-looking fence that would not run, or a marker without its reason, is an
    error: nothing is skipped silently."""
    page = load_page(path)
    assert page.problems == []
    for block in page.illustrative:
        assert block.illustrative and block.illustrative.strip() != "(no reason)"


RUNNABLE = [path for path in PAGES if load_page(path).runnable]


def test_the_pages_with_snippets_are_found() -> None:
    names = {_name(path) for path in RUNNABLE}
    assert {"README.md", "docs/testing.md", "docs/stores.md"} <= names


@pytest.mark.parametrize("path", RUNNABLE, ids=_name)
def test_every_snippet_runs(path: Path, sandbox: SecretService) -> None:
    page = load_page(path)
    result = run_page(page, sandbox.root, sandbox.env)
    assert result.failure is None, result.failure
    assert result.ran == len(page.runnable)


def _page(markdown: str) -> Page:
    return parse_page(textwrap.dedent(markdown), "synthetic.md")


@pytest.mark.parametrize(
    "markdown",
    [
        '```python\nassert 1 + 1 == 3, "arithmetic"\n```\n',
        "```console\n$ echo hello\ngoodbye\n```\n",
        "```sh\nfalse\n```\n",
    ],
    ids=["python", "console", "sh"],
)
def test_a_failing_snippet_fails_the_page(markdown: str, sandbox: SecretService) -> None:
    """The runner can fail: a wrong assertion, a command's missing output, a bad exit."""
    result = run_page(_page(markdown), sandbox.root, sandbox.env, timeout=60)
    assert result.failure is not None
    assert "synthetic.md:1" in result.failure


def test_illustrative_blocks_do_not_run_and_lookalike_tags_are_errors() -> None:
    page = _page(
        """\
        <!-- illustrative: needs a real provider -->
        ```python
        raise SystemExit("never run")
        ```

        ```py
        print("a tag that would not run")
        ```
        """
    )
    assert page.runnable == []
    assert page.illustrative[0].illustrative == "needs a real provider"
    assert any("'py'" in problem for problem in page.problems)


def test_tokens_are_redacted_from_reports() -> None:
    token = "a" * 10 + "B" * 10 + "c" * 10
    text = f'Authorization: Bearer {token}\n{{"access_token": "{token}"}}'
    assert token not in redact(text)
