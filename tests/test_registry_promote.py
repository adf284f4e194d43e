"""The champion/challenger gate: promote, refuse, force; on a real MLflow registry."""

from __future__ import annotations

import dataclasses
import shutil

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pyspark.ml.recommendation import ALSModel

from fusionrec.cli import main
from fusionrec.errors import InputError
from fusionrec.evaluate.results import EvaluationResults
from fusionrec.registry.promote import (
    CHALLENGER, CHAMPION, TAG_METRIC_VALUE, TAG_SPLIT, current_champion, decide, promote_version)
from _registry_lake import evaluation_results
from fusionrec.registry.register import evaluation_from_results, register_model
from fusionrec.registry.store import StoreError, configure_mlflow
from conftest import table_path, lake_of
from fusionrec.model.als import AlsParams, fit_als, save_als
from fusionrec.runlog import RunReport

pytest_plugins = ["_registry_lake"]


@pytest.mark.parametrize("challenger, champion, force, has_champion, same_split, promoted, reason", [
    (0.30, 0.28, False, True, True, True, "challenger 0.3000 >= champion 0.2800"),
    (0.298, 0.30, False, True, True, True, "- tolerance 0.005"),  # worse, but within tolerance
    (0.29, 0.30, False, True, True, False, "challenger 0.2900 < champion 0.3000 - tolerance 0.005"),
    (0.10, 0.30, True, True, True, True, "forced (--force-promote)"),
    (0.10, None, False, False, True, True, "no current champion"),
    (0.40, 0.30, False, True, False, False, "different split"),
    (None, 0.30, False, True, True, False, "no evaluation metric"),
    (float("nan"), None, False, False, True, False, "no evaluation metric"),
])
def test_decide(challenger, champion, force, has_champion, same_split, promoted, reason):
    got, why = decide(challenger, champion, 0.005, force=force, has_champion=has_champion, same_split=same_split)
    assert got is promoted and reason in why


def _version(client: MlflowClient, name: str, metric: float, split: str = "s1") -> str:
    """A real registered version whose run holds a small artifact, tagged like register_model does."""
    with mlflow.start_run() as run:
        mlflow.log_dict({"metric": metric}, "model/info.json")
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_model_version_tag(name, version.version, TAG_METRIC_VALUE, repr(metric))
    client.set_model_version_tag(name, version.version, TAG_SPLIT, split)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def test_promote_refuse_force_on_the_registry(mlflow_cfg):
    client = configure_mlflow(mlflow_cfg.mlflow)
    rc, name = mlflow_cfg.registry, "gate-test"

    v1 = _version(client, name, 0.30)
    first = promote_version(client, rc, name, v1)
    assert first.promoted and first.reason == "no current champion"
    assert str(current_champion(client, name).version) == v1

    v2 = _version(client, name, 0.25)
    refused = promote_version(client, rc, name, v2)
    assert not refused.promoted and (refused.challenger_metric, refused.champion_metric) == (0.25, 0.30)
    assert str(current_champion(client, name).version) == v1
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == v2
    run = client.get_run(client.get_model_version(name, v2).run_id)
    assert run.data.tags["promotion.decision"] == "refused" and run.data.tags["promotion.forced"] == "false"
    assert run.data.metrics["promotion.challenger.ndcg_at_10"] == 0.25
    assert run.data.metrics["promotion.champion.ndcg_at_10"] == 0.30

    v3 = _version(client, name, 0.297)  # within the 0.005 tolerance
    assert promote_version(client, rc, name, v3).promoted
    assert str(current_champion(client, name).version) == v3

    v4 = _version(client, name, 0.31, split="s2")  # better, but on another split: not comparable
    assert not promote_version(client, rc, name, v4).promoted

    forced = promote_version(client, rc, name, v4, force=True)
    assert forced.promoted and forced.forced and forced.reason == "forced (--force-promote)"
    assert str(current_champion(client, name).version) == v4
    assert client.get_model_version(name, v4).tags["promotion.forced"] == "true"
    assert client.get_run(client.get_model_version(name, v4).run_id).data.tags["promotion.decision"] == "promoted"


def test_promote_command(mlflow_cfg, tmp_path, capsys):
    client = configure_mlflow(mlflow_cfg.mlflow)
    name = mlflow_cfg.mlflow.model_name
    _version(client, name, 0.30)
    v2 = _version(client, name, 0.20)
    store = [f"--set=mlflow.tracking_uri={mlflow_cfg.mlflow.tracking_uri}",
             f"--set=mlflow.artifact_location={mlflow_cfg.mlflow.artifact_location}"]
    assert main(["promote", "--version", "1", *store]) == 0
    assert main(["promote", *store, "--report", str(tmp_path / "r.json")]) == 0  # the challenger, v2: refused
    assert "refused" in capsys.readouterr().out
    assert str(current_champion(client, name).version) == "1"
    assert main(["promote", "--force-promote", *store]) == 0
    assert str(current_champion(client, name).version) == v2
    assert main(["promote", "--version", "99", *store]) == 2


