"""Input files: resolution, integrity checks and batch ids, before the records are read.

Inputs may live on any Hadoop filesystem (``hdfs://``, ``s3a://``, ``file://``; a bare path
is resolved by the session's default filesystem, as Spark does). They are listed through
the Hadoop ``FileSystem`` API, and checked by one Spark job that reads each file once on
an executor: its SHA-256, computed in the JVM (the batch id is a hash of the source name
and the files' contents, so an already ingested file is recognised even under another
name), for ``.gz`` files a full decompression on the executors (a truncated or corrupt
stream is reported here, naming the file, instead of failing a Spark job midway), and its
first non-blank line (to recognise a file of the wrong format). Of a plain file only its
first :data:`HEAD_BYTES` leave the JVM, to the driver; no file is read whole on the driver.

A local input (a ``file:`` URI or a plain path on the local filesystem) is first checked in
plain Python (:func:`check_local`), which needs no Spark session, so the command line runs
it before Spark starts: a missing, unreadable or permission-denied path, a symbolic link
loop or a dangling link, or a folder named like an input file is one :class:`InputError`
naming the path. Entries of a directory that are passed over are logged, never dropped
silently.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import logging
import os
import posixpath
import re
import stat
import zlib
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

__all__ = ["CHUNK", "HEAD_BYTES", "batch_id", "check_content", "check_local", "exists", "InputError", "InputFile",
           "inspect", "list_inputs", "LocalListing", "local_path", "matches", "resolve"]

from fusionrec.errors import InputError

CHUNK = 1 << 20
HEAD_BYTES = 1 << 16

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


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


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """``name`` (a file name, not a path) matches one of the glob ``patterns``."""
    return any(fnmatch.fnmatch(name, pat) for pat in patterns)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def local_path(location: str, *, bare_is_local: bool = True) -> str | None:
    """The local filesystem path that ``location`` names: a ``file:`` URI, or a path without
    a scheme when ``bare_is_local`` (the default filesystem is the local one); else None."""
    if location.startswith("file:"):
        return unquote(urlparse(location).path) or "/"
    if _SCHEME.match(location):
        return None
    return location if bare_is_local else None


@dataclass(frozen=True)
class LocalListing:
    """The input files at a local path (:func:`check_local`)."""

    #: The input files, sorted: the path itself, or the matching files of a directory.
    files: list[str]
    #: Names in the directory passed over: hidden (``.``/``_``) ones matching a pattern.
    skipped: list[str]
    #: Names in the directory that match no pattern (not inputs of this source).
    other: list[str]
    is_dir: bool


def _stat_problem(path: str) -> str | None:
    """Why ``path`` cannot be followed to a file or directory, or None."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling symbolic link (to {os.readlink(path)})"
        return "no such file or directory"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return exc.strerror or str(exc)
    return None


def _check_local_file(path: str) -> None:
    problem = _stat_problem(path)
    if problem is None:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            problem = "is a directory, not an input file"
        elif not stat.S_ISREG(mode):
            problem = "not a regular file"
        else:
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except PermissionError:
                problem = "permission denied"
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror or exc})"
    if problem:
        raise InputError(f"{path}: {problem}")


def check_local(path: str, patterns: tuple[str, ...] = ("*",)) -> LocalListing:
    """Check a local input without Spark: ``path`` is a readable file, or a listable
    directory in which every non-hidden entry matching ``patterns`` is a readable file.

    Parameters
    ----------
    path : str
        A local path (see :func:`local_path`).
    patterns : tuple of str
        Glob patterns of the input file names in a directory.

    Returns
    -------
    LocalListing
        The input files (empty when a directory has none), the names passed over.

    Raises
    ------
    InputError
        One line naming the path: no such file or directory, dangling symbolic link,
        symbolic link loop, permission denied, not a regular file, or a directory entry
        named like an input file that is a directory (or any of the above).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "events-1.jsonl").write_text("{}")
    2
    >>> (d / "events-2.jsonl").mkdir()
    >>> check_local(str(d), ("events*.jsonl",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fusionrec.errors.InputError: .../events-2.jsonl: is a directory, not an input file
    """
    problem = _stat_problem(path)
    if problem:
        raise InputError(f"{path}: {problem}")
    if not os.path.isdir(path):
        _check_local_file(path)
        return LocalListing([path], [], [], False)
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot be listed ({exc.strerror or exc})") from None
    files, skipped, other = [], [], []
    for name in names:
        if not matches(name, patterns):
            other.append(name)
        elif _hidden(name):
            skipped.append(name)
        else:
            entry = os.path.join(path, name)
            _check_local_file(entry)
            files.append(entry)
    return LocalListing(files, skipped, other, True)


