"""The streaming query: lines from the source, each micro-batch through :func:`process_batch`.

``foreachBatch`` with a checkpoint: a micro-batch whose commit did not reach the checkpoint
(the driver was killed) is re-run after a restart with the same offsets and ``batchId``;
the writes are idempotent (:mod:`fusionrec.stream.batch`), so nothing is lost or counted
twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from fusionrec.config import Config
from fusionrec.lake import Lake, hadoop_fs, normalise_uri
from fusionrec.registry.build import assemble_bundle, read_bundle_tables, read_fusion_params
from fusionrec.stream.batch import StreamModel, prepare_tables, process_batch, stream_batch_id
from fusionrec.stream.source import read_stream

__all__ = ["StreamRun", "load_stream_model", "query_id", "start"]

log = logging.getLogger(__name__)


@dataclass
class StreamRun:
    """A running query and the reports of the micro-batches it ran in this process."""

    query: StreamingQuery
    batches: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        keys = ("read", "accepted", "quarantined", "duplicates", "held_by_other_batches", "users")
        return {k: sum(int(b.get(k, 0)) for b in self.batches) for k in keys}


def load_stream_model(lake: Lake, cfg: Config) -> StreamModel:
    """The serving bundle of the lake's current model (with YᵀY), built once per query.

    Its interactions (popularity, seen items) are ``gold.interactions`` as the model was
    trained on them: the version committed last before the model's item factors, not the
    current one, which the stream itself moves (a restarted query builds the same bundle).
    """
    from pyspark.sql import functions as F

    params = read_fusion_params(lake)
    frames, inputs = read_bundle_tables(lake)
    trained = lake.history("model.item_factors", 1).first()["timestamp"]
    at_training = (lake.history("gold.interactions").where(F.col("timestamp") <= F.lit(trained))
                   .agg(F.max("version")).first()[0])
    if at_training is not None:
        frames["gold.interactions"] = lake.read("gold.interactions", int(at_training))
    bundle = assemble_bundle(frames, params, cfg)
    if not bundle.can_fold_in:
        raise ValueError("model bundle has no fold-in inputs; re-run fusionrec train")
    versions = {t.qualified: t.version for t in inputs}
    return StreamModel(bundle, int(versions["model.item_factors"]), lake.spark.sparkContext.broadcast(bundle))


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The id Spark keeps in the checkpoint's ``metadata`` file (the same after a restart)."""
    fs, path = hadoop_fs(spark, f"{normalise_uri(checkpoint)}/metadata")
    stream = fs.open(path)
    try:
        text = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    return str(json.loads(text.splitlines()[0])["id"])


def start(spark: SparkSession, cfg: Config, *, model: StreamModel | None = None,
          on_batch: Callable[[dict[str, Any]], None] | None = None,
          trigger_once: bool = False) -> StreamRun:
    """Start the query (``trigger_once``: one ``availableNow`` run that ends when the source
    is drained); returns at once with the running query."""
    sc = cfg.stream
    lake = Lake(spark, cfg.lake)
    model = model or load_stream_model(lake, cfg)
    prepare_tables(lake)
    lines = read_stream(spark, sc)
    source = f"stream:{sc.source}"
    ids: dict[str, str] = {}
    run: StreamRun | None = None

    def each(batch: DataFrame, batch_number: int) -> None:
        if "id" not in ids:
            ids["id"] = query_id(batch.sparkSession, sc.checkpoint)
        report = process_batch(batch, stream_batch_id(ids["id"], batch_number), cfg=cfg, model=model, source=source)
        assert run is not None
        run.batches.append(report)
        if on_batch:
            on_batch(report)

    writer = lines.writeStream.foreachBatch(each).option("checkpointLocation", sc.checkpoint)
    writer = writer.trigger(availableNow=True) if trigger_once else writer.trigger(processingTime=f"{sc.trigger_s} seconds")
    run = StreamRun(writer.start())
    return run
