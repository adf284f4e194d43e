"""Privacy of ingestion: where the pseudonym key comes from, quarantine rows of every source
with pseudonymised user ids, and the leak scanner the end-to-end test relies on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import stat
from pathlib import Path

import mlflow
import numpy as np
import pytest

from fusionrec.ingest.clean import CLASSIFIERS, CleaningRules, accepted, quarantined
from fusionrec.ingest.pipeline import ADAPTERS
from fusionrec.lake import normalise_uri
from fusionrec.ingest.privacy import PrivacyError, key_file, pseudonym, pseudonym_key, serving_key
from fusionrec.ingest.sources.files import inspect
from fusionrec.registry.tracking import config_params
from _privacy import Leaks, reference_pseudonym, scan_files, scan_lake, scan_mlflow

PROJECT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2024, 6, 1)


def _local(cfg, lake: Path, key_path: str | None = None):
    return cfg.replace(mode="local", lake=dataclasses.replace(cfg.lake, root=str(lake)),
                       ingest=dataclasses.replace(cfg.ingest, pseudonym_key_file=key_path))


def test_local_key_created_once_per_lake_owner_only(cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    lake = tmp_path / "lake"
    local = _local(cfg, lake)
    with caplog.at_level(logging.INFO, logger="fusionrec.ingest.privacy"):
        key = pseudonym_key(local, env={}, master="local[2]")
        assert pseudonym_key(local, env={}, master="local[2]") == key  # created once
    path = tmp_path / "home" / ".fusionrec" / "keys" / f"{hashlib.sha256(normalise_uri(str(lake)).encode()).hexdigest()}.key"
    assert key_file(local) == path and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [r.getMessage() for r in caplog.records] == [
        f"pseudonym key created at {path} (owner-only; keep it to keep the pseudonyms stable)"]
    assert not any(lake.rglob("*"))  # nothing in the lake
    # The same lake spelled differently shares the key; another lake gets its own.
    assert pseudonym_key(_local(cfg, Path(f"{lake}/")), env={}) == key
    assert pseudonym_key(_local(cfg, tmp_path / "other"), env={}) != key


def test_key_from_environment_and_refused_on_a_cluster(cfg, tmp_path):
    local = _local(cfg, tmp_path / "lake", str(tmp_path / "k.key"))
    assert pseudonym_key(local, env={"FUSIONREC_PSEUDONYM_KEY": "s3cret"}) == b"s3cret"
    assert pseudonym_key(cfg.replace(mode="cluster"), env={"FUSIONREC_PSEUDONYM_KEY": "s3cret"}) == b"s3cret"
    for cluster, master in ((cfg.replace(mode="cluster"), None), (local, "spark://host:7077"), (local, "yarn")):
        with pytest.raises(PrivacyError, match=r"^\$FUSIONREC_PSEUDONYM_KEY is not set: .*on a cluster") as err:
            pseudonym_key(cluster, env={}, master=master)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "k.key").exists()


def test_unsafe_key_files_are_refused(cfg, tmp_path):
    open_key = tmp_path / "keys" / "open.key"
    local = _local(cfg, tmp_path / "lake", str(open_key))
    pseudonym_key(local, env={})
    open_key.chmod(0o644)
    with pytest.raises(PrivacyError, match="readable by others .* chmod 600"):
        pseudonym_key(local, env={})
    with pytest.raises(PrivacyError, match="is inside lake.root"):
        pseudonym_key(_local(cfg, tmp_path / "lake", str(tmp_path / "lake" / "k.key")), env={})


def test_no_development_key_and_no_key_in_params(cfg):
    # The fixed key the project once shipped, and its setting (spelt in two parts, so this
    # file is not itself a hit).
    retired = ("local-development" + "-key", "dev_pseudonym" + "_key")
    for folder in ("lib", "conf", "jobs", "notebooks", "bench"):
        for path in (PROJECT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml", ".ipynb", ".properties"):
                text = path.read_text(encoding="utf-8", errors="replace")
                assert not any(word in text for word in retired), path
    key = pseudonym_key(cfg)
    text = json.dumps(config_params(cfg))
    assert key.hex() not in text and key.decode("latin-1") not in text
    assert "ingest.pseudonym_key_file" in config_params(cfg)  # where it is, not what it is


def _quarantine(spark, cfg, source: str, paths: list[Path]):
    """``({kind: (accepted rows, [(reason, raw) of quarantine])}, key)`` of one source's files."""
    rules = CleaningRules(cfg.ingest, NOW, pseudonym_key(cfg))
    out = {}
    for kind, staged in ADAPTERS[source].read(spark, inspect(spark, [p.as_uri() for p in paths]), cfg).items():
        classified = CLASSIFIERS[kind](staged, rules)
        rejected = quarantined(classified, personal_fields=list(cfg.ingest.personal_fields), key=rules.key)
        out[kind] = (accepted(classified, kind).collect(), sorted((r["reason"], r["raw"]) for r in rejected.collect()))
    return out, rules.key


