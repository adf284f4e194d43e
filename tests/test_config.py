from pathlib import Path

import pytest

from fusionrec.config import Config, ConfigError, load_config

PROJECT = Path(__file__).resolve().parents[1]


def test_defaults_resolve_paths_against_base(tmp_path):
    cfg = load_config(None, env={}, base_dir=tmp_path)
    assert isinstance(cfg, Config)
    assert cfg.lake.root == str(tmp_path / "work" / "lake")
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/work/mlflow.db"
    assert cfg.spark.checkpoint_dir.startswith(str(tmp_path))


def test_project_confs_load():
    local = load_config(PROJECT / "conf" / "local.yaml", env={}, base_dir=PROJECT)
    cluster = load_config(PROJECT / "conf" / "cluster.yaml", env={}, base_dir=PROJECT)
    assert local.mode == "local" and local.spark.master == "local[*]"
    assert cluster.mode == "cluster" and cluster.spark.master is None and cluster.spark.jars_dir is None


def test_precedence_file_env_override(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("spark:\n  shuffle_partitions: 3\n  driver_memory: 2g\n")
    cfg = load_config(conf, overrides=["spark.shuffle_partitions=5"],
                      env={"FUSIONREC_SPARK__DRIVER_MEMORY": "9g", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"},
                      base_dir=tmp_path)
    assert cfg.spark.shuffle_partitions == 5
    assert cfg.spark.driver_memory == "9g"
    assert cfg.mlflow.tracking_uri == "http://127.0.0.1:5000"


def test_unknown_key_is_named(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("spark:\n  drvier_memory: 2g\n")
    with pytest.raises(ConfigError, match=r"unknown key 'spark.drvier_memory'"):
        load_config(conf, env={})
    with pytest.raises(ConfigError, match=r"unknown key 'nosuch'"):
        load_config(None, overrides=["nosuch.key=1"], env={})


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'spark.shuffle_partitions' must be an integer, got 'many'"):
        load_config(None, overrides=["spark.shuffle_partitions=many"], env={})
    with pytest.raises(ConfigError, match=r"'spark' must be a mapping"):
        load_config(None, overrides=["spark=3"], env={})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})


def test_flat_lists_every_leaf():
    flat = load_config(None, env={}).flat()
    assert flat["spark.shuffle_partitions"] == 8
    assert flat["embed.dimension"] == 384
    assert "mode" in flat


def test_s3_conf_is_cluster_conf_with_the_lake_on_s3a():
    cluster = load_config(PROJECT / "conf" / "cluster.yaml", env={}, base_dir=PROJECT).to_dict()
    s3 = load_config(PROJECT / "conf" / "cluster-s3.yaml", env={}, base_dir=PROJECT).to_dict()
    assert s3["lake"]["root"].startswith("s3a://") and s3["spark"]["checkpoint_dir"].startswith("s3a://")
    extra = s3["spark"]["extra"]
    assert extra["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert extra["spark.hadoop.fs.s3a.aws.credentials.provider"] == "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
    assert not [k for k in extra if "key" in k.lower() or "secret" in k.lower() or "token" in k.lower()]
    # Everything but where things are stored is the cluster configuration.
    for section in set(cluster) - {"spark", "lake", "evaluate"}:
        assert s3[section] == cluster[section], section
    assert {k: v for k, v in s3["lake"].items() if k != "root"} == {k: v for k, v in cluster["lake"].items() if k != "root"}


def test_s3_jars_only_for_an_s3a_lake(tmp_path):
    from fusionrec.session import SetupError, session_jars

    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "delta.jar").touch()
    (tmp_path / "jars-s3").mkdir()
    (tmp_path / "jars-s3" / "hadoop-aws.jar").touch()
    dirs = [f"spark.jars_dir={tmp_path / 'jars'}", f"spark.s3_jars_dir={tmp_path / 'jars-s3'}"]
    local = load_config(None, overrides=dirs, env={}, base_dir=tmp_path)
    s3 = load_config(None, overrides=[*dirs, "lake.root=s3a://bucket/lake"], env={}, base_dir=tmp_path)
    assert session_jars(local) == [str(tmp_path / "jars" / "delta.jar")]
    assert session_jars(s3) == [str(tmp_path / "jars-s3" / "hadoop-aws.jar"), str(tmp_path / "jars" / "delta.jar")]
    (tmp_path / "jars-s3" / "hadoop-aws.jar").unlink()
    with pytest.raises(SetupError, match=r"spark.s3_jars_dir: no jars in .*make jars-s3"):
        session_jars(s3)
    assert session_jars(local) == [str(tmp_path / "jars" / "delta.jar")]
