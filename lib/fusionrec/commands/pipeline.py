"""``fusionrec pipeline``: ingest -> embed -> evaluate -> train -> recommend -> register -> promote.

Evaluate runs before train: the train stage takes the ALS setting and ranker kind the
evaluation chose on its validation period for the same inputs (:mod:`fusionrec.model.tuned`)
instead of searching again.

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
import contextlib
import dataclasses
import io
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.commands import embed, evaluate, ingest, recommend, register, train
from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import REPORTS, Lake, hadoop_fs
from fusionrec.runlog import RunReport, StageRecord, stage, warnings_only
from fusionrec.stages import Stage, fingerprint

if TYPE_CHECKING:
    from fusionrec.registry.build import TableInput

log = logging.getLogger(__name__)

HELP = "run ingest -> embed -> evaluate -> train -> recommend -> register -> promote (skipping unchanged stages)"
STATE_FILE = "_pipeline_state.json"

#: The stages in order, each with its declaration and its command.
COMMANDS = {module.STAGE.name: module for module in (ingest, embed, evaluate, train, recommend, register)}
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
        log.info("inputs: %s (generated before)", location)
        return location
    from fusionrec.commands import generate

    with tempfile.TemporaryDirectory() as tmp, stage("generate", report, quiet=True) as record:
        out = Path(tmp) / target.getName()
        with warnings_only(), contextlib.redirect_stdout(io.StringIO()):
            generate.run(cfg, argparse.Namespace(out=str(out), events=events, users=None, items=None, reviews=None,
                                                 seed=seed, dirty_share=0.05, gzip=False), report)
        staging = target.getParent().suffix(f"/.{target.getName()}.tmp")
        fs.delete(staging, True)
        fs.copyFromLocalFile(False, True, lake.spark.sparkContext._jvm.org.apache.hadoop.fs.Path(out.as_uri()),
                             staging)
        fs.rename(staging, target)  # whole: a killed copy leaves only the staging folder
    lines = report.results["generate"]["lines"]
    log.info("inputs: generated %s in %s: %s", ", ".join(f"{n:,} {kind}" for kind, n in lines.items()),
             duration(record.elapsed_s), location)
    return location


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    import mlflow

    from fusionrec.commands import promote as promote_command
    from fusionrec.registry.tracking import log_delta_inputs, log_report, tracked_run
    from fusionrec.session import build_spark

    started = time.perf_counter()
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
        steps = len(STAGES) + 1  # the stages, then the promotion gate
        for number, spec in enumerate(STAGES, 1):
            step = f"[{number}/{steps}] {spec.name:<9}"
            stage_print = stage_fingerprint(lake, cfg, spec, raw_inputs if spec.name == "ingest" else [])
            if state.get(spec.name, {}).get("fingerprint") == stage_print:
                summary[spec.name] = "skipped (inputs unchanged)"
                mlflow.set_tag(f"pipeline.{spec.name}", "skipped")
                log.info("%s skipped, inputs unchanged", step)
                continue
            stage_report = RunReport(spec.name)
            before = lake.versions(spec.writes)
            # The console gets one line per stage: its own logs show with --verbose, and what it
            # prints goes to the debug log and to its MLflow run (console.txt).
            with stage(spec.name, report, quiet=True) as record, warnings_only(), \
                    contextlib.redirect_stdout(io.StringIO()) as out, tracked_run(cfg, spec.name, nested=True) as child:
                mlflow.set_tag("pipeline.parent", parent.info.run_id)
                log_delta_inputs(_table_inputs(lake, spec.reads), context=spec.name)
                try:
                    code = COMMANDS[spec.name].run(spec.config_view(cfg), _stage_args(spec.name, args, ingest_path),
                                                   stage_report)
                finally:
                    mlflow.log_text(out.getvalue(), "console.txt")
                    log.debug("%s output:\n%s", spec.name, out.getvalue().rstrip())
                stage_report.status = "ok" if code == 0 else "failed"
                log_report(stage_report)
                if code != 0:
                    raise RuntimeError(f"pipeline: stage {spec.name} exited with {code}")
                record.counts.update(_rows(lake, spec, stage_report, before))
                mlflow.log_metrics({f"pipeline.{k}": float(v) for k, v in record.counts.items() if isinstance(v, int)})
            log.info("%s %s", step, _progress(record))
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
            with stage("promote", report, quiet=True) as record, warnings_only(), \
                    contextlib.redirect_stdout(io.StringIO()), tracked_run(cfg, "promote", nested=True):
                promote_command.run(cfg, argparse.Namespace(version=str(version), force_promote=args.force_promote),
                                    promote_report)
                log_report(promote_report)
            decision = promote_report.results.get("promotion") or {}
            report.results["promotion"] = decision
            summary["promote"] = "ran"
            log.info("[%d/%d] promote   %6.1f s  version %s %s (%s)", steps, steps, record.elapsed_s, version,
                     "promoted to champion" if decision.get("promoted") else "not promoted", decision.get("reason"))
        else:
            summary["promote"] = "skipped (nothing newly registered)"
            log.info("[%d/%d] promote   skipped, nothing newly registered", steps, steps)
        mlflow.log_dict(summary, "pipeline_summary.json")
    report.results["pipeline"] = summary
    _print_where_to_look(lake, cfg, summary, report, time.perf_counter() - started)
    return 0


def _rows(lake: Lake, spec: Stage, stage_report: RunReport, before: dict[str, int | None]) -> dict[str, Any]:
    """``rows_in``: what the stage read, as its own report counted it (no extra Spark job);
    ``rows_out``: the rows its commits to ``spec.writes`` wrote (Delta's commit metrics)."""
    results = stage_report.results
    counts = {record.name: record.counts for record in stage_report.stages}
    rows_in: tuple[int, str] | None = None
    if spec.name == "ingest":
        ingested = results.get("ingest", {})
        batches = ingested["batches"].values() if "batches" in ingested else [ingested]
        rows_in = (sum(t["rows_in"] for b in batches for t in b.get("tables", {}).values()), "input records")
    elif spec.name == "embed":
        rows_in = (sum(t.get("input", 0) for t in results.get("embeddings", {}).values()), "texts")
    elif f"{spec.name}.read" in counts:
        rows_in = (counts[f"{spec.name}.read"].get("interactions", 0), "interactions")
    elif spec.name == "recommend":
        rows_in = (counts.get("recommend.score", {}).get("users", 0), "users")
    elif spec.name == "register":
        bundle = counts.get("register.bundle", {})
        rows_in = (bundle.get("users", 0) + bundle.get("items", 0), "users and items")
    out: dict[str, Any] = {}
    if rows_in is not None:
        out.update(rows_in=rows_in[0], rows_in_unit=rows_in[1])
    if spec.writes:
        out["rows_out"] = sum(lake.rows_written(table, since=before[table]) for table in spec.writes)
        out["tables_out"] = sum(lake.version(table) != before[table] for table in spec.writes)
    elif spec.artifacts_out:
        out["artifacts"] = "out " + ", ".join(spec.artifacts_out)
    if "registry" in results:
        out["registered"] = f"registered {results['registry']['model_name']} version {results['registry']['version']}"
    return out


def _progress(record: StageRecord) -> str:
    """One console line for a stage that ran: time, rows in and out."""
    c = record.counts
    parts = [f"{record.elapsed_s:6.1f} s"]
    if "rows_in" in c:
        parts.append(f"in {c['rows_in']:,} {c['rows_in_unit']}")
    if "rows_out" in c:
        parts.append(f"out {c['rows_out']:,} rows to {c['tables_out']} table{'' if c['tables_out'] == 1 else 's'}")
    for key in ("artifacts", "registered"):
        if key in c:
            parts.append(c[key])
    return "  ".join(parts)


def _table_inputs(lake: Lake, tables: tuple[str, ...]) -> list[TableInput]:
    from fusionrec.registry.build import TableInput

    versions = lake.versions(tables)
    return [TableInput(*table.split(".", 1), lake.path(table), versions[table])
            for table in tables if versions[table] is not None]


def duration(seconds: float) -> str:
    """``seconds`` for people.

    >>> duration(4.26), duration(75.4), duration(3725)
    ('4.3 s', '1 min 15 s', '62 min 5 s')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _print_where_to_look(lake: Lake, cfg: Config, summary: dict[str, str], report: RunReport,
                         elapsed_s: float) -> None:
    from fusionrec.registry.promote import current_champion
    from fusionrec.registry.store import configure_mlflow

    ran = [name for name, outcome in summary.items() if outcome == "ran"]
    print(f"pipeline: done in {duration(elapsed_s)}; ran {', '.join(ran) or 'nothing'}"
          f"; {len(summary) - len(ran)} skipped")
    table = (report.results.get("evaluation") or {}).get("table") or []
    if table:
        k = table[0]["k"]
        print(f"evaluation (ndcg@{k}): " + ", ".join(f"{r['model']} {r['ndcg']:.3f}" for r in table if r["k"] == k))
    client = configure_mlflow(cfg.mlflow)
    champion = current_champion(client, cfg.mlflow.model_name)
    if champion is not None:
        value = champion.tags.get("eval.metric_value")
        try:
            value = f"{float(value):.4f}"
        except (TypeError, ValueError):
            pass
        print(f"champion: models:/{cfg.mlflow.model_name}@champion = version {champion.version}, "
              f"{champion.tags.get('eval.metric')} = {value}")
    else:
        print(f"no champion for {cfg.mlflow.model_name} yet")
    print(f"tables:    {lake.root}/<layer>/<table> (gold.recommendations: {lake.path('gold.recommendations')})")
    print(f"reports:   {lake.uri(REPORTS)}")
    print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri} --host 127.0.0.1 --port 5000")
