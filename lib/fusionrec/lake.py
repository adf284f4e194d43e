"""The Delta Lake: where every table lives, how it is read, and the small files beside it.

``<lake.root>/<layer>/<table>``, layers:

- ``bronze``: raw rows as received + ingest metadata (source, file, batch id, ingest time);
- ``silver``: typed, cleaned, deduplicated rows with conformed (pseudonymised) ids;
- ``quarantine``: every rejected row with its raw record, reason code and batch id;
- ``gold``: model inputs (interactions, item documents, reviews) and outputs (recommendations);
- ``embeddings``: text vectors keyed by content hash;
- ``features``: item vectors, user profiles, sentiment;
- ``model``: ALS factors.

``lake.root`` is any Hadoop URI (``hdfs://``, ``s3a://``, ``abfss://``, ``gs://``, ``file://``);
a bare path means the local filesystem. Every stage reaches the lake through one
:class:`Lake`: tables through Delta, the small artifacts beside them (fusion parameters,
pipeline state, evaluation reports) through the Hadoop ``FileSystem`` of the running
session, so the same code runs on every store.

The schemas below are the contract between stages: a stage may add columns, but
never drops or renames these.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from fusionrec.config import LakeConfig
from fusionrec.errors import InputError, MissingInputError, parse_json

if TYPE_CHECKING:  # Spark and Delta load only when a Lake is used, not for the layout constants
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["ALS_MODEL", "EVALUATION_NAME", "FUSION_PARAMS", "KINDS", "LAYERS", "REPORTS", "SCHEMAS", "TUNED_SETTINGS",
           "Lake", "FileStamp", "LakeMissingError", "evaluation_report", "normalise_uri", "table_location", "hadoop_fs"]

T = TypeVar("T")

LAYERS = ("bronze", "silver", "quarantine", "gold", "embeddings", "features", "model")

#: The raw input kinds: each has a bronze, a quarantine and a silver table.
KINDS = ("items", "events", "reviews")

# Artifacts beside the tables, relative to lake.root. Named here, with no Spark import, so
# that the stage declarations (and so every command's --help) need neither Spark nor MLflow.
#: The fitted fusion parameters, beside the model tables.
FUSION_PARAMS = "model/fusion_params.json"
#: The settings the evaluation chose on its validation period, which training may reuse.
TUNED_SETTINGS = "model/tuned_settings.json"
#: Where the train stage saves the fitted ``ALSModel`` (a folder).
ALS_MODEL = "model/als_model"
#: Evaluation results (JSON + PNG chart) live under this folder.
REPORTS = "reports"
#: The results the registry gates on (``fusionrec evaluate --name``'s default).
EVALUATION_NAME = "evaluation"


def evaluation_report(name: str) -> str:
    """The lake artifact of the evaluation results ``name`` (``.json``; its chart ``.png``).

    >>> evaluation_report(EVALUATION_NAME)
    'reports/evaluation'
    """
    return f"{REPORTS}/{name}"


#: Contract schemas (Spark DDL) of the tables that cross stage boundaries.
SCHEMAS: dict[str, str] = {
    # One row per accepted behaviour event; weight from ingest.event_weights.
    "silver.events": (
        "event_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, "
        "event_type STRING NOT NULL, rating DOUBLE, ts TIMESTAMP NOT NULL, weight DOUBLE NOT NULL, "
        "source STRING NOT NULL, batch_id STRING NOT NULL"
    ),
    # One row per user-item pair: implicit-feedback confidence for ALS.
    "gold.interactions": (
        "user_id STRING NOT NULL, item_id STRING NOT NULL, weight DOUBLE NOT NULL, "
        "n_events INT NOT NULL, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL, rating DOUBLE"
    ),
    # One document per item: title, description, categories and brand assembled into `text`.
    "gold.item_documents": (
        "item_id STRING NOT NULL, title STRING, text STRING NOT NULL, categories ARRAY<STRING>, "
        "brand STRING, price DOUBLE, updated_ts TIMESTAMP"
    ),
    "gold.reviews": (
        "review_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, rating DOUBLE, "
        "text STRING NOT NULL, ts TIMESTAMP NOT NULL, item_known BOOLEAN NOT NULL"
    ),
    "embeddings.item_embeddings": (
        "item_id STRING NOT NULL, content_hash STRING NOT NULL, embedding ARRAY<FLOAT> NOT NULL, "
        "model_id STRING NOT NULL, created_ts TIMESTAMP NOT NULL"
    ),
    "embeddings.review_embeddings": (
        "review_id STRING NOT NULL, content_hash STRING NOT NULL, embedding ARRAY<FLOAT> NOT NULL, "
        "model_id STRING NOT NULL, created_ts TIMESTAMP NOT NULL"
    ),
    # Texts that got no vector: empty, duplicate id, or a failed/invalid model output.
    "quarantine.embedding_failures": (
        "source STRING NOT NULL, record_id STRING NOT NULL, content_hash STRING, reason STRING NOT NULL, "
        "detail STRING, n_chars INT NOT NULL, text_preview STRING, model_id STRING NOT NULL, "
        "created_ts TIMESTAMP NOT NULL"
    ),
    # Side features (fusionrec.features): unit vectors, one row per item / user / review.
    "features.item_vectors": "item_id STRING, vector ARRAY<FLOAT>",
    "features.user_profiles": "user_id STRING, vector ARRAY<FLOAT>, n_items BIGINT, n_reviews BIGINT",
    "features.review_sentiment": "review_id STRING, item_id STRING, score DOUBLE",
    "features.item_sentiment": "item_id STRING, sentiment_mean DOUBLE, sentiment_count BIGINT",
    "gold.recommendations": (
        "user_id STRING NOT NULL, rank INT NOT NULL, item_id STRING NOT NULL, score DOUBLE NOT NULL, "
        "reason STRING"
    ),
}

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def _rows_of(metrics: dict[str, str]) -> int:
    """Rows written by one Delta commit, from its ``operationMetrics`` (values are strings).

    >>> _rows_of({"numTargetRowsInserted": "5", "numTargetRowsUpdated": "2", "numOutputRows": "40"})
    7
    >>> _rows_of({"numOutputRows": "40", "numFiles": "2"}), _rows_of({})
    (40, 0)
    """
    if "numTargetRowsInserted" in metrics:  # MERGE: numOutputRows also counts the copied rows
        return int(metrics["numTargetRowsInserted"]) + int(metrics.get("numTargetRowsUpdated", 0))
    return int(metrics.get("numOutputRows", metrics.get("numUpdatedRows", 0)))


def normalise_uri(location: str) -> str:
    """``location`` as Hadoop qualifies it: a bare path becomes ``file:/abs/path`` (the form
    Delta compares table locations in); no trailing slash.

    >>> normalise_uri("/data/lake/")
    'file:/data/lake'
    >>> normalise_uri("file:///data/lake")
    'file:/data/lake'
    >>> normalise_uri("hdfs://nn:8020/lake")
    'hdfs://nn:8020/lake'
    """
    location = location.strip()
    if not location:
        raise ValueError("lake.root is empty: give a path or a Hadoop URI (hdfs://, s3a://, file://)")
    if location.startswith("file:"):
        location = "/" + location[len("file:"):].lstrip("/")
    if not _SCHEME.match(location):
        return "file:" + os.path.abspath(location)
    return location.rstrip("/")


def hadoop_fs(spark: SparkSession, uri: str):
    """``(FileSystem, Path)`` of the running session's Hadoop configuration for ``uri``."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


