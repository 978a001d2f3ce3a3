"""A small generic registry with a decorator, aliases, metadata and entry-point plug-ins.

Used for lifters (``LIFTERS``), datasets (``DATASETS``) and metrics (``METRICS``). Third-party
packages add entries through ``importlib.metadata`` entry points; they are imported lazily the
first time the registry is asked for a name it does not know yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

from liftbench.errors import LiftbenchError, UnknownNameError, unknown_name_message

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    target: T
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name -> object map. ``register`` is a decorator; duplicate names with another target raise."""

    def __init__(self, kind: str, base: type | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str, *aliases: str, **meta: Any) -> Callable[[T], T]:
        def decorator(target: T) -> T:
            if self.base is not None and isinstance(target, type) and not issubclass(target, self.base):
                raise TypeError(f"{self.kind} '{name}': {target!r} must subclass {self.base.__name__}")
            for key in (name, *aliases):
                owner = self._aliases.get(key, key if key in self._entries else None)
                if owner is not None and self._entries[owner].target is not target:
                    raise ValueError(f"{self.kind} name '{key}' is already registered to "
                                     f"{self._entries[owner].target!r}")
            self._entries[name] = Entry(name, target, tuple(aliases), dict(meta))
            for alias in aliases:
                self._aliases[alias] = name
            return target

        return decorator

    def canonical(self, name: str) -> str:
        key = self._aliases.get(name, name)
        if key not in self._entries:
            self.load_entry_points()
            key = self._aliases.get(name, name)
        if key not in self._entries:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names(include_aliases=True)))
        return key

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> T:
        return self.entry(name).target

    def meta(self, name: str) -> dict[str, Any]:
        return self.entry(name).meta

    def names(self, include_aliases: bool = False) -> list[str]:
        self.load_entry_points()
        names = set(self._entries)
        if include_aliases:
            names |= set(self._aliases)
        return sorted(names)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except UnknownNameError:
            return False
        return True

    def load_entry_points(self) -> None:
        """Import third-party plug-ins once; a broken plug-in is reported by name, not by traceback."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            try:
                ep.load()  # the plug-in module registers itself with the decorator on import
            except Exception as exc:  # noqa: BLE001 - any import failure becomes one clear line
                dist = getattr(getattr(ep, "dist", None), "name", "?")
                raise LiftbenchError(
                    f"Plug-in '{ep.name}' ({ep.value}, from package '{dist}') in entry-point group "
                    f"'{self.entry_point_group}' failed to import: {exc}. Fix or uninstall that package."
                ) from exc
