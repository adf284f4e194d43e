"""Orchestration: files -> bronze -> silver / quarantine -> gold, with accounting.

One batch = the files of one ``ingest`` call. Its id is a hash of the source name and
the file contents; a batch recorded as complete in ``bronze._batches`` is skipped, and
every write is idempotent (see :mod:`.writer`), so re-running a batch - finished or killed
midway - ends with the same tables.

Order inside a batch: check files (one Spark job for all the files of a directory) ->
read and classify every kind (one pass over the input, cached) -> one aggregation per kind
(counts; files of the wrong format fail here, before any write) -> bronze, quarantine,
silver -> written counts (from the commits' metrics; silver read back only when its MERGE
did not write every accepted row) -> gold for the keys the batch touched -> batch recorded
as complete.

Ingests of different batches may run at the same time against one lake: bronze and
quarantine are partitioned by batch (each write's own commit found by its tag), silver
and gold MERGEs are re-run on a conflict, a silver read-back reads one version, and gold
rows are recomputed when silver moved while they were computed (see :func:`_upsert_gold`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.commits import CommitConflictError
from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import Lake
from fusionrec.ingest import gold, writer
from fusionrec.ingest.accounting import KindAccount, summarise
from fusionrec.ingest.clean import (CLASSIFIERS, SILVER_COLUMNS, CleaningRules, accepted as accepted_rows, quarantined,
                                    review_events)
from fusionrec.ingest.privacy import pseudonym_key
from fusionrec.ingest.schema import KEYS, KINDS, Fix, conform_staged
from fusionrec.ingest.sources import amazon, jsonl, movielens
from fusionrec.ingest.sources.files import (InputFile, batch_id as files_batch_id, check_local, exists, inspect,
                                            list_inputs, local_path, matches, resolve)

__all__ = ["ADAPTERS", "DERIVED_EVENT_PREFIX", "DIRECTORY_PATTERNS", "SOURCES", "Adapter", "check_inputs", "ingest",
           "ingest_directory", "ingest_lines"]

log = logging.getLogger(__name__)

DERIVED_EVENT_PREFIX = "review:"


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Wall time of one step, logged and added to ``timings`` (reported as ``timings_s``)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - start, 2)
        log.debug("ingest step=%s elapsed_s=%.2f", step, time.perf_counter() - start)


@dataclass(frozen=True)
class Adapter:
    patterns: tuple[str, ...]
    check: Callable[[list[InputFile]], None]
    read: Callable[[SparkSession, list[InputFile], Config], dict[str, DataFrame]]


def _jsonl_adapter(kind: str) -> Adapter:
    return Adapter(jsonl.PATTERNS[kind], jsonl.check, lambda spark, files, cfg: jsonl.read(spark, kind, files, cfg))


ADAPTERS: dict[str, Adapter] = {
    "events": _jsonl_adapter("events"),
    "items": _jsonl_adapter("items"),
    "reviews": _jsonl_adapter("reviews"),
    "movielens": Adapter(movielens.PATTERNS, movielens.check, movielens.read),
    "amazon": Adapter(amazon.PATTERNS, amazon.check, amazon.read),
}
SOURCES = tuple(ADAPTERS)
#: The files :func:`ingest_directory` takes from a directory.
DIRECTORY_PATTERNS = tuple(pattern for kind in KINDS for pattern in jsonl.PATTERNS[kind])


def ingest(lake: Lake, cfg: Config, source: str, path: str, batch_id: str | None = None) -> dict[str, Any]:
    """Ingest the files at ``path`` as one batch of ``source``.

    Parameters
    ----------
    lake : Lake
        The lake written.
    cfg : Config
        The configuration (``ingest.*``; ``mode`` for the pseudonym key).
    source : str
        ``events`` | ``items`` | ``reviews`` (canonical JSONL) | ``movielens`` | ``amazon``.
    path : str
        A file or a directory of the source's files.
    batch_id : str, optional
        Overrides the content hash of the files (for replays under a known id).

    Returns
    -------
    dict
        The accounting report: ``batch_id``, ``skipped`` (the batch was already complete),
        ``files`` and, per kind, ``rows_in = accepted + quarantined + duplicates`` with the
        reason codes. Writes ``bronze.<kind>`` ``[raw, file, source, batch_id, ingest_ts]``,
        ``quarantine.<kind>`` ``[raw, file, reason, source, batch_id, ingest_ts]``,
        ``silver.<kind>`` (the columns of :data:`~fusionrec.ingest.clean.SILVER_COLUMNS`
        plus provenance) and the gold tables of :data:`fusionrec.lake.SCHEMAS`.

    Raises
    ------
    InputError
        Missing path, empty directory or file, wrong format, bad gzip, missing CSV column
        (one line naming the file); nothing is written then.
    AccountingError
        The row equations do not hold.
    """
    if source not in ADAPTERS:
        raise InputError(f"--source {source!r}: expected one of {', '.join(SOURCES)}")
    adapter = ADAPTERS[source]
    files = inspect(lake.spark, resolve(lake.spark, path, adapter.patterns))
    adapter.check(files)
    return _ingest_files(lake, cfg, source, files, batch_id)


def _ingest_files(lake: Lake, cfg: Config, source: str, files: list[InputFile], batch_id: str | None,
                  completed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """:func:`ingest` of ``files``, already inspected and checked; ``completed``: the reports
    of completed batches when already looked up (see :func:`_completed_reports`)."""
    adapter = ADAPTERS[source]
    bid = batch_id or files_batch_id(source, files)
    timings: dict[str, float] = {}
    with _timed(timings, "skip_check"):
        previous = completed.get(bid) if completed is not None else _completed_report(lake, cfg, bid)
    if previous is not None:
        log.info("batch %s (%s) already ingested: nothing to do", bid, source)
        return {**previous, "skipped": True}
    staged = adapter.read(lake.spark, files, cfg)
    return _ingest_staged(lake, cfg, source, bid, staged, check_parseable=True,
                          inputs=[{"path": f.path, "bytes": f.size, "sha256": f.sha256} for f in files],
                          timings=timings)


def ingest_lines(lake: Lake, cfg: Config, *, kind: str, lines: DataFrame, source: str, batch_id: str) -> dict[str, Any]:
    """Ingest canonical JSON lines of ``kind`` that did not come from files (a stream's
    micro-batch) as batch ``batch_id``: the same staging, rules, writes and accounting as
    :func:`ingest`, and the same skip of a batch already recorded as complete.

    Parameters
    ----------
    lake : Lake
        The lake written.
    cfg : Config
        The configuration (``ingest.*``; ``mode`` for the pseudonym key).
    kind : str
        ``events`` | ``items`` | ``reviews``.
    lines : DataFrame
        ``[_file, _raw, _non_utf8]`` (see :func:`fusionrec.ingest.sources.text.read_lines`);
        ``_file`` names where the lines came from (e.g. a topic partition).
    source : str
        The provenance recorded with every row (e.g. ``stream``).
    batch_id : str
        A deterministic id, so that a replayed micro-batch is recognised.

    Returns
    -------
    dict
        The accounting report of :func:`ingest` (``files`` is empty). Malformed lines are
        quarantined with their reason codes; they never fail the batch.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    bid = batch_id
    previous = _completed_report(lake, cfg, bid)
    if previous is not None:
        log.info("batch %s (%s) already ingested: nothing to do", bid, source)
        return {**previous, "skipped": True}
    staged = {kind: jsonl.stage_json(lines, kind, list(cfg.ingest.personal_fields))}
    # A micro-batch of malformed messages is quarantined, never refused as a wrong file.
    return _ingest_staged(lake, cfg, source, bid, staged, check_parseable=False, inputs=[])


