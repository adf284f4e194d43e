"""The default pipeline against its floor, side by side in one run.

1. The pipeline, as ``make run`` runs it: ``fusionrec pipeline --generate N`` with
   ``conf/local.yaml``, in a child process, on a fresh lake and MLflow store under the
   work folder. Its run report gives each stage's time; the child's wall time less the
   generation of the inputs is the pipeline's time.
2. Its floor, in this process once the child has ended, on what the pipeline read:

   (a) raw onnxruntime (:class:`fusionrec.embed.reference.OnnxReferenceEmbedder`, the
       ONNX file and vocabulary of the embed stage's model) over the distinct texts the
       embed stage sent through the model (per table, after normalisation), with the
       stage's batch size, as many threads as the master has cores, texts sorted by length;
   (b) one Spark ALS fit (:func:`fusionrec.model.als.fit_als`) on ``gold.interactions``
       with the parameters the train stage chose, factors materialised.

Prints each stage's time, the floor, and the ratio pipeline / floor.

    .venv/bin/python bench/pipeline.py [--events 20000] [--seed 42] [--work DIR] [--floor-only]

``--floor-only`` measures the floor again against the pipeline run already in ``--work``.

``--events 50000`` is ``make run``'s default; the smaller default keeps one run to a few
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

#: Report record name prefix -> pipeline stage (the embed stage writes the features too).
_GROUPS = {"generate": "generate", "ingest": "ingest", "embed": "embed", "features": "embed: features",
           "train": "train", "recommend": "recommend", "evaluate": "evaluate", "register": "register"}
_ORDER = ("ingest", "embed", "embed: features", "evaluate", "train", "recommend", "register")


def settings(work: Path) -> list[str]:
    """``--set`` overrides putting everything the run writes under ``work``."""
    return [f"lake.root={work / 'lake'}", f"spark.checkpoint_dir={work / 'checkpoints'}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}", f"mlflow.artifact_location={work / 'mlartifacts'}",
            f"ingest.pseudonym_key_file={work / 'keys' / 'pseudonym.key'}", "spark.show_progress=false"]


def run_pipeline(work: Path, events: int, seed: int) -> tuple[float, dict]:
    """Run ``fusionrec pipeline --generate`` in a child process; its wall time and run report."""
    report = work / "pipeline-report.json"
    args = [sys.executable, "-m", "fusionrec", "pipeline", "--generate", str(events), "--seed", str(seed),
            "--conf", str(PROJECT / "conf" / "local.yaml"), "--report", str(report)]
    for override in settings(work):
        args += ["--set", override]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSIONREC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT / "lib"), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with (work / "pipeline.log").open("wb") as log:
        code = subprocess.run(args, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"pipeline exited with {code}; see {work / 'pipeline.log'}")
    (work / "pipeline-wall.json").write_text(json.dumps({"wall_s": wall, "events": events, "seed": seed}))
    return wall, json.loads(report.read_text())


def master_cores(master: str) -> int:
    """Cores of a ``local[N]`` / ``local[*]`` master (this machine's for anything else)."""
    inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "*"
    return int(inside) if inside.isdigit() else len(os.sched_getaffinity(0))


def stage_times(report: dict) -> dict[str, float]:
    """Seconds per pipeline stage. ``fusionrec pipeline`` records one line per stage (its
    embed line includes the features); a report without those lines is summed from the
    stages' own records."""
    whole: dict[str, float] = {}
    parts: dict[str, float] = defaultdict(float)
    for record in report["stages"]:
        name = record["name"]
        if "." in name:
            parts[name.split(".")[0]] += record["elapsed_s"]
        else:
            whole.setdefault(name, record["elapsed_s"])
    out: dict[str, float] = {}
    for prefix, group in _GROUPS.items():
        if prefix in whole or prefix in parts:
            out[group] = whole.get(prefix, parts.get(prefix, 0.0))
    if "features" not in whole and parts.get("features") and "embed" in whole:
        out["embed"] = whole["embed"] - parts["features"]
    return out


def distinct_texts(lake, cfg) -> dict[str, list[str]]:
    """Per gold text table, the distinct normalised texts the embed stage sends through the model."""
    from pyspark.sql import functions as F

    from fusionrec.embed.texts import prepare_texts

    out = {}
    for table, id_col in (("gold.item_documents", "item_id"), ("gold.reviews", "review_id")):
        records = lake.read_optional(table)
        if records is None:
            continue
        prepared = prepare_texts(records, id_col, "text", cfg.embed).where(F.col("reason").isNull())
        out[table] = [r.text for r in prepared.dropDuplicates(["content_hash"]).select("text").collect()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="generated events (make run: 50000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--floor-only", action="store_true",
                        help="do not run the pipeline: measure the floor against the run already in --work")
    args = parser.parse_args()
    if args.floor_only and not args.work:
        parser.error("--floor-only needs the --work of an earlier run")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-pipeline-"))

    # 1. The pipeline.
    if args.floor_only:
        earlier = json.loads((work / "pipeline-wall.json").read_text())
        wall, report = earlier["wall_s"], json.loads((work / "pipeline-report.json").read_text())
        args.events = earlier["events"]
    else:
        for name in ("lake", "checkpoints", "mlartifacts", "mlflow.db", "keys"):
            path = work / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        wall, report = run_pipeline(work, args.events, args.seed)
    times = stage_times(report)
    pipeline_s = wall - times.get("generate", 0.0)
    results = report["results"]

    # 2. The floor, in a session of the same configuration.
    from fusionrec.config import load_config
    from fusionrec.embed.model import model_files
    from fusionrec.embed.reference import OnnxReferenceEmbedder
    from fusionrec.lake import Lake
    from fusionrec.model.als import AlsParams, fit_als
    from fusionrec.runlog import setup_logging
    from fusionrec.session import build_spark

    setup_logging(-1)
    cfg = load_config(PROJECT / "conf" / "local.yaml", overrides=settings(work), env={}, base_dir=PROJECT)
    spark = build_spark(cfg)
    lake = Lake(spark, cfg.lake)
    cores = master_cores(cfg.spark.master)
    texts = distinct_texts(lake, cfg)
    n_texts = sum(len(t) for t in texts.values())
    through_model = sum(counts.get("texts_embedded", 0) for counts in results["embeddings"].values()
                        if counts.get("status") == "ok")
    reference = OnnxReferenceEmbedder(model_files(cfg.embed), max_length=cfg.embed.max_sentence_length,
                                      threads=cores)
    reference.embed(["warm up"] * cfg.embed.batch_size, batch_size=cfg.embed.batch_size)
    start = time.perf_counter()
    for table_texts in texts.values():
        reference.embed(sorted(table_texts, key=len), batch_size=cfg.embed.batch_size)
    onnx_s = time.perf_counter() - start

    chosen = results["train"]["als"]
    model_cfg = dataclasses.replace(cfg.model, max_iter=chosen["max_iter"],
                                    checkpoint_interval=chosen["checkpoint_interval"], seed=chosen["seed"])
    params = AlsParams(rank=chosen["rank"], reg_param=chosen["reg_param"], alpha=chosen["alpha"])
    start = time.perf_counter()
    interactions = lake.read("gold.interactions")
    fitted = fit_als(interactions, model_cfg, params)
    n_users, n_items = fitted.model.userFactors.count(), fitted.model.itemFactors.count()
    als_s = time.perf_counter() - start
    n_interactions = interactions.count()
    spark.stop()
    floor_s = onnx_s + als_s

    print(f"data: {args.events} generated events -> {n_interactions} interactions ({n_users} users, {n_items} items), "
          f"{n_texts} distinct texts ({through_model} through the model in the pipeline); "
          f"master {cfg.spark.master}, {cores} cores, shuffle partitions {cfg.spark.shuffle_partitions}")
    print(f"\n{'pipeline stage':<28} {'seconds':>8}")
    for name in _ORDER:
        print(f"{name:<28} {times.get(name, 0.0):>8.1f}")
    stages_s = sum(times.get(name, 0.0) for name in _ORDER) + times.get("other", 0.0)
    print(f"{'outside the stages':<28} {pipeline_s - stages_s:>8.1f}  "
          "(JVM and session start, imports, MLflow runs, fingerprints, state, promotion)")
    print(f"{'pipeline':<28} {pipeline_s:>8.1f}  (child wall {wall:.1f} s less generating the inputs "
          f"{times.get('generate', 0.0):.1f} s)")
    print("largest report records: " + ", ".join(
        f"{r['name']} {r['elapsed_s']:.1f}" for r in sorted(report["stages"], key=lambda r: -r["elapsed_s"])[:8]))
    print(f"train's setting: {results['train'].get('tuning', 'own search')}, "
          f"{len(results['train']['search'])} ALS fit(s) before the refit")
    print(f"\n{'floor':<28} {'seconds':>8}")
    print(f"{'raw onnxruntime':<28} {onnx_s:>8.1f}  ({n_texts} texts, batch {cfg.embed.batch_size}, "
          f"{cores} threads: {n_texts / onnx_s:.1f} texts/s)")
    print(f"{'one ALS fit':<28} {als_s:>8.1f}  (rank {params.rank}, reg {params.reg_param}, alpha {params.alpha}, "
          f"{model_cfg.max_iter} iterations)")
    print(f"{'floor':<28} {floor_s:>8.1f}")
    print(f"\nratio pipeline / floor: {pipeline_s / floor_s:.2f}  (goal <= 2.5)")
    print(f"embed texts / raw onnxruntime: {times.get('embed', 0.0) / onnx_s:.2f}; "
          f"train / one ALS fit: {times.get('train', 0.0) / als_s:.2f}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
