"""One small registry for plugins: lazy "module:object" entries plus Python entry points.

Built-in plugins are registered as strings so listing them imports nothing heavy; third-party packages add
entries through an entry-point group (e.g. `vlascore.adapters`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """' Did you mean 'x', 'y'?' for the closest options, or '' when none is close."""
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class UnknownPluginError(KeyError):
    """A name that no registry entry matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginTypeError(TypeError):
    """A registry entry that resolves to something other than a subclass of the registry's base class."""


class Registry(Generic[T]):
    """Name -> plugin class, resolved on first use and checked against the registry's base class, so callers never
    need `getattr` fallbacks for what the base class declares."""

    def __init__(self, kind: str, entry_point_group: str | None = None, base: type | None = None) -> None:
        self.kind = kind
        self.group = entry_point_group
        self.base = base
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._scanned = False

    def register(self, name: str, target: str | T) -> None:
        """Add `name`; `target` is a class or a lazy "module:attr" string."""
        if isinstance(target, str):
            self._targets[name] = target
            self._loaded.pop(name, None)
        else:
            self._check(name, target)
            self._loaded[name] = target
            self._targets[name] = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', name)}"

    def _scan_entry_points(self) -> None:
        if self._scanned or not self.group:
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._targets:
                self._targets[ep.name] = ep.value
                dist = getattr(ep, "dist", None)
                self._origins[ep.name] = f"package {dist.name} {dist.version}" if dist else "entry point"

    def names(self) -> list[str]:
        self._scan_entry_points()
        return sorted(self._targets)

    def origin(self, name: str) -> str:
        """`built-in`, or the distribution whose entry point registered `name`."""
        self._scan_entry_points()
        return self._origins.get(name, "built-in")

    def target(self, name: str) -> str:
        self._scan_entry_points()
        return self._targets[name]

    def get(self, name: str) -> T:
        """Resolve `name`, importing its module now; unknown names get a "did you mean"."""
        if name in self._loaded:
            return self._loaded[name]
        self._scan_entry_points()
        if name not in self._targets:
            hint = did_you_mean(name, self._targets)
            raise UnknownPluginError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}")
        module_name, _, attr = self._targets[name].partition(":")
        obj: object = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        self._check(name, obj)
        self._loaded[name] = obj  # type: ignore[assignment]
        return obj  # type: ignore[return-value]

    def _check(self, name: str, obj: object) -> None:
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginTypeError(
                f"{self.kind} {name!r} ({self._targets.get(name, obj)!r}) is not a subclass of "
                f"{self.base.__module__}.{self.base.__qualname__}"
            )
