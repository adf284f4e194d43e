"""A plain onnxruntime implementation of the same sentence embedding, outside Spark.

It is the physical reference: tests check Spark NLP's vectors against it, and
``bench/embed.py`` compares throughput with it. Same ONNX file, same vocabulary,
same maximum length, mean pooling over the attention mask and L2 normalisation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusionrec.embed.files import ModelFiles

__all__ = ["OnnxReferenceEmbedder"]


class OnnxReferenceEmbedder:
    """Embed texts with onnxruntime directly: ``embed(texts) -> float32[n, d]``."""

    def __init__(self, files: ModelFiles, max_length: int = 256, threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import BertWordPieceTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(files.onnx), options, providers=["CPUExecutionProvider"])
        self.tokenizer = BertWordPieceTokenizer(str(files.vocab), lowercase=True)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode_batch(list(texts[start : start + batch_size]))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = self.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.vstack(out).astype(np.float32) if out else np.zeros((0, 384), dtype=np.float32)
