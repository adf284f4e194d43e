"""``fusionrec evaluate``: popularity, ALS, content and hybrid on one chronological split."""

from __future__ import annotations

import argparse
from pathlib import Path

from fusionrec.config import Config
from fusionrec.evaluate.chart import save_results
from fusionrec.evaluate.harness import evaluate
from fusionrec.evaluate.results import EvaluationResults
from fusionrec.model.train import read_training_tables
from fusionrec.runlog import RunReport, stage
from fusionrec.session import build_spark

HELP = "evaluate popularity / ALS / content / hybrid on a per-user chronological split (+ cold items)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="evaluation", help="file name stem of the JSON and PNG results")


def report_dir(cfg: Config) -> Path:
    if cfg.evaluate.report_dir:
        return Path(cfg.evaluate.report_dir)
    return Path(cfg.lake.root).parent / "reports"


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
    spark = build_spark(cfg)
    with stage("evaluate.read", report) as rec:
        tables = read_training_tables(spark, cfg)
        rec.counts["interactions"] = tables.interactions.count()
    with stage("evaluate.run", report) as rec:
        results = evaluate(tables, cfg)
        rec.counts.update(results.counts)
    with stage("evaluate.save", report):
        paths = save_results(results, report_dir(cfg), args.name)
    report.results["evaluation"] = {**results.to_dict(), "files": paths}
    print(format_table(results))
    print(f"results: {paths['json']} chart: {paths['png']}")
    return 0
