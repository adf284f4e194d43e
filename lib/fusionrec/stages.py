"""Stage declarations: what each pipeline stage reads and writes, declared where it is wired.

A :class:`Stage` names the Delta tables it reads and writes, the configuration sections
it reads (its parameters) and the small lake artifacts it reads and writes (as Kedro's
``node(func, inputs=[..., "params:..."], outputs=[...])`` does). The pipeline derives
everything from these declarations: the order, a stage's fingerprint (the versions of
the tables it reads, the stamps of the artifacts it reads, the values of its sections)
and so which stages re-run when something changed.

The declarations are kept honest at run time: a stage receives only the configuration
sections it declares (:meth:`Stage.config_view`); reading any other raises
:class:`UndeclaredConfigError`, so a section missing from a declaration fails the first
run that needs it instead of silently skipping a stage that should have re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fusionrec.config import Config

__all__ = ["RUNTIME_SECTIONS", "Stage", "ConfigView", "UndeclaredConfigError", "dependants", "fingerprint"]

#: Sections every stage may read that decide where and how it runs, not what it computes.
RUNTIME_SECTIONS = ("mode", "spark", "lake")


class UndeclaredConfigError(AttributeError):
    """A stage read a configuration section its declaration does not list."""


@dataclass(frozen=True)
class Stage:
    """One pipeline stage's declaration.

    >>> train = Stage("train", reads=("gold.interactions",), writes=("model.item_factors",),
    ...               params=("model", "evaluate"), artifacts_out=("model/fusion_params.json",))
    >>> train.params
    ('model', 'evaluate')
    """

    name: str
    #: Delta tables read / written, as ``"<layer>.<table>"``.
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    #: Configuration sections whose values decide the stage's output.
    params: tuple[str, ...] = ()
    #: Lake artifacts (paths relative to ``lake.root``) read / written.
    artifacts_in: tuple[str, ...] = ()
    artifacts_out: tuple[str, ...] = ()
    #: Sections the stage reads that do not change its output (e.g. where MLflow lives).
    uses: tuple[str, ...] = ()

    def config_view(self, cfg: Config) -> "ConfigView":
        """``cfg`` restricted to this stage's sections (params, uses and the runtime ones)."""
        return ConfigView(cfg, self.name, frozenset(self.params + self.uses + RUNTIME_SECTIONS))

    def depends_on(self, other: "Stage") -> bool:
        """Whether this stage reads something ``other`` writes."""
        return bool(set(self.reads) & set(other.writes) or set(self.artifacts_in) & set(other.artifacts_out))


class ConfigView:
    """A :class:`Config` that exposes only ``allowed`` sections.

    >>> view = ConfigView(Config(), "train", frozenset({"model"}))
    >>> view.model.rank > 0
    True
    >>> view.registry
    Traceback (most recent call last):
    ...
    fusionrec.stages.UndeclaredConfigError: stage 'train' reads config section 'registry', which its declaration does not list
    """

    def __init__(self, cfg: Config, stage: str, allowed: frozenset[str]) -> None:
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_allowed", allowed)

    def __getattr__(self, name: str) -> Any:
        sections = {f.name for f in dataclasses.fields(Config)}
        if name in sections and name not in self._allowed:
            raise UndeclaredConfigError(
                f"stage {self._stage!r} reads config section {name!r}, which its declaration does not list")
        return getattr(self._cfg, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def replace(self, **changes: Any) -> "ConfigView":
        return ConfigView(self._cfg.replace(**changes), self._stage, self._allowed)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._cfg.to_dict().items() if k in self._allowed}

    def flat(self) -> dict[str, Any]:
        return {k: v for k, v in self._cfg.flat().items() if k.partition(".")[0] in self._allowed}


def fingerprint(stage: Stage, cfg: Config, table_versions: Mapping[str, int | None],
                artifact_stamps: Mapping[str, Any], extra: Any = None) -> str:
    """The hash of everything ``stage`` reads: its tables' versions, its artifacts' stamps,
    its sections' values and ``extra`` (e.g. the raw input files of ingest).

    >>> s = Stage("train", reads=("gold.interactions",), params=("model",))
    >>> a = fingerprint(s, Config(), {"gold.interactions": 3}, {})
    >>> a == fingerprint(s, Config(), {"gold.interactions": 4}, {})
    False
    """
    settings = cfg.to_dict()
    payload = {
        "tables": {t: table_versions.get(t) for t in stage.reads},
        "artifacts": {a: artifact_stamps.get(a) for a in stage.artifacts_in},
        "config": {section: settings.get(section) for section in stage.params},
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def dependants(stages: Iterable[Stage], changed: Iterable[str]) -> list[str]:
    """The stages (in order) that must re-run when the stages named in ``changed`` re-run:
    those and every stage reading, directly or not, what they write.

    >>> a, b, c = Stage("a", writes=("gold.x",)), Stage("b", reads=("gold.x",)), Stage("c")
    >>> dependants([a, b, c], ["a"])
    ['a', 'b']
    """
    ordered = list(stages)
    stale = set(changed)
    for stage in ordered:
        if any(stage.depends_on(other) for other in ordered if other.name in stale):
            stale.add(stage.name)
    return [s.name for s in ordered if s.name in stale]
