"""The result of ``fusionrec evaluate``, as written to ``<lake.root>/reports/<name>.json``.

Serialisation only (``to_json`` / ``from_json``): where the text is stored is up to the
caller. Registration reads the file back with :meth:`EvaluationResults.from_json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from fusionrec.errors import InputError, parse_json


class _Row(TypedDict):
    model: str
    k: int


class ModelMetrics(_Row, total=False):
    """One model at one K over the test users (:func:`fusionrec.validation.metrics.ranking_metrics`),
    the per-user standard error of each (``<metric>_se``), the beyond-accuracy measures
    (:mod:`fusionrec.validation.beyond_accuracy`) and, in the hybrid's row, the best peer's value
    and the paired bootstrap interval of the difference (``best_peer_<m>``, ``<m>_diff[_low|_high]``)."""

    precision: float
    recall: float
    ndcg: float
    map: float
    hit_rate: float
    coverage: float
    users: int
    precision_se: float
    recall_se: float
    ndcg_se: float
    map_se: float
    hit_rate_se: float
    diversity: float
    novelty: float
    catalog_coverage: float
    popularity_percentile: float


class ColdItemMetrics(_Row, total=False):
    """One model at one K over the users with a cold item in test: ``recall`` / ``hit_rate``
    over the whole catalogue, ``ranked_*`` with the cold items ranked among themselves."""

    recall: float
    hit_rate: float
    users: int
    ranked_recall: float
    ranked_ndcg: float


@dataclass(frozen=True)
class EvaluationResults:
    """Every model's metrics on one split, and how the split and the models were made."""

    table: list[ModelMetrics]
    cold_items: list[ColdItemMetrics] = field(default_factory=list)
    #: the ALS grid on the validation period, one entry per combination
    search: list[dict[str, Any]] = field(default_factory=list)
    #: the chosen ALS parameters
    chosen: dict[str, Any] = field(default_factory=dict)
    #: the ranker fitted on the training split (JSON of :class:`fusionrec.model.ranker.RankerParams`)
    ranker: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: training-side rows at or after their user's test start (all 0, or the run fails)
    leakage_checks: dict[str, int] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    #: per K: the best peer and, per compared metric, hybrid, peer, ratio and the paired bootstrap interval
    comparison: list[dict[str, Any]] = field(default_factory=list)
    #: the peers' validation trials and chosen settings (or why a peer was left out)
    peers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "EvaluationResults":
        """Checked: ``table`` is a list, and every row of it and of ``cold_items`` has ``model`` and ``k``.

        :raises fusionrec.errors.InputError: naming what is wrong.
        """
        if not isinstance(data, dict) or not isinstance(data.get("table"), list):
            raise InputError("expected the evaluation results with a 'table' list")
        for key in ("table", "cold_items"):
            for row in data.get(key) or []:
                if not isinstance(row, dict) or not isinstance(row.get("model"), str) or "k" not in row:
                    raise InputError(f"{key} rows need 'model' and 'k', got {row!r}")
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data and data[f] is not None}
        return cls(**{**known, "ranker": data.get("ranker")})

    @classmethod
    def from_json(cls, text: str) -> "EvaluationResults":
        """:raises fusionrec.errors.InputError: not JSON, or not results (see :meth:`from_dict`)."""
        return cls.from_dict(parse_json(text))
