"""``fusionrec pipeline``: ingest -> embed -> train -> recommend -> evaluate -> register -> promote.

One parent MLflow run with a nested run per stage (params = resolved configuration, tags =
git commit and lane versions, the stage's Delta inputs with their versions, its report).

Resumable: a stage is skipped when what it reads is unchanged since its last successful
run. What a stage reads - tables, lake artifacts, configuration sections - is its
declaration (:class:`fusionrec.stages.Stage`, next to each command's ``run``); the
fingerprint is derived from it (for ingest also the raw input files' names, sizes and
modification times), and each stage runs with only the sections it declares. The
fingerprints of successful stages are kept in ``<lake.root>/_pipeline_state.json``; a
failed stage is not recorded, so the next run starts again from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.commands import embed, evaluate, ingest, recommend, register, train
from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import REPORTS, Lake, hadoop_fs
from fusionrec.runlog import RunReport
from fusionrec.stages import Stage, fingerprint

if TYPE_CHECKING:
    from fusionrec.registry.build import TableInput

log = logging.getLogger(__name__)

HELP = "run ingest -> embed -> train -> recommend -> evaluate -> register -> promote (skipping unchanged stages)"
STATE_FILE = "_pipeline_state.json"

#: The stages in order, each with its declaration and its command.
COMMANDS = {module.STAGE.name: module for module in (ingest, embed, train, recommend, evaluate, register)}
STAGES: tuple[Stage, ...] = tuple(module.STAGE for module in COMMANDS.values())


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
def files_fingerprint(lake: Lake, locations: list[str]) -> dict[str, list[int] | None]:
    """URI -> [size, modification time in ms] for the files at ``locations`` (recursing into
    folders, on any Hadoop filesystem); None for a missing location."""
    out: dict[str, list[int] | None] = {}
    for location in locations:
        fs, path = hadoop_fs(lake.spark, location)
        if not fs.exists(path):
            out[location] = None
            continue
        files = fs.listFiles(path, True)
        while files.hasNext():
            status = files.next()
            out[status.getPath().toString()] = [int(status.getLen()), int(status.getModificationTime())]
    return out


def stage_fingerprint(lake: Lake, cfg: Config, stage: Stage, raw_inputs: list[str] = ()) -> str:
    """The fingerprint of everything ``stage`` declares it reads, as the lake holds it now."""
    stamps = {name: dataclasses.astuple(stamp) if (stamp := lake.stamp(name)) else None
              for name in stage.artifacts_in}
    return fingerprint(stage, cfg, lake.versions(stage.reads), stamps,
                       extra=files_fingerprint(lake, list(raw_inputs)) if raw_inputs else None)


def read_state(lake: Lake) -> dict[str, Any]:
    text = lake.read_text(STATE_FILE)
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{lake.uri(STATE_FILE)}: not valid JSON ({exc}); delete it to rerun every stage") from None


def write_state(lake: Lake, state: dict[str, Any]) -> None:
    lake.write_text(STATE_FILE, json.dumps(state, indent=2))  # whole: a crash never leaves half a state


# -- running -----------------------------------------------------------------------------
def _stage_args(name: str, args: argparse.Namespace, ingest_path: str | None) -> argparse.Namespace:
    if name == "ingest":
        if args.movielens or args.amazon:
            return argparse.Namespace(source="movielens" if args.movielens else "amazon", dir=False,
                                      path=args.movielens or args.amazon, batch_id=None)
        return argparse.Namespace(source=None, dir=True, path=ingest_path, batch_id=None)
    if name == "embed":
        return argparse.Namespace(features=True)
    if name == "evaluate":
        return argparse.Namespace(name="evaluation")
    if name == "register":
        return argparse.Namespace(no_promote=True, force_promote=False)
    return argparse.Namespace()


def generated_inputs(lake: Lake, cfg: Config, events: int, seed: int, report: RunReport) -> str:
    """The seeded generated inputs inside the lake (``_inputs/generated/...``), made on the
    driver's disk and copied there once, so they are where any executor can read them."""
    location = lake.uri(f"_inputs/generated/events-{events}-seed-{seed}")
    fs, target = hadoop_fs(lake.spark, location)
    if fs.exists(target):
        return location
    from fusionrec.commands import generate

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / target.getName()
        generate.run(cfg, argparse.Namespace(out=str(out), events=events, users=None, items=None, reviews=None,
                                             seed=seed, dirty_share=0.05, gzip=False), report)
        staging = target.getParent().suffix(f"/.{target.getName()}.tmp")
        fs.delete(staging, True)
        fs.copyFromLocalFile(False, True, lake.spark.sparkContext._jvm.org.apache.hadoop.fs.Path(out.as_uri()),
                             staging)
        fs.rename(staging, target)  # whole: a killed copy leaves only the staging folder
    return location


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    import mlflow

    from fusionrec.commands import promote as promote_command
    from fusionrec.registry.tracking import log_delta_inputs, log_report, tracked_run
    from fusionrec.session import build_spark

    for path, source in ((args.dir, None), (args.movielens, "movielens"), (args.amazon, "amazon")):
        if path:
            ingest.check_before_spark(cfg, path, source)
    lake = Lake(build_spark(cfg), cfg.lake)
    ingest_path = None
    if args.generate:
        ingest_path = generated_inputs(lake, cfg, args.generate, args.seed, report)
    elif args.dir:
        ingest_path = args.dir
    raw_inputs = [p for p in (ingest_path, args.movielens, args.amazon) if p]

    # Stages run inside the pipeline's runs; ingest must not open a top-level run of its own.
    cfg = cfg.replace(ingest=dataclasses.replace(cfg.ingest, log_mlflow=False))
    state = {} if args.force else read_state(lake)
    summary: dict[str, str] = {}
    with tracked_run(cfg, "pipeline") as parent:
        for spec in STAGES:
            stage_print = stage_fingerprint(lake, cfg, spec, raw_inputs if spec.name == "ingest" else [])
            if state.get(spec.name, {}).get("fingerprint") == stage_print:
                summary[spec.name] = "skipped (inputs unchanged)"
                mlflow.set_tag(f"pipeline.{spec.name}", "skipped")
                log.info("pipeline: %s skipped, inputs unchanged", spec.name)
                continue
            stage_report = RunReport(spec.name)
            with tracked_run(cfg, spec.name, nested=True) as child:
                mlflow.set_tag("pipeline.parent", parent.info.run_id)
                log_delta_inputs(_table_inputs(lake, spec.reads), context=spec.name)
                code = COMMANDS[spec.name].run(spec.config_view(cfg), _stage_args(spec.name, args, ingest_path),
                                               stage_report)
                stage_report.status = "ok" if code == 0 else "failed"
                log_report(stage_report)
                if code != 0:
                    raise RuntimeError(f"pipeline: stage {spec.name} exited with {code}")
            report.stages.extend(stage_report.stages)
            report.results.update(stage_report.results)
            # Fingerprint the inputs as they were read, so an unchanged rerun is skipped.
            state[spec.name] = {"fingerprint": stage_print, "run_id": child.info.run_id}
            write_state(lake, state)
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
    _print_where_to_look(lake, cfg, summary)
    return 0


def _table_inputs(lake: Lake, tables: tuple[str, ...]) -> list[TableInput]:
    from fusionrec.registry.build import TableInput

    versions = lake.versions(tables)
    return [TableInput(*table.split(".", 1), lake.path(table), versions[table])
            for table in tables if versions[table] is not None]


def _print_where_to_look(lake: Lake, cfg: Config, summary: dict[str, str]) -> None:
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
    print(f"tables:    {lake.root}/<layer>/<table> (gold.recommendations: {lake.path('gold.recommendations')})")
    print(f"reports:   {lake.uri(REPORTS)}")
    print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri} --host 127.0.0.1 --port 5000")