def test_quarantine_pseudonymises_user_ids_of_every_source(spark, cfg, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([
        '{"user_id": "u501", "item_id": "i1", "event_type": "view", "ts": "1990-01-01T00:00:00Z"}',
        '{"user_id": 502, "item_id": "i1", "event_type": "hover", "ts": 1600000000}',
        '{"event_id": "e9", "user_id": "u503", "item_id": "i',
        '{"event_id": "e8", "user_id": "u50',
        '{"user_id": "", "item_id": "i1", "event_type": "view", "ts": 1600000000}',
    ]) + "\n")
    out, key = _quarantine(spark, cfg, "events", [events])
    p = {u: reference_pseudonym(u, key) for u in ("u501", "502", "u503", "u50")}
    assert out["events"][1] == sorted([
        ("ts_out_of_range", f'{{"user_id": "{p["u501"]}", "item_id": "i1", "event_type": "view", "ts": "1990-01-01T00:00:00Z"}}'),
        ("unknown_event_type", f'{{"user_id": "{p["502"]}", "item_id": "i1", "event_type": "hover", "ts": 1600000000}}'),
        ("unparseable", f'{{"event_id": "e9", "user_id": "{p["u503"]}", "item_id": "i'),  # cut lines too
        ("unparseable", f'{{"event_id": "e8", "user_id": "{p["u50"]}"'),
        ("missing_user_id", '{"user_id": "", "item_id": "i1", "event_type": "view", "ts": 1600000000}'),
    ])

    amazon = tmp_path / "amazon" / "Magazines_5.json"
    amazon.parent.mkdir()
    amazon.write_text("\n".join(json.dumps(r) for r in [
        {"reviewerID": "A2XYZQ", "asin": "B01", "overall": 9.0, "reviewerName": "Jane Doe",
         "reviewText": "fine", "unixReviewTime": 1500000000},
        {"reviewerID": "A3ABCD", "asin": "B01", "overall": 4.0, "reviewerName": "John Roe",
         "reviewText": "good", "unixReviewTime": 1500000000, "verified": True},
    ]) + "\n")
    out, key = _quarantine(spark, cfg, "amazon", [amazon])
    silver, [(reason, raw)] = out["reviews"]
    bad = json.loads(raw)
    assert reason == "rating_out_of_range"
    assert bad["reviewerID"] == reference_pseudonym("A2XYZQ", key) and bad["reviewerName"] == "<redacted>"
    assert silver[0]["user_id"] == reference_pseudonym("A3ABCD", key)
    assert "John Roe" not in str(silver[0].asDict()) and silver[0]["extra"] == {"verified": "true"}

    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "ratings.csv").write_text("userId,movieId,rating,timestamp\r\n7001,7001,9.5,964982703\r\n7002,1\r\n")
    (ml / "movies.csv").write_text("movieId,title,genres\r\n1,Toy Story (1995),Comedy\r\n")
    (ml / "tags.csv").write_text("userId,movieId,tag,timestamp\r\n7003,1,,964982703\r\n")
    out, key = _quarantine(spark, cfg, "movielens", sorted(ml.iterdir()))
    # The user id column is rewritten, the movie id with the same value is not.
    assert out["events"][1] == [("rating_out_of_range", f'"{reference_pseudonym("7001", key)}",7001,9.5,964982703'),
                                ("unparseable", f'"{reference_pseudonym("7002", key)}",1')]
    assert out["reviews"][1] == [("empty_review_text", f'"{reference_pseudonym("7003", key)}",1,,964982703')]


