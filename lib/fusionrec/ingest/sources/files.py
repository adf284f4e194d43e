"""Input files: resolution, integrity checks and batch ids, before Spark reads anything.

Every file is read once on the driver, streaming: its SHA-256 (the batch id is a hash of
the source name and the files' contents, so an already ingested file is recognised even
under another name), for ``.gz`` files a full decompression (a truncated or corrupt
stream is reported here, naming the file, instead of failing a Spark job midway), and its
first non-blank line (to recognise a file of the wrong format).
"""

from __future__ import annotations

import fnmatch
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from fusionrec.errors import InputError

CHUNK = 1 << 20
HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class InputFile:
    path: str
    sha256: str
    size: int
    #: First non-blank line (decoded leniently), "" for a file without one.
    first_line: str

    @property
    def name(self) -> str:
        return Path(self.path).name


def resolve(path: str, patterns: tuple[str, ...] = ("*",)) -> list[Path]:
    """The files at ``path`` (a file, or the files of a directory matching ``patterns``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file or directory")
    if p.is_file():
        return [p.resolve()]
    files = sorted(f.resolve() for f in p.iterdir()
                   if f.is_file() and not f.name.startswith((".", "_")) and any(fnmatch.fnmatch(f.name, pat) for pat in patterns))
    if not files:
        raise InputError(f"{path}: directory has no input files (expected {', '.join(patterns)})")
    return files


def inspect(path: Path) -> InputFile:
    """Hash and check one file; :class:`InputError` for an empty file or a bad gzip stream."""
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    gz = path.name.endswith(".gz")
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if size == 0 and gz and chunk[:2] != b"\x1f\x8b":
                raise InputError(f"{path}: not a gzip file (the name ends in .gz)")
            size += len(chunk)
            digest.update(chunk)
            if decomp is None:
                if len(head) < HEAD_BYTES:
                    head += chunk[:HEAD_BYTES]
                continue
            data = chunk
            while data:
                try:
                    out = decomp.decompress(data)
                except zlib.error as exc:
                    raise InputError(f"{path}: corrupt gzip stream ({exc})") from None
                if len(head) < HEAD_BYTES:
                    head += out[:HEAD_BYTES]
                data = decomp.unused_data
                if decomp.eof and data:  # a concatenated gzip member follows
                    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif decomp.eof:
                    break
    if size == 0:
        raise InputError(f"{path}: file is empty")
    if decomp is not None and not decomp.eof:
        raise InputError(f"{path}: truncated gzip stream (unexpected end of file)")
    text = bytes(head).decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return InputFile(str(path), digest.hexdigest(), size, first)


def batch_id(source: str, files: list[InputFile]) -> str:
    """Hash of the source name and the contents of the files (order-independent)."""
    digest = hashlib.sha256(source.encode("utf-8"))
    for sha in sorted(f.sha256 for f in files):
        digest.update(sha.encode("ascii"))
    return f"{source}-{digest.hexdigest()[:24]}"
