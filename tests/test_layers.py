"""No module of lib/fusionrec imports a module of a higher layer.

The layers, bottom to top: the configuration; the infrastructure every stage uses (run log,
lake layout, session, Delta commits); the stages in pipeline order (ingest and the data
generator, embed, features); validation (split and metrics, used both to tune the model
and to evaluate it); the model; the evaluation harness; the registry; the stream (it
scores with the serving bundle); the commands; the command line. A module may import its
own layer and the layers below it. Imports are read with ``ast`` (every import statement,
including those inside functions), not by importing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"

#: Module-name prefixes by layer, bottom first.
LAYERS: list[tuple[str, ...]] = [
    ("fusionrec.errors", "fusionrec.config"),
    ("fusionrec.runlog", "fusionrec.lake", "fusionrec.session", "fusionrec.commits", "fusionrec.stages"),
    ("fusionrec.ingest", "fusionrec.generate", "fusionrec.maintain"),
    ("fusionrec.embed",),
    ("fusionrec.features",),
    ("fusionrec.validation",),
    ("fusionrec.model",),
    ("fusionrec.evaluate",),
    ("fusionrec.registry",),
    ("fusionrec.stream",),
    ("fusionrec.commands",),
    ("fusionrec.cli", "fusionrec.__main__"),
]


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (the longest matching prefix decides); None if unplaced."""
    best: tuple[int, int] | None = None
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str, module: str, is_package: bool) -> set[str]:
    """The fusionrec modules ``source`` (the text of ``module``) imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            # ``from fusionrec.x import y`` may name a submodule y
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in out if m == "fusionrec" or m.startswith("fusionrec.")}


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """``"a -> b"`` for every import of ``sources`` (``{module: (text, is_package)}``) that
    runs up a layer, and ``"a: no layer"`` for every module the table does not place."""
    found = []
    for module, (text, is_package) in sorted(sources.items()):
        own = layer_of(module)
        if own is None:
            if module != "fusionrec":
                found.append(f"{module}: no layer")
            continue
        for target in sorted(imported(text, module, is_package)):
            other = layer_of(target)
            if other is not None and other > own:
                found.append(f"{module} -> {target}")
    return found


def library_sources() -> dict[str, tuple[str, bool]]:
    root = LIB
    return {module_name(p, root): (p.read_text(), p.name == "__init__.py")
            for p in sorted((root / "fusionrec").rglob("*.py"))}


def test_no_import_runs_up_a_layer():
    sources = library_sources()
    assert "fusionrec.model.train" in sources and "fusionrec.validation.split" in sources
    assert violations(sources) == []


@pytest.mark.parametrize("module, text, expected", [
    ("fusionrec.model.train", "from fusionrec.evaluate.split import relevant\n",
     ["fusionrec.model.train -> fusionrec.evaluate.split", "fusionrec.model.train -> fusionrec.evaluate.split.relevant"]),
    ("fusionrec.ingest.clean", "def f():\n    import fusionrec.registry.store\n",
     ["fusionrec.ingest.clean -> fusionrec.registry.store"]),
    ("fusionrec.model.fusion", "from ..evaluate import harness\n",
     ["fusionrec.model.fusion -> fusionrec.evaluate", "fusionrec.model.fusion -> fusionrec.evaluate.harness"]),
    ("fusionrec.newstage", "import os\n", ["fusionrec.newstage: no layer"]),
    ("fusionrec.evaluate.harness", "from fusionrec.model.train import fit_pipeline\n", []),
])
def test_the_check_catches_an_import_up_a_layer(module, text, expected):
    assert violations({module: (text, False)}) == expected
