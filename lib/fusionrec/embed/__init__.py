"""Sentence embeddings with Spark NLP: the model cache and the distributed embedding stage."""
