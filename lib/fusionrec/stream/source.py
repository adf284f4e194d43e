"""Where the stream's events come from: Kafka, or a directory of JSONL files (the default).

Either way a micro-batch arrives as lines ``[_file, _raw, _non_utf8]``, the shape
:func:`fusionrec.ingest.sources.text.read_lines` gives batch ingest, so that the same
staging and rules apply (:func:`fusionrec.ingest.pipeline.ingest_lines`). ``_file`` names
the origin: the file, or ``kafka:<topic>/<partition>``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import StreamConfig

__all__ = ["SOURCES", "StreamSourceError", "check_broker", "file_lines", "kafka_lines", "read_stream"]

SOURCES = ("files", "kafka")


class StreamSourceError(RuntimeError):
    """The stream's source cannot be read (e.g. no broker answers); one line names it."""


def kafka_lines(messages: DataFrame) -> DataFrame:
    """Kafka records (``value`` BINARY, ``topic``, ``partition``) -> lines; invalid UTF-8
    bytes are replaced (U+FFFD) and flagged as batch ingest does."""
    text = F.decode(F.col("value"), "UTF-8")
    return messages.select(
        F.concat(F.lit("kafka:"), F.col("topic"), F.lit("/"), F.col("partition").cast("string")).alias("_file"),
        F.regexp_replace(F.coalesce(text, F.lit("")), "\r$", "").alias("_raw"),
        (F.col("value").isNotNull() & (F.encode(text, "UTF-8") != F.col("value"))).alias("_non_utf8"),
    )


def file_lines(text: DataFrame) -> DataFrame:
    """``readStream.text`` rows -> lines (the columns of batch ingest's ``read_lines``)."""
    fixed = F.decode(F.encode(F.col("value"), "UTF-8"), "UTF-8")
    return text.select(F.input_file_name().alias("_file"), F.regexp_replace(fixed, "\r$", "").alias("_raw"),
                       (F.col("value") != fixed).alias("_non_utf8"))


def read_stream(spark: SparkSession, sc: StreamConfig) -> DataFrame:
    """The streaming DataFrame of lines of ``sc.source``."""
    if sc.source == "kafka":
        check_broker(sc.bootstrap_servers)
        messages = (spark.readStream.format("kafka")
                    .option("kafka.bootstrap.servers", sc.bootstrap_servers)
                    .option("subscribe", sc.topic)
                    .option("startingOffsets", sc.starting_offsets)
                    .option("maxOffsetsPerTrigger", sc.max_per_trigger)
                    .option("failOnDataLoss", "true")
                    .load())
        return kafka_lines(messages)
    if sc.source == "files":
        text = (spark.readStream.option("maxFilesPerTrigger", sc.max_per_trigger)
                .option("pathGlobFilter", "*.jsonl").text(sc.path))
        return file_lines(text)
    raise ValueError(f"stream.source {sc.source!r}: expected one of {', '.join(SOURCES)}")


def check_broker(bootstrap_servers: str, timeout_s: float = 5.0) -> None:
    """Fail in one line when no broker of ``bootstrap_servers`` accepts a connection (the
    Kafka client itself would retry silently for minutes)."""
    import socket

    tried = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as exc:
            tried.append(f"{server.strip()} ({exc.__class__.__name__})")
    raise StreamSourceError(f"stream.bootstrap_servers: no Kafka broker answers at {', '.join(tried)}; "
                            "start one (make stream starts a local broker) or use stream.source=files")
