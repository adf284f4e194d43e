"""The public surface of lib/fusionrec is declared: ``__all__`` names what other modules may use.

Every package declares ``__all__``; every name in a module's ``__all__`` exists; and no
module of the library imports a name from another that declares ``__all__`` without that
name in it (internal helpers are underscored or left out of ``__all__``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

from test_layers import LIB, library_sources

SOURCES = library_sources()
MODULES = sorted(m for m in SOURCES if m != "fusionrec.__main__")


def declared(module: str) -> list[str] | None:
    for node in ast.parse(SOURCES[module][0]).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


@pytest.mark.parametrize("package", [m for m in MODULES if SOURCES[m][1]])
def test_every_package_declares_its_surface(package):
    """A package lists its modules, or (``features``) the functions it re-exports."""
    assert declared(package), f"{package} has no __all__"


@pytest.mark.parametrize("module", [m for m in MODULES if declared(m) is not None])
def test_declared_names_exist(module):
    loaded = importlib.import_module(module)
    missing = [name for name in declared(module)
               if not hasattr(loaded, name) and importlib.util.find_spec(f"{module}.{name}") is None]
    assert missing == []
    assert len(declared(module)) == len(set(declared(module)))


def test_modules_only_import_declared_names():
    offending = []
    for module, (text, is_package) in SOURCES.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith("fusionrec"):
                continue
            if node.module not in SOURCES:
                continue
            public = declared(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in SOURCES:
                    continue  # a submodule
                if public is not None and alias.name not in public:
                    offending.append(f"{module}: {node.module}.{alias.name}")
    assert offending == []


def test_internal_helpers_are_not_declared():
    """Underscored names are internal: none is in an ``__all__``."""
    leaked = [f"{m}.{n}" for m in MODULES for n in (declared(m) or []) if n.startswith("_")]
    assert leaked == []


def test_the_library_has_no_test_support():
    assert not (Path(LIB) / "fusionrec" / "standalone.py").exists()
