"""The embedding stage: gold texts -> Delta ``embeddings.*`` tables, incrementally.

For each source (``gold.item_documents`` -> ``embeddings.item_embeddings`` and
``gold.reviews`` -> ``embeddings.review_embeddings``):

1. prepare: normalise, hash and triage the texts (:mod:`fusionrec.embed.texts`);
2. plan against the stored ``[id, content_hash]`` (:mod:`fusionrec.embed.plan`: one
   grouping by content hash, kept in memory for the steps below) and count every group
   in one Spark job, which also tells whether the quarantine would change;
3. only if some distinct text has no stored vector: load the Spark NLP model (once per
   Spark application, :func:`fusionrec.embed.model.load_embedder`), embed those texts
   (:mod:`fusionrec.embed.infer`), check every vector (:mod:`fusionrec.embed.validate`)
   and that every text got one row back;
4. only if a vector is new or a stored one is stale: one atomic Delta MERGE makes the
   table equal to the current good vectors: new and changed records are upserted,
   records whose text is now unusable, failed or gone from gold are deleted (a stale
   vector never outlives its text);
5. only if they differ: the failures replace this source's rows in
   ``quarantine.embedding_failures``.

A re-run without changes therefore loads no model and commits nothing: it costs the
counting job of step 2 per table. The embedded and deleted record counts are those of
the MERGE commit itself, checked against the plan.

Every input record ends up counted exactly once: ``skipped_present`` + ``embedded`` +
``reused_identical`` + ``quarantined`` = ``input``. A text that failed in the model is
retried on the next run (it has no stored vector).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import EmbedConfig
from fusionrec.embed.infer import embed_texts, embedding_pipeline
from fusionrec.embed.plan import EmbeddingPlan, plan_embedding
from fusionrec.embed.texts import prepare_texts
from fusionrec.embed.validate import classify_vectors
from fusionrec.errors import MissingInputError
from fusionrec.lake import SCHEMAS, Lake
from fusionrec.runlog import RunReport, stage

__all__ = ["QUARANTINE_TABLE", "new_vectors", "quarantine_rows", "run_embed"]

log = logging.getLogger(__name__)

QUARANTINE_TABLE = "embedding_failures"
_QUARANTINE_KEYS = ["record_id", "content_hash", "reason"]
#: What :func:`fusionrec.embed.validate.classify_vectors` returns, when nothing went through the model.
_NO_MODEL_OUTPUT = "content_hash STRING, n_annotations INT, embedding ARRAY<FLOAT>, reason STRING, detail STRING"


@dataclass(frozen=True)
class _EmbedTarget:
    """A gold table whose texts are embedded into an embeddings table."""

    source: str
    id_col: str
    table: str
    text_col: str = "text"


_TARGETS: tuple[_EmbedTarget, ...] = (
    _EmbedTarget(source="item_documents", id_col="item_id", table="item_embeddings"),
    _EmbedTarget(source="reviews", id_col="review_id", table="review_embeddings"),
)


def ensure_table(lake: Lake, table: str) -> None:
    """Create ``table`` empty with its contract schema unless it has a commit (also over
    the uncommitted ``_delta_log`` a run killed while creating it leaves behind)."""
    if not lake.exists(table):  # a log listing: no Spark job on the usual path
        lake.create(table, lake.spark.createDataFrame([], SCHEMAS[table]).schema)


def new_vectors(plan: EmbeddingPlan, computed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Vectors for the pending records, and the pending records that failed.

    :param computed: ``[content_hash, embedding, reason, detail]`` from the model, checked.
    :returns: ``([record_id, content_hash, embedding, outcome], [record_id, content_hash, text,
        n_chars, reason, detail])`` where ``outcome`` is ``embedded`` or ``reused_identical``.
    """
    fresh = computed.where(F.col("reason").isNull()).select(
        "content_hash", "embedding", F.lit("embedded").alias("outcome")
    )
    reused = plan.reusable.select("content_hash", "embedding", F.lit("reused_identical").alias("outcome"))
    vectors = plan.pending.join(fresh.unionByName(reused), "content_hash").select(
        "record_id", "content_hash", "embedding", "outcome"
    )
    failed = plan.pending.join(
        computed.where(F.col("reason").isNotNull()).select("content_hash", "reason", "detail"), "content_hash"
    )
    return vectors, failed


