"""Distillation methods: one module per method, each registered with `@register_method`.

`discover()` imports every module of this package and every entry point of the group
`kdbench.methods` (so a method can live in its author's own package). A module that fails to
import does not hide the others: its error is returned, naming the file.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import traceback
from dataclasses import dataclass
from pathlib import Path

from methods.api import Method, MethodSpec, register_method, registry

ENTRY_POINT_GROUP = "kdbench.methods"
_NOT_METHODS = {"api", "losses"}  # the contract and the shared losses


@dataclass(frozen=True)
class LoadError:
    module: str  # module or entry-point name; by convention the method's name
    source: str  # file or entry point that failed
    problem: str


_errors: list[LoadError] | None = None


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (line {last[0].lineno} of {Path(last[0].filename).name})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _entry_point_source(ep: importlib.metadata.EntryPoint) -> str:
    """The entry point and, when it can be found without importing it, its file."""
    where = f"entry point {ep.name} = {ep.value}"
    try:
        spec = importlib.util.find_spec(ep.module)
    except (ImportError, ValueError):
        spec = None
    return f"{spec.origin} ({where})" if spec is not None and spec.origin else where


def discover() -> tuple[dict[str, MethodSpec], list[LoadError]]:
    """Import built-in and entry-point methods once; later calls return the same answer."""
    global _errors
    if _errors is not None:
        return registry(), _errors
    errors: list[LoadError] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_METHODS or info.name.startswith("_"):
            continue
        path = Path(__path__[0]) / f"{info.name}.py"
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except Exception as e:  # a broken plugin must not take the others down
            errors.append(LoadError(info.name, str(path), _describe(e)))
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            before = set(registry())
            obj = ep.load()  # a module (registers on import) or a Method subclass
            if isinstance(obj, type) and issubclass(obj, Method) and obj.name not in registry():
                register_method(obj)
            for name in set(registry()) - before:  # what this entry point registered
                spec = registry()[name]
                spec.cls.__kdbench_origin__ = f"entry point {ep.value}"
                registry()[name] = MethodSpec(spec.cls, origin=spec.cls.__kdbench_origin__)
        except Exception as e:
            errors.append(LoadError(ep.name, _entry_point_source(ep), _describe(e)))
    _errors = errors
    return registry(), errors


__all__ = ["ENTRY_POINT_GROUP", "LoadError", "discover"]
