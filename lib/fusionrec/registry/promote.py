"""The promotion gate: a challenger replaces the champion only if it is not worse.

Registry aliases (stages are deprecated in MLflow): a freshly registered version gets
``challenger``; the gate moves ``champion`` to it when

    m_challenger >= m_champion - tolerance

with m the configured metric (``registry.promotion_metric``, NDCG@10 of the hybrid model
by default) measured on the same evaluation split. Versions evaluated on different splits
are not comparable, and the gate refuses. ``force`` promotes regardless and is recorded as
forced. The decision, its reason and both numbers are written as tags and metrics on the
challenger's run and as tags on the model version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fusionrec.config import RegistryConfig
from fusionrec.errors import InputError
from fusionrec.registry.tracking import metric_name

__all__ = ["CHALLENGER", "CHAMPION", "TAG_METRIC_NAME", "TAG_METRIC_VALUE", "TAG_SPLIT", "current_champion",
           "decide", "promote_version", "PromotionDecision"]

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Model version tags written at registration and read by the gate.
TAG_METRIC_VALUE = "eval.metric_value"
TAG_METRIC_NAME = "eval.metric"
TAG_SPLIT = "eval.split"


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided about one challenger, and why."""

    model_name: str
    metric: str
    tolerance: float
    challenger_version: str
    challenger_metric: float | None
    champion_version: str | None
    champion_metric: float | None
    forced: bool
    promoted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(challenger_metric: float | None, champion_metric: float | None, tolerance: float, *,
           force: bool = False, has_champion: bool = True, same_split: bool = True) -> tuple[bool, str]:
    """(promote?, reason) for the numbers; pure, so every branch is tested directly."""
    if force:
        return True, "forced (--force-promote)"
    if challenger_metric is None or not math.isfinite(challenger_metric):
        return False, "challenger has no evaluation metric"
    if not has_champion:
        return True, "no current champion"
    if not same_split:
        return False, "champion was evaluated on a different split; not comparable (re-evaluate or force)"
    if champion_metric is None or not math.isfinite(champion_metric):
        return True, "current champion has no evaluation metric"
    floor = champion_metric - tolerance
    if challenger_metric >= floor:
        return True, (f"challenger {challenger_metric:.4f} >= champion {champion_metric:.4f} "
                      f"- tolerance {tolerance:g}")
    return False, (f"challenger {challenger_metric:.4f} < champion {champion_metric:.4f} "
                   f"- tolerance {tolerance:g}")


def _metric_of(version: Any) -> float | None:
    value = version.tags.get(TAG_METRIC_VALUE)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def current_champion(client: MlflowClient, model_name: str) -> Any | None:
    """The model version holding the ``champion`` alias, or None."""
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower() \
                or "does not exist" in str(exc).lower():
            return None
        raise


def promote_version(client: MlflowClient, rc: RegistryConfig, model_name: str, version: str,
                    force: bool = False) -> PromotionDecision:
    """Run the gate for ``version`` of ``model_name``; move ``champion`` if it passes; record everything."""
    try:
        challenger = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise InputError(f"registered model {model_name!r}: no version {version} "
                         f"({str(exc).strip().splitlines()[0]})") from None
    champion = current_champion(client, model_name)
    if champion is not None and str(champion.version) == str(challenger.version):
        decision = PromotionDecision(model_name, rc.promotion_metric, rc.promotion_tolerance, str(challenger.version),
                                     _metric_of(challenger), str(champion.version), _metric_of(champion),
                                     force, False, "already the champion")
        _record(client, challenger, decision)
        return decision
    challenger_metric = _metric_of(challenger)
    champion_metric = _metric_of(champion) if champion is not None else None
    same_split = champion is None or champion.tags.get(TAG_SPLIT) == challenger.tags.get(TAG_SPLIT)
    promoted, reason = decide(challenger_metric, champion_metric, rc.promotion_tolerance, force=force,
                              has_champion=champion is not None, same_split=same_split)
    decision = PromotionDecision(
        model_name=model_name, metric=rc.promotion_metric, tolerance=rc.promotion_tolerance,
        challenger_version=str(challenger.version), challenger_metric=challenger_metric,
        champion_version=str(champion.version) if champion is not None else None, champion_metric=champion_metric,
        forced=force, promoted=promoted, reason=reason,
    )
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, challenger.version)
        # "challenger" names a version still waiting; the new champion no longer is.
        if CHALLENGER in (challenger.aliases or []):
            client.delete_registered_model_alias(model_name, CHALLENGER)
    _record(client, challenger, decision)
    log.info("promotion %s v%s: %s (%s)", model_name, challenger.version,
             "promoted" if promoted else "refused", reason)
    return decision


def _record(client: MlflowClient, version: Any, decision: PromotionDecision) -> None:
    outcome = "promoted" if decision.promoted else "refused"
    tags = {"promotion.decision": outcome, "promotion.reason": decision.reason,
            "promotion.forced": str(decision.forced).lower(),
            "promotion.champion_version": decision.champion_version or "none"}
    for key, value in tags.items():
        client.set_model_version_tag(decision.model_name, version.version, key, value)
    if version.run_id:
        for key, value in tags.items():
            client.set_tag(version.run_id, key, value)
        for role, value in (("challenger", decision.challenger_metric), ("champion", decision.champion_metric)):
            if value is not None:
                client.log_metric(version.run_id, metric_name("promotion", role, decision.metric), value)