def quarantine_rows(source: str, rejected: DataFrame, failed: DataFrame, cfg: EmbedConfig) -> DataFrame:
    """Rows for ``quarantine.embedding_failures`` (text cut to ``quarantine_text_chars``)."""
    rows = rejected.withColumn("detail", F.lit(None).cast("string")).unionByName(failed)
    return rows.select(
        F.lit(source).alias("source"),
        "record_id",
        "content_hash",
        "reason",
        "detail",
        F.col("n_chars").cast("int").alias("n_chars"),
        F.substring("text", 1, cfg.quarantine_text_chars).alias("text_preview"),
        F.lit(cfg.model_id).alias("model_id"),
        F.current_timestamp().alias("created_ts"),
    )


def _quarantined_keys(lake: Lake, source: str) -> DataFrame:
    """``[record_id, content_hash, reason]`` of ``source``'s rows in the quarantine table."""
    return lake.read(f"quarantine.{QUARANTINE_TABLE}").where(F.col("source") == source).select(_QUARANTINE_KEYS)


def _differences(wanted: DataFrame, current: DataFrame) -> DataFrame:
    """The quarantine keys whose number of rows differs between ``wanted`` and ``current``
    (one grouping of both, signed)."""
    signed = wanted.select(*_QUARANTINE_KEYS, F.lit(1).alias("_sign")).unionByName(
        current.select(*_QUARANTINE_KEYS, F.lit(-1).alias("_sign")))
    return signed.groupBy(_QUARANTINE_KEYS).agg(F.sum("_sign").alias("_sign")).where(F.col("_sign") != 0)


def _plan_counts(prepared: DataFrame, plan: EmbeddingPlan, quarantine_changes: DataFrame) -> Counter:
    """Every group of the plan counted in a single Spark job that reads no vector: ``{key: rows}``
    with keys ``input``, ``rejected:<reason>``, ``present``, ``pending``, ``reused``,
    ``to_embed`` (distinct texts), ``stored`` and ``quarantine_changes``.

    The three inputs are turned into ``(key, n)`` rows and summed in one grouping (one
    shuffle of a few partial sums, not one per input).
    """
    new_hash = "IF(size(pending_ids) > 0 AND size(stored_ids) = 0, 1, 0)"
    by_hash = plan.by_hash.selectExpr(
        "stack(5, 'present', size(present_ids), 'pending', size(pending_ids), "
        "'reused', IF(size(stored_ids) > 0, size(pending_ids), 0), "
        f"'to_embed', {new_hash}, 'stored', size(stored_ids)) AS (key, n)")
    by_reason = prepared.select(F.coalesce(F.concat(F.lit("rejected:"), "reason"), F.lit("usable")).alias("key"),
                                F.lit(1).alias("n"))
    changes = quarantine_changes.select(F.lit("quarantine_changes").alias("key"), F.lit(1).alias("n"))
    summed = by_reason.unionByName(by_hash).unionByName(changes).groupBy("key").agg(F.sum("n").cast("long").alias("n"))
    counts = Counter({key: 0 for key in ("present", "pending", "reused", "to_embed", "stored", "quarantine_changes")})
    counts.update({row["key"]: int(row["n"] or 0) for row in summed.collect()})
    # Checked by the caller: the rejected ones plus present plus pending must make the input.
    counts["input"] = sum(n for key, n in counts.items() if key == "usable" or key.startswith("rejected:"))
    counts.pop("usable", None)
    return counts


def _merge_vectors(lake: Lake, table: str, id_col: str, *, stale: DataFrame, vectors: DataFrame,
                   model_id: str) -> dict[str, int]:
    """Make ``table`` hold its present rows (untouched) plus ``vectors`` (new), in one commit.

    The MERGE's source is only what changes: the new vectors (inserted, or replacing the
    stored row of their id) and a delete marker (no vector) for every ``stale`` stored row
    whose id gets no new vector (text gone, emptied, changed and failed), so only the files
    holding those rows are rewritten.
    :returns: the commit's own row counts (inserted, updated, deleted).
    """
    # One row per id: its new vector if it has one, else (a stale id) the delete marker.
    # A grouping of both, rather than an anti-join that would compute the vectors twice.
    newest = F.struct("content_hash", "embedding")
    source = (
        vectors.select("record_id", "content_hash", "embedding")
        .unionByName(stale.select("record_id", F.lit(None).cast("string").alias("content_hash"),
                                  F.lit(None).cast("array<float>").alias("embedding")))
        .groupBy("record_id").agg(F.max_by(newest, F.col("embedding").isNotNull()).alias("_row"))
        .select(F.col("record_id").alias(id_col), "_row.content_hash", "_row.embedding",
                F.lit(model_id).alias("model_id"), F.current_timestamp().alias("created_ts"))
    )
    columns = [id_col, "content_hash", "embedding", "model_id", "created_ts"]
    view = f"_embed_source_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    try:
        # SQL MERGE returns this commit's operation metrics (the history's latest entry could
        # already be another writer's).
        row = lake.spark.sql(
            f"MERGE INTO delta.`{lake.path(table)}` t USING {view} s ON t.`{id_col}` = s.`{id_col}` "
            "WHEN MATCHED AND s.embedding IS NULL THEN DELETE "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(f'`{c}` = s.`{c}`' for c in columns)} "
            f"WHEN NOT MATCHED AND s.embedding IS NOT NULL THEN INSERT ({', '.join(f'`{c}`' for c in columns)}) "
            f"VALUES ({', '.join(f's.`{c}`' for c in columns)})"
        ).first()
    finally:
        lake.spark.catalog.dropTempView(view)
    return {"inserted": int(row["num_inserted_rows"]), "updated": int(row["num_updated_rows"]),
            "deleted": int(row["num_deleted_rows"])}


