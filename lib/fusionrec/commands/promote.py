"""``fusionrec promote``: run the champion/challenger gate for a registered version."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.runlog import RunReport, stage

__all__ = ["HELP", "add_arguments", "run"]

HELP = "promote a registered version to 'champion' if its metric is not worse than the champion's (within tolerance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", default=None, help="model version (default: the 'challenger' alias)")
    parser.add_argument("--force-promote", action="store_true",
                        help="promote even if worse than the current champion (recorded as forced)")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.registry.promote import CHALLENGER, promote_version
    from fusionrec.registry.store import configure_mlflow

    client = configure_mlflow(cfg.mlflow)
    name = cfg.mlflow.model_name
    with stage("promote", report) as rec:
        version = args.version
        if version is None:
            try:
                version = client.get_model_version_by_alias(name, CHALLENGER).version
            except Exception as exc:
                raise InputError(f"registered model {name!r}: no '{CHALLENGER}' version to promote "
                                 f"({str(exc).splitlines()[0]}); pass --version") from None
        decision = promote_version(client, cfg.registry, name, str(version), force=args.force_promote)
        rec.counts.update(version=int(decision.challenger_version), promoted=decision.promoted)
    report.results["promotion"] = decision.to_dict()
    print(f"{name} version {decision.challenger_version}: {'promoted to champion' if decision.promoted else 'refused'}"
          f" ({decision.reason})")
    return 0
