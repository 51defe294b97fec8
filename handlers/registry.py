"""Versioned dataset handlers and the registry that finds them by "name@version".

A handler turns catalog samples into training records. It declares its options (type, default, range,
one line of help); `Handler.config` validates a client's config against them and fills in the defaults,
so `{}` and the spelled-out defaults give the same canonical config (and the same dataset key). A handler
version never changes its output for a given config: a change in behaviour is a new version, registered
next to the old one. Registering the same name@version twice is an error, as in CVAT's format registry.
Plugins add handlers through the `loopline.handlers` entry point group.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from handlers.records import LabelMapSpec, Record, Sample

log = logging.getLogger(__name__)

TASKS = ("detection", "suggestion", "classification")  # what the models consume
OPTION_TYPES = ("int", "float", "bool", "choice", "str")
ENTRY_POINT_GROUP = "loopline.handlers"
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def _num(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


@dataclass(frozen=True)
class Option:
    type: str  # "int" | "float" | "bool" | "choice" | "str"
    default: object
    help: str  # one line
    min: float | None = None  # inclusive range for int/float
    max: float | None = None
    choices: tuple | None = None  # for "choice"

    def __post_init__(self):
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option type must be one of {', '.join(OPTION_TYPES)}, not {self.type!r}")
        if (self.type == "choice") != bool(self.choices):
            raise ValueError("a 'choice' option needs choices; other types take none")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        ok, error = self.check(self.default)
        if error:
            raise ValueError(f"default {self.default!r} is invalid: {error}")
        object.__setattr__(self, "default", ok)

    def check(self, value) -> tuple[object, str | None]:
        """(canonical value, None) or (None, what is allowed). bool is never a number and numbers are
        never bools; an int is accepted for a float option (and becomes a float), not the reverse."""
        if self.type == "choice":  # equal and of the same type, so True does not match 1
            match = [c for c in self.choices if type(c) is type(value) and c == value]
            return (match[0], None) if match else (None, "must be one of " + ", ".join(map(repr, self.choices)))
        if self.type in ("bool", "str"):
            if isinstance(value, bool if self.type == "bool" else str):
                return value, None
            return None, "must be a boolean (true or false)" if self.type == "bool" else "must be a string"
        good = isinstance(value, int if self.type == "int" else (int, float)) and not isinstance(value, bool)
        if good and self.type == "float":
            value = float(value) if abs(value) < 1e308 else math.inf  # a huge int would overflow
            good = math.isfinite(value)
        if good and (self.min is None or value >= self.min) and (self.max is None or value <= self.max):
            return value, None
        return None, f"must be {'an integer' if self.type == 'int' else 'a number'}{self._range()}"

    def _range(self) -> str:
        if self.min is not None and self.max is not None:
            return f" between {_num(self.min)} and {_num(self.max)}"
        if self.min is not None:
            return f" >= {_num(self.min)}"
        return f" <= {_num(self.max)}" if self.max is not None else ""

    def describe(self) -> dict:
        return {"type": self.type, "default": self.default, "help": self.help, "min": self.min, "max": self.max,
                "choices": list(self.choices) if self.choices is not None else None}


class ConfigError(ValueError):
    """A config that does not fit the handler's options. `errors` maps each bad key to what is allowed,
    e.g. {"flip": "must be a boolean (true or false)", "colour": "unknown option; options are: ..."}."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(sorted(errors.items()))
        super().__init__("invalid config: " + "; ".join(f"{k}: {v}" for k, v in self.errors.items()))

    def __reduce__(self):
        return (type(self), (self.errors,))


class Handler(ABC):
    """Subclass with the class attributes set and `build` written; register an instance."""

    name: ClassVar[str]
    version: ClassVar[int]
    description: ClassVar[str]
    task: ClassVar[str]  # "detection" | "suggestion" | "classification"
    options: ClassVar[dict[str, Option]]

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def config(self, given: dict) -> dict:
        """The canonical config: validated, defaults filled in, canonical types, keys sorted. Raises
        ConfigError naming every bad key at once."""
        if not isinstance(given, dict):
            raise ConfigError({"config": "must be an object mapping option names to values"})
        errors: dict[str, str] = {}
        for key in given:
            if key not in self.options:
                errors[str(key)] = "unknown option; options are: " + ", ".join(sorted(self.options))
        out = {}
        for key, option in sorted(self.options.items()):
            value, error = option.check(given[key]) if key in given else (option.default, None)
            if error:
                errors[key] = error
            out[key] = value
        if not errors:
            errors = self.check(out)
        if errors:
            raise ConfigError(errors)
        return out

    def check(self, config: dict) -> dict[str, str]:
        """Rules across options, run once every option is valid on its own: {key: problem}."""
        return {}

    @abstractmethod
    def build(self, samples: Iterable[Sample], config: dict, labels: LabelMapSpec) -> Iterator[Record]:
        """Records for the samples; `config` is what `config()` returned."""

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "id": self.id, "description": self.description,
                "task": self.task, "options": {k: o.describe() for k, o in sorted(self.options.items())}}