def _write_quarantine(lake: Lake, source: str, rows: DataFrame) -> None:
    """Replace ``source``'s rows of the quarantine table with ``rows`` (one atomic commit)."""
    name = f"quarantine.{QUARANTINE_TABLE}"
    rows.write.format("delta").mode("overwrite").option("replaceWhere", f"source = '{source}'").save(lake.path(name))


def _embed_table(
    lake: Lake, cfg: EmbedConfig, target: _EmbedTarget, records: DataFrame, model: Callable[[], PipelineModel]
) -> dict[str, Any]:
    """Embed ``records`` (the gold table's rows) into ``embeddings.<target.table>``.

    :param model: returns the pipeline of :func:`fusionrec.embed.infer.embedding_pipeline`,
        loading it on the first call; called only when some text needs a vector.
    """
    clock = time.perf_counter()
    name = f"embeddings.{target.table}"
    ensure_table(lake, name)
    ensure_table(lake, f"quarantine.{QUARANTINE_TABLE}")
    # Pinned to the version planned against, so the MERGE that rewrites the table reads the
    # same stored rows in its source.
    stored = lake.read(name, version=lake.version(name)).select(
        F.col(target.id_col).alias("record_id"), "content_hash", "embedding")
    persisted: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        persisted.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return df

    merged = {"inserted": 0, "updated": 0, "deleted": 0}
    model_counts: Counter = Counter()
    failed_records: Counter = Counter()
    model_load_s = 0.0
    phase_s: dict[str, float] = {}

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phase_s[phase] = round(now - clock, 3)
        clock = now

    try:
        prepared = keep(prepare_texts(records, target.id_col, target.text_col, cfg))
        plan = plan_embedding(prepared, stored)
        # The groups below all derive from it: one pass over the stored keys per run.
        keep(plan.by_hash)
        current_quarantine = _quarantined_keys(lake, target.source)
        planned = _plan_counts(prepared, plan, _differences(plan.rejected, current_quarantine))
        rejected = {k.split(":", 1)[1]: v for k, v in planned.items() if k.startswith("rejected:")}
        if sum(rejected.values()) + planned["present"] + planned["pending"] != planned["input"]:
            raise RuntimeError(f"{name}: the plan lost records: {dict(planned)}")
        if not planned["reused"]:
            # No pending text has a stored twin: the MERGE's source reads no stored vector.
            plan = replace(plan, reusable=plan.reusable.limit(0))
        lap("plan")

        computed = lake.spark.createDataFrame([], _NO_MODEL_OUTPUT)
        if planned["to_embed"]:
            start = time.perf_counter()
            pipeline = model()
            model_load_s = time.perf_counter() - start
            lap("model_load")
            computed = keep(classify_vectors(embed_texts(cfg, plan.to_embed, pipeline, n_texts=planned["to_embed"]),
                                             cfg.dimension))
            # Runs the model (kept for the MERGE below) and counts its outcomes.
            model_counts = Counter({row[0]: int(row[1]) for row in
                                    computed.groupBy(F.coalesce("reason", F.lit("ok"))).count().collect()})
            if sum(model_counts.values()) != planned["to_embed"]:
                raise RuntimeError(f"{name}: the model returned {sum(model_counts.values())} rows "
                                   f"for {planned['to_embed']} texts")
        vectors, failed = new_vectors(plan, computed)
        if sum(v for k, v in model_counts.items() if k != "ok"):
            failed_records = Counter({row["reason"]: int(row["count"])
                                      for row in failed.groupBy("reason").count().collect()})
        n_vectors = planned["pending"] - sum(failed_records.values())
        lap("inference")

        # Nothing new and nothing stale (every stored row is a present one): no commit.
        if n_vectors or planned["stored"] != planned["present"]:
            merged = _merge_vectors(lake, name, target.id_col, stale=plan.stale, vectors=vectors,
                                    model_id=cfg.model_id)
            if (merged["inserted"] + merged["updated"] != n_vectors
                    or planned["stored"] + merged["inserted"] - merged["deleted"] != planned["present"] + n_vectors):
                raise RuntimeError(f"{name}: the MERGE wrote {merged} for {n_vectors} new vectors, "
                                   f"{planned['present']} present of {planned['stored']} stored")
        lap("merge")

        quarantined = quarantine_rows(target.source, plan.rejected, failed, cfg)
        # Without model failures the quarantine rows are the rejected ones, compared in the plan's job.
        changed = (bool(planned["quarantine_changes"]) if not failed_records
                   else bool(_differences(quarantined, current_quarantine).limit(1).collect()))
        if changed:
            _write_quarantine(lake, target.source, quarantined)
        lap("quarantine")
    finally:
        for df in persisted:
            df.unpersist()

    failed_by_reason = dict(Counter(rejected) + failed_records)
    result = {
        "input": planned["input"],
        "skipped_present": planned["present"],
        "embedded": n_vectors - planned["reused"],
        "reused_identical": planned["reused"],
        "quarantined": sum(failed_by_reason.values()),
        "failed_by_reason": failed_by_reason,
        "texts_embedded": sum(model_counts.values()),
        "texts_failed": sum(v for k, v in model_counts.items() if k != "ok"),
        "deleted": merged["deleted"],
        "merge": merged,
        "quarantine_written": changed,
        "model_load_s": round(model_load_s, 3),
        # Wall seconds of plan (with its counting job), model_load, inference (with the vector
        # checks), merge and quarantine; a phase without work is 0 or absent.
        "phase_s": phase_s,
    }
    accounted = result["skipped_present"] + n_vectors + result["quarantined"]
    if accounted != result["input"]:
        raise RuntimeError(f"{name}: {result['input']} input records but {accounted} accounted for")
    return result


