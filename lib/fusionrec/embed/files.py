"""The files of an ONNX sentence-embedding export, apart from Spark: serving loads them too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelFiles"]


@dataclass(frozen=True)
class ModelFiles:
    """An ONNX export folder in the layout ``loadSavedModel`` expects.

    Example
    -------
    >>> ModelFiles(Path("/m")).vocab.as_posix()
    '/m/assets/vocab.txt'
    """

    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def vocab(self) -> Path:
        return self.folder / "assets" / "vocab.txt"
