"""What travels with the registered model: its code and its pinned requirements.

The model is logged from code (MLflow's *models from code*), not as a pickled object:
:data:`MODEL_CODE` is the file MLflow runs to build it at load time. The fusionrec modules
that file imports, and what they import in turn (:func:`serving_modules`: the pyfunc, the
numpy bundle and scorer, the request-time pseudonym, the ONNX encoder, the package
``__init__`` files above them), are logged as its ``code_paths``, so that a process without
fusionrec installed loads it; none of them imports pyspark at module level. Its
requirements (:func:`serving_requirements`) pin the packages those modules use to the
versions installed here.

``python -m fusionrec.registry.packaging`` prints the requirements (``make serving-wheels``
downloads their wheels).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import tempfile
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from importlib.metadata import version
from pathlib import Path
from typing import Iterable, Iterator

import mlflow
import pandas as pd

from fusionrec.registry.pyfunc import BUNDLE_ARTIFACT, SIGNATURE, TEXT_MODEL_ARTIFACT

__all__ = ["MODEL_CODE", "SERVING_PACKAGES", "log_serving_model", "serving_modules", "serving_requirements",
           "stage_serving_code"]

#: The file MLflow runs to build the model (it calls ``mlflow.models.set_model``); logged
#: from its source, wherever fusionrec is imported from.
MODEL_CODE = Path(__file__).resolve().with_name("model_code.py")
#: Distributions the serving modules import (threadpoolctl: one BLAS thread per server worker).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "PyYAML", "onnxruntime", "tokenizers", "threadpoolctl")

_MODEL_CODE_MODULE = "fusionrec.registry.model_code"


def serving_requirements() -> list[str]:
    """``name==version`` of each of :data:`SERVING_PACKAGES`, as installed.

    Example
    -------
    >>> serving_requirements()[0].startswith("mlflow==")
    True
    """
    return [f"{name}=={version(name)}" for name in SERVING_PACKAGES]


def _spec(module: str) -> ModuleSpec | None:
    """``module``'s spec, None when it is not a module (a name imported *from* a module)."""
    try:
        return importlib.util.find_spec(module)
    except (ImportError, AttributeError, ValueError):
        return None


def _module_text(module: str) -> str:
    """The source of ``module``, read through its loader: from a folder, or from the zip
    ``spark-submit --py-files`` ships fusionrec in."""
    spec = _spec(module)
    source = spec.loader.get_source(module) if spec is not None and spec.loader is not None else None  # type: ignore[attr-defined]
    if source is None:
        raise FileNotFoundError(f"{module}: no Python source to ship with the model")
    return source


def _relative_file(module: str) -> Path:
    """``fusionrec/a/__init__.py`` for a package ``fusionrec.a``, else ``fusionrec/a/b.py``."""
    spec = _spec(module)
    parts = module.split(".")
    if spec is not None and spec.submodule_search_locations is not None:
        return Path(*parts, "__init__.py")
    return Path(*parts[:-1], parts[-1] + ".py")


def _module_level_imports(module: str) -> set[str]:
    """Modules imported when ``module`` is imported: its module-level import statements,
    not those in functions (run later, if ever) or under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            visit(ast.iter_child_nodes(node))

    visit(ast.parse(_module_text(module)).body)
    return found


def serving_modules() -> list[str]:
    """The fusionrec modules that loading and serving the model imports, sorted.

    The closure of :data:`MODEL_CODE`'s module-level imports over fusionrec, with every
    package above a module (its ``__init__``); names imported *from* a module that are not
    submodules are ignored.
    """
    todo, seen = [_MODEL_CODE_MODULE], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:n]) for n in range(1, len(parts)))
        todo.extend(name for name in _module_level_imports(module)
                    if name.split(".")[0] == "fusionrec" and _spec(name) is not None)
    seen.discard(_MODEL_CODE_MODULE)  # logged as the model's code file, not among code_paths
    return sorted(seen)


def stage_serving_code(folder: str | Path) -> Path:
    """Copy the :func:`serving_modules` into ``folder/fusionrec`` (same layout); return that.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     (stage_serving_code(tmp) / "registry" / "pyfunc.py").is_file()
    True
    """
    folder = Path(folder)
    for module in serving_modules():
        target = folder / _relative_file(module)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_module_text(module), encoding="utf-8")
    return folder / "fusionrec"


@contextmanager
def _no_bytecode() -> Iterator[None]:
    """No ``__pycache__`` in the logged model: MLflow runs the model's code once while logging
    (to check the input example), in the folder it then uploads."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def log_serving_model(*, name: str, bundle_dir: str | Path, text_model_dir: str | Path | None, max_k: int,
                      max_text_length: int, input_example: pd.DataFrame) -> str:
    """Save the fused recommender from code, with its code and requirements, and log it among
    the active run's artifacts under ``name``; return its URI, ``runs:/<run id>/<name>``.

    MLflow loads a ``runs:/`` model into a new temporary folder. A model in a local artifact
    folder that is loaded by its own path (a logged model's ``models:/<model id>``, or a
    version registered from one) is loaded in place, and MLflow writes its
    ``registered_model_meta`` file (Python its bytecode caches) into the artifact store.

    Parameters
    ----------
    name : the model's folder in the run (``recommender``).
    bundle_dir : a saved :class:`fusionrec.registry.bundle.ModelBundle`.
    text_model_dir : the ONNX sentence model's folder (``model.onnx``, ``assets/vocab.txt``),
        or None for a model without a text encoder.
    max_k, max_text_length : the limits, logged as the model's ``model_config``.
    input_example : a request logged with the model.

    Returns
    -------
    str
        The model's URI, to load it or register it.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_serving_model: no active MLflow run")
    artifacts = {BUNDLE_ARTIFACT: str(bundle_dir)}
    if text_model_dir is not None:
        artifacts[TEXT_MODEL_ARTIFACT] = str(text_model_dir)
    with tempfile.TemporaryDirectory() as tmp, _no_bytecode():
        model_dir = Path(tmp) / name
        # A file of its own: fusionrec may be imported from a zip (spark-submit --py-files).
        model_code = Path(tmp) / MODEL_CODE.name
        model_code.write_text(_module_text(_MODEL_CODE_MODULE), encoding="utf-8")
        mlflow.pyfunc.save_model(
            path=str(model_dir),
            python_model=str(model_code),
            model_config={"max_k": int(max_k), "max_text_length": int(max_text_length)},
            code_paths=[str(stage_serving_code(Path(tmp) / "code"))],
            artifacts=artifacts,
            signature=SIGNATURE,
            input_example=input_example,
            pip_requirements=serving_requirements(),
        )
        mlflow.log_artifacts(str(model_dir), artifact_path=name)
    return f"runs:/{run.info.run_id}/{name}"


if __name__ == "__main__":
    print("\n".join(serving_requirements()))
