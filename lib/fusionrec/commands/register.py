"""``fusionrec register``: log the fused model as a pyfunc, register it as challenger, run the gate."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.runlog import RunReport
from fusionrec.lake import ALS_MODEL, EVALUATION_NAME, FUSION_PARAMS, Lake, evaluation_report
from fusionrec.stages import Stage

__all__ = ["HELP", "STAGE", "add_arguments", "run"]

HELP = "register the fused model (MLflow pyfunc) as 'challenger' and promote it to 'champion' if it passes the gate"


STAGE = Stage(
    "register",
    reads=("gold.interactions", "gold.item_documents", "gold.recommendations", "features.item_vectors",
           "features.user_profiles", "features.item_sentiment", "model.user_factors", "model.item_factors"),
    # ingest: the default event weight and where serving finds the pseudonym key; features: the
    # profile half-life serving moves profiles with.
    params=("registry", "model", "embed", "evaluate", "ingest", "features"),
    uses=("mlflow",),
    # The saved ALSModel's metadata file is rewritten with every fit: its stamp follows the model.
    artifacts_in=(FUSION_PARAMS, f"{evaluation_report(EVALUATION_NAME)}.json", f"{ALS_MODEL}/metadata/part-00000"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    gate = parser.add_mutually_exclusive_group()
    gate.add_argument("--no-promote", action="store_true", help="only register; leave the gate to 'fusionrec promote'")
    gate.add_argument("--force-promote", action="store_true",
                      help="make this version champion even if it is worse than the current one (recorded as forced)")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.registry.register import register_model
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    result = register_model(lake, cfg, report, promote=not args.no_promote, force_promote=args.force_promote)
    print(f"registered {result.model_name} version {result.version} (run {result.run_id}), "
          f"{cfg.registry.promotion_model} {cfg.registry.promotion_metric} = {result.metric:.4f}")
    if result.decision is not None:
        d = result.decision
        print(f"promotion: {'promoted to champion' if d.promoted else 'refused'}: {d.reason}")
    return 0
