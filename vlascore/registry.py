"""One small registry for plugins: lazy "module:object" entries plus Python entry points.

Built-in plugins are registered as strings so listing them imports nothing heavy; third-party packages add
entries through an entry-point group (e.g. `vlascore.adapters`). A name that is not registered may also be a
direct reference, so a class needs no packaging: `package.module:Class`, or `path/to/file.py:Class` (a file
path, relative to the working directory; `module:Class` also finds `./module.py` when no such module is
installed). Options given as text (`-M key=value`) are converted to the types the class's constructor declares
(`construct`), so strings stay strings and a bad value or key is named with the valid ones.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, Union

T = TypeVar("T")


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """' Did you mean 'x', 'y'?' for the closest options, or '' when none is close."""
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class UnknownPluginError(KeyError):
    """A name that no registry entry matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginTypeError(UnknownPluginError, TypeError):
    """A name that resolves to something other than a usable subclass of the registry's base class (so every
    caller that reports an unknown name reports this the same way)."""


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
        """Resolve `name` (a registered name or a `module:Class` / `file.py:Class` reference), importing its module
        now; unknown names get a "did you mean"."""
        if name in self._loaded:
            return self._loaded[name]
        self._scan_entry_points()
        if name not in self._targets:
            if is_reference(name):
                obj = load_reference(name, self.kind)
                self._check(name, obj)
                self._loaded[name] = obj  # type: ignore[assignment]
                return obj  # type: ignore[return-value]
            hint = did_you_mean(name, self._targets)
            raise UnknownPluginError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}; or give a class as "
                "path/to/file.py:ClassName or package.module:ClassName"
            )
        module_name, _, attr = self._targets[name].partition(":")
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        self._check(name, obj)
        self._loaded[name] = obj  # type: ignore[assignment]
        return obj  # type: ignore[return-value]

    def _check(self, name: str, obj: object) -> None:
        if self.base is None:
            return
        where = self._targets.get(name, name)
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise PluginTypeError(
                f"{self.kind} {name!r} ({where!r}) is not a subclass of {self.base.__module__}.{self.base.__qualname__}"
            )
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise PluginTypeError(f"{self.kind} {name!r} ({where!r}) does not implement {missing}")


def is_reference(name: str) -> bool:
    """Whether `name` is a direct `module:Class` or `file.py:Class` reference rather than a registered name."""
    where, sep, attr = name.rpartition(":")
    return bool(sep and where and attr and attr.replace(".", "").replace("_", "").isalnum())


def load_reference(reference: str, kind: str = "plugin") -> object:
    """The object a `package.module:Class` or `path/to/file.py:Class` reference names."""
    where, _, attr = reference.rpartition(":")
    path = Path(where)
    module: types.ModuleType
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _module_from_file(path, kind)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            local = Path(*where.split(".")).with_suffix(".py")
            if exc.name != where.split(".")[0] or not local.is_file():
                raise UnknownPluginError(f"cannot import {where!r} for {kind} {reference!r}: {exc}") from None
            module = _module_from_file(local, kind)
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise UnknownPluginError(f"{where} has no {attr!r} for {kind} {reference!r}.{did_you_mean(part, names)}")
        obj = getattr(obj, part)
    return obj


def _module_from_file(path: Path, kind: str) -> types.ModuleType:
    """Import a Python file as a module of its own (named after its absolute path, so worker processes that
    import the same file get the same name)."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise UnknownPluginError(f"no file {path} for the {kind} (give path/to/file.py:ClassName)")
    name = f"vlascore_user_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UnknownPluginError(f"cannot import {path} as Python for the {kind}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# -- options given as text ---------------------------------------------------------------------------------------
class OptionError(ValueError):
    """An option a plugin does not take, or a value it cannot take; the message names the valid ones."""


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def construct(cls: Callable[..., T], options: dict[str, Any], what: str) -> T:
    """`cls(**options)`, where options given as text are first converted to the types `cls`'s constructor
    declares; an unknown key or an unusable value raises OptionError naming the option and the valid ones."""
    return cls(**coerce_options(cls, options, what))


def coerce_options(cls: Callable[..., Any], options: dict[str, Any], what: str) -> dict[str, Any]:
    """Text values converted to the declared parameter types (values of other types pass as they are): `str` and
    undeclared parameters stay text; numbers, booleans, None, literals, paths and containers (as YAML) are parsed."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return dict(options)
    params = {n: p for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(getattr(cls, "__init__") if isinstance(cls, type) else cls)  # noqa: B009
    except Exception:  # noqa: BLE001 - annotations that do not resolve: keep the text
        hints = {}
    out = {}
    for key, value in options.items():
        if key not in params and not takes_any:
            valid = ", ".join(params) or "none"
            raise OptionError(f"{what} has no option {key!r}.{did_you_mean(key, params)} Its options: {valid}")
        hint = hints.get(key)
        out[key] = _coerce(value, hint, f"option {key!r} of {what}") if isinstance(value, str) and hint else value
    return out


def _coerce(text: str, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is str or hint is object:
        return text
    if origin in (Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null", "~"):
            return None
        problems = []
        for member in (a for a in args if a is not type(None)):
            try:
                return _coerce(text, member, where)
            except OptionError as exc:
                problems.append(str(exc))
        raise OptionError(problems[0] if len(problems) == 1 else f"{where} cannot take {text!r}: {'; '.join(problems)}")
    if origin is Literal:
        for choice in args:
            if str(choice) == text or (isinstance(choice, bool) and text.lower() in (_TRUE if choice else _FALSE)):
                return choice
        raise OptionError(f"{where} must be one of {', '.join(map(str, args))}, got {text!r}")
    if hint is bool:
        if text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise OptionError(f"{where} expects true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise OptionError(f"{where} expects {'an integer' if hint is int else 'a number'}, got {text!r}") from None
    if isinstance(hint, type) and issubclass(hint, Path):
        return Path(text)
    if hint in (list, tuple, dict) or origin in (list, tuple, dict, Iterable):
        from vlascore.paths import load_yaml  # containers are written as YAML: [1, 2], {a: 1}

        value = load_yaml(text)
        want = origin or hint
        if not isinstance(value, list if want in (list, tuple, Iterable) else dict):
            raise OptionError(f"{where} expects a {getattr(want, '__name__', want)} written as YAML, got {text!r}")
        return tuple(value) if want is tuple else value
    return text
