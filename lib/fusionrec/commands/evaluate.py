"""``fusionrec evaluate``: popularity, ALS, content, hybrid and the tuned peers on one chronological split."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fusionrec.config import Config
from fusionrec.lake import EVALUATION_NAME, TUNED_SETTINGS, Lake, evaluation_report
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

if TYPE_CHECKING:
    from fusionrec.evaluate.results import EvaluationResults

__all__ = ["HELP", "add_arguments", "STAGE", "run"]

HELP = ("evaluate popularity / ALS / content / hybrid and the tuned peers (EASE, item-kNN, +fallback) "
        "on a per-user chronological split (+ cold items)")


STAGE = Stage(
    "evaluate",
    reads=("gold.interactions", "gold.reviews", "silver.events", "embeddings.item_embeddings",
           "embeddings.review_embeddings", "silver.items", "gold.item_documents"),
    # embed: item documents cut at the test boundary are re-embedded with the stage's model
    params=("model", "evaluate", "features", "embed"),
    # tuned settings: the ALS setting and ranker kind chosen on validation, for the train stage to reuse
    artifacts_out=(f"{evaluation_report(EVALUATION_NAME)}.json", f"{evaluation_report(EVALUATION_NAME)}.png",
                   TUNED_SETTINGS),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=EVALUATION_NAME, help="file name stem of the JSON and PNG results")


def format_table(results: EvaluationResults) -> str:
    """The table (each ranking metric with its per-user standard error) and the comparison lines."""
    cold = {(r["model"], r["k"]): r for r in results.cold_items}
    lines = [f"{'model':<18}{'K':>3} {'ndcg':>7} {'±se':>6} {'hit':>7} {'±se':>6} {'recall':>7} {'prec':>7} "
             f"{'map':>7} {'cover':>6} {'divers':>6} {'novel':>6} {'catcov':>6} {'poppct':>6} "
             f"{'cold_rec':>8} {'cold_rank_rec':>13}"]
    for r in results.table:
        c = cold.get((r["model"], r["k"]), {})
        lines.append(f"{r['model']:<18}{r['k']:>3} {r['ndcg']:7.4f} {r.get('ndcg_se', 0.0):6.4f} "
                     f"{r['hit_rate']:7.4f} {r.get('hit_rate_se', 0.0):6.4f} {r['recall']:7.4f} "
                     f"{r['precision']:7.4f} {r['map']:7.4f} {r['coverage']:6.4f} {r.get('diversity', 0.0):6.3f} "
                     f"{r.get('novelty', 0.0):6.2f} {r.get('catalog_coverage', 0.0):6.3f} "
                     f"{r.get('popularity_percentile', 0.0):6.3f} {c.get('recall', 0.0):8.4f} "
                     f"{c.get('ranked_recall', float('nan')):13.4f}")
    for entry in results.comparison:
        for metric in ("ndcg", "hit_rate"):
            m = entry.get(metric)
            if not m:
                continue
            ratio = f"x{m['ratio']:.3f}" if m.get("ratio") else "x-"
            lines.append(f"hybrid vs best peer ({entry['best_peer']}) {metric}@{entry['k']}: "
                         f"{m['hybrid']:.4f} vs {m['best_peer']:.4f} ({ratio}), difference {m['diff']:+.4f}, "
                         f"paired bootstrap 95% [{m['low']:+.4f}, {m['high']:+.4f}] ({m['resamples']} resamples, "
                         f"{m['users']} users)")
    return "\n".join(lines)


def save_tuned_settings(lake: Lake, results: EvaluationResults, versions: dict[str, int | None], cfg: Config) -> str:
    """Write what the evaluation's fit chose on its validation period (:mod:`fusionrec.model.tuned`)
    for the train stage; an unchanged choice leaves the file as it is, so that the pipeline does
    not re-run training for it."""
    from fusionrec.model.tuned import TunedSettings, settings_digest

    chosen = results.chosen
    tuned = TunedSettings(rank=int(chosen["rank"]), reg_param=float(chosen["reg_param"]), alpha=float(chosen["alpha"]),
                          ranker=(results.ranker.get("choice") or {}).get("kind"), tables=versions,
                          settings=settings_digest(cfg.to_dict()))
    text = tuned.to_json()
    if lake.read_text(TUNED_SETTINGS) != text:
        lake.write_text(TUNED_SETTINGS, text)
    return lake.uri(TUNED_SETTINGS)


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.evaluate.chart import render_results
    from fusionrec.evaluate.harness import ItemTexts, evaluate, spark_nlp_embedder
    from fusionrec.model.train import read_training_tables
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("evaluate.read", report) as rec:
        versions = lake.versions(STAGE.reads)
        tables = read_training_tables(lake)
        rec.counts["interactions"] = tables.interactions.count()
    items = lake.read_optional("silver.items")
    documents = lake.read_optional("gold.item_documents")
    texts = ItemTexts(items, spark_nlp_embedder(lake.spark, cfg.embed)) if items is not None else None
    categories = documents.select("item_id", "categories") if documents is not None else None
    with stage("evaluate.run", report) as rec:
        results = evaluate(tables, cfg, texts=texts, categories=categories)
        rec.counts.update(results.counts)
    with stage("evaluate.save", report):
        rendered = render_results(results, args.name)
        paths = {kind: lake.write_bytes(f"{evaluation_report(args.name)}.{kind}", data)
                 for kind, data in rendered.items()}
        paths["tuned_settings"] = save_tuned_settings(lake, results, versions, cfg)
    report.results["evaluation"] = {**results.to_dict(), "files": paths}
    print(format_table(results))
    print(f"results: {paths['json']} chart: {paths['png']} tuned settings: {paths['tuned_settings']}")
    return 0
