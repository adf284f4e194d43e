"""The registered model is self-contained: logged from code with its serving code and pinned
requirements, it loads and predicts in a fresh virtual environment holding only those
requirements (no fusionrec, no Spark), and loading writes nothing into the artifact store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from _serving_env import requirement_set, serving_env
from fusionrec.registry.packaging import SERVING_PACKAGES, serving_modules, stage_serving_code

pytest_plugins = ["_registry_lake"]

SPARK_PACKAGES = ("pyspark", "sparknlp", "delta")

# Run in the clean environment: nothing of the project is importable before the model is
# loaded; then the champion by alias, a raw user id and a text.
CONSUMER = textwrap.dedent("""
    import importlib.util, json, sys
    before = {name: importlib.util.find_spec(name) is not None for name in ("fusionrec", "pyspark", "sparknlp")}
    import mlflow, pandas as pd
    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}@champion")
    out = model.predict(pd.DataFrame({"user_id": ["u1", None], "text": [None, "rockets, astronauts and space"],
                                      "k": [3, 3]}))
    import fusionrec
    print(json.dumps({"importable_before": before, "fusionrec": fusionrec.__file__,
                      "spark_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "sparknlp", "delta")),
                      "rows": out.to_dict("records")}))
""")

# Imports the staged serving code with the Spark packages made unimportable.
STAGED_IMPORT = textwrap.dedent("""
    import json, sys
    class NoSpark:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pyspark", "sparknlp", "delta"):
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, NoSpark())
    sys.path.insert(0, sys.argv[1])
    import fusionrec.registry.pyfunc
    print(json.dumps({m: getattr(sys.modules[m], "__file__", None) for m in sys.modules if m.split(".")[0] == "fusionrec"}))
""")


def _artifact_folder(client: MlflowClient, name: str) -> Path:
    """The champion's folder in the artifact store (its source is ``runs:/<run>/<folder>``)."""
    version = client.get_model_version_by_alias(name, "champion")
    run_id, _, folder = version.source.removeprefix("runs:/").partition("/")
    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / folder


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob("*"))}


def test_serving_code_imports_without_spark(tmp_path):
    """Every fusionrec module the model imports is among the staged code, and none needs Spark."""
    staged = stage_serving_code(tmp_path).parent
    done = subprocess.run([sys.executable, "-I", "-c", STAGED_IMPORT, str(staged)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(loaded) == serving_modules()
    assert all(Path(path).is_relative_to(staged) for path in loaded.values())
    assert not {"fusionrec.session", "fusionrec.embed.model", "fusionrec.model.train"} & set(loaded)


def test_model_is_logged_from_code_with_pinned_requirements(registered, registry_lake):
    lake_cfg, _ = registry_lake
    client = MlflowClient(lake_cfg.mlflow.tracking_uri)
    folder = _artifact_folder(client, lake_cfg.mlflow.model_name)
    conf = mlflow.models.Model.load(str(folder / "MLmodel")).flavors["python_function"]
    # Models from code: the code file and the serving modules, no pickled model.
    assert conf["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in conf
    assert (folder / Path(conf["model_code_path"]).name).is_file() and not (folder / "python_model.pkl").exists()
    assert conf["config"] == {"max_k": lake_cfg.registry.max_k, "max_text_length": lake_cfg.embed.max_sentence_length}
    shipped = sorted(".".join(p.relative_to(folder / "code").with_suffix("").parts).removesuffix(".__init__")
                     for p in (folder / "code").rglob("*.py"))
    assert shipped == serving_modules() and not list(folder.rglob("__pycache__"))
    # Every requirement pinned to the version the model was built with.
    pins = dict(line.split("==") for line in requirement_set(folder / "requirements.txt"))
    assert pins == {name: version(name) for name in SERVING_PACKAGES}
    assert not set(pins) & {"pyspark", "fusionrec", "cloudpickle"}


def test_loading_writes_nothing_into_the_artifact_store(registered, registry_lake, key_env):
    lake_cfg, _ = registry_lake
    client = MlflowClient(lake_cfg.mlflow.tracking_uri)
    folder = _artifact_folder(client, lake_cfg.mlflow.model_name)
    before = _listing(folder)
    mlflow.set_tracking_uri(lake_cfg.mlflow.tracking_uri)
    mlflow.set_registry_uri(lake_cfg.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{lake_cfg.mlflow.model_name}@champion")
    assert len(model.predict(pd.DataFrame({"user_id": ["u1"], "text": ["space"], "k": [3]}))) == 3
    assert _listing(folder) == before


def test_champion_predicts_in_a_clean_environment(registered, registry_lake, key_env, tmp_path):
    """A fresh venv with only the model's requirements.txt, installed offline, answers a raw
    user id and a text as the project's own environment does."""
    lake_cfg, truth = registry_lake
    name, uri = lake_cfg.mlflow.model_name, lake_cfg.mlflow.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{name}@champion"))
    python = serving_env(requirements)
    folder = _artifact_folder(MlflowClient(uri), name)
    before = _listing(folder)
    # -I: no PYTHONPATH (the project's lib), no user site; the key comes from key_env.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, "TMPDIR": str(tmp_path)}
    done = subprocess.run([str(python), "-I", "-c", CONSUMER, uri, name], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["importable_before"] == {"fusionrec": False, "pyspark": False, "sparknlp": False}
    assert result["spark_modules"] == [] and "/code/fusionrec/" in result["fusionrec"]
    assert _listing(folder) == before
    rows = pd.DataFrame(result["rows"])
    known, text = rows[rows.request_id == 0], rows[rows.request_id == 1]
    assert list(known["rank"]) == [1, 2, 3] and not known.fallback.any()
    assert not set(known.item_id) & set(truth["seen"]["u1"])
    assert set(text.item_id) <= set(truth["item_ids"][:8])  # space titles
    # The same answers as in the project's environment.
    here = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(
        pd.DataFrame({"user_id": ["u1", None], "text": [None, "rockets, astronauts and space"], "k": [3, 3]}))
    assert list(rows.item_id) == list(here.item_id) and list(rows.reason) == list(here.reason)
    assert rows.score.tolist() == pytest.approx(here.score.tolist(), rel=1e-6)
