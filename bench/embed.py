"""Embedding throughput: raw onnxruntime vs the Spark NLP stage, side by side in one run.

Same 2,000 texts (Amazon Magazine Subscriptions review texts), same ONNX file, vocabulary
and maximum length:

(a) raw onnxruntime in Python, batch 32, 2 threads, texts in their given order
    (the physical reference on this machine);
(b) the Spark NLP stage (``run_embed``) in local[*] on a gold.reviews table of the same
    texts, into a fresh Delta table -- dedup, length-sorted partitions, MERGE, quarantine;

then, in the same session, the cost of an incremental re-run after editing 1% of the
texts (20 texts through the model) and of a re-run with no changes (which must neither
embed nor load the model nor commit), each as a share of the full run, with each run's
phases (plan, model_load, inference with the vector checks, merge, quarantine). The
warm-up loads the model and the session keeps it, as within one pipeline run, so no
timed run loads it again.

    .venv/bin/python bench/embed.py [--n 2000] [--data DIR] [--work DIR] [--skip-raw]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def load_texts(data: Path, n: int) -> list[str]:
    texts = []
    with gzip.open(data / "Magazine_Subscriptions_5.json.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = (row.get("reviewText") or row.get("summary") or "").strip()
            if text:
                texts.append(text)
            if len(texts) == n:
                break
    return texts


def write_reviews(spark, cfg, texts: list[str]) -> None:
    from fusionrec.lake import SCHEMAS, Lake

    ts = datetime(2020, 1, 1)
    rows = [(f"r{i}", f"u{i % 300}", f"i{i % 150}", 5.0, t, ts, True) for i, t in enumerate(texts)]
    (spark.createDataFrame(rows, SCHEMAS["gold.reviews"]).write.format("delta").mode("overwrite")
     .save(Lake(spark, cfg.lake).path("gold.reviews")))


def timed_run(spark, cfg) -> tuple[float, dict]:
    from fusionrec.embed.stage import run_embed
    from fusionrec.lake import Lake

    start = time.perf_counter()
    result = run_embed(Lake(spark, cfg.lake), cfg.embed)["review_embeddings"]
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--data", default=str(PROJECT.parent / "shared" / "datasets" / "amazon-magazine-subscriptions"))
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--skip-raw", action="store_true", help="skip (a), the raw onnxruntime run")
    args = parser.parse_args()

    from fusionrec.config import load_config
    from fusionrec.embed.model import model_files
    from fusionrec.embed.reference import OnnxReferenceEmbedder
    from fusionrec.runlog import setup_logging
    from fusionrec.session import build_spark

    setup_logging(-1)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-embed-"))
    shutil.rmtree(work / "lake", ignore_errors=True)
    cfg = load_config(PROJECT / "conf" / "local.yaml", overrides=[
        f"lake.root={work / 'lake'}", f"spark.checkpoint_dir={work / 'checkpoints'}",
        "spark.extra={spark.ui.showConsoleProgress: 'false'}",
    ], env={}, base_dir=PROJECT)
    texts = load_texts(Path(args.data), args.n)
    n = len(texts)
    words = sorted(len(t.split()) for t in texts)
    print(f"texts: {n} ({len(set(texts))} distinct), words per text median {words[n // 2]}, "
          f"p90 {words[int(n * 0.9)]}, max {words[-1]}; max_sentence_length {cfg.embed.max_sentence_length}, "
          f"batch {cfg.embed.batch_size}, partitions {cfg.embed.partitions}")

    # (a) raw onnxruntime, warmed up on a few texts first.
    raw_rate = None
    if not args.skip_raw:
        reference = OnnxReferenceEmbedder(model_files(cfg.embed), max_length=cfg.embed.max_sentence_length, threads=2)
        reference.embed(texts[:32])
        start = time.perf_counter()
        reference.embed(texts, batch_size=32)
        raw_s = time.perf_counter() - start
        raw_rate = n / raw_s
        print(f"(a) raw onnxruntime, batch 32, 2 threads: {raw_s:.1f} s, {raw_rate:.1f} texts/s")

    # (b) the Spark NLP stage; the JVM and the model are warmed up on a throwaway table first.
    spark = build_spark(cfg)
    write_reviews(spark, cfg, texts[:16])
    timed_run(spark, cfg)
    shutil.rmtree(work / "lake" / "embeddings", ignore_errors=True)
    shutil.rmtree(work / "lake" / "quarantine", ignore_errors=True)
    write_reviews(spark, cfg, texts)
    full_s, full = timed_run(spark, cfg)
    spark_rate = n / full_s
    print(f"(b) Spark NLP stage, {spark.sparkContext.master}: {full_s:.1f} s, {spark_rate:.1f} texts/s "
          f"({full['texts_embedded']} distinct texts through the model, {full['embedded']} records embedded, "
          f"{full['quarantined']} quarantined)")
    if raw_rate:
        print(f"ratio (b)/(a): {spark_rate / raw_rate:.2f}  (target >= 0.8, stretch >= 1.0)")

    edited = [t + " (edited)" if i % 100 == 0 else t for i, t in enumerate(texts)]
    write_reviews(spark, cfg, edited)
    inc_s, inc = timed_run(spark, cfg)
    n_edited = sum(1 for a, b in zip(texts, edited) if a != b)
    versions = _versions(spark, cfg)
    same_s, same = timed_run(spark, cfg)
    if same["texts_embedded"] != 0 or same["model_load_s"] != 0:
        raise SystemExit("a re-run without changes embedded texts or loaded the model")
    if _versions(spark, cfg) != versions:
        raise SystemExit("a re-run without changes committed a new table version")

    print(f"\n{'run':<34} {'seconds':>8} {'% of full':>10} {'model load s':>13}  texts through the model / merge")
    for label, seconds, counts, target in (
        ("full (empty table)", full_s, full, None),
        (f"{n_edited} texts edited (1%)", inc_s, inc, 0.10),
        ("unchanged", same_s, same, 0.05),
    ):
        goal = f"  (goal <= {target:.0%})" if target else ""
        print(f"{label:<34} {seconds:>8.1f} {seconds / full_s:>10.1%} {counts['model_load_s']:>13.1f}  "
              f"{counts['texts_embedded']} / {counts['merge']}{goal}")
    print(f"incremental/full: {inc_s / full_s:.3f}; unchanged/full: {same_s / full_s:.3f}")
    for label, counts in (("full", full), ("1% edited", inc), ("unchanged", same)):
        print(f"phases, {label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in counts["phase_s"].items()))


def _versions(spark, cfg) -> dict[str, int | None]:
    from fusionrec.lake import Lake

    return Lake(spark, cfg.lake).versions(["embeddings.review_embeddings", "quarantine.embedding_failures"])


if __name__ == "__main__":
    main()
