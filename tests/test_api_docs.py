"""The API reference is generated from docstrings: every public name has one, and it is true.

Public names: ``requests_refreshauth.__all__``, the ``__all__`` of every public module (no
part of its dotted name starts with ``_``; subpackages ``stores``, ``providers``, ``testing``
and the ``httpx`` modules included), the modules themselves, and the public methods and
properties (names not starting with ``_``) defined in the body of each public class. The
renamed modules kept for one release (``DEPRECATED_SHIMS``) are left out. A method that overrides a
documented one (a ``RequestValidator`` hook) has its docstring, as ``help()`` shows it.

Rule for ``Raises:``: a public function or method (a class's ``__init__`` counts, with the
section in the class's docstring or in ``__init__``'s) whose own source contains
``raise X`` or ``raise X(...)``, where ``X`` is a name that resolves in its module to an
:class:`~requests_refreshauth.errors.AuthError` subclass, has a ``Raises:`` section naming
every such ``X``. Errors raised by helpers it calls are not detected (document them by hand
where a caller must handle them); the rule keeps the directly raised ones from going stale.

Every ``>>>`` example in the package's docstrings (public and private modules) runs with
stdlib :mod:`doctest`, with a running ``LocalAuthServer`` as ``server``, a temp dir as
``tmp`` and cwd, HOME and XDG dirs inside it, and a keyring backend that fails (no example
may touch a real keyring).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import requests_refreshauth
from requests_refreshauth.errors import AuthError
from requests_refreshauth.testing import LocalAuthServer

# Names allowed, for now, without a docstring ("docstring") or without the Raises: section
# the rule asks for ("raises"). The test fails on an entry that is no longer needed.
ALLOWED_GAPS: dict[str, str] = {}

#: Modules whose optional dependency needs a newer Python than the package does.
NEEDS_OWN_PYTHON = {"requests_refreshauth.httpx2": (3, 11)}

#: Renamed modules kept for one release: importing them warns, and they are not documented.
DEPRECATED_SHIMS = frozenset({"requests_refreshauth.replay", "requests_refreshauth.source"})


def _all_modules() -> list[ModuleType]:
    found = [requests_refreshauth]
    prefix = requests_refreshauth.__name__ + "."
    for info in pkgutil.walk_packages(requests_refreshauth.__path__, prefix):
        if info.name.endswith(".__main__") or info.name in DEPRECATED_SHIMS:
            continue
        if info.name in NEEDS_OWN_PYTHON and sys.version_info < NEEDS_OWN_PYTHON[info.name]:
            continue  # its extra does not install on this Python (the newer envs check it)
        found.append(importlib.import_module(info.name))
    return found


def _is_public(module: ModuleType) -> bool:
    return not any(part.startswith("_") for part in module.__name__.split(".")[1:])


def _public_modules() -> list[ModuleType]:
    return [module for module in _all_modules() if _is_public(module)]


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """(name, function) of the public methods and properties defined in ``cls``'s body."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property) or inspect.isfunction(value):
            yield name, value


def _public_objects() -> dict[str, Any]:
    """qualified name -> object, for every public class, function, method and property."""
    found: dict[str, Any] = {}
    seen: set[int] = set()

    def add(qualname: str, obj: Any) -> None:
        if id(obj) not in seen:
            seen.add(id(obj))
            found[qualname] = obj

    for module in _public_modules():
        add(module.__name__, module)
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants and aliases: documented in the module's docstring
            qualname = f"{obj.__module__}.{obj.__qualname__}"
            add(qualname, obj)
            if inspect.isclass(obj):
                for member, value in _members(obj):
                    add(f"{qualname}.{member}", value)
    return found


PUBLIC = _public_objects()


def _doc(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").strip()


def test_the_walk_finds_the_public_api() -> None:
    assert "requests_refreshauth.auth.RefreshAuth" in PUBLIC
    assert "requests_refreshauth.testing.server.LocalAuthServer.login" in PUBLIC
    assert "requests_refreshauth.stores.file.FileTokenStore" in PUBLIC
    assert len(PUBLIC) > 300


def test_every_public_name_has_a_docstring() -> None:
    missing = [
        name
        for name, obj in PUBLIC.items()
        if not _doc(obj) and ALLOWED_GAPS.get(name) != "docstring"
    ]
    assert missing == []


def _auth_errors_raised(function: Any) -> set[str]:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):  # pragma: no cover - every public function has source
        return set()
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                value = function.__globals__.get(target.id)
                if inspect.isclass(value) and issubclass(value, AuthError):
                    names.add(target.id)
    return names


def _raises_section(doc: str) -> str:
    match = re.search(r"^\s*Raises:\s*$(.*?)(?=^\s*\w[\w ]*:\s*$|\Z)", doc, re.M | re.S)
    return match.group(1) if match else ""


def _raising_callables() -> Iterator[tuple[str, Any, str]]:
    """(name, function, the docstring that should hold its Raises: section)."""
    for name, obj in PUBLIC.items():
        if inspect.isfunction(obj):
            yield name, obj, _doc(obj)
        elif isinstance(obj, property) and obj.fget is not None:
            yield name, obj.fget, _doc(obj)
        elif inspect.isclass(obj) and inspect.isfunction(vars(obj).get("__init__")):
            init = vars(obj)["__init__"]
            yield f"{name}.__init__", init, _doc(obj) + "\n" + _doc(init)


def test_callables_that_raise_library_errors_document_them() -> None:
    undocumented: dict[str, list[str]] = {}
    checked = 0
    for name, function, doc in _raising_callables():
        raised = _auth_errors_raised(function)
        if not raised:
            continue
        checked += 1
        section = _raises_section(doc)
        absent = sorted(error for error in raised if not re.search(rf"\b{error}\b", section))
        owner = name.removesuffix(".__init__")
        if absent and ALLOWED_GAPS.get(owner) != "raises":
            undocumented[name] = absent
    assert checked > 10
    assert undocumented == {}


def test_allowed_gaps_are_still_gaps() -> None:
    for name, kind in ALLOWED_GAPS.items():
        obj = PUBLIC[name]
        if kind == "docstring":
            assert not _doc(obj), f"{name} has a docstring now: drop it from ALLOWED_GAPS"
        else:
            raised = _auth_errors_raised(obj)
            section = _raises_section(_doc(obj))
            assert any(not re.search(rf"\b{e}\b", section) for e in raised), (
                f"{name} documents its raises now: drop it from ALLOWED_GAPS"
            )


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[doctest.DocTest] = []
    for module in _all_modules():
        tests.extend(t for t in finder.find(module) if t.examples)
    return sorted(tests, key=lambda t: t.name)


DOCTESTS = _doctests()


@pytest.fixture(scope="module")
def doctest_server() -> Iterator[LocalAuthServer]:
    with LocalAuthServer() as server:
        yield server


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples_run(
    test: doctest.DocTest,
    doctest_server: LocalAuthServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        directory = tmp_path / variable.lower()
        directory.mkdir()
        monkeypatch.setenv(variable, str(directory))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    test.globs.update(server=doctest_server, tmp=tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{test.name}: {result.failed} of {result.attempted} failed"


def test_there_are_docstring_examples() -> None:
    assert len(DOCTESTS) >= 5
