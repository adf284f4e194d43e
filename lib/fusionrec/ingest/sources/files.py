"""Input files: resolution, integrity checks and batch ids, before the records are read.

Inputs may live on any Hadoop filesystem (``hdfs://``, ``s3a://``, ``file://``; a bare path
is resolved by the session's default filesystem, as Spark does). They are listed through
the Hadoop ``FileSystem`` API, and checked by one Spark job that reads each file once on
an executor: its SHA-256 (the batch id is a hash of the source name and the files'
contents, so an already ingested file is recognised even under another name), for ``.gz``
files a full decompression (a truncated or corrupt stream is reported here, naming the
file, instead of failing a Spark job midway), and its first non-blank line (to recognise
a file of the wrong format). Nothing is read on the driver.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import zlib
from dataclasses import dataclass

from pyspark.sql import SparkSession

__all__ = ["CHUNK", "HEAD_BYTES", "batch_id", "check_content", "exists", "InputError", "InputFile", "inspect", "resolve"]

from fusionrec.errors import InputError

CHUNK = 1 << 20
HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class InputFile:
    #: Fully qualified URI (``file:/…``, ``hdfs://…``): what readers load.
    path: str
    sha256: str
    size: int
    #: First non-blank line (decoded leniently), "" for a file without one.
    first_line: str
    modified_ms: int = 0

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)


def _fs(spark: SparkSession, location: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, fs.makeQualified(path)


def exists(spark: SparkSession, location: str) -> tuple[bool, bool]:
    """``(exists, is a directory)`` of ``location`` on its filesystem."""
    fs, path = _fs(spark, location)
    if not fs.exists(path):
        return False, False
    return True, bool(fs.getFileStatus(path).isDirectory())


def resolve(spark: SparkSession, location: str, patterns: tuple[str, ...] = ("*",)) -> list[str]:
    """The qualified URIs of the files at ``location`` (a file, or the files of a directory
    matching ``patterns``; hidden ``.``/``_`` names skipped), sorted.

    :raises InputError: missing location, unreadable listing, or no matching file.
    """
    fs, path = _fs(spark, location)
    try:
        if not fs.exists(path):
            raise InputError(f"{location}: no such file or directory")
        status = fs.getFileStatus(path)
        if not status.isDirectory():
            return [path.toString()]
        entries = fs.listStatus(path)
    except InputError:
        raise
    except Exception as exc:  # py4j wraps the filesystem's IOException (permission denied, ...)
        raise InputError(f"{location}: cannot be listed ({_java_message(exc)})") from None
    files = sorted(e.getPath().toString() for e in entries
                   if not e.isDirectory() and not e.getPath().getName().startswith((".", "_"))
                   and any(fnmatch.fnmatch(e.getPath().getName(), pat) for pat in patterns))
    if not files:
        raise InputError(f"{location}: directory has no input files (expected {', '.join(patterns)})")
    return files


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    text = java.getMessage() if java is not None else str(exc)
    return (text or type(exc).__name__).splitlines()[0]


def check_content(path: str, data: bytes) -> tuple[str, str, str | None]:
    """``(sha256, first non-blank line, problem or None)`` of one file's bytes."""
    digest = hashlib.sha256(data).hexdigest()
    name = posixpath.basename(path)
    if not data:
        return digest, "", "file is empty"
    head = bytearray()
    if name.endswith(".gz"):
        if data[:2] != b"\x1f\x8b":
            return digest, "", "not a gzip file (the name ends in .gz)"
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            chunk = bytes(view[start:start + CHUNK])
            while chunk:
                try:
                    out = decomp.decompress(chunk)
                except zlib.error as exc:
                    return digest, "", f"corrupt gzip stream ({exc})"
                if len(head) < HEAD_BYTES:
                    head += out[:HEAD_BYTES]
                chunk = decomp.unused_data
                if decomp.eof and chunk:  # a concatenated gzip member follows
                    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif decomp.eof:
                    break
        if not decomp.eof:
            return digest, "", "truncated gzip stream (unexpected end of file)"
    else:
        head = bytearray(data[:HEAD_BYTES])
    text = bytes(head).decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return digest, first, None


def inspect(spark: SparkSession, paths: list[str]) -> list[InputFile]:
    """Hash and check ``paths`` (qualified URIs from :func:`resolve`) in one Spark job, one
    file per row of Spark's ``binaryFile`` source; returned in the order of ``paths``.

    :raises InputError: the first bad file (empty, bad gzip stream), named.
    """
    if not paths:
        return []
    paths = [_fs(spark, p)[1].toString() for p in paths]  # Hadoop's qualified form, as binaryFile reports it
    rows = (spark.read.format("binaryFile").load(paths)
            .rdd.map(lambda r: (r.path, r.length, r.modificationTime, *check_content(r.path, bytes(r.content))))
            .collect())
    by_path = {row[0]: row for row in rows}
    files = []
    for path in paths:
        row = by_path.get(path)
        if row is None:
            raise InputError(f"{path}: vanished while being read")
        _, size, modified, sha, first, problem = row
        if problem:
            raise InputError(f"{path}: {problem}")
        files.append(InputFile(path, sha, int(size), first, int(modified.timestamp() * 1000)))
    return files


def batch_id(source: str, files: list[InputFile]) -> str:
    """Hash of the source name and the contents of the files (order-independent)."""
    digest = hashlib.sha256(source.encode("utf-8"))
    for sha in sorted(f.sha256 for f in files):
        digest.update(sha.encode("ascii"))
    return f"{source}-{digest.hexdigest()[:24]}"
