"""``fusionrec recommend``: top-K recommendations with reasons for every user -> gold.recommendations;
``fusionrec recommend --user RAW_ID``: one user's top-K from gold.recommendations."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import FUSION_PARAMS, SCHEMAS, Lake
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = ["HELP", "STAGE", "add_arguments", "reason_kind", "run", "show_user", "user_recommendations"]

HELP = "score every user against every item (blocked) and write top-K with reasons to gold.recommendations"

def reason_kind(reason: Column) -> Column:
    """The kind of ``reason`` (one of :data:`fusionrec.model.scoring.REASON_KINDS`), empty for a reason of no
    known kind."""
    from pyspark.sql import functions as F

    from fusionrec.model.scoring import REASON_KINDS

    return F.coalesce(*[F.when(reason.startswith(kind), F.lit(kind)) for kind in REASON_KINDS], F.lit(""))


STAGE = Stage(
    "recommend",
    reads=("gold.interactions", "gold.reviews", "gold.item_documents", "silver.events",
           "embeddings.item_embeddings", "embeddings.review_embeddings",
           "model.user_factors", "model.item_factors"),
    writes=("gold.recommendations",),
    # evaluate: the positive-feedback thresholds that decide which items a reason may name.
    params=("model", "features", "evaluate"),
    artifacts_in=(FUSION_PARAMS,),
    # ingest: where the pseudonym key is, for --user (it does not change the table written).
    uses=("ingest",),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", metavar="RAW_ID", default=None,
                        help="print this user's top-K from gold.recommendations instead of scoring everyone; "
                             "the user id as in the input events, pseudonymised with the lake's key")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from pyspark.sql import functions as F

    from fusionrec.model.recommend import recommend_all
    from fusionrec.model.train import load_model, read_training_tables
    from fusionrec.session import build_spark

    if getattr(args, "user", None) is not None:
        return show_user(cfg, user_id=args.user)
    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("recommend.load", report):
        tables = read_training_tables(lake)
        model, params = load_model(lake, cfg, tables)
        docs = lake.read_optional("gold.item_documents")
        titles = (docs.select("item_id", "title") if docs is not None
                  else tables.item_embeddings.select("item_id", F.lit(None).cast("string").alias("title")))
        categories = docs.select("item_id", "categories") if docs is not None else None
    with stage("recommend.score", report) as rec:
        recs = recommend_all(model, params.ranker, tables.interactions, titles, categories, cfg.model,
                             ec=cfg.evaluate)
        schema_cols = [c.strip().split(" ")[0] for c in SCHEMAS["gold.recommendations"].split(",")]
        recs = recs.select(*schema_cols)
        lake.overwrite("gold.recommendations", recs)
        path = lake.path("gold.recommendations")
        written = lake.read("gold.recommendations")
        stats = written.agg(F.countDistinct("user_id").alias("users"), F.count(F.lit(1)).alias("rows"),
                            F.countDistinct("item_id").alias("items")).first()
        reasons = {r["kind"]: r["n"] for r in written.groupBy(reason_kind(F.col("reason")).alias("kind"))
                   .agg(F.count(F.lit(1)).alias("n")).collect()}
        rec.counts.update({"users": stats["users"], "rows": stats["rows"], "distinct_items": stats["items"]})
    report.results["recommend"] = {"users": stats["users"], "rows": stats["rows"],
                                   "distinct_items": stats["items"], "reasons": reasons, "table": path}
    print(f"gold.recommendations: {stats['rows']} rows for {stats['users']} users ({path})")
    return 0


def user_recommendations(lake: Lake, *, user_id: str, key: bytes) -> list[dict]:
    """The rows of gold.recommendations of the raw ``user_id`` (rank, item_id, title, score,
    reason), best first; empty if the table has none for the user.

    Parameters
    ----------
    lake : the lake to read.
    user_id : the user's raw id, as in the input events.
    key : the lake's pseudonym key.

    Returns
    -------
    One dict per recommended item, by rank.
    """
    from pyspark.sql import functions as F

    from fusionrec.ingest.privacy import pseudonym

    recs = lake.read("gold.recommendations").where(F.col("user_id") == pseudonym(user_id, key=key))
    docs = lake.read_optional("gold.item_documents")
    if docs is not None:
        recs = recs.join(docs.select("item_id", "title"), "item_id", "left")
    else:
        recs = recs.withColumn("title", F.lit(None).cast("string"))
    return [row.asDict() for row in recs.select("rank", "item_id", "title", "score", "reason").orderBy("rank").collect()]


def show_user(cfg: Config, *, user_id: str) -> int:
    """Print one user's top-K (``fusionrec recommend --user``); the raw id is never written anywhere."""
    from fusionrec.ingest.privacy import key_file, serving_key
    from fusionrec.session import build_spark

    key = serving_key(env_name=cfg.ingest.pseudonym_key_env, local_key_file=str(key_file(cfg)))
    lake = Lake(build_spark(cfg), cfg.lake)
    if not lake.exists("gold.recommendations"):
        raise InputError(f"{lake.path('gold.recommendations')}: gold.recommendations not found; "
                         "run 'fusionrec recommend' first")
    rows = user_recommendations(lake, user_id=user_id, key=key)
    if not rows:
        raise InputError("--user: no recommendations for this user in gold.recommendations "
                         "(not in the ingested events, or ingested with another pseudonym key)")
    for row in rows:
        print(f"{row['rank']:>3}  {row['item_id']}  {row['title'] or ''}  ({row['score']:.4f}: {row['reason']})")
    return 0
