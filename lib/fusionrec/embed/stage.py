"""The embedding stage: gold texts -> Delta ``embeddings.*`` tables, incrementally.

For each source (``gold.item_documents`` -> ``embeddings.item_embeddings`` and
``gold.reviews`` -> ``embeddings.review_embeddings``):

1. prepare: normalise, hash and triage the texts (:mod:`fusionrec.embed.texts`);
2. plan against the stored vectors (:mod:`fusionrec.embed.plan`);
3. embed the distinct new texts with Spark NLP (:mod:`fusionrec.embed.infer`) and check
   every vector (:mod:`fusionrec.embed.validate`);
4. one atomic Delta MERGE makes the table equal to the current good vectors: new and
   changed records are upserted, records whose text is now unusable, failed or gone
   from gold are deleted (a stale vector never outlives its text);
5. the failures replace this source's rows in ``quarantine.embedding_failures``.

When nothing changed (no new vector, no stale row, same failures) neither table gets a
new version, so a nightly re-run without changes costs a few small Spark jobs and no
inference.

Every input record ends up counted exactly once: ``skipped_present`` + ``embedded`` +
``reused_identical`` + ``quarantined`` = ``input``. A text that failed in the model is
retried on the next run (it has no stored vector).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
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


def ensure_table(lake: Lake, table: str) -> DeltaTable:
    """``table``, created empty with its contract schema if it does not exist yet (also
    over the uncommitted ``_delta_log`` a run killed while creating it leaves behind)."""
    lake.create(table, lake.spark.createDataFrame([], SCHEMAS[table]).schema)
    return lake.delta(table)


def _stored_vectors(table: DeltaTable, id_col: str) -> DataFrame:
    """``[record_id, content_hash, embedding]`` of an embeddings table."""
    return table.toDF().select(F.col(id_col).alias("record_id"), "content_hash", "embedding")


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


def _merge_vectors(table: DeltaTable, id_col: str, present: DataFrame, vectors: DataFrame, model_id: str) -> dict[str, int]:
    """Make ``table`` hold exactly ``present`` (unchanged) plus ``vectors`` (new), in one commit.

    Rows of ``vectors`` are inserted or replace the stored row of their id; stored rows
    whose id is in neither input (text gone, emptied, changed and failed) are deleted.
    :returns: the MERGE's row counts (inserted, updated, deleted).
    """
    source = vectors.select("record_id", "content_hash", "embedding").unionByName(
        present.select("record_id", "content_hash", F.lit(None).cast("array<float>").alias("embedding"))
    )
    now = F.current_timestamp()
    values = {
        id_col: F.col("s.record_id"),
        "content_hash": F.col("s.content_hash"),
        "embedding": F.col("s.embedding"),
        "model_id": F.lit(model_id),
        "created_ts": now,
    }
    (
        table.alias("t")
        .merge(source.alias("s"), F.col(f"t.{id_col}") == F.col("s.record_id"))
        .whenMatchedUpdate(condition=F.col("s.embedding").isNotNull(), set=values)
        .whenNotMatchedInsert(condition=F.col("s.embedding").isNotNull(), values=values)
        .whenNotMatchedBySourceDelete()
        .execute()
    )
    metrics = table.history(1).select("operationMetrics").first()[0] or {}
    return {
        "inserted": int(metrics.get("numTargetRowsInserted", 0)),
        "updated": int(metrics.get("numTargetRowsUpdated", 0)),
        "deleted": int(metrics.get("numTargetRowsDeleted", 0)),
    }


def _write_quarantine(lake: Lake, source: str, rows: DataFrame) -> bool:
    """Replace ``source``'s rows of the quarantine table with ``rows`` (one atomic commit).

    Nothing is written when the same records are already quarantined for the same
    reasons (a re-run without changes leaves the table as it is).
    :returns: whether a new table version was written.
    """
    name = f"quarantine.{QUARANTINE_TABLE}"
    table = ensure_table(lake, name)
    keys = ["record_id", "content_hash", "reason"]
    current = table.toDF().where(F.col("source") == source).select(keys)
    wanted = rows.select(keys)
    if not wanted.exceptAll(current).unionByName(current.exceptAll(wanted)).limit(1).collect():
        return False
    rows.write.format("delta").mode("overwrite").option("replaceWhere", f"source = '{source}'").save(lake.path(name))
    return True


def _outcome_counts(present: DataFrame, vectors: DataFrame, quarantined: DataFrame, computed: DataFrame) -> dict[str, int]:
    """Every count of one table in a single Spark job: ``{"<group>:<value>": rows}``."""
    parts = [
        present.select(F.lit("record:skipped_present").alias("key")),
        vectors.select(F.concat(F.lit("record:"), "outcome").alias("key")),
        quarantined.select(F.concat(F.lit("quarantined:"), "reason").alias("key")),
        computed.select(F.concat(F.lit("model:"), F.coalesce("reason", F.lit("ok"))).alias("key")),
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return {row["key"]: int(row["count"]) for row in union.groupBy("key").count().collect()}


def _embed_table(
    lake: Lake, cfg: EmbedConfig, target: _EmbedTarget, records: DataFrame, pipeline: PipelineModel
) -> dict[str, Any]:
    """Embed ``records`` (the gold table's rows) into ``embeddings.<target.table>``.

    :param pipeline: from :func:`fusionrec.embed.infer.embedding_pipeline` (loaded once per run).
    """
    table = ensure_table(lake, f"embeddings.{target.table}")
    persisted: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        persisted.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return df

    try:
        prepared = keep(prepare_texts(records, target.id_col, target.text_col, cfg))
        n_input = prepared.count()
        plan = plan_embedding(prepared, _stored_vectors(table, target.id_col))
        computed = keep(classify_vectors(embed_texts(cfg, plan.to_embed, pipeline), cfg.dimension))
        fresh, failed = new_vectors(plan, computed)
        # Materialised (by the counting job) before the MERGE rewrites the table they were planned against.
        vectors = keep(fresh)
        present = keep(plan.present)
        quarantined = keep(quarantine_rows(target.source, plan.rejected, failed, cfg))
        counts = _outcome_counts(present, vectors, quarantined, computed)

        n_present = counts.get("record:skipped_present", 0)
        n_vectors = counts.get("record:embedded", 0) + counts.get("record:reused_identical", 0)
        merged = {"inserted": 0, "updated": 0, "deleted": 0}
        # Nothing new and nothing stale (every stored row is a present one): no commit.
        if n_vectors or table.toDF().count() != n_present:
            merged = _merge_vectors(table, target.id_col, present, vectors, cfg.model_id)
        quarantine_written = _write_quarantine(lake, target.source, quarantined)
    finally:
        for df in persisted:
            df.unpersist()

    failed_by_reason = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("quarantined:")}
    model = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("model:")}
    result = {
        "input": n_input,
        "skipped_present": n_present,
        "embedded": counts.get("record:embedded", 0),
        "reused_identical": counts.get("record:reused_identical", 0),
        "quarantined": sum(failed_by_reason.values()),
        "failed_by_reason": failed_by_reason,
        "texts_embedded": sum(model.values()),
        "texts_failed": sum(v for k, v in model.items() if k != "ok"),
        "deleted": merged["deleted"],
        "merge": merged,
        "quarantine_written": quarantine_written,
    }
    accounted = n_present + n_vectors + result["quarantined"]
    if accounted != n_input:
        raise RuntimeError(f"embeddings.{target.table}: {n_input} input records but {accounted} accounted for")
    return result


def run_embed(lake: Lake, cfg: EmbedConfig, report: RunReport | None = None) -> dict[str, Any]:
    """Embed every gold text table incrementally (texts keyed by content hash).

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
        ``{table: counts}`` per embeddings table (texts seen, embedded, reused, quarantined;
        :func:`_embed_table`); a missing gold table is ``{"status": "absent"}``. Reads
        ``gold.item_documents`` ``[item_id, text]`` and ``gold.reviews`` ``[review_id, text]``;
        writes ``embeddings.item_embeddings`` / ``embeddings.review_embeddings``
        ``[<id>, content_hash, embedding ARRAY<FLOAT>, model_id, created_ts]`` and
        ``quarantine.embedding_failures``.

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
    pipeline = embedding_pipeline(lake.spark, cfg)
    results: dict[str, Any] = {}
    for target, records in sources.items():
        if records is None:
            log.warning("gold.%s not found at %s: nothing to embed for %s", target.source,
                        lake.path(f"gold.{target.source}"), target.table)
            results[target.table] = {"status": "absent"}
            continue
        with stage(f"embed.{target.table}", report) as record:
            counts = _embed_table(lake, cfg, target, records, pipeline)
            record.counts.update(counts)
        results[target.table] = {"status": "ok", **counts}
    return results