def test_registering_a_worse_model_is_refused_end_to_end(registered, registry_lake, spark):
    lake_cfg, _ = registry_lake
    worse = evaluation_from_results(evaluation_results(0.20), "test")
    # The train stage saves the fitted ALSModel in the lake; registration logs it with mlflow.spark.
    interactions = spark.read.format("delta").load(table_path(lake_cfg, "gold", "interactions"))
    als = fit_als(interactions, dataclasses.replace(lake_cfg.model, max_iter=3), AlsParams(2, 0.1, 1.0))
    save_als(lake_of(spark, lake_cfg), als)
    try:
        result = register_model(lake_of(spark, lake_cfg), lake_cfg, RunReport("register"), evaluation=worse)
    finally:
        for name in ("als_model", "als_user_ids", "als_item_ids"):
            shutil.rmtree(table_path(lake_cfg, "model", name))
    client = MlflowClient(lake_cfg.mlflow.tracking_uri)
    als_uri = client.get_run(result.run_id).data.tags["als.model_uri"]
    assert "spark" in mlflow.models.get_model_info(als_uri).flavors

    # A Spark user loads it natively and scores with it, ids mapped through the saved indexes.
    loaded = mlflow.spark.load_model(als_uri).stages[-1]
    assert isinstance(loaded, ALSModel) and loaded.rank == 2
    n_users, n_items = als.user_ids.count(), als.item_ids.count()
    top = loaded.recommendForAllUsers(3)
    assert top.count() == n_users and all(len(r.recommendations) == 3 for r in top.collect())
    pairs = interactions.join(als.user_ids, "user_id").join(als.item_ids, "item_id")
    predicted = {(r.user_id, r.item_id): r.prediction for r in loaded.transform(pairs).collect()}
    assert len(predicted) == interactions.count() and n_items == interactions.select("item_id").distinct().count()
    users = {r.user_id: np.array(r.factors) for r in als.users.collect()}
    items = {r.item_id: np.array(r.factors) for r in als.items.collect()}
    for (user, item), prediction in predicted.items():
        assert prediction == pytest.approx(float(users[user] @ items[item]), abs=1e-5)

    assert not result.decision.promoted
    assert result.decision.champion_version == registered.version and result.decision.champion_metric == 0.30
    assert str(client.get_model_version_by_alias(lake_cfg.mlflow.model_name, CHAMPION).version) == registered.version
    assert str(client.get_model_version_by_alias(lake_cfg.mlflow.model_name, CHALLENGER).version) == result.version


def test_unreachable_store_fails_clearly_and_leaves_the_lake_alone(registry_lake, spark):
    lake_cfg, _ = registry_lake
    broken = lake_cfg.replace(mlflow=dataclasses.replace(lake_cfg.mlflow,
                                                         tracking_uri="sqlite:////proc/forbidden/mlflow.db"))
    lake = lake_of(spark, lake_cfg)
    before = lake.version("gold.recommendations")
    with pytest.raises((StoreError, OSError), match="/proc/forbidden"):
        register_model(lake_of(spark, broken), broken, RunReport("register"))
    assert lake.version("gold.recommendations") == before


def test_evaluation_results_are_flattened_for_the_gate(cfg):
    from fusionrec.registry.register import evaluation_rows, promotion_metric

    rows = evaluation_rows(evaluation_results(0.3))
    hybrid = next(r for r in rows if r["model"] == "hybrid" and "slice" not in r)
    assert hybrid["ndcg@10"] == 0.3 and hybrid["recall@10"] == 0.3
    cold = next(r for r in rows if r.get("slice") == "cold_items" and r["model"] == "hybrid")
    assert cold == {"model": "hybrid", "slice": "cold_items", "recall@10": 0.2}
    assert promotion_metric(rows, cfg, "eval.json") == 0.3
    with pytest.raises(InputError, match="eval.json: no row with model='hybrid'"):
        promotion_metric([r for r in rows if r["model"] != "hybrid"], cfg, "eval.json")
    with pytest.raises(InputError, match="expected the evaluation results with a 'table' list"):
        EvaluationResults.from_json('{"rows": []}')
    with pytest.raises(InputError, match="table rows need 'model' and 'k'"):
        EvaluationResults.from_json('{"table": [{"ndcg": 0.3}]}')
    assert EvaluationResults.from_json(evaluation_results(0.3).to_json()) == evaluation_results(0.3)