def test_leak_scanner_finds_planted_raw_ids_and_the_key(spark, lake_cfg, tmp_path):
    root = Path(lake_cfg.lake.root)
    key = bytes(range(32))
    leaks = Leaks({"u77", "u7"}, key)
    planted = '{"user_id":"u77","item_id":"i1"}'
    spark.createDataFrame([(planted, "f", "ts_out_of_range")], "raw STRING, file STRING, reason STRING") \
        .write.format("delta").save(str(root / "quarantine" / "events"))
    spark.createDataFrame([(planted,)], "raw STRING").write.format("delta").save(str(root / "bronze" / "events"))
    spark.createDataFrame([("menu7", "u777")], "a STRING, b STRING").write.format("delta").save(str(root / "gold" / "x"))
    scan_lake(spark, root, leaks)
    assert leaks.tables == 2  # bronze is not read
    quarantine = root / "quarantine" / "events"
    assert leaks.found[f"table {quarantine}"] == {"u77"}  # whole tokens: not u7, u777 or menu7
    assert all(where.split(" ")[1].startswith(str(quarantine)) for where in leaks.found), leaks.found
    assert any(where.startswith(f"file {quarantine}/_delta_log") for where in leaks.found)  # column stats

    files = tmp_path / "files"
    files.mkdir()
    (files / "params.json").write_text(json.dumps({"k": key.hex()}))
    np.savez(files / "arrays.npz", user_ids=np.array(["p1", "u7"]))  # UTF-32 inside the archive
    (files / "clean.txt").write_text("u777 menu7 u7x")
    (files / "weights.bin").write_bytes(b"\x00\x9fu7\x00")  # binary noise: only the key is looked for
    (files / "model.bin").write_bytes(b"\x00\x01" + key + b"\x02")
    fresh = Leaks({"u77", "u7"}, key)
    scan_files(fresh, files.iterdir())
    assert fresh.found == {f"file {files / 'params.json'}": {"<pseudonym key>"},
                           f"file {files / 'model.bin'}": {"<pseudonym key>"},
                           f"file {files / 'arrays.npz'} [user_ids]": {"u7"}}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("leak", artifact_location=str(tmp_path / "art")))
    client.log_param(run.info.run_id, "user", "u77")
    client.set_tag(run.info.run_id, "note", "pseudonyms only")
    client.set_terminated(run.info.run_id)
    in_mlflow = Leaks({"u77"}, key)
    assert scan_mlflow(uri, in_mlflow) == 1
    assert in_mlflow.found == {f"run {run.info.run_id} param user": {"u77"}}


def test_serving_key_sources_and_the_python_pseudonym(tmp_path):
    """Serving reads the key (never creates one): the variable, a file named by ``<var>_FILE``,
    then the lake's recorded local key file; its pseudonyms are ingest's."""
    local = tmp_path / "lake.key"
    local.write_text(b"local-key".hex() + "\n")
    local.chmod(0o600)
    named = tmp_path / "secret.key"
    named.write_text(b"mounted-key".hex())
    named.chmod(0o600)
    assert serving_key(env_name="K", local_key_file=str(local), env={"K": "env-key", "K_FILE": str(named)}) == b"env-key"
    assert serving_key(env_name="K", local_key_file=str(local), env={"K_FILE": str(named)}) == b"mounted-key"
    assert serving_key(env_name="K", local_key_file=str(local), env={}) == b"local-key"
    with pytest.raises(PrivacyError, match=r"^\$K_FILE: no key file at .*missing\.key$"):
        serving_key(env_name="K", local_key_file=str(local), env={"K_FILE": str(tmp_path / "missing.key")})
    with pytest.raises(PrivacyError, match=r"^\$K is not set \(nor \$K_FILE, and there is no key file at .*gone\.key\)"):
        serving_key(env_name="K", local_key_file=str(tmp_path / "gone.key"), env={})
    assert not (tmp_path / "gone.key").exists()
    named.chmod(0o640)
    with pytest.raises(PrivacyError, match="readable by others"):
        serving_key(env_name="K", local_key_file=None, env={"K_FILE": str(named)})
    assert pseudonym("u42", key=b"local-key") == reference_pseudonym("u42", b"local-key")