def run_embed(lake: Lake, cfg: EmbedConfig, report: RunReport | None = None) -> dict[str, Any]:
    """Embed every gold text table incrementally (texts keyed by content hash).

    The Spark NLP model is loaded at most once, and only when some text has no stored
    vector: a re-run without changes neither loads it nor commits anything.

    Parameters
    ----------
    lake : Lake
        The lake read and written.
    cfg : EmbedConfig
        The ``embed`` section (the model, batching, text limits).
    report : RunReport, optional
        Receives a record per step.

    Returns
    -------
    dict
        ``{table: counts}`` per embeddings table (texts seen, embedded, reused, quarantined,
        the MERGE's counts, seconds spent loading the model; :func:`_embed_table`); a missing
        gold table is ``{"status": "absent"}``. Reads ``gold.item_documents`` ``[item_id, text]``
        and ``gold.reviews`` ``[review_id, text]``; writes ``embeddings.item_embeddings`` /
        ``embeddings.review_embeddings`` ``[<id>, content_hash, embedding ARRAY<FLOAT>, model_id,
        created_ts]`` and ``quarantine.embedding_failures``.

    Raises
    ------
    FileNotFoundError
        Neither gold text table exists.
    """
    sources = {target: lake.read_optional(f"gold.{target.source}") for target in _TARGETS}
    if all(records is None for records in sources.values()):
        raise MissingInputError(
            f"{lake.path('gold.' + _TARGETS[0].source)}: no gold text tables "
            f"({', '.join('gold.' + t.source for t in _TARGETS)}) to embed; run 'fusionrec ingest' first"
        )
    loaded: list[PipelineModel] = []

    def model() -> PipelineModel:
        if not loaded:
            loaded.append(embedding_pipeline(lake.spark, cfg))
        return loaded[0]

    results: dict[str, Any] = {}
    for target, records in sources.items():
        if records is None:
            log.warning("gold.%s not found at %s: nothing to embed for %s", target.source,
                        lake.path(f"gold.{target.source}"), target.table)
            results[target.table] = {"status": "absent"}
            continue
        with stage(f"embed.{target.table}", report) as record:
            counts = _embed_table(lake, cfg, target, records, model)
            record.counts.update(counts)
        results[target.table] = {"status": "ok", **counts}
    if not loaded:
        log.info("embed: every text already has its vector; the model was not loaded")
    return results
