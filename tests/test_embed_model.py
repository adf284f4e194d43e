"""The MiniLM model inside Spark NLP: shape, norm, semantics, and agreement with onnxruntime."""

import shutil

import numpy as np
import pytest
from pyspark.ml import Pipeline
from sparknlp.base import DocumentAssembler

from fusionrec.embed.model import build_model_cache, cache_is_valid, cache_path, load_embedder, model_files
from fusionrec.embed.reference import OnnxReferenceEmbedder

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The central bank raised interest rates again, and the stock market fell sharply.",
]


def _embed(spark, cfg, texts):
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "i INT, text STRING")
    pipeline = Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        load_embedder(spark, cfg.embed),
    ])
    rows = pipeline.fit(df).transform(df).selectExpr("i", "embedding[0].embeddings AS v").orderBy("i").collect()
    return np.array([r.v for r in rows], dtype=np.float64)


def test_sentence_vectors_are_unit_384d_and_semantic(spark, cfg):
    v = _embed(spark, cfg, SENTENCES)
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.3
    assert sims[0, 1] > sims[1, 2] + 0.3


def test_agrees_with_onnxruntime_reference(spark, cfg):
    spark_nlp = _embed(spark, cfg, SENTENCES)
    reference = OnnxReferenceEmbedder(model_files(cfg.embed), max_length=cfg.embed.max_sentence_length)
    ref = reference.embed(SENTENCES).astype(np.float64)
    cosines = (spark_nlp * ref).sum(axis=1) / np.linalg.norm(ref, axis=1)
    assert cosines.min() >= 0.999, cosines


def test_corrupt_cache_is_detected_and_rebuilt(spark, cfg, tmp_path):
    embed = cfg.embed.__class__(**{**cfg.embed.__dict__, "model_cache": str(tmp_path / "models")})
    # Re-use the already extracted ONNX folder rather than the wheels.
    shutil.copytree(model_files(cfg.embed).folder, tmp_path / "models" / "onnx" / embed.model_id)
    assert not cache_is_valid(embed)
    path = build_model_cache(spark, embed)
    assert cache_is_valid(embed) and path == cache_path(embed)
    victim = max((p for p in path.rglob("*") if p.is_file() and p.name != "fusionrec-manifest.json"),
                 key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:100])
    assert not cache_is_valid(embed)
    load_embedder(spark, embed)  # rebuilds
    assert cache_is_valid(embed)


def test_missing_model_files_are_a_clear_error(cfg, tmp_path):
    from fusionrec.session import SetupError

    embed = cfg.embed.__class__(**{**cfg.embed.__dict__, "source": "onnx_dir", "onnx_dir": str(tmp_path)})
    with pytest.raises(SetupError, match="model.onnx is missing"):
        model_files(embed)
