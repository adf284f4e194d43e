"""Leak scanner: raw user ids or the pseudonym key anywhere past bronze.

Raw ids are whole tokens (not part of a longer word or id), so ``u12`` is not found in
``u123`` or ``menu12``. Tables are read through Spark (every column as JSON text); files are
read by format (Parquet through pyarrow, ``.npz`` array by array, pickles op by op, text as
text), so compressed or UTF-32 storage cannot hide a match; the key is also looked for in
the bytes of every file.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickletools
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from fusionrec.config import LakeConfig
from fusionrec.lake import Lake

#: Generated user ids (fusionrec.generate): ``u<number>``.
GENERATED_ID = r"(?<![A-Za-z0-9_])u[0-9]+(?![A-Za-z0-9_])"
_USER_FIELD = re.compile(r'"user_id"\s*:\s*"(u[0-9]+)')


def reference_pseudonym(user_id: str, key: bytes) -> str:
    """The pseudonym by the standard library's HMAC: the oracle the Spark version is checked against."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def generated_user_ids(folder: Path) -> set[str]:
    """Every user id written into the generated input files (truncated lines included)."""
    ids: set[str] = set()
    for path in folder.rglob("*"):
        if path.is_file():
            ids.update(_USER_FIELD.findall(path.read_bytes().decode("utf-8", errors="replace")))
    return ids


@dataclass
class Leaks:
    """What a scan found (``where -> tokens``) and how much it looked at."""

    raw_ids: set[str]
    key: bytes
    #: SHA-256 of files that predate the data (the sentence model's vocabulary holds "u2").
    static: set[str] = field(default_factory=set)
    found: dict[str, set[str]] = field(default_factory=dict)
    tables: int = 0
    files: int = 0
    texts: int = 0

    def check_text(self, where: str, text: str, ids: bool = True) -> None:
        """``text``: the key (hex or raw) anywhere; raw ids only where ``ids`` (text content:
        in arbitrary binary bytes a two-character token like ``u5`` occurs by chance)."""
        self.texts += 1
        hits = set(re.findall(GENERATED_ID, text)) & self.raw_ids if ids else set()
        if self.key.hex() in text.lower() or self.key.decode("latin-1") in text:
            hits.add("<pseudonym key>")
        if hits:
            self.found.setdefault(where, set()).update(hits)

    def check_table(self, spark: SparkSession, path: str) -> None:
        """Every row of the Delta table at ``path`` as JSON text."""
        self.tables += 1
        df = spark.read.format("delta").load(path)
        text = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
        tokens = (df.select(F.explode(F.regexp_extract_all(text, F.lit(GENERATED_ID), 0)).alias("t"))
                  .distinct().collect())
        hits = {r["t"] for r in tokens} & self.raw_ids
        if df.where(F.lower(text).contains(self.key.hex())).limit(1).count():
            hits.add("<pseudonym key>")
        if hits:
            self.found.setdefault(f"table {path}", set()).update(hits)

    def check_file(self, path: Path) -> None:
        self.files += 1
        if self.static and hashlib.sha256(path.read_bytes()).hexdigest() in self.static:
            return
        for part, text, is_text in file_texts(path):
            self.check_text(f"file {path}{part}", text, ids=is_text)


def file_texts(path: Path) -> Iterator[tuple[str, str, bool]]:
    """``(part, text, is_text)`` of a file: its bytes as Latin-1 (text if they are UTF-8 without
    NUL), plus the decoded contents of Parquet files, npz string arrays and pickled strings."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        is_text = b"\0" not in data
    except UnicodeDecodeError:
        is_text = False
    yield "", data.decode("latin-1"), is_text
    if data[:4] == b"PAR1":
        table = pq.read_table(io.BytesIO(data)).to_pandas()
        yield " (parquet)", table.to_json(orient="records", default_handler=str), True
    elif data[:2] == b"PK" and zipfile.is_zipfile(io.BytesIO(data)):
        try:
            arrays = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError):
            return
        for name in arrays.files:
            array = arrays[name]
            if array.dtype.kind in "US":
                yield f" [{name}]", "\n".join(array.astype(str).ravel().tolist()), True
    elif path.suffix in (".pkl", ".pickle"):
        strings = [str(arg) for _, arg, _ in pickletools.genops(data) if isinstance(arg, (str, bytes))]
        yield " (pickle)", "\n".join(strings), True


def digests(folder: Path) -> set[str]:
    """SHA-256 of every file below ``folder``."""
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def scan_lake(spark: SparkSession, lake_root: Path, leaks: Leaks) -> None:
    """Every Delta table except bronze (current version), and every file of the lake
    except bronze's and the raw inputs' (older versions, transaction logs, artifacts)."""
    lake = Lake(spark, LakeConfig(root=str(lake_root)))
    for table in lake.tables():
        if not table.startswith("bronze."):
            leaks.check_table(spark, lake.path(table).removeprefix("file:"))
    raw = (lake_root / "bronze", lake_root / "_inputs")
    scan_files(leaks, (p for p in lake_root.rglob("*") if not any(p.is_relative_to(r) for r in raw)))


def scan_files(leaks: Leaks, paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_file():
            leaks.check_file(path)


def scan_mlflow(tracking_uri: str, leaks: Leaks) -> int:
    """Params, tags and run names of every run, logged models' params and tags, registered
    models' versions and tags, through the MLflow client; returns the number of runs."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=10000) if experiments else []
    for run in runs:
        where = f"run {run.info.run_id}"
        leaks.check_text(f"{where} name", run.info.run_name or "")
        for key, value in run.data.params.items():
            leaks.check_text(f"{where} param {key}", f"{key}={value}")
        for key, value in run.data.tags.items():
            leaks.check_text(f"{where} tag {key}", f"{key}={value}")
        leaks.check_text(f"{where} metrics", " ".join(run.data.metrics))
    if experiments:
        for logged in client.search_logged_models([e.experiment_id for e in experiments]):
            leaks.check_text(f"logged model {logged.model_id}",
                             f"{logged.name} {logged.params} {logged.tags} {logged.artifact_location}")
    for model in client.search_registered_models():
        leaks.check_text(f"model {model.name}", f"{model.description} {model.tags} {model.aliases}")
        for version in client.search_model_versions(f"name='{model.name}'"):
            leaks.check_text(f"model {model.name} v{version.version}",
                             f"{version.source} {version.description} {version.tags}")
    return len(runs)
