"""The public API: ``giflab_dask.__all__``, its lazy export table and the type checkers' imports
agree, and every class a public function takes or returns is exported with it."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import giflab_dask
from giflab_dask import errors


def _package_classes() -> dict[str, type]:
    """Every public class defined in a giflab_dask module, by name."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(giflab_dask.__path__, "giflab_dask."):
        if info.name == "giflab_dask.__main__":
            continue
        for name, value in vars(importlib.import_module(info.name)).items():
            if isinstance(value, type) and value.__module__ == info.name and name[0] != "_":
                found[name] = value
    return found


def _signatures(obj: Any) -> Iterator[tuple[str, inspect.Signature]]:
    """The signature of a function, or of a class's constructor and public methods."""
    members: list[tuple[str, Callable[..., Any]]] = [(obj.__name__, obj)]
    if inspect.isclass(obj):
        for name, value in vars(obj).items():
            if name.startswith("_"):
                continue
            func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            if callable(func):
                members.append((f"{obj.__name__}.{name}", func))
    for where, func in members:
        try:
            yield where, inspect.signature(func)
        except (TypeError, ValueError):  # a builtin without one
            continue


def _annotation_names(signature: inspect.Signature) -> set[str]:
    texts = [str(p.annotation) for p in signature.parameters.values()]
    texts.append(str(signature.return_annotation))
    return {name for text in texts for name in re.findall(r"[A-Za-z_]\w*", text)}


def test_all_matches_the_lazy_export_table() -> None:
    assert set(giflab_dask.__all__) == {*giflab_dask._EXPORTS, "__version__"}
    assert len(giflab_dask.__all__) == len(set(giflab_dask.__all__))
    assert sorted(dir(giflab_dask)) == sorted(giflab_dask.__all__)


def test_every_export_resolves_to_its_defining_module() -> None:
    for name, module_name in giflab_dask._EXPORTS.items():
        module = importlib.import_module(module_name)
        value = getattr(giflab_dask, name)
        assert value is getattr(module, name), name
        assert getattr(value, "__module__", module_name) == module_name, name
        assert name in getattr(module, "__all__", [name]), (
            f"{name} missing from {module_name}.__all__"
        )


def test_type_checking_imports_match_the_table() -> None:
    tree = ast.parse(Path(giflab_dask.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    imported = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == giflab_dask._EXPORTS


def test_every_error_is_exported() -> None:
    assert set(errors.__all__) <= set(giflab_dask.__all__)


def test_what_public_functions_take_and_return_is_exported() -> None:
    classes = _package_classes()
    exported = set(giflab_dask.__all__)
    missing: dict[str, str] = {}
    for name in sorted(exported - {"__version__"}):
        for where, signature in _signatures(getattr(giflab_dask, name)):
            for used in _annotation_names(signature) & set(classes):
                if used not in exported:
                    missing.setdefault(used, where)
    assert not missing, f"export these from giflab_dask (name: first use): {missing}"
