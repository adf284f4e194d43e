"""Source adapters. Each turns its input files into *staged* frames, one per kind
(``events``, ``items``, ``reviews``), all with the schema of
:func:`fusionrec.ingest.schema.staged_schema` (checked by :func:`~fusionrec.ingest.schema.conform_staged`), so that cleaning is source-independent.

An adapter is ``read(spark, files, cfg) -> dict[kind, DataFrame]`` plus
``check(files)`` (driver-side validation raising :class:`~.files.InputError`) and
``PATTERNS`` (file name patterns when pointed at a directory).
"""

__all__ = ["amazon", "files", "jsonl", "movielens", "text"]
