"""Numbers from the other side (JSON, a JWT, a file) that arithmetic can trust."""

from __future__ import annotations

import math
from typing import Any, Optional

__all__ = ["finite"]


def finite(value: Any) -> Optional[float]:
    """``value`` as a finite float, or ``None`` (bools, NaN, ±inf, ints beyond float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
