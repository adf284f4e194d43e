"""The fused model's parameters, ``<lake.root>/model/fusion_params.json``, as one type.

Written by ``fusionrec train`` next to the factor tables; read back by ``fusionrec
recommend`` and by registration, which builds the serving bundle from it. Serialisation
only (``to_json`` / ``from_json``): where the text is stored is up to the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from fusionrec.errors import InputError, parse_json
from fusionrec.model.als import AlsParams
from fusionrec.model.ranker import RankerParams

_REQUIRED = ("als", "text_to_item_factor", "text_to_user_factor", "ranker", "train_cutoff", "candidates_n", "k",
             "min_user_interactions", "recent_weeks", "now_week")


@dataclass(frozen=True, eq=False)
class FusionParams:
    """Everything of the fitted model that is not a factor table."""

    #: the ALS hyper-parameters of the final fit
    als: AlsParams
    #: ALS settings that the search does not vary (``model.max_iter`` etc.)
    max_iter: int
    checkpoint_interval: int
    seed: int
    #: (d + 1) x rank ridge map text vector -> item factors, last row the bias
    text_to_item_factor: np.ndarray
    #: (d + 1) x rank profile -> user factors; None when it could not be fitted (see ``degraded``)
    text_to_user_factor: np.ndarray | None
    ranker: RankerParams | None
    #: the latest interaction of training (side features are recomputed as of it)
    train_cutoff: datetime | None
    candidates_n: int
    k: int
    min_user_interactions: int
    recent_weeks: int
    #: the week recommendations are made in (the last week of training)
    now_week: int
    #: the ALS search on the validation period, one entry per fit in the order tried
    search: list[dict[str, Any]] = field(default_factory=list)
    #: parts of the fit that fell back to something weaker, one sentence each
    degraded: tuple[str, ...] = ()
    #: the cold slot: its floor (also in ``ranker``) and validation NDCG@k / cold recall@k per
    #: floor; empty when ``model.cold_slot`` is off
    cold_slot: dict[str, Any] = field(default_factory=dict)
    #: the ranker's kind and, when chosen on validation, each kind's held-out NDCG@k
    ranker_choice: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return self.als.rank

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "als": {"rank": self.als.rank, "reg_param": self.als.reg_param, "alpha": self.als.alpha,
                    "max_iter": self.max_iter, "checkpoint_interval": self.checkpoint_interval, "seed": self.seed,
                    "implicit_prefs": True},
            "text_to_item_factor": np.asarray(self.text_to_item_factor).tolist(),
            "text_to_user_factor": (np.asarray(self.text_to_user_factor).tolist()
                                    if self.text_to_user_factor is not None else None),
            "ranker": self.ranker.to_json() if self.ranker is not None else None,
            "train_cutoff": self.train_cutoff.isoformat() if self.train_cutoff else None,
            "candidates_n": self.candidates_n,
            "k": self.k,
            "search": self.search,
            "min_user_interactions": self.min_user_interactions,
            "recent_weeks": self.recent_weeks,
            "now_week": self.now_week,
            "degraded": list(self.degraded),
            "cold_slot": self.cold_slot,
            "ranker_choice": self.ranker_choice,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "FusionParams":
        """:raises fusionrec.errors.InputError: not JSON, or a key is missing or malformed."""
        doc = parse_json(text)
        if not isinstance(doc, dict):
            raise InputError("expected a JSON object of fusion parameters")
        missing = [key for key in _REQUIRED if key not in doc]
        if missing:
            raise InputError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
        try:
            als = doc["als"]
            user_map = doc["text_to_user_factor"]
            return cls(
                als=AlsParams(rank=int(als["rank"]), reg_param=float(als["reg_param"]), alpha=float(als["alpha"])),
                max_iter=int(als["max_iter"]), checkpoint_interval=int(als["checkpoint_interval"]),
                seed=int(als["seed"]),
                text_to_item_factor=np.asarray(doc["text_to_item_factor"], dtype=np.float64),
                text_to_user_factor=np.asarray(user_map, dtype=np.float64) if user_map else None,
                ranker=RankerParams.from_json(doc["ranker"]) if doc["ranker"] is not None else None,
                train_cutoff=datetime.fromisoformat(doc["train_cutoff"]) if doc["train_cutoff"] else None,
                candidates_n=int(doc["candidates_n"]), k=int(doc["k"]),
                min_user_interactions=int(doc["min_user_interactions"]),
                recent_weeks=int(doc["recent_weeks"]), now_week=int(doc["now_week"]),
                search=list(doc.get("search") or []), degraded=tuple(doc.get("degraded") or ()),
                cold_slot=dict(doc.get("cold_slot") or {}), ranker_choice=dict(doc.get("ranker_choice") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            # Every conversion above reads the document; a wrong shape or type is its fault.
            raise InputError(f"malformed fusion parameters ({type(exc).__name__}: {exc})") from None
