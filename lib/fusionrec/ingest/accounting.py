"""Per-batch accounting: every input row is accepted, quarantined or a removed duplicate.

For each kind of a batch, one aggregation over the classified rows yields, per file and
per reason code, the row counts, the duplicates and the repairs; from it:

    rows_in == accepted + quarantined + duplicates                               (1)

and, after the writes, from the Delta commits (their ``operationMetrics``) and, where
these do not settle it, from the tables:

    accepted == silver rows of this batch + accepted keys held by other batches  (2)
    quarantined == quarantine rows of this batch                                 (3)
    rows_in == bronze rows of this batch                                         (4)

(2) covers a re-run after a kill (rows already written by the killed run carry the same
batch id) and records held by an earlier batch (an event id seen before, an item whose
stored record is newer). (3) and (4) are the rows of the batch's replacing commit.
:class:`AccountingError` is raised when any equation fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.ingest.schema import DUPLICATE_CODE, Fix

__all__ = ["FIX_CODES", "AccountingError", "KindAccount", "summarise"]

FIX_CODES = (Fix.TEXT_TRUNCATED, Fix.MARKUP_STRIPPED, Fix.NON_UTF8_REPLACED, Fix.PRICE_UNPARSED)


class AccountingError(RuntimeError):
    """The row equation of a batch does not hold: rows were lost or double counted."""


@dataclass
class KindAccount:
    """The counts of one kind (events, items or reviews) of one batch."""

    kind: str
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    fixes: dict[str, int] = field(default_factory=dict)
    #: file -> [rows, rows that parsed as records]
    files: dict[str, list[int]] = field(default_factory=dict)
    silver_rows: int | None = None
    held_by_other_batches: int | None = None
    silver_inserted: int | None = None
    quarantine_rows: int | None = None
    bronze_rows: int | None = None

    def check_split(self) -> None:
        """Equation (1)."""
        if self.rows_in != self.accepted + self.quarantined + self.duplicates:
            raise AccountingError(
                f"{self.kind}: rows in {self.rows_in} != accepted {self.accepted} + quarantined "
                f"{self.quarantined} + duplicates {self.duplicates}")

    def check_written(self) -> None:
        """Equations (2), (3) and (4), after the writes."""
        if None in (self.silver_rows, self.held_by_other_batches, self.quarantine_rows, self.bronze_rows):
            raise AccountingError(f"{self.kind}: written counts were not taken")
        if self.accepted != self.silver_rows + self.held_by_other_batches:
            raise AccountingError(
                f"{self.kind}: accepted {self.accepted} != silver rows of the batch {self.silver_rows} "
                f"+ rows held by other batches {self.held_by_other_batches}")
        if self.quarantined != self.quarantine_rows:
            raise AccountingError(
                f"{self.kind}: quarantined {self.quarantined} != quarantine rows of the batch {self.quarantine_rows}")
        if self.rows_in != self.bronze_rows:
            raise AccountingError(f"{self.kind}: rows in {self.rows_in} != bronze rows of the batch {self.bronze_rows}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(classified: DataFrame, kind: str) -> KindAccount:
    """One aggregation over the classified rows of ``kind`` -> :class:`KindAccount`.

    The result has one row per (file, reason) pair, so collecting it is small.
    """
    reason_unparsed = F.col("_reason").isin("unparseable", "blank_line")
    aggs = [F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("_duplicate").cast("int")).alias("duplicates"),
            F.sum(F.when(reason_unparsed, 0).otherwise(1)).alias("parsed")]
    aggs += [F.sum(F.when(F.col("_reason").isNull() & ~F.col("_duplicate")
                          & F.array_contains("_fixes", code), 1).otherwise(0)).alias(code)
             for code in FIX_CODES]
    rows = classified.groupBy("_file", "_reason").agg(*aggs).collect()
    account = KindAccount(kind)
    dup_code = DUPLICATE_CODE[kind]
    for r in rows:
        account.rows_in += r["rows"]
        per_file = account.files.setdefault(r["_file"], [0, 0])
        per_file[0] += r["rows"]
        per_file[1] += r["parsed"]
        if r["_reason"] is not None:
            account.quarantined += r["rows"]
            account.by_reason[r["_reason"]] = account.by_reason.get(r["_reason"], 0) + r["rows"]
        else:
            account.duplicates += r["duplicates"]
            account.accepted += r["rows"] - r["duplicates"]
            for code in FIX_CODES:
                if r[code]:
                    account.fixes[code] = account.fixes.get(code, 0) + r[code]
    if account.duplicates:
        account.by_reason[dup_code] = account.duplicates
    account.by_reason = dict(sorted(account.by_reason.items()))
    return account
