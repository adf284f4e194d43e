"""``fusionrec recommend``: top-K recommendations with reasons for every user -> gold.recommendations."""

from __future__ import annotations

import argparse

from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.lake import SCHEMAS, table_path
from fusionrec.model.recommend import recommend_all
from fusionrec.model.train import load_model, read_table, read_training_tables
from fusionrec.runlog import RunReport, stage
from fusionrec.session import build_spark

HELP = "score every user against every item (blocked) and write top-K with reasons to gold.recommendations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    spark = build_spark(cfg)
    with stage("recommend.load", report):
        tables = read_training_tables(spark, cfg)
        model, params = load_model(spark, cfg, tables)
        docs = read_table(spark, cfg, "gold", "item_documents", required=False)
        titles = (docs.select("item_id", "title") if docs is not None
                  else tables.item_embeddings.select("item_id", F.lit(None).cast("string").alias("title")))
        categories = docs.select("item_id", "categories") if docs is not None else None
    with stage("recommend.score", report) as rec:
        recs = recommend_all(model, params.ranker, tables.interactions, titles, categories, cfg.model,
                             ec=cfg.evaluate)
        schema_cols = [c.strip().split(" ")[0] for c in SCHEMAS["gold.recommendations"].split(",")]
        recs = recs.select(*schema_cols)
        path = table_path(cfg, "gold", "recommendations")
        recs.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        written = spark.read.format("delta").load(path)
        stats = written.agg(F.countDistinct("user_id").alias("users"), F.count(F.lit(1)).alias("rows"),
                            F.countDistinct("item_id").alias("items")).first()
        reasons = {r["kind"]: r["n"] for r in written.groupBy(
            F.regexp_extract("reason", r"^(similar to|popular with|popular now|well reviewed)", 1).alias("kind"))
            .agg(F.count(F.lit(1)).alias("n")).collect()}
        rec.counts.update({"users": stats["users"], "rows": stats["rows"], "distinct_items": stats["items"]})
    report.results["recommend"] = {"users": stats["users"], "rows": stats["rows"],
                                   "distinct_items": stats["items"], "reasons": reasons, "table": path}
    print(f"gold.recommendations: {stats['rows']} rows for {stats['users']} users ({path})")
    return 0