def _ingest_staged(lake: Lake, cfg: Config, source: str, bid: str, staged: dict[str, DataFrame], *,
                   check_parseable: bool, inputs: list[dict[str, Any]],
                   timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Classify, write and account for the staged frames of one batch; record it as complete."""
    timings = {} if timings is None else timings
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    rules = CleaningRules(cfg.ingest, now, pseudonym_key(cfg, master=lake.spark.sparkContext.master))
    staged = {kind: conform_staged(df, kind) for kind, df in staged.items()}
    classified = {kind: CLASSIFIERS[kind](df, rules).persist(StorageLevel.MEMORY_AND_DISK)
                  for kind, df in staged.items()}
    try:
        with _timed(timings, "read_classify_count"):
            accounts = {kind: summarise(df, kind) for kind, df in classified.items()}
        for account in accounts.values():
            account.check_split()
            if check_parseable:
                _check_parseable(account, source)
        provenance = [F.lit(source).alias("source"), F.lit(bid).alias("batch_id"), F.lit(now).alias("ingest_ts")]
        gold_report = _write(lake, cfg, source, bid, classified, accounts, provenance, timings, rules.key)
        report = {
            "source": source, "batch_id": bid, "skipped": False, "ingest_ts": now.isoformat(),
            "files": inputs,
            "tables": {kind: accounts[kind].to_dict() for kind in KINDS if kind in accounts},
            "gold": gold_report,
            "timings_s": timings,
        }
        with _timed(timings, "record"):  # after the report is stored: only the returned one has it
            _record_batch(lake, cfg, bid, source, [i["path"] for i in inputs], list(accounts), report)
        return report
    finally:
        for df in classified.values():
            df.unpersist()


def ingest_directory(lake: Lake, cfg: Config, path: str) -> dict[str, Any]:
    """Ingest a directory of canonical JSONL files: ``items*``, then ``events*``, then
    ``reviews*`` (items first, so reviews see their items), one batch per kind."""
    found_at, is_dir = exists(lake.spark, path)
    if not is_dir:
        list_inputs(lake.spark, path, DIRECTORY_PATTERNS)  # names a dangling link, a loop, ...
        raise InputError(f"{path}: not a directory" if found_at else f"{path}: no such file or directory")
    uris, other = list_inputs(lake.spark, path, DIRECTORY_PATTERNS)
    if other:
        log.info("%s: not ingested (not named like events*/items*/reviews* JSON Lines): %s", path, ", ".join(other))
    found = {kind: [u for u in uris if matches(posixpath.basename(u), jsonl.PATTERNS[kind])] for kind in KINDS}
    if not any(found.values()):
        raise InputError(f"{path}: directory has no events*/items*/reviews* JSON Lines files")
    # Check every file of every kind (one Spark job) before the first write; each batch
    # takes its files from this one inspection.
    timings: dict[str, float] = {}
    with _timed(timings, "inspect"):
        checked = inspect(lake.spark, [uri for kind in KINDS for uri in found[kind]])
    jsonl.check(checked)
    files: dict[str, list[InputFile]] = {}
    start = 0
    for kind in KINDS:
        files[kind], start = checked[start:start + len(found[kind])], start + len(found[kind])
    # The batches already complete, looked up once for all kinds (a batch completed by a
    # concurrent ingest meanwhile is re-run: every write is idempotent).
    with _timed(timings, "skip_check"):
        completed = _completed_reports(lake, [files_batch_id(kind, fs) for kind, fs in files.items() if fs])
    batches = {}
    for kind in KINDS:
        if files[kind]:
            batches[kind] = _ingest_files(lake, cfg, kind, files[kind], None, completed)
    return {"path": path, "batches": batches, "timings_s": timings}


def check_inputs(path: str, source: str | None, *, bare_is_local: bool = True) -> None:
    """The input checks that need no Spark session, for a local ``path`` (see
    :func:`~fusionrec.ingest.sources.files.check_local`); ``source`` None: a directory for
    :func:`ingest_directory`. Remote URIs are left to the Hadoop listing of :func:`ingest`.

    :raises InputError: the problem, naming the path; nothing is written.
    """
    local = local_path(path, bare_is_local=bare_is_local)
    if local is None:
        return
    patterns = DIRECTORY_PATTERNS if source is None else ADAPTERS[source].patterns
    listing = check_local(local, patterns)
    if source is None and not listing.is_dir:
        raise InputError(f"{path}: not a directory")
    if listing.is_dir and not listing.files:
        raise InputError(f"{path}: directory has no events*/items*/reviews* JSON Lines files" if source is None
                         else f"{path}: directory has no input files (expected {', '.join(patterns)})")


def _check_parseable(account: KindAccount, source: str) -> None:
    for file, (rows, parsed) in account.files.items():
        if rows and not parsed:
            raise InputError(f"{file}: no line is a valid {account.kind} record for source {source!r} "
                             f"({rows} lines, wrong format?)")


def _write(lake: Lake, cfg: Config, source: str, bid: str, classified: dict[str, DataFrame],
           accounts: dict[str, KindAccount], provenance: list, timings: dict[str, float],
           key: bytes) -> dict[str, Any]:
    personal = list(cfg.ingest.personal_fields)
    accepted: dict[str, DataFrame] = {}
    for kind in KINDS:
        if kind not in classified:
            continue
        df, account = classified[kind], accounts[kind]
        with _timed(timings, "bronze"):
            account.bronze_rows = _replace_batch(
                lake, cfg, f"bronze.{kind}", bid,
                df.select(F.col("_raw").alias("raw"), F.col("_file").alias("file"), *provenance))
        with _timed(timings, "quarantine"):
            account.quarantine_rows = _replace_batch(
                lake, cfg, f"quarantine.{kind}", bid,
                quarantined(df, personal_fields=personal, key=key).select("*", *provenance))
        accepted[kind] = accepted_rows(df, kind).select("*", *provenance)

    with _timed(timings, "silver"):
        silver_metrics, derived = _write_silver(lake, cfg, accepted, provenance)
    with _timed(timings, "silver_count"):
        for kind, account in accounts.items():
            _count_silver(lake, kind, bid, accepted[kind], account, silver_metrics.get(kind, {}))
            account.check_written()
    with _timed(timings, "gold"):
        return _update_gold(lake, cfg, bid, accepted, derived, accounts)


def _write_silver(lake: Lake, cfg: Config, accepted: dict[str, DataFrame],
                  provenance: list) -> tuple[dict[str, dict[str, int]], DataFrame | None]:
    """MERGE the accepted rows into silver; returns commit metrics and the derived review events."""
    silver_metrics: dict[str, dict[str, int]] = {}

    def insert(table: str, rows: DataFrame) -> dict[str, int]:
        return _merge_into(lake, table, rows, lambda path: writer.merge_insert(lake.spark, path, rows, KEYS[table],
                                                                               cfg.lake))

    if "items" in accepted:
        # Across batches the rule of clean.classify_items continues: a stored record with a
        # newer updated_ts is kept; otherwise the later batch's record replaces it.
        rule = "t.updated_ts IS NULL OR s.updated_ts >= t.updated_ts"
        silver_metrics["items"] = _merge_into(lake, "silver.items", accepted["items"], lambda path: writer.merge_upsert(
            lake.spark, path, accepted["items"], KEYS["silver.items"],
            compare=[c for c in SILVER_COLUMNS["items"] if c != "extra"], lake=cfg.lake, rule=rule))
    if "events" in accepted:
        silver_metrics["events"] = insert("silver.events", accepted["events"])
    derived = None
    if "reviews" in accepted:
        silver_metrics["reviews"] = insert("silver.reviews", accepted["reviews"])
        if cfg.ingest.review_events:
            derived = review_events(accepted["reviews"], cfg.ingest).select("*", *provenance)
            insert("silver.events", derived)
    return silver_metrics, derived


def _merge_into(lake: Lake, table: str, df: DataFrame, merge: Callable[[str], dict[str, int]]) -> dict[str, int]:
    """``merge(path of table)`` of the rows ``df``; a table not there yet is created holding
    ``df`` instead, in one commit (``df`` has unique keys: every row is an insert).

    :returns: the commit's ``numTargetRowsInserted`` and ``numTargetRowsUpdated``.
    """
    created = writer.create_with(lake, table, df)
    if created is not None:
        return {"numTargetRowsInserted": created, "numTargetRowsUpdated": 0}
    return merge(writer.ensure_table(lake, table))


def _replace_batch(lake: Lake, cfg: Config, table: str, bid: str, df: DataFrame) -> int:
    """Replace batch ``bid`` of ``table`` by ``df``; returns the rows its commit wrote (the
    commit's own metrics, found by a tag among concurrent writers' commits: no read-back);
    a table not there yet is created holding ``df``, in one commit."""
    tag = f"{bid}/{uuid.uuid4().hex}"
    created = writer.create_with(lake, table, df, tag=tag, batch_id=bid)
    if created is not None:
        return created
    path = writer.ensure_table(lake, table)
    before = lake.version(table)
    writer.replace_batch(df, path, bid, cfg.lake, tag=tag)
    return lake.rows_written(table, since=before, tag=tag)


def _count_silver(lake: Lake, kind: str, bid: str, accepted: DataFrame, account: KindAccount,
                  metrics: dict[str, int]) -> None:
    """Fill the silver counts of ``account`` (equation (2)).

    When this batch's MERGE inserted or updated every accepted row, the version it committed
    holds each of them under this batch id and none under another: the counts are the
    MERGE's own. Otherwise (a re-run after a kill, keys held by earlier batches) silver is
    read at one version, as a concurrent batch may commit between the two counts.
    """
    inserted = metrics.get("numTargetRowsInserted", 0)
    account.silver_inserted = inserted
    if inserted + metrics.get("numTargetRowsUpdated", 0) == account.accepted:
        account.silver_rows, account.held_by_other_batches = account.accepted, 0
        return
    name = f"silver.{kind}"
    silver = lake.read(name, lake.version(name))
    key = KEYS[f"silver.{kind}"][0]
    if kind == "events":
        silver = silver.where(~F.col("event_id").startswith(DERIVED_EVENT_PREFIX))
    account.silver_rows = silver.where(F.col("batch_id") == bid).count()
    others = silver.where(F.col("batch_id") != bid).select(key)
    # Data skipping on batch_id makes the emptiness test cheap; the join only runs when needed.
    account.held_by_other_batches = (accepted.select(key).join(others, key, "left_semi").count()
                                     if others.limit(1).count() else 0)


def _update_gold(lake: Lake, cfg: Config, bid: str, accepted: dict[str, DataFrame],
                 derived: DataFrame | None, accounts: dict[str, KindAccount]) -> dict[str, Any]:
    """Recompute the gold rows whose inputs this batch touched, and upsert them."""
    out: dict[str, Any] = {}
    touched_pairs = None
    for events in (accepted.get("events"), derived):
        if events is not None:
            pairs = events.select("user_id", "item_id")
            touched_pairs = pairs if touched_pairs is None else touched_pairs.unionByName(pairs)
    if touched_pairs is not None:
        def interactions(read: Callable[[str], DataFrame | None], versions: dict[str, int]) -> DataFrame:
            events = read("silver.events")
            if not _only_batch(events, bid, versions["silver.events"]):  # else every pair is touched: no filter
                events = events.join(touched_pairs.distinct(), ["user_id", "item_id"], "left_semi")
            return gold.interactions(events)

        out["interactions"] = _upsert_gold(lake, cfg, "gold.interactions", ("silver.events",), interactions,
                                           compare=["weight", "n_events", "first_ts", "last_ts", "rating"])

    items_touched = accepted["items"].select("item_id") if "items" in accepted else None
    if items_touched is not None:
        def documents(read: Callable[[str], DataFrame | None], versions: dict[str, int]) -> DataFrame:
            items = read("silver.items")
            if not _only_batch(items, bid, versions["silver.items"]):
                items = items.join(items_touched, "item_id", "left_semi")
            return gold.item_documents(items)

        out["item_documents"] = _upsert_gold(
            lake, cfg, "gold.item_documents", ("silver.items",), documents,
            compare=["title", "text", "categories", "brand", "price", "updated_ts"])

    if "reviews" in accepted or (items_touched is not None and lake.exists("silver.reviews")):
        def reviews(read: Callable[[str], DataFrame | None], versions: dict[str, int]) -> DataFrame:
            silver_reviews = read("silver.reviews")
            selector = None
            if "reviews" in accepted:
                selector = F.col("batch_id") == bid
            if items_touched is not None:
                of_items = silver_reviews.join(items_touched, "item_id", "left_semi").select("review_id")
                ids = of_items if selector is None else of_items.unionByName(
                    silver_reviews.where(selector).select("review_id"))
                touched = silver_reviews.join(ids.distinct(), "review_id", "left_semi")
            else:
                touched = silver_reviews.where(selector)
            items = read("silver.items")
            if items is None:  # no item ingested yet
                items = lake.spark.createDataFrame([], "item_id STRING")
            return gold.reviews(touched, items)

        out["reviews"] = _upsert_gold(lake, cfg, "gold.reviews", ("silver.reviews", "silver.items"), reviews,
                                      compare=["user_id", "item_id", "rating", "text", "ts", "item_known"])
        if "reviews" in accepted:
            unknown = lake.read("gold.reviews").join(
                accepted["reviews"].select("review_id"), "review_id", "left_semi").where(~F.col("item_known")).count()
            accounts["reviews"].fixes[Fix.ITEM_UNKNOWN] = unknown
    return out


def _upsert_gold(lake: Lake, cfg: Config, target: str, sources: tuple[str, ...],
                 build: Callable[[Callable[[str], DataFrame | None], dict[str, int]], DataFrame],
                 compare: list[str]) -> dict[str, int]:
    """Upsert ``build(read, versions)`` into gold ``target``, ``read`` giving the silver
    ``sources`` at one version each (``versions``); returns the inserted/updated counts.

    Gold rows are aggregates over silver, and Delta checks conflicts per table: a batch
    committed to silver concurrently with ours may have computed its gold rows without our
    rows, or we ours without its. So after our MERGE the sources are checked; when one has
    a newer version, the rows are recomputed and upserted again (idempotent), until the
    sources did not move during a round. The last gold commit of any key is then computed
    from a silver version that holds every batch committed before it.
    """
    totals = {"inserted": 0, "updated": 0}
    for _ in range(cfg.lake.commit_retries + 1):
        versions = {name: lake.version(name) for name in sources if lake.exists(name)}
        def read(name: str) -> DataFrame | None:
            return lake.read(name, versions[name]) if name in versions else None

        rows = build(read, versions)
        metrics = _merge_into(lake, target, rows,
                              lambda path: writer.merge_upsert(lake.spark, path, rows, KEYS[target], compare, cfg.lake))
        for key, value in writer.merge_metrics_summary(metrics).items():
            totals[key] += value
        moved = [name for name, v in versions.items() if lake.version(name) != v]
        if not moved:
            return totals
        log.info("%s: %s changed by a concurrent batch while computed: recomputing", target, ", ".join(moved))
    raise CommitConflictError(f"{target}: its silver sources kept changing for {cfg.lake.commit_retries + 1} rounds "
                              f"(lake.commit_retries={cfg.lake.commit_retries})")


def _only_batch(table: DataFrame, bid: str, version: int) -> bool:
    """Every row of silver ``table`` (read at ``version``) may be taken as touched by batch
    ``bid``: version 0 is the write that created the table (known from the log, no job;
    should that write be a concurrent batch's, gold rows computed from all of it are still
    right, only more of them); else no row belongs to another batch (cheap: data skipping
    on batch_id)."""
    return version == 0 or table.where(F.col("batch_id") != bid).limit(1).count() == 0


# --------------------------------------------------------------------------- batches

def _completed_report(lake: Lake, cfg: Config, bid: str) -> dict[str, Any] | None:
    return _completed_reports(lake, [bid]).get(bid)


def _completed_reports(lake: Lake, bids: list[str]) -> dict[str, dict[str, Any]]:
    """``{batch id: its stored report}`` of the batches of ``bids`` recorded as complete (one read)."""
    if not lake.exists("bronze._batches"):
        return {}
    rows = (lake.read("bronze._batches")
            .where(F.col("batch_id").isin(*bids) & (F.col("status") == "complete"))
            .select("batch_id", "report").collect())
    return {row["batch_id"]: json.loads(row["report"]) for row in rows}


def _record_batch(lake: Lake, cfg: Config, bid: str, source: str, paths: list[str],
                  kinds: list[str], report: dict[str, Any]) -> None:
    """Record ``bid`` as complete: a MERGE inserting it unless present, so two writers of
    the same batch record it once (the loser's retry finds the row)."""
    row = lake.spark.createDataFrame(
        [(bid, source, kinds, paths, "complete", json.dumps(report, default=str),
          dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))],
        writer.table_schema("bronze._batches"))
    _merge_into(lake, "bronze._batches", row,
                lambda path: writer.merge_insert(lake.spark, path, row, ("batch_id", "status"), cfg.lake))
