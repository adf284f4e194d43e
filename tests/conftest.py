"""Shared fixtures: one real SparkSession (Delta + Spark NLP) for the whole test session.

Tests use the jars and the embedding model cache that ``make setup`` built in the
project's ``.cache``; everything they write (Delta tables, MLflow store, checkpoints)
goes to temporary folders.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from fusionrec.config import Config, LakeConfig, load_config

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The project's local configuration, redirected to a temporary work folder.

    The local pseudonym key of every lake the tests write - theirs and their child
    processes' (through the environment) - is one temporary file, not one file per
    temporary lake in the user's home.
    """
    work = tmp_path_factory.mktemp("work")
    key_file = work / "keys" / "pseudonym.key"
    os.environ["FUSIONREC_INGEST__PSEUDONYM_KEY_FILE"] = str(key_file)
    return load_config(
        PROJECT / "conf" / "local.yaml",
        overrides=[
            "spark.master=local[2]",
            "spark.driver_memory=4g",
            "spark.shuffle_partitions=4",
            # Test users number in the tens: one scoring task per block is the cost, not the BLAS.
            "model.user_blocks=2",
            f"spark.checkpoint_dir={work / 'checkpoints'}",
            f"lake.root={work / 'lake'}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            f"mlflow.artifact_location={work / 'mlartifacts'}",
            f"ingest.pseudonym_key_file={key_file}",
        ],
        env={},
        base_dir=PROJECT,
    )


@pytest.fixture(scope="session")
def spark(cfg: Config):
    from fusionrec.session import build_spark

    session = build_spark(cfg)
    yield session
    session.stop()


@pytest.fixture
def lake_cfg(cfg: Config, tmp_path: Path) -> Config:
    """``cfg`` with a fresh, empty lake root for one test."""
    return cfg.replace(lake=LakeConfig(root=str(tmp_path / "lake")))


@pytest.fixture
def mlflow_cfg(cfg: Config, tmp_path: Path) -> Config:
    """``cfg`` with a fresh SQLite MLflow store for one test."""
    return cfg.replace(mlflow=dataclasses.replace(
        cfg.mlflow,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=str(tmp_path / "mlartifacts"),
    ))


def table_path(cfg: Config, layer: str, name: str) -> str:
    """Where table ``layer.name`` of ``cfg``'s (local) lake is, as a plain path."""
    from fusionrec.lake import table_location

    return table_location(cfg.lake.root, f"{layer}.{name}").removeprefix("file:")


def lake_of(spark, cfg: Config):
    """The :class:`~fusionrec.lake.Lake` of ``cfg`` through ``spark``."""
    from fusionrec.lake import Lake

    return Lake(spark, cfg.lake)


def shared_dataset(name: str) -> Path:
    """A dataset from ../shared/datasets; the test is skipped where it is absent (a user's clone)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present (developer/CI data only)")
    return path


@pytest.fixture(scope="session")
def hadoop(tmp_path_factory: pytest.TempPathFactory):
    """A real HDFS + YARN cluster on 127.0.0.1 (one JVM), started once for the tests that ask for it."""
    from _hadoop import HadoopMiniCluster

    with HadoopMiniCluster(work_dir=tmp_path_factory.mktemp("hadoop")) as running:
        print(f"\nHadoop mini cluster (HDFS + YARN) up in {running.start_s:.1f}s")
        pgid = running.process.pid
        yield running
    assert running.process is None and not running.group_alive(pgid)  # no JVM, no container left



@pytest.fixture(scope="session")
def local_pipeline(cfg: Config, spark, tmp_path_factory: pytest.TempPathFactory):
    """One ``local[2]`` pipeline run on seeded generated data, shared by the end-to-end and
    the cluster tests (see ``_reference.py``)."""
    from _reference import run_local_pipeline

    return run_local_pipeline(cfg, tmp_path_factory.mktemp("local-pipeline"))


#: Fixtures that start the test session's JVM (directly or through what they build on).
JVM_FIXTURES = frozenset({"spark", "local_pipeline", "registry_lake"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the session's SparkSession ``jvm``, so that ``make test-fast``
    (``-m "not jvm ..."``) is the pure-Python tier. Tests that start JVMs in child processes
    carry the marker themselves."""
    for item in items:
        if JVM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.jvm)
