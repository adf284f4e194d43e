"""Distributed inference: distinct texts -> Spark NLP sentence vectors.

Throughput on CPU is dominated by padding: Spark NLP's E5/BERT encoder pads every batch
to its longest sentence, so a batch mixing a 5-word and a 400-word review costs as
much as 32 400-word reviews. The texts are therefore

1. deduplicated by content hash (each distinct text is run once);
2. spread round robin over ``embed.partitions`` partitions, so every partition (one
   task per core) gets the same mix of lengths and the cores finish together;
3. sorted by length inside each partition, so the consecutive rows that Spark NLP
   groups into a batch of ``embed.batch_size`` have nearly equal lengths
   (length bucketing without a separate bucket column).

A small increment (at most one batch of texts) would be a single batch padded to its
longest text on one core; instead it is cut by length into a few ranges (a range
partitioning, so one long text pads only its few neighbours) that both cores share.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import EmbedConfig
from fusionrec.embed.model import load_embedder

__all__ = ["embed_texts", "embedding_pipeline"]

#: Length ranges per core for a small increment: more ranges pad less, each costs a task.
_RANGES_PER_CORE = 4


def embedding_pipeline(spark: SparkSession, cfg: EmbedConfig) -> PipelineModel:
    """DocumentAssembler -> sentence embedder (one vector per document), from the model cache."""
    from sparknlp.base import DocumentAssembler

    assembler = DocumentAssembler().setInputCol("text").setOutputCol("document")
    return PipelineModel(stages=[assembler, load_embedder(spark, cfg, "document", "annotations")])


def _length_ordered(texts: DataFrame, partitions: int) -> DataFrame:
    """Round-robin over ``partitions`` partitions, each sorted by text length."""
    return texts.repartition(partitions).sortWithinPartitions(F.length("text"))


def _length_ranges(texts: DataFrame, *, n_texts: int, partitions: int) -> DataFrame:
    """At most ``_RANGES_PER_CORE * partitions`` partitions, each a range of text lengths."""
    return texts.repartitionByRange(max(1, min(n_texts, _RANGES_PER_CORE * partitions)), F.length("text"))


def embed_texts(
    cfg: EmbedConfig, texts: DataFrame, pipeline: PipelineModel, *, n_texts: int | None = None
) -> DataFrame:
    """Embed ``[content_hash, text]`` rows with ``pipeline`` (see :func:`embedding_pipeline`).

    :param n_texts: the number of distinct texts, when known: at most ``embed.batch_size``
        are cut into a few length ranges instead of one padded batch.

    :returns: ``[content_hash, n_annotations, embedding ARRAY<FLOAT>]``, one row per distinct
        hash; ``n_annotations`` is 0 where Spark NLP produced no annotation, and
        ``embedding`` is exactly what the model returned (possibly empty) -- check it with
        :func:`fusionrec.embed.validate.classify_vectors`.
    """
    distinct = texts.select("content_hash", "text").dropDuplicates(["content_hash"])
    one_batch = n_texts is not None and n_texts <= cfg.batch_size
    annotated = pipeline.transform(_length_ranges(distinct, n_texts=n_texts, partitions=cfg.partitions) if one_batch
                                   else _length_ordered(distinct, cfg.partitions))
    return annotated.select(
        "content_hash",
        F.size("annotations").alias("n_annotations"),
        F.col("annotations").getItem(0).getField("embeddings").cast("array<float>").alias("embedding"),
    )
