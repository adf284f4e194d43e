"""The examples in the docstrings of the stage entry points run, on the real Spark session."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["fusionrec.model.fusion", "fusionrec.model.recommend", "fusionrec.validation.metrics",
           "fusionrec.validation.split", "fusionrec.lake", "fusionrec.stages", "fusionrec.ingest.sources.files",
           "fusionrec.model.foldin", "fusionrec.stream.batch", "fusionrec.validation.item_texts",
           "fusionrec.validation.beyond_accuracy", "fusionrec.evaluate.peers", "fusionrec.evaluate.significance",
           "fusionrec.model.als", "fusionrec.model.ranker", "fusionrec.model.tuned"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, spark):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"spark": spark}, report=True,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
