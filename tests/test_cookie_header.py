"""merged_cookie_header: the Cookie header of a resend after a 401 that set cookies."""

from __future__ import annotations

from typing import Optional

import pytest

from requests_refreshauth._cookie_header import merged_cookie_header


@pytest.mark.parametrize(
    ("existing", "new", "expected"),
    [
        (None, [], None),
        ("a=1", [], "a=1"),
        (None, [("s", "new")], "s=new"),
        ("s=old; keep=1", [("s", "new")], "s=new; keep=1"),
        ("keep=1;s=old", [("s", "new"), ("t", "2")], "keep=1; s=new; t=2"),
        ("flag; a=1", [("a", "2")], "flag; a=2"),
        (" ; a=1 ;", [("b", "2")], "a=1; b=2"),
        ("a=x=y", [("a", "z")], "a=z"),
        ("A=1", [("a", "2")], "A=1; a=2"),  # cookie names are case-sensitive
    ],
)
def test_the_401s_cookies_replace_or_join_the_requests(
    existing: Optional[str], new: list[tuple[str, str]], expected: Optional[str]
) -> None:
    assert merged_cookie_header(existing, new) == expected
