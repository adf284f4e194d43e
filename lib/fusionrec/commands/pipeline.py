"""``fusionrec pipeline``: ingest -> embed -> train -> recommend -> evaluate -> register -> promote.

One parent MLflow run with a nested run per stage (params = resolved configuration, tags =
git commit and lane versions, the stage's Delta inputs with their versions, its report).

Resumable: a stage is skipped when its inputs are unchanged since its last successful
run. A stage's input fingerprint is the Delta versions of the tables it reads (for
ingest: the input files' names, sizes and modification times), the files it reads, and
the configuration sections it depends on. Fingerprints of successful stages are kept in
``<lake.root>/_pipeline_state.json``; a failed stage is not recorded, so the next run
starts again from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import mlflow

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import table_path
from fusionrec.registry.build import TableInput
from fusionrec.registry.tracking import log_delta_inputs, log_report, tracked_run
from fusionrec.runlog import RunReport

log = logging.getLogger(__name__)

HELP = "run ingest -> embed -> train -> recommend -> evaluate -> register -> promote (skipping unchanged stages)"
STATE_FILE = "_pipeline_state.json"


@dataclass(frozen=True)
class StageSpec:
    """A pipeline stage: the command it runs, the tables, files and config sections it reads."""

    name: str
    tables: tuple[tuple[str, str], ...]
    config_sections: tuple[str, ...]
    files: tuple[Callable[[Config], Path], ...] = ()


def _fusion_params(cfg: Config) -> Path:
    return Path(table_path(cfg, "model", "fusion_params.json"))


def _evaluation_json(cfg: Config) -> Path:
    from fusionrec.registry.register import evaluation_file

    return evaluation_file(cfg)


GOLD_INPUTS = (("gold", "interactions"), ("gold", "item_documents"), ("gold", "reviews"))
EMBEDDINGS = (("embeddings", "item_embeddings"), ("embeddings", "review_embeddings"))
FEATURES = (("features", "item_vectors"), ("features", "user_profiles"), ("features", "item_sentiment"))
MODEL = (("model", "user_factors"), ("model", "item_factors"))

STAGES: tuple[StageSpec, ...] = (
    StageSpec("ingest", (), ("ingest",)),
    StageSpec("embed", GOLD_INPUTS, ("embed", "features")),
    StageSpec("train", GOLD_INPUTS + EMBEDDINGS + FEATURES, ("model",)),
    StageSpec("recommend", GOLD_INPUTS + EMBEDDINGS + FEATURES + MODEL, ("model",), (_fusion_params,)),
    StageSpec("evaluate", GOLD_INPUTS + EMBEDDINGS, ("model", "evaluate", "features")),
    StageSpec("register", GOLD_INPUTS + FEATURES + MODEL + (("gold", "recommendations"),),
              ("registry", "mlflow"), (_fusion_params, _evaluation_json)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--generate", type=int, metavar="EVENTS",
                        help="generate this many synthetic events (seeded) and ingest them")
    source.add_argument("--dir", metavar="PATH", help="ingest a directory of events*/items*/reviews* JSONL files")
    source.add_argument("--movielens", metavar="PATH", help="ingest a MovieLens directory")
    source.add_argument("--amazon", metavar="PATH", help="ingest an Amazon reviews + metadata directory")
    parser.add_argument("--seed", type=int, default=42, help="seed of --generate")
    parser.add_argument("--force", action="store_true", help="run every stage even if its inputs are unchanged")
    parser.add_argument("--force-promote", action="store_true",
                        help="make the new version champion even if the gate refuses (recorded as forced)")


# -- fingerprints and state --------------------------------------------------------------
def delta_versions(cfg: Config, tables: tuple[tuple[str, str], ...]) -> dict[str, int | None]:
    """``{"layer.name": latest version}`` read from the Delta logs (None: no table yet); no Spark job."""
    out: dict[str, int | None] = {}
    for layer, name in tables:
        log_dir = Path(table_path(cfg, layer, name)) / "_delta_log"
        versions = [int(p.stem) for p in log_dir.glob("*.json")] if log_dir.is_dir() else []
        out[f"{layer}.{name}"] = max(versions) if versions else None
    return out


def files_fingerprint(paths: list[Path]) -> dict[str, list[int] | None]:
    """Name -> [size, mtime in ns] for files (recursing into folders); None for a missing path."""
    out: dict[str, list[int] | None] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                st = child.stat()
                out[str(child)] = [st.st_size, st.st_mtime_ns]
        elif path.is_file():
            st = path.stat()
            out[str(path)] = [st.st_size, st.st_mtime_ns]
        else:
            out[str(path)] = None
    return out


def stage_fingerprint(cfg: Config, spec: StageSpec, extra_files: list[Path] = ()) -> str:
    settings = cfg.to_dict()
    payload = {
        "tables": delta_versions(cfg, spec.tables),
        "files": files_fingerprint([f(cfg) for f in spec.files] + list(extra_files)),
        "config": {section: settings.get(section) for section in spec.config_sections},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def state_path(cfg: Config) -> Path:
    return Path(cfg.lake.root) / STATE_FILE


def read_state(cfg: Config) -> dict[str, Any]:
    path = state_path(cfg)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); delete it to rerun every stage") from None


def write_state(cfg: Config, state: dict[str, Any]) -> None:
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written state


# -- running -----------------------------------------------------------------------------
def _stage_args(name: str, args: argparse.Namespace, ingest_path: Path | None) -> argparse.Namespace:
    if name == "ingest":
        if args.movielens or args.amazon:
            return argparse.Namespace(source="movielens" if args.movielens else "amazon", dir=False,
                                      path=args.movielens or args.amazon, batch_id=None)
        return argparse.Namespace(source=None, dir=True, path=str(ingest_path), batch_id=None)
    if name == "embed":
        return argparse.Namespace(features=True)
    if name == "evaluate":
        return argparse.Namespace(name="evaluation")
    if name == "register":
        return argparse.Namespace(no_promote=True, force_promote=False)
    return argparse.Namespace()


def _generated_dir(cfg: Config, args: argparse.Namespace) -> Path:
    return Path(cfg.lake.root).parent / "generated" / f"events-{args.generate}-seed-{args.seed}"


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.commands import promote as promote_command

    ingest_path = None
    if args.generate:
        ingest_path = _generated_dir(cfg, args)
        if not ingest_path.is_dir():
            from fusionrec.commands import generate

            generate.run(cfg, argparse.Namespace(out=str(ingest_path), events=args.generate, users=None, items=None,
                                                 reviews=None, seed=args.seed, dirty_share=0.05, gzip=False), report)
    elif args.dir:
        ingest_path = Path(args.dir)
    raw_inputs = [Path(p) for p in (ingest_path, args.movielens, args.amazon) if p]

    # Stages run inside the pipeline's runs; ingest must not open a top-level run of its own.
    cfg = cfg.replace(ingest=dataclasses.replace(cfg.ingest, log_mlflow=False))
    state = {} if args.force else read_state(cfg)
    summary: dict[str, str] = {}
    with tracked_run(cfg, "pipeline") as parent:
        for spec in STAGES:
            fingerprint = stage_fingerprint(cfg, spec, raw_inputs if spec.name == "ingest" else [])
            if state.get(spec.name, {}).get("fingerprint") == fingerprint:
                summary[spec.name] = "skipped (inputs unchanged)"
                mlflow.set_tag(f"pipeline.{spec.name}", "skipped")
                log.info("pipeline: %s skipped, inputs unchanged", spec.name)
                continue
            stage_report = RunReport(spec.name)
            with tracked_run(cfg, spec.name, nested=True) as child:
                mlflow.set_tag("pipeline.parent", parent.info.run_id)
                log_delta_inputs(_table_inputs(cfg, spec.tables), context=spec.name)
                module = __import__(f"fusionrec.commands.{spec.name}", fromlist=["run"])
                code = module.run(cfg, _stage_args(spec.name, args, ingest_path), stage_report)
                stage_report.status = "ok" if code == 0 else "failed"
                log_report(stage_report)
                if code != 0:
                    raise RuntimeError(f"pipeline: stage {spec.name} exited with {code}")
            report.stages.extend(stage_report.stages)
            report.results.update(stage_report.results)
            # Fingerprint the inputs as they were read, so an unchanged rerun is skipped.
            state[spec.name] = {"fingerprint": fingerprint, "run_id": child.info.run_id}
            write_state(cfg, state)
            summary[spec.name] = "ran"
            mlflow.set_tag(f"pipeline.{spec.name}", "ran")

        version = (report.results.get("registry") or {}).get("version") if summary.get("register") == "ran" else None
        if version is not None:
            promote_report = RunReport("promote")
            with tracked_run(cfg, "promote", nested=True):
                promote_command.run(cfg, argparse.Namespace(version=str(version), force_promote=args.force_promote),
                                    promote_report)
                log_report(promote_report)
            report.results["promotion"] = promote_report.results.get("promotion")
            summary["promote"] = "ran"
        else:
            summary["promote"] = "skipped (nothing newly registered)"
        mlflow.log_dict(summary, "pipeline_summary.json")
    report.results["pipeline"] = summary
    _print_where_to_look(cfg, summary)
    return 0


def _table_inputs(cfg: Config, tables: tuple[tuple[str, str], ...]) -> list[TableInput]:
    versions = delta_versions(cfg, tables)
    return [TableInput(layer, name, table_path(cfg, layer, name), versions[f"{layer}.{name}"])
            for layer, name in tables if versions[f"{layer}.{name}"] is not None]


def _print_where_to_look(cfg: Config, summary: dict[str, str]) -> None:
    from fusionrec.registry.promote import current_champion
    from fusionrec.registry.store import configure_mlflow

    for name, outcome in summary.items():
        print(f"  {name:<10} {outcome}")
    client = configure_mlflow(cfg.mlflow)
    champion = current_champion(client, cfg.mlflow.model_name)
    if champion is not None:
        print(f"champion: models:/{cfg.mlflow.model_name}@champion = version {champion.version}, "
              f"{champion.tags.get('eval.metric')} = {champion.tags.get('eval.metric_value')}")
    else:
        print(f"no champion for {cfg.mlflow.model_name} yet")
    print(f"tables:    {cfg.lake.root}/<layer>/<table> (gold.recommendations: {table_path(cfg, 'gold', 'recommendations')})")
    print(f"reports:   {_evaluation_json(cfg).parent}")
    print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri} --host 127.0.0.1 --port 5000")
