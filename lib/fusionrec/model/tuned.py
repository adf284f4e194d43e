"""The settings an evaluation tuned, ``<lake.root>/model/tuned_settings.json``, reused by training.

The evaluation fits the whole model on its training split, choosing ALS's rank,
``reg_param`` and ``alpha`` and the ranker's kind on a validation period inside that split
(:func:`fusionrec.model.train.fit_pipeline`), exactly the choice the train stage makes on a
validation period of its own. When the train stage reads the same table versions with the
same ``model`` / ``evaluate`` / ``features`` settings, it takes the evaluation's choice instead
of making it again (``model.search_from_evaluation``): one ALS fit instead of up to
``model.search_max_fits``, and one ranker kind fitted instead of three under ``auto``. Nothing
of the test period went into that choice, so it is as clean as the train stage's own search;
it was made on an earlier validation period (the last part of each user's training split rather
than of all the data), as a setting tuned on a backtest and then refitted on everything is.

Serialisation and the reuse rule only; where the text is stored is up to the caller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from fusionrec.config import ModelConfig
from fusionrec.errors import InputError, parse_json

__all__ = ["TUNING_SECTIONS", "TunedSettings", "settings_digest"]

#: The configuration sections whose values decide the choice (the search grid, the validation
#: period and relevance, the side features the ranker sees).
TUNING_SECTIONS = ("model", "evaluate", "features")


def settings_digest(sections: Mapping[str, Any]) -> str:
    """The hash of the :data:`TUNING_SECTIONS` of ``sections`` (a resolved configuration as plain data).

    >>> a = settings_digest({"model": {"rank": 8}, "evaluate": {}, "features": {}, "spark": {"master": "x"}})
    >>> a == settings_digest({"model": {"rank": 8}, "evaluate": {}, "features": {}})
    True
    >>> a == settings_digest({"model": {"rank": 16}, "evaluate": {}, "features": {}})
    False
    """
    payload = {section: sections.get(section) for section in TUNING_SECTIONS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class TunedSettings:
    """What a fit chose on its validation period, and the inputs it was chosen on.

    >>> tuned = TunedSettings(rank=64, reg_param=0.1, alpha=1.0, ranker="pairwise",
    ...                       tables={"gold.interactions": 3}, settings="abc")
    >>> TunedSettings.from_json(tuned.to_json()) == tuned
    True
    >>> tuned.reuse_refused({"gold.interactions": 4}, "abc")
    'gold.interactions is at version 4, the evaluation read version 3'
    >>> tuned.reuse_refused({"gold.interactions": 3}, "abc") is None
    True
    >>> mc = tuned.applied_to(ModelConfig(search_rank=[32, 64], ranker="auto"))
    >>> (mc.rank, mc.reg_param, mc.alpha, mc.search_rank, mc.ranker)
    (64, 0.1, 1.0, [], 'pairwise')
    """

    rank: int
    reg_param: float
    alpha: float
    #: the ranker kind kept (``pointwise`` / ``pairwise`` / ``lambdamart``); None: no ranker was fitted
    ranker: str | None
    #: ``"<layer>.<table>"`` -> the Delta version the choice was made on (None: absent)
    tables: dict[str, int | None]
    #: :func:`settings_digest` of the configuration the choice was made with
    settings: str

    def reuse_refused(self, versions: Mapping[str, int | None], settings: str) -> str | None:
        """Why a fit reading the tables at ``versions`` with ``settings`` may not reuse this
        choice (a sentence), or None when it may: every table both read is at the same version
        and the settings are the same."""
        if settings != self.settings:
            return "the model, evaluate or features settings differ from the evaluation's"
        for table, version in versions.items():
            if table in self.tables and self.tables[table] != version:
                return f"{table} is at version {version}, the evaluation read version {self.tables[table]}"
        return None

    def applied_to(self, mc: ModelConfig) -> ModelConfig:
        """``mc`` with the chosen ALS setting as its only search value and the chosen ranker kind."""
        return dataclasses.replace(mc, rank=self.rank, reg_param=self.reg_param, alpha=self.alpha,
                                   search_rank=[], search_reg_param=[], search_alpha=[],
                                   ranker=self.ranker or mc.ranker)

    def describe(self) -> str:
        return f"rank {self.rank}, reg_param {self.reg_param:g}, alpha {self.alpha:g}, ranker {self.ranker}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "TunedSettings":
        """:raises fusionrec.errors.InputError: not JSON, or a key is missing or malformed."""
        doc = parse_json(text)
        if not isinstance(doc, dict):
            raise InputError("expected a JSON object of tuned settings")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in doc]
        if missing:
            raise InputError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
        try:
            return cls(rank=int(doc["rank"]), reg_param=float(doc["reg_param"]), alpha=float(doc["alpha"]),
                       ranker=str(doc["ranker"]) if doc["ranker"] is not None else None,
                       tables={str(t): (int(v) if v is not None else None) for t, v in dict(doc["tables"]).items()},
                       settings=str(doc["settings"]))
        except (TypeError, ValueError) as exc:
            raise InputError(f"malformed tuned settings ({type(exc).__name__}: {exc})") from None
