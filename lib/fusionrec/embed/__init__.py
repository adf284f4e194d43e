"""Sentence embeddings with Spark NLP: the model cache and the distributed embedding stage."""

__all__ = ["files", "infer", "model", "plan", "reference", "stage", "texts", "validate"]
