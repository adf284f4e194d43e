"""One module per ``fusionrec`` sub-command (see :mod:`fusionrec.cli`)."""

__all__ = ["doctor", "embed", "evaluate", "generate", "ingest", "maintain", "model", "pipeline", "promote",
           "recommend", "register", "train"]
