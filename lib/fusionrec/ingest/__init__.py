"""Ingestion: raw behaviour, item and review logs -> Delta bronze / silver / gold / quarantine.

Modules, one concern each:

- :mod:`.schema`: the canonical JSON Lines schemas, table schemas, constraints, reason codes;
- :mod:`.sources`: adapters (canonical JSONL, MovieLens, Amazon) with one output contract;
- :mod:`.clean`: pure ``DataFrame -> DataFrame`` cleaning rules (each with a reason code);
- :mod:`.privacy`: keyed-hash pseudonymisation of user ids;
- :mod:`.gold`: pure derivations of the gold tables from silver;
- :mod:`.writer`: Delta table creation (constraints, Change Data Feed) and idempotent writes;
- :mod:`.accounting`: the per-batch row equation and its report;
- :mod:`.pipeline`: orchestration (``ingest``, ``ingest_directory``).
"""

__all__ = ["accounting", "clean", "gold", "pipeline", "privacy", "schema", "sources", "writer"]
