"""One small registry type for every kind of plug-in: input readers, exporters, tracker families.

Why one type: the UI lists, the CLI flags and the docs are all built by iterating a registry, so
adding a format, an export or a model family is one module plus one entry, and a wrong name is
refused with the same kind of sentence everywhere. Entries are frozen dataclasses with a ``name``;
their callables may be given as ``"package.module:function"`` strings (see ``lazy``) so that a
registry can be imported without its heavy back-ends (torch, bioio, geff).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from sam2web.errors import UserError


class _Named(Protocol):
    name: str


T = TypeVar("T", bound=_Named)


class Registry(Generic[T]):
    """Named entries of one kind, kept in registration order (the order the UI shows them in)."""

    def __init__(self, kind: str, entries: tuple[T, ...] | list[T] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: T) -> T:
        if entry.name in self._entries:
            raise ValueError(f"a {self.kind} named {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a fake one clean up after themselves)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(f"Unknown {self.kind} '{name}': choose one of {', '.join(self._entries)}.") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


def lazy(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Resolve ``"package.module:attribute"`` at call time (a callable is returned as it is)."""
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
