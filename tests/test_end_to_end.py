"""The whole pipeline on generated data, as `make run` does it, then the notebooks on its lake.

One pipeline run is shared by the test session (``_reference.py``): it must end with a registered champion; a
second run with unchanged inputs skips every stage; no raw user id or key is found past
bronze; the three notebooks execute headless against the same lake and registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from fusionrec.cli import main
from fusionrec.config import load_config
from fusionrec.ingest.privacy import pseudonym_key
from _reference import KEY_ENV, TEST_KEY, pseudonym_key_env
from _privacy import Leaks, digests, generated_user_ids, scan_files, scan_lake, scan_mlflow

# In the session of the cluster tests (make pipeline-test), which run the same shared pipeline.
pytestmark = pytest.mark.pipeline

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("0*.ipynb"))


@pytest.fixture(scope="module")
def pipeline_run(local_pipeline):
    """The session's shared local pipeline run (``_reference.py``): its work folder, its
    ``--set`` items and its command line."""
    return local_pipeline.work, local_pipeline.overrides, local_pipeline.args


def test_pipeline_ends_with_champion_and_reruns_skip(pipeline_run, spark, capsys):
    work, overrides, args = pipeline_run
    recs = spark.read.format("delta").load(str(work / "lake" / "gold" / "recommendations"))
    assert recs.count() > 0
    assert recs.where("reason IS NULL OR reason = ''").count() == 0

    # The first run's train stage took the evaluation's choice on the same inputs.
    first = json.loads(Path(args[args.index("--report") + 1]).read_text())["results"]
    assert first["train"]["tuning"].startswith("the evaluation's choice on the same inputs"), first["train"]
    assert len(first["train"]["search"]) == 1
    assert first["train"]["als"]["rank"] == first["evaluation"]["chosen"]["rank"]

    capsys.readouterr()
    with pseudonym_key_env():
        assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(Path(args[args.index("--report") + 1]).read_text())["results"]["pipeline"]
    for stage in ("ingest", "embed", "evaluate", "train", "recommend", "register"):
        assert summary[stage] == "skipped (inputs unchanged)", summary
    assert summary["promote"] == "skipped (nothing newly registered)", summary
    assert "ran nothing; 7 skipped" in out and "champion: models:/" in out, out


def test_no_raw_user_id_or_key_past_bronze(pipeline_run, cfg, spark):
    """Every table but bronze, every MLflow run's params and tags, every artifact of every
    run and model, every report: no raw user id of the input, not the pseudonym key."""
    work, overrides, _ = pipeline_run
    key = pseudonym_key(load_config(PROJECT / "conf" / "local.yaml", overrides), env={KEY_ENV: TEST_KEY})
    # Copies of the model cache's files (tokenizer vocabulary, ONNX graph) predate the data.
    leaks = Leaks(generated_user_ids(work / "lake" / "_inputs" / "generated"), key,
                  static=digests(Path(cfg.embed.model_cache)))
    assert len(leaks.raw_ids) > 100
    scan_lake(spark, work / "lake", leaks)
    runs = scan_mlflow(f"sqlite:///{work / 'mlflow.db'}", leaks)
    others = [p for p in work.rglob("*") if not p.is_relative_to(work / "lake")]
    scan_files(leaks, others)
    assert leaks.tables >= 15 and runs >= 7
    assert any(p.suffix == ".npz" for p in (work / "mlartifacts").rglob("*"))  # the model's arrays were read
    assert any(p.is_file() for p in (work / "lake" / "reports").rglob("*")) and (work / "report.json").is_file()
    assert not leaks.found, leaks.found
def test_registered_model_serves_what_the_batch_wrote(pipeline_run, spark):
    """Every user of ``gold.recommendations``, asked for by the raw id of the input events,
    gets the same items, in the same order and with the same reasons, from the registered
    champion (serving) as from the batch top-K. The champion finds the lake's local key file
    itself (the run had no key in the environment)."""
    import mlflow

    from fusionrec.config import load_config
    from _privacy import reference_pseudonym

    work, overrides, _ = pipeline_run
    cfg = load_config(PROJECT / "conf" / "local.yaml", overrides, env={}, base_dir=PROJECT)
    batch: dict[str, list[tuple[str, str]]] = {}
    for row in sorted(spark.read.format("delta").load(str(work / "lake" / "gold" / "recommendations")).collect(),
                      key=lambda r: (r.user_id, r.rank)):
        batch.setdefault(row.user_id, []).append((row.item_id, row.reason))
    # The shared run's key (_reference.py), which serving reads from the environment too.
    key = pseudonym_key(cfg, env={KEY_ENV: TEST_KEY})
    raw_of = {reference_pseudonym(raw, key): raw for raw in generated_user_ids(work / "lake" / "_inputs" / "generated")}
    assert set(batch) <= set(raw_of)
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.model_name}@champion")
    users = sorted(batch)
    with pseudonym_key_env():
        served = model.predict(pd.DataFrame({"user_id": [raw_of[u] for u in users], "k": [cfg.model.k] * len(users)}))
    got: dict[str, list[tuple[str, str]]] = {}
    for row in served.sort_values(["request_id", "rank"]).itertuples():
        got.setdefault(users[row.request_id], []).append((row.item_id, row.reason))
    assert len(batch) > 50
    differing = [u for u in users if got.get(u) != batch[u]]
    assert not differing, [(u, batch[u], got.get(u)) for u in differing[:3]]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(pipeline_run, notebook, monkeypatch):
    work, overrides, _ = pipeline_run
    monkeypatch.setenv("FUSIONREC_CONF", str(PROJECT / "conf" / "local.yaml"))
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    monkeypatch.setenv("FUSIONREC_SET", " ".join(overrides + ["spark.driver_memory=2g"]))
    nb = nbformat.read(notebook, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(PROJECT)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
