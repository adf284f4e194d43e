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


@pytest.mark.parametrize("override, message", [
    ("model.rank=[1,", "--set model.rank: value '[1,' for 'model.rank' is not valid YAML (expected the node content"),
    ("model.rank=-5", "--set model.rank: 'model.rank' must be >= 1, got -5"),
    ("model.k=0", "--set model.k: 'model.k' must be >= 1, got 0"),
    ("evaluate.test_fraction=1.7", "--set evaluate.test_fraction: 'evaluate.test_fraction' must be in (0, 1), got 1.7"),
    ("evaluate.validation_fraction=0", "'evaluate.validation_fraction' must be in (0, 1), got 0.0"),
    ("spark.shuffle_partitions=0", "--set spark.shuffle_partitions: 'spark.shuffle_partitions' must be >= 1, got 0"),
    ("lake.root=", "--set lake.root: 'lake.root' must be a non-empty string, got ''"),
    ("embed.partitions=0", "'embed.partitions' must be >= 1, got 0"),
    ("embed.batch_size=-1", "'embed.batch_size' must be >= 1, got -1"),
    ("registry.max_k=0", "'registry.max_k' must be >= 1, got 0"),
    ("model.alpha=-0.5", "'model.alpha' must be >= 0, got -0.5"),
    ("model.reg_param=-1", "'model.reg_param' must be >= 0, got -1.0"),
    ("model.search_rank=[8, 0]", "'model.search_rank' must be a list of values >= 1, got [8, 0]"),
    ("mode=prod", "--set mode: 'mode' must be one of local, cluster, got 'prod'"),
    ("embed.source=hub", "'embed.source' must be one of packages, onnx_dir, pretrained, got 'hub'"),
    ("embed.source=onnx_dir", "'embed.onnx_dir' must be set when embed.source is onnx_dir, got None"),
    ("spark.driver_memory=lots", "'spark.driver_memory' must be a size such as 512m or 6g, got 'lots'"),
    ("ingest.rating_min=6", "--set ingest.rating_min: 'ingest.rating_min' must be below ingest.rating_max, got 6.0"),
    ("ingest.min_ts=yesterday", "'ingest.min_ts' must be an ISO date such as 1995-01-01, got 'yesterday'"),
])
def test_bad_override_is_one_line_naming_option_and_key(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides=[override], env={})
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_valid_edge_values_pass():
    cfg = load_config(None, overrides=["model.rank=1", "evaluate.test_fraction=0.99", "model.alpha=0",
                                       "ingest.min_ts=2000-01-01", "spark.driver_memory=512m"], env={})
    assert (cfg.model.rank, cfg.model.alpha, cfg.ingest.min_ts) == (1, 0.0, "2000-01-01")


def test_bad_environment_value_names_the_variable_not_the_file():
    conf = PROJECT / "conf" / "local.yaml"
    for env, message in [
        ({"FUSIONREC_MODEL__RANK": "[1,"}, "$FUSIONREC_MODEL__RANK: value '[1,' for 'model.rank' is not valid YAML"),
        ({"FUSIONREC_MODEL__RANK": "0"}, "$FUSIONREC_MODEL__RANK: 'model.rank' must be >= 1, got 0"),
        ({"FUSIONREC_NOSUCH__KEY": "1"}, "$FUSIONREC_NOSUCH__KEY: unknown key 'nosuch'"),
        ({"FUSIONREC_SPARK__SHUFFLE_PARTITIONS": "x"}, "$FUSIONREC_SPARK__SHUFFLE_PARTITIONS: 'spark.shuffle_partitions' must be an integer"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(conf, env=env, base_dir=PROJECT)
        assert str(caught.value).startswith(message) and "local.yaml" not in str(caught.value)


def test_yaml_file_errors_name_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("spark:\n  shuffle_partitions: 3\nmodel:\n  rank: [1,\n  k: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken, env={})
    assert str(caught.value).startswith(f"{broken}:6: not valid YAML (while parsing a flow sequence opened on line 4")
    assert "\n" not in str(caught.value)
    out_of_range = tmp_path / "range.yaml"
    out_of_range.write_text("spark:\n  shuffle_partitions: 3\nmodel:\n  rank: 0\n")
    with pytest.raises(ConfigError, match=rf"^{out_of_range}:4: 'model.rank' must be >= 1, got 0$"):
        load_config(out_of_range, env={})
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  k: 5\n  rnak: 8\n")
    with pytest.raises(ConfigError, match=rf"^{typo}:3: unknown key 'model.rnak'"):
        load_config(typo, env={})
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: is a directory"):
        load_config(tmp_path, env={})
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("mlflow:\n  experiment: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text"):
        load_config(latin1, env={})


def test_every_numeric_setting_has_a_range():
    """A new numeric setting must get its range in RULES (a missing one fails here)."""
    import dataclasses
    import typing

    from fusionrec.config import RULES

    def numeric(tp) -> bool:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return tp in (int, float) or any(numeric(a) for a in args)

    missing, checked = [], 0
    for section, section_type in typing.get_type_hints(Config).items():
        hints = typing.get_type_hints(section_type) if dataclasses.is_dataclass(section_type) else {}
        for name, tp in hints.items():
            checked += numeric(tp)
            if numeric(tp) and f"{section}.{name}" not in RULES:
                missing.append(f"{section}.{name}")
    assert missing == [] and checked > 60
    unknown = [key for key in RULES if key != "mode" and key.split(".")[1] not in
               {f.name for f in dataclasses.fields(typing.get_type_hints(Config)[key.split(".")[0]])}]
    assert unknown == []
    # The project's own configurations pass every rule.
    for name in ("local.yaml", "cluster.yaml", "cluster-s3.yaml"):
        load_config(PROJECT / "conf" / name, env={}, base_dir=PROJECT)
