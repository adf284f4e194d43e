"""The pipeline runs the tests share: one ``local[2]`` run of the pipeline on seeded
generated data, and the comparison of a cluster run's lake with it.

The local run is a session fixture (``local_pipeline`` in conftest.py): the end-to-end
tests read its lake and registry, and the standalone and YARN tests run the same
pipeline on the same data through ``spark-submit`` and compare their lakes with it, so
the local run happens once per test session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fusionrec.cli import main
from fusionrec.config import LakeConfig
from fusionrec.evaluate.chart import EVALUATION_NAME, evaluation_report
from fusionrec.lake import Lake

#: ``fusionrec pipeline`` arguments of every shared run: seeded generated inputs.
GENERATED = ["--generate", "6000", "--seed", "7"]
#: Settings of every shared run besides the lake's place: the tests check where and how the
#: pipeline runs, not which setting wins, so the ALS search stops after two fits and the
#: ranker is not chosen among three kinds. It is LambdaMART, the kind whose fit needs the
#: cluster most (XGBoost's barrier stage, a worker per task slot); ``make test`` fits and
#: chooses among all three (test_model_parts.py, and test_model_pipeline.py with
#: the default `auto`).
SHARED_SETTINGS = ["model.search_max_fits=2", "model.ranker=lambdamart"]
#: Cluster mode refuses to pseudonymise user ids without a real key, so every shared run -
#: local and on a cluster - uses this one through the environment, and the lakes compare.
KEY_ENV, TEST_KEY = "FUSIONREC_PSEUDONYM_KEY", "fusionrec-shared-test-key"


@contextmanager
def pseudonym_key_env() -> Iterator[None]:
    """The shared runs' key in this process's environment, for as long as the block runs."""
    before = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = TEST_KEY
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = before


def cluster_overrides(cfg, work: Path) -> list[str]:
    """``--set`` options of a cluster run writing under ``work``: the local run's settings."""
    return [
        "--set", f"lake.root={work / 'lake'}",
        "--set", f"spark.checkpoint_dir={work / 'checkpoints'}",
        "--set", f"embed.model_cache={cfg.embed.model_cache}",
        "--set", f"embed.wheels_dir={cfg.embed.wheels_dir}",
        "--set", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        "--set", f"mlflow.artifact_location={work / 'mlartifacts'}",
        # The local run's partitioning and batches: the int8 encoder quantises activations
        # per batch, so other batches would give (slightly) other vectors.
        "--set", f"spark.shuffle_partitions={cfg.spark.shuffle_partitions}",
        "--set", f"embed.partitions={cfg.embed.partitions}",
        "--set", f"embed.batch_size={cfg.embed.batch_size}",
        *[arg for item in SHARED_SETTINGS for arg in ("--set", item)],
    ]


@dataclass(frozen=True)
class LocalPipeline:
    """A finished ``fusionrec pipeline`` run in this process (``local[2]``) under ``work``."""

    work: Path
    overrides: list[str]  # its ``--set`` items
    args: list[str]  # its command line, to run it again
    wall_s: float

    @property
    def lake(self) -> Path:
        return self.work / "lake"


def run_local_pipeline(cfg, work: Path) -> LocalPipeline:
    """The pipeline on the generated data, as ``make run`` does it, in ``local[2]``."""
    overrides = [
        f"spark.master={cfg.spark.master}",
        f"spark.shuffle_partitions={cfg.spark.shuffle_partitions}",
        f"spark.checkpoint_dir={work / 'checkpoints'}",
        f"lake.root={work / 'lake'}",
        f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        f"mlflow.artifact_location={work / 'mlartifacts'}",
        *SHARED_SETTINGS,
    ]
    args = ["pipeline", *GENERATED, "--report", str(work / "report.json"), "--quiet"]
    for item in overrides:
        args += ["--set", item]
    start = time.perf_counter()
    with pseudonym_key_env():
        code = main(args)
    assert code == 0, (work / "report.json").read_text()
    return LocalPipeline(work=work, overrides=overrides, args=args, wall_s=time.perf_counter() - start)


def table_counts(spark, lake_root: str) -> dict[str, int]:
    """Rows of every table of the lake at ``lake_root`` (any Hadoop URI)."""
    lake = Lake(spark, LakeConfig(root=str(lake_root)))
    return {table: lake.read(table).count() for table in lake.tables()}


def evaluation_rows(spark, lake_root: str) -> dict[tuple[str, int], dict]:
    lake = Lake(spark, LakeConfig(root=str(lake_root)))
    data = lake.read_json(f"{evaluation_report(EVALUATION_NAME)}.json", written_by="evaluate")
    return {(r["model"], r["k"]): r for r in data["table"]}


def assert_lakes_agree(spark, remote_root: str, local_root: str) -> None:
    """The same row count in every table and evaluation metrics within a tolerance.

    About a hundred test users: 0.05 is a few users' worth of difference at K=10 (ALS's
    parallel solves may sum in another order on other executors). The text-based models
    agree as closely only because the cluster runs embed in the local run's batches.
    """
    remote_counts = table_counts(spark, remote_root)
    assert remote_counts == table_counts(spark, local_root)
    assert remote_counts["gold.recommendations"] > 0 and remote_counts["silver.events"] > 0
    there, here = evaluation_rows(spark, remote_root), evaluation_rows(spark, local_root)
    assert there.keys() == here.keys()
    for key, row in here.items():
        for metric in ("precision", "recall", "ndcg", "hit_rate"):
            assert there[key][metric] == pytest.approx(row[metric], abs=0.05), (key, metric)