class UnknownHandler(LookupError):
    def __init__(self, spec: str, available: list[str]):
        self.spec, self.available = spec, available
        super().__init__(f"no handler {spec!r}; available: {', '.join(available) or 'none'}")


def _check_handler(handler) -> None:
    if not isinstance(handler, Handler):
        raise TypeError(f"expected a Handler instance, got {handler!r}")
    name, version, options = (getattr(handler, a, None) for a in ("name", "version", "options"))
    problems = [
        (isinstance(name, str) and _NAME.fullmatch(name), f"name must match {_NAME.pattern}"),
        (type(version) is int and version >= 1, "version must be an integer >= 1"),
        (getattr(handler, "task", None) in TASKS, f"task must be one of {', '.join(TASKS)}"),
        (isinstance(getattr(handler, "description", None), str), "description must be a string"),
        (isinstance(options, dict) and all(isinstance(k, str) and k.isidentifier() and isinstance(o, Option)
                                           for k, o in options.items()), "options must map names to Option"),
    ]
    if bad := [text for ok, text in problems if not ok]:
        raise ValueError(f"handler {name!r}@{version!r}: " + "; ".join(bad))


class HandlerRegistry:
    def __init__(self):
        self._handlers: dict[tuple[str, int], Handler] = {}
        self._lock = threading.Lock()

    def register(self, handler: Handler) -> Handler:
        """Add a handler; a second handler with the same name@version is a ValueError."""
        _check_handler(handler)
        with self._lock:
            key = (handler.name, handler.version)
            if key in self._handlers:
                raise ValueError(f"handler {handler.id} is already registered ({self._handlers[key]!r})")
            self._handlers[key] = handler
        return handler

    def get(self, spec: str) -> Handler:
        """The handler for "name@version"; UnknownHandler (listing what exists) for anything else."""
        name, _, version = spec.partition("@") if isinstance(spec, str) else ("", "", "")
        canonical = version.isascii() and version.isdigit() and str(int(version)) == version  # no "01", "+1"
        handler = self._handlers.get((name, int(version))) if canonical else None
        if handler is None:
            raise UnknownHandler(str(spec), [h.id for h in self.all()])
        return handler

    def all(self) -> list[Handler]:
        with self._lock:
            return [self._handlers[k] for k in sorted(self._handlers)]

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register the handlers that installed distributions declare in `group`. An entry point names a
        Handler subclass, a Handler instance, or a callable returning one or an iterable of either. A
        plugin that fails to load, gives no handlers or clashes with a registered id is logged and
        skipped as a whole. Returns the ids registered."""
        loaded = []
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            try:
                handlers = _handlers_of(ep.load())
                for handler in handlers:
                    _check_handler(handler)
                with self._lock:
                    ids = [(h.name, h.version) for h in handlers]
                    clash = [f"{n}@{v}" for n, v in ids if (n, v) in self._handlers] or (
                        ["duplicates within the plugin"] if len(set(ids)) < len(ids) else [])
                    if clash:
                        raise ValueError(f"already registered: {', '.join(clash)}")
                    self._handlers.update(zip(ids, handlers, strict=True))
                loaded += [h.id for h in handlers]
            except Exception:
                log.exception("skipping handler plugin %s = %s (group %s)", ep.name, ep.value, group)
        return loaded


def _handlers_of(obj) -> list[Handler]:
    if isinstance(obj, type) and issubclass(obj, Handler):
        return [obj()]
    if isinstance(obj, Handler):
        return [obj]
    if not callable(obj):
        raise TypeError(f"{obj!r} is not a Handler subclass, instance or factory")
    made = obj()
    items = [made] if isinstance(made, (Handler, type)) else list(made)
    out = [h() if isinstance(h, type) and issubclass(h, Handler) else h for h in items]
    if not out:
        raise ValueError("the plugin gave no handlers")
    return out


_default: HandlerRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> HandlerRegistry:
    """The built-in handlers plus the installed plugins, built on first use and shared afterwards."""
    global _default
    with _default_lock:
        if _default is None:
            from handlers.builtin import builtin_handlers

            registry = HandlerRegistry()
            for cls in builtin_handlers():
                registry.register(cls())
            registry.load_entry_points()
            _default = registry
        return _default