class LakeMissingError(MissingInputError):
    """A table or artifact a stage needs is not in the lake (yet); the message names it
    and the command that writes it."""


def table_location(root: str, table: str) -> str:
    """The location of ``table`` (``"<layer>.<name>"``) in the lake at ``root``.

    >>> table_location("hdfs://nn:8020/lake", "gold.interactions")
    'hdfs://nn:8020/lake/gold/interactions'
    """
    layer, sep, name = table.partition(".")
    if not sep or not name:
        raise ValueError(f"table {table!r}: expected '<layer>.<name>'")
    if layer not in LAYERS:
        raise ValueError(f"table {table!r}: layer {layer!r} is not one of {', '.join(LAYERS)}")
    return f"{normalise_uri(root)}/{layer}/{name}"


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's content cheaply: its size and modification time (ms)."""

    size: int
    modified_ms: int


class Lake:
    """The Delta lake at ``settings.root``, through the session ``spark``.

    Tables are named ``"<layer>.<table>"`` (``"gold.interactions"``); artifacts are small
    files named by a path relative to the root (``"model/fusion_params.json"``).

    >>> lake = Lake(spark, LakeConfig(root=str(tmp_path / "lake")))   # doctest: +SKIP
    >>> lake.exists("gold.interactions")                               # doctest: +SKIP
    False
    """

    def __init__(self, spark: SparkSession, settings: LakeConfig) -> None:
        self.spark = spark
        self.settings = settings
        self.root = normalise_uri(settings.root)

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    # -- tables -----------------------------------------------------------------------
    def path(self, table: str) -> str:
        """The location of ``table``.

        >>> lake.path("gold.interactions")                    # doctest: +SKIP
        'hdfs://nn:8020/lake/gold/interactions'
        """
        return table_location(self.root, table)

    def exists(self, table: str) -> bool:
        """Whether ``table`` has a committed version.

        >>> lake.exists("gold.recommendations")               # doctest: +SKIP
        True
        """
        return self.version(table) is not None

    def version(self, table: str) -> int | None:
        """The latest committed version of ``table`` (None: no table), from a listing of its
        log — no Spark job.

        >>> lake.version("gold.interactions")                 # doctest: +SKIP
        3
        """
        fs, log_dir = hadoop_fs(self.spark, f"{self.path(table)}/_delta_log")
        if not fs.exists(log_dir):
            return None
        versions = [int(m.group(1)) for status in fs.listStatus(log_dir)
                    if (m := _COMMIT_FILE.match(status.getPath().getName()))]
        return max(versions) if versions else None

    def versions(self, tables: tuple[str, ...] | list[str]) -> dict[str, int | None]:
        """``{table: latest version or None}``.

        >>> lake.versions(["gold.interactions", "gold.reviews"])   # doctest: +SKIP
        {'gold.interactions': 3, 'gold.reviews': None}
        """
        return {table: self.version(table) for table in tables}

    def rows_written(self, table: str, *, since: int | None, tag: str | None = None) -> int:
        """Rows the commits of ``table`` after version ``since`` (None: all) wrote, from the
        ``operationMetrics`` of their commit files — no Spark job. A MERGE counts its inserted
        and updated rows, a write its output rows; commits without row metrics count 0.
        ``tag``: only the commits whose ``userMetadata`` is ``tag`` (one writer's own commit
        among concurrent writers' ones).

        >>> lake.rows_written("gold.interactions", since=2)   # doctest: +SKIP
        1480
        """
        latest = self.version(table)
        if latest is None:
            return 0
        layer, _, name = table.partition(".")
        total = 0
        for version in range((since if since is not None else -1) + 1, latest + 1):
            text = self.read_text(f"{layer}/{name}/_delta_log/{version:020d}.json") or ""
            for line in text.splitlines():
                info = parse_json(line).get("commitInfo", {}) if line else {}
                if tag is None or info.get("userMetadata") == tag:
                    total += _rows_of(info.get("operationMetrics", {}))
        return total

    def read(self, table: str, version: int | None = None) -> DataFrame:
        """``table`` as a DataFrame, at ``version`` (time travel) or the latest.

        :raises LakeMissingError: no such table (one line naming it).

        >>> lake.read("gold.interactions", version=0).count()    # doctest: +SKIP
        31822
        """
        if version is None and not self.exists(table):
            raise LakeMissingError(f"{self.path(table)}: Delta table {table} not found; "
                                   "run the stage that writes it first")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        return reader.load(self.path(table))

    def read_optional(self, table: str) -> DataFrame | None:
        """``table``, or None when it does not exist (yet).

        >>> lake.read_optional("gold.reviews") is None           # doctest: +SKIP
        True
        """
        return self.read(table) if self.exists(table) else None

    def overwrite(self, table: str, df: DataFrame) -> None:
        """Replace ``table``'s content (and schema) by ``df`` in one commit.

        >>> lake.overwrite("model.item_factors", items)          # doctest: +SKIP
        """
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(self.path(table))

    def delta(self, table: str) -> DeltaTable:
        """The :class:`DeltaTable` of ``table`` (for MERGE, history, OPTIMIZE, VACUUM)."""
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.path(table))

    def history(self, table: str, limit: int | None = None) -> DataFrame:
        """``table``'s commit history, newest first (Delta's ``DESCRIBE HISTORY``).

        >>> lake.history("gold.interactions", 1).select("operation").first()[0]   # doctest: +SKIP
        'MERGE'
        """
        delta = self.delta(table)
        return delta.history(limit) if limit else delta.history()

    def tables(self) -> list[str]:
        """Every Delta table under the root, as ``"<layer>.<table>"``, sorted.

        >>> lake.tables()[:2]                                     # doctest: +SKIP
        ['bronze._batches', 'bronze.events']
        """
        fs, root = hadoop_fs(self.spark, self.root)
        found: list[str] = []
        for layer in LAYERS:
            layer_dir = root.suffix(f"/{layer}")
            if not fs.exists(layer_dir):
                continue
            for status in fs.listStatus(layer_dir):
                if status.isDirectory() and fs.exists(status.getPath().suffix("/_delta_log")):
                    found.append(f"{layer}.{status.getPath().getName()}")
        return sorted(found)

    def create(self, table: str, schema: StructType, *, partition_by: tuple[str, ...] = (),
               properties: dict[str, str] | None = None) -> bool:
        """Create ``table`` empty unless it exists, safe against killed and concurrent
        creators (:func:`fusionrec.commits.create_table`); returns whether this call created it.

        >>> lake.create("gold.recommendations", schema)          # doctest: +SKIP
        True
        """
        from fusionrec import commits

        return commits.create_table(self.spark, self.path(table), schema, self.settings,
                                    partition_by=partition_by, properties=properties)

    def retry_on_conflict(self, action: Callable[[], T], what: str,
                          also: tuple[type[Exception], ...] = ()) -> T:
        """Run a complete read-compute-commit, re-running it after a concurrency conflict
        (:func:`fusionrec.commits.retry_on_conflict`, bounded by ``lake.commit_retries``)."""
        from fusionrec import commits

        return commits.retry_on_conflict(action, what, self.settings, also=also)

    # -- artifacts: small files beside the tables ----------------------------------------
    def uri(self, name: str) -> str:
        """The location of artifact ``name`` (a path relative to the root)."""
        name = name.strip("/")
        if not name or ".." in name.split("/"):
            raise ValueError(f"artifact name {name!r}: expected a relative path inside the lake")
        return f"{self.root}/{name}"

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write artifact ``name`` whole: readers see the old or the new content, never a
        part (written beside it, then renamed into place). Returns its URI.

        >>> lake.write_bytes("reports/evaluation.png", png)      # doctest: +SKIP
        'file:///…/lake/reports/evaluation.png'
        """
        target = self.uri(name)
        fs, dest = hadoop_fs(self.spark, target)
        tmp = dest.getParent().suffix(f"/.{dest.getName()}.{uuid.uuid4().hex}.tmp")
        fs.mkdirs(dest.getParent())
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()
        # HDFS's rename refuses an existing target; delete + rename leaves at worst no file.
        if fs.exists(dest):
            fs.delete(dest, False)
        if not fs.rename(tmp, dest):
            fs.delete(tmp, False)
            raise OSError(f"{target}: could not move the written file into place")
        return target

    def write_text(self, name: str, text: str) -> str:
        """Write artifact ``name`` as UTF-8 text (see :meth:`write_bytes`).

        >>> lake.write_text("model/fusion_params.json", params.to_json())   # doctest: +SKIP
        'hdfs://nn:8020/lake/model/fusion_params.json'
        """
        return self.write_bytes(name, text.encode("utf-8"))

    def read_bytes(self, name: str) -> bytes | None:
        """The content of artifact ``name``, or None when it does not exist."""
        fs, path = hadoop_fs(self.spark, self.uri(name))
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            return bytes(self.spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def read_text(self, name: str) -> str | None:
        """The UTF-8 content of artifact ``name``, or None when it does not exist.

        >>> json.loads(lake.read_text("model/fusion_params.json"))["rank"]   # doctest: +SKIP
        64
        """
        data = self.read_bytes(name)
        return None if data is None else data.decode("utf-8")

    def read_document(self, name: str, *, written_by: str, parse: Callable[[str], T]) -> T:
        """``parse`` of the text of artifact ``name``.

        :param written_by: the command that writes it, named in the error when it is absent.
        :raises LakeMissingError: absent; :class:`~fusionrec.errors.InputError`: ``parse``
            refused it (one line each, naming the artifact).

        >>> lake.read_document("model/fusion_params.json", written_by="train",
        ...                    parse=FusionParams.from_json).rank               # doctest: +SKIP
        64
        """
        text = self.read_text(name)
        if text is None:
            raise LakeMissingError(f"{self.uri(name)}: not found; run 'fusionrec {written_by}' first")
        try:
            return parse(text)
        except InputError as exc:
            raise InputError(f"{self.uri(name)}: {exc}") from None

    def read_json(self, name: str, *, written_by: str) -> Any:
        """Artifact ``name`` parsed as JSON (see :meth:`read_document`).

        >>> lake.read_json("model/fusion_params.json", written_by="train")["rank"]   # doctest: +SKIP
        64
        """
        return self.read_document(name, written_by=written_by, parse=parse_json)

    def stamp(self, name: str) -> FileStamp | None:
        """Size and modification time of artifact ``name`` (None: absent); no read."""
        fs, path = hadoop_fs(self.spark, self.uri(name))
        if not fs.exists(path):
            return None
        status = fs.getFileStatus(path)
        return FileStamp(int(status.getLen()), int(status.getModificationTime()))