def _report(location: str, skipped: list[str], other: list[str], patterns: tuple[str, ...]) -> None:
    if skipped:
        log.warning("%s: skipped %d hidden file(s) named like inputs: %s", location, len(skipped), ", ".join(skipped))
    if other:
        log.debug("%s: %d entries are not named like %s: %s", location, len(other), ", ".join(patterns),
                  ", ".join(other))


def list_inputs(spark: SparkSession, location: str, patterns: tuple[str, ...] = ("*",)) -> tuple[list[str], list[str]]:
    """``(files, other names)`` at ``location``: the qualified URIs of the file, or of the
    files of a directory matching ``patterns`` (hidden ``.``/``_`` names skipped, with a
    warning), sorted; ``other`` are the directory's names that match no pattern.

    :raises InputError: missing location, unreadable listing, an entry named like an input
        that is a directory; for a local location every problem of :func:`check_local`.
    """
    fs, path = _fs(spark, location)
    if path.toUri().getScheme() == "file":
        listing = check_local(path.toUri().getPath(), patterns)
        _report(location, listing.skipped, listing.other, patterns)
        if not listing.is_dir:
            return [path.toString()], []
    try:
        if not fs.exists(path):
            raise InputError(f"{location}: no such file or directory")
        status = fs.getFileStatus(path)
        if not status.isDirectory():
            return [path.toString()], []
        entries = fs.listStatus(path)
    except InputError:
        raise
    except Exception as exc:  # py4j wraps the filesystem's IOException (permission denied, ...)
        raise InputError(f"{location}: cannot be listed ({_java_message(exc)})") from None
    files, skipped, other = [], [], []
    for e in sorted(entries, key=lambda e: e.getPath().getName()):
        name = e.getPath().getName()
        if not matches(name, patterns):
            other.append(name)
        elif _hidden(name):
            skipped.append(name)
        elif e.isDirectory():
            raise InputError(f"{e.getPath().toString()}: is a directory, not an input file")
        else:
            files.append(e.getPath().toString())
    if path.toUri().getScheme() != "file":
        _report(location, skipped, other, patterns)
    return files, other


def resolve(spark: SparkSession, location: str, patterns: tuple[str, ...] = ("*",)) -> list[str]:
    """The qualified URIs of the files at ``location`` (a file, or the files of a directory
    matching ``patterns``; hidden ``.``/``_`` names skipped), sorted.

    :raises InputError: missing location, unreadable listing, no matching file, or any
        problem of :func:`list_inputs`.
    """
    files, _ = list_inputs(spark, location, patterns)
    if not files:
        raise InputError(f"{location}: directory has no input files (expected {', '.join(patterns)})")
    return files


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    text = java.getMessage() if java is not None else str(exc)
    return (text or type(exc).__name__).splitlines()[0]


def check_content(path: str, data: bytes, digest: str | None = None) -> tuple[str, str, str | None]:
    """``(sha256, first non-blank line, problem or None)`` of one file's bytes.

    ``digest``: the file's SHA-256 when already computed; ``data`` may then be only the
    first :data:`HEAD_BYTES` of a file not named ``.gz`` (a ``.gz`` file is always whole:
    its stream is checked to the end).
    """
    if digest is None:
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
    content = F.col("content")
    # The hash is taken in the JVM; of a plain file only its head is checked, a .gz file whole.
    data = F.when(F.col("path").endswith(".gz"), content).otherwise(F.substring(content, 1, HEAD_BYTES))
    selected = (spark.read.format("binaryFile").load(paths)
                .select("path", "length", "modificationTime", F.sha2(content, 256).alias("sha256"), data.alias("data")))

    def check(r):
        return (r.path, r.length, r.modificationTime, *check_content(r.path, bytes(r.data), r.sha256))

    if any(posixpath.basename(p).endswith(".gz") for p in paths):
        rows = selected.rdd.map(check).collect()  # streams are decompressed on the executors
    else:  # heads only: checked here, no Python worker needed
        rows = [check(r) for r in selected.collect()]
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
