"""``fusionrec evaluate``: popularity, ALS, content and hybrid on one chronological split."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fusionrec.config import Config
from fusionrec.lake import EVALUATION_NAME, Lake, evaluation_report
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

if TYPE_CHECKING:
    from fusionrec.evaluate.results import EvaluationResults

__all__ = ["HELP", "add_arguments", "STAGE", "run"]

HELP = "evaluate popularity / ALS / content / hybrid on a per-user chronological split (+ cold items)"


STAGE = Stage(
    "evaluate",
    reads=("gold.interactions", "gold.reviews", "silver.events", "embeddings.item_embeddings",
           "embeddings.review_embeddings"),
    params=("model", "evaluate", "features"),
    artifacts_out=(f"{evaluation_report(EVALUATION_NAME)}.json", f"{evaluation_report(EVALUATION_NAME)}.png"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=EVALUATION_NAME, help="file name stem of the JSON and PNG results")


def format_table(results: EvaluationResults) -> str:
    cold = {(r["model"], r["k"]): r for r in results.cold_items}
    lines = [f"{'model':<11}{'K':>3} {'prec':>7} {'recall':>7} {'ndcg':>7} {'map':>7} {'hit':>7} {'cover':>7} "
             f"{'cold_rec':>8} {'cold_ranked_rec':>15}"]
    for r in results.table:
        c = cold[(r["model"], r["k"])]
        lines.append(f"{r['model']:<11}{r['k']:>3} {r['precision']:7.4f} {r['recall']:7.4f} {r['ndcg']:7.4f} "
                     f"{r['map']:7.4f} {r['hit_rate']:7.4f} {r['coverage']:7.4f} {c['recall']:8.4f} "
                     f"{c.get('ranked_recall', 0.0):15.4f}")
    return "\n".join(lines)


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.evaluate.chart import render_results
    from fusionrec.evaluate.harness import evaluate
    from fusionrec.model.train import read_training_tables
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("evaluate.read", report) as rec:
        tables = read_training_tables(lake)
        rec.counts["interactions"] = tables.interactions.count()
    with stage("evaluate.run", report) as rec:
        results = evaluate(tables, cfg)
        rec.counts.update(results.counts)
    with stage("evaluate.save", report):
        rendered = render_results(results, args.name)
        paths = {kind: lake.write_bytes(f"{evaluation_report(args.name)}.{kind}", data)
                 for kind, data in rendered.items()}
    report.results["evaluation"] = {**results.to_dict(), "files": paths}
    print(format_table(results))
    print(f"results: {paths['json']} chart: {paths['png']}")
    return 0
