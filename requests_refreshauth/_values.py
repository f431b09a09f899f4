"""A minimal immutable value-object base (instead of ``dataclasses``).

Why not ``dataclasses``: on Python 3.9-3.12 importing it pulls in ``inspect`` (and with
it ``ast``, ``dis``, ...), about 19 ms of start-up before a single class is built, and
each ``@dataclass`` then compiles generated code. A CLI that imports this library on
every invocation pays that every time. These classes declare their fields in
``__slots__``, write their own ``__init__`` (which is where validation lives anyway),
and get equality, hashing, ``repr``, ``replace`` and pickling from here.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

__all__ = ["Value"]

V = TypeVar("V", bound="Value")


class Value:
    """Immutable; fields are ``__slots__`` in ``__init__``'s positional order."""

    __slots__: ClassVar[tuple[str, ...]] = ()
    #: Fields shown as ``'***'`` in ``repr`` (secrets) or left out of it.
    _secret_fields: ClassVar[frozenset[str]] = frozenset()
    _hidden_fields: ClassVar[frozenset[str]] = frozenset()
    #: Fields that do not take part in ``==`` and ``hash`` (callables, caches).
    _uncompared_fields: ClassVar[frozenset[str]] = frozenset()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def _compared(self) -> tuple[Any, ...]:
        return tuple(
            getattr(self, name) for name in self.__slots__ if name not in self._uncompared_fields
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash((type(self), self._compared()))

    def __repr__(self) -> str:
        parts = []
        for name in self.__slots__:
            if name in self._hidden_fields:
                continue
            value = getattr(self, name)
            shown = "'***'" if name in self._secret_fields and value is not None else repr(value)
            parts.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), self._values()

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def replace(self: V, **changes: Any) -> V:
        """A copy with some fields changed (validated again by ``__init__``)."""
        values = self.as_dict()
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        values.update(changes)
        return type(self)(**values)
