"""Before/after figures of the ALS search and the cold slot on a lake (ingested and embedded).

Usage: .venv/bin/python bench/model_quality.py --lake work/ml-lake [--set model.search_rank=[32,64,128]]
       [--out FILE.json]

One split and one fit of the evaluation protocol (:mod:`fusionrec.evaluate.harness`, item
documents cut at the test boundary as there) with
the configuration given (conf/local.yaml, ``model.cold_slot`` forced on), then on the test
period, K = 10:

- ``als_base``: plain ALS with the base setting (``model.rank`` / ``reg_param`` / ``alpha``,
  the settings without the search), fitted on the same training split;
- ``als_searched``: plain ALS with the setting the validation search picked;
- ``hybrid``: the ranker without the cold slot; ``hybrid_cold_slot``: with it, at the floor
  calibrated on the validation period (test figures are never used to choose anything).

Every row has NDCG@10 and cold recall@10 (test interactions on cold items found in the
top 10, over the users with one: the harness's ``recall`` of the cold slice), computed here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake.root of an ingested and embedded lake")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    from fusionrec.config import load_config
    from fusionrec.evaluate.baselines import model_top_k
    from fusionrec.evaluate.harness import ItemTexts, cut_item_texts, fit_on_training, make_split, spark_nlp_embedder
    from fusionrec.lake import Lake
    from fusionrec.model.als import AlsParams
    from fusionrec.model.fusion import als_top_n, at_weeks, fit_fused
    from fusionrec.model.train import TrainingTables, materialised, read_training_tables
    from fusionrec.session import build_spark
    from fusionrec.validation.metrics import item_slice_recall, ranking_metrics
    from fusionrec.validation.split import relevant

    cfg = load_config(PROJECT / "conf" / "local.yaml",
                      overrides=[f"lake.root={args.lake}", "spark.master=local[2]", "model.cold_slot=true",
                                 *args.overrides])
    mc, ec = cfg.model, cfg.evaluate
    spark = build_spark(cfg)
    start = time.perf_counter()
    lake = Lake(spark, cfg.lake)
    inputs = read_training_tables(lake)
    inputs = TrainingTables(*(materialised(getattr(inputs, f.name)) if getattr(inputs, f.name) is not None else None
                              for f in dataclasses.fields(inputs)))
    split = make_split(inputs, cfg)
    # As the harness: item documents lose the tags written only in the test period.
    items = lake.read_optional("silver.items")
    if items is not None:
        inputs, _, _ = cut_item_texts(inputs, ItemTexts(items, spark_nlp_embedder(spark, cfg.embed)), split.boundaries)
    fitted = fit_on_training(inputs, split, cfg)
    model = at_weeks(fitted.model, split.boundaries, "test_start")
    test_relevant = materialised(relevant(split.test, ec.positive_rating, ec.positive_weight))
    users = materialised(test_relevant.select("user_id").distinct())
    seen = split.train.select("user_id", "item_id")
    catalogue = inputs.item_embeddings.select("item_id").union(inputs.interactions.select("item_id")).distinct().count()
    k = 10

    def figures(top) -> dict[str, float]:
        top = materialised(top)
        cold = item_slice_recall(top, test_relevant, split.cold_items, k)
        return {"ndcg@10": round(ranking_metrics(top, test_relevant, k, catalogue)["ndcg"], 5),
                "cold_recall@10": round(cold["recall"], 5), "cold_users": cold["users"]}

    base = AlsParams.from_config(mc)
    rows = {}
    if base != fitted.params:
        base_model = fit_fused(split.train, fitted.features.item_vectors, fitted.features.user_profiles, None, mc, base)
        rows["als_base"] = figures(als_top_n(base_model, k, seen, mc, users, only_als=True))
    rows["als_searched"] = figures(als_top_n(model, k, seen, mc, users, only_als=True))
    if "als_base" not in rows:
        rows["als_base"] = rows["als_searched"]
    no_slot = dataclasses.replace(fitted.ranker, cold_floor=None)
    rows["hybrid"] = figures(model_top_k("hybrid", model, users, seen, k, mc, no_slot))
    rows["hybrid_cold_slot"] = figures(model_top_k("hybrid", model, users, seen, k, mc, fitted.ranker))
    out = {"lake": args.lake, "overrides": args.overrides, "base": dataclasses.asdict(base),
           "chosen": dataclasses.asdict(fitted.params), "search": fitted.trials,
           "cold_floor": fitted.ranker.cold_floor, "cold_slot_validation": fitted.cold_slot,
           "ranker_choice": fitted.ranker_choice, "test": rows, "wall_s": round(time.perf_counter() - start, 1)}
    for name, row in rows.items():
        print(f"{name:18s} ndcg@10 {row['ndcg@10']:.4f}  cold recall@10 {row['cold_recall@10']:.4f}")
    print(f"chosen {out['chosen']} of {len(fitted.trials)} fits; ranker {out['ranker_choice']}; "
          f"cold floor {out['cold_floor']}; {out['wall_s']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
