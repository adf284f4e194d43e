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
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.commits import create_table
from fusionrec.config import Config, EmbedConfig, LakeConfig
from fusionrec.embed.infer import embed_texts, embedding_pipeline
from fusionrec.embed.plan import EmbeddingPlan, plan_embedding
from fusionrec.embed.texts import prepare_texts
from fusionrec.embed.validate import classify_vectors
from fusionrec.errors import MissingInputError
from fusionrec.lake import SCHEMAS, table_path
from fusionrec.runlog import RunReport, stage

log = logging.getLogger(__name__)

QUARANTINE_TABLE = "embedding_failures"


@dataclass(frozen=True)
class EmbedTarget:
    """A gold table whose texts are embedded into an embeddings table."""

    source: str
    id_col: str
    table: str
    text_col: str = "text"


TARGETS: tuple[EmbedTarget, ...] = (
    EmbedTarget(source="item_documents", id_col="item_id", table="item_embeddings"),
    EmbedTarget(source="reviews", id_col="review_id", table="review_embeddings"),
)


def ensure_table(spark: SparkSession, path: str, ddl: str, lake: LakeConfig) -> DeltaTable:
    """The Delta table at ``path``, created empty with ``ddl`` if it does not exist yet (also
    over the uncommitted ``_delta_log`` a run killed while creating it leaves behind)."""
    create_table(spark, path, spark.createDataFrame([], ddl).schema, lake)
    return DeltaTable.forPath(spark, path)


def read_gold(spark: SparkSession, cfg: Config, name: str) -> DataFrame | None:
    """``gold.<name>``, or None when it was never written."""
    path = table_path(cfg, "gold", name)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return spark.read.format("delta").load(path)


def stored_vectors(table: DeltaTable, id_col: str) -> DataFrame:
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


def merge_vectors(table: DeltaTable, id_col: str, present: DataFrame, vectors: DataFrame, model_id: str) -> dict[str, int]:
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


def write_quarantine(spark: SparkSession, cfg: Config, source: str, rows: DataFrame) -> bool:
    """Replace ``source``'s rows of the quarantine table with ``rows`` (one atomic commit).

    Nothing is written when the same records are already quarantined for the same
    reasons (a re-run without changes leaves the table as it is).
    :returns: whether a new table version was written.
    """
    path = table_path(cfg, "quarantine", QUARANTINE_TABLE)
    table = ensure_table(spark, path, SCHEMAS[f"quarantine.{QUARANTINE_TABLE}"], cfg.lake)
    keys = ["record_id", "content_hash", "reason"]
    current = table.toDF().where(F.col("source") == source).select(keys)
    wanted = rows.select(keys)
    if not wanted.exceptAll(current).unionByName(current.exceptAll(wanted)).limit(1).collect():
        return False
    rows.write.format("delta").mode("overwrite").option("replaceWhere", f"source = '{source}'").save(path)
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


def embed_table(
    spark: SparkSession, cfg: Config, target: EmbedTarget, records: DataFrame, pipeline: PipelineModel
) -> dict[str, Any]:
    """Embed ``records`` (the gold table's rows) into ``embeddings.<target.table>``.

    :param pipeline: from :func:`fusionrec.embed.infer.embedding_pipeline` (loaded once per run).
    """
    table = ensure_table(spark, table_path(cfg, "embeddings", target.table), SCHEMAS[f"embeddings.{target.table}"],
                         cfg.lake)
    persisted: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        persisted.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return df

    try:
        prepared = keep(prepare_texts(records, target.id_col, target.text_col, cfg.embed))
        n_input = prepared.count()
        plan = plan_embedding(prepared, stored_vectors(table, target.id_col))
        computed = keep(classify_vectors(embed_texts(cfg.embed, plan.to_embed, pipeline), cfg.embed.dimension))
        fresh, failed = new_vectors(plan, computed)
        # Materialised (by the counting job) before the MERGE rewrites the table they were planned against.
        vectors = keep(fresh)
        present = keep(plan.present)
        quarantined = keep(quarantine_rows(target.source, plan.rejected, failed, cfg.embed))
        counts = _outcome_counts(present, vectors, quarantined, computed)

        n_present = counts.get("record:skipped_present", 0)
        n_vectors = counts.get("record:embedded", 0) + counts.get("record:reused_identical", 0)
        merged = {"inserted": 0, "updated": 0, "deleted": 0}
        # Nothing new and nothing stale (every stored row is a present one): no commit.
        if n_vectors or table.toDF().count() != n_present:
            merged = merge_vectors(table, target.id_col, present, vectors, cfg.embed.model_id)
        quarantine_written = write_quarantine(spark, cfg, target.source, quarantined)
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


def run_embed(spark: SparkSession, cfg: Config, report: RunReport | None = None) -> dict[str, Any]:
    """Embed every source table; returns ``{table: counts}`` (see :func:`embed_table`).

    A missing gold table is reported as ``{"status": "absent"}``; both missing is an error.
    """
    sources = {target: read_gold(spark, cfg, target.source) for target in TARGETS}
    if all(records is None for records in sources.values()):
        raise MissingInputError(
            f"{table_path(cfg, 'gold', TARGETS[0].source)}: no gold text tables "
            f"({', '.join('gold.' + t.source for t in TARGETS)}) to embed; run 'fusionrec ingest' first"
        )
    pipeline = embedding_pipeline(spark, cfg.embed)
    results: dict[str, Any] = {}
    for target, records in sources.items():
        if records is None:
            log.warning("gold.%s not found at %s: nothing to embed for %s", target.source,
                        table_path(cfg, "gold", target.source), target.table)
            results[target.table] = {"status": "absent"}
            continue
        with stage(f"embed.{target.table}", report) as record:
            counts = embed_table(spark, cfg, target, records, pipeline)
            record.counts.update(counts)
        results[target.table] = {"status": "ok", **counts}
    return results
