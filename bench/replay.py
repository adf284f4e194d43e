"""What real time is worth: the test period replayed in time order, ALS as trained against
ALS with the user's newer events folded in, and fold-in against a full retrain.

Usage: .venv/bin/python bench/replay.py [--datasets movielens,amazon] [--out FILE.json]
       [--max-test-users N] [--master local[2]] [--work DIR]

Data: MovieLens ml-latest-small (Harper & Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4), 2015) and Amazon Review Data 2018, Magazine Subscriptions 5-core
(Ni, Li & McAuley, "Justifying recommendations using distantly-labeled reviews and
fine-grained aspects", EMNLP 2019), read from ``../shared/datasets`` and ingested with the
project's ingest into a temporary lake per dataset (``silver.events``, ``gold.interactions``).

Split: the evaluation harness's own (``evaluate.harness.make_split``, the configuration's
``evaluate.*``): per user, the last ``test_fraction`` of the interactions by ``first_ts`` is
the test period, training rows are re-aggregated from the events before each user's test
start, and a seeded share of items (among those with a document to embed, as the harness
draws among items with a text vector) loses its training interactions. Implicit ALS
(``model/als.py``, the configuration's ``model.*``: rank, reg_param, alpha, max_iter, seed;
nothing tuned on test) is fitted on the training rows.

Replay, per test user, in time order. The targets ("next items") are the harness's test
rows: pairs the user first interacts with in the test period. At each distinct target
timestamp t the model knows the user's events strictly before t (events sharing a
timestamp, as MovieLens batch ratings do, are predicted from the same state), and ranks
every item with ALS factors that the user has no event with before t (training items and
earlier test items excluded; the target never is, since its first event is at t):

- (a) as trained: x_u · Y with the user's trained factors; a user ALS has no factors for
  (all of their training items were drawn cold) gets training popularity (interactions per
  item, ties by item id);
- (b) folded in: x_u from ``model.foldin.fold_in`` (the exact implicit-ALS user step with
  Spark's regParam scaling; Hu, Koren & Volinsky, "Collaborative Filtering for Implicit
  Feedback Datasets", ICDM 2008) on all of the user's events before t, aggregated per item as
  ``gold.interactions`` aggregates them (weight = sum of event weights, c = 1 + alpha w):
  the training interactions plus the earlier test-period events. Repeats (test-period events
  on items the user already had) are never targets; they add their weight, as they do to the
  user's gold row. Items without ALS factors are left out, as in the stream. A user with no
  such item yet gets popularity. At t = test start (b) equals (a) (checked: ``foldin_check``).

Every target is one prediction; a target without ALS factors (a cold item, or an item first
seen in the test period) cannot be ranked and is a miss for both. HR@10 = rank <= 10,
NDCG@10 = 1 / log2(rank + 1) within the top 10. Standard errors: over predictions (iid) and
clustered by user (predictions of one user are correlated); the 95% interval of the paired
difference (b) - (a) uses the clustered one. ``relevant`` rows restrict to targets the
harness counts as relevant (rating >= positive_rating, or weight >= positive_weight).

Fold-in against a full retrain: each test user's test-period events are cut at the midpoint
in time, (first + last test event) / 2; the first half is what happened since training.
(b) folds in training + first half against the trained item factors; (c) refits Spark ALS
(same parameters and seed) on the events of training plus every user's first half, which
also gives factors to items first seen there. Protocol: rank once at the midpoint (items
with an event before it excluded) and score the user's second-half targets as a set:
HR@10 = any of them in the top 10, NDCG@10 binary with ideal DCG over min(|R|, 10). Cost:
the refit's wall time (aggregation, fit, factors to the driver) against the numpy fold-in
of every test user at the midpoint (events aggregated per item, YᵀY included).

``--max-test-users`` keeps a deterministic subset (smallest SHA-256 of the pseudonymised id)
when the full replay is too long; 0 = all. No user id, pseudonymised or not, is printed or
written: users are counted, never listed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

from fusionrec.config import LakeConfig, load_config  # noqa: E402
from fusionrec.model.foldin import fold_in, gram  # noqa: E402

DATASETS = {"movielens": ("movielens", "movielens-small"),
            "amazon": ("amazon", "amazon-magazine-subscriptions")}
SHARED = PROJECT.parent / "shared" / "datasets"
K = 10


# ---------------------------------------------------------------- data handed to numpy

@dataclass
class UserData:
    """One test user, items as integer codes, timestamps in microseconds (time order)."""

    items: np.ndarray          # every event of the user
    ts: np.ndarray
    weights: np.ndarray
    test_start: int
    target_items: np.ndarray   # test pairs (first seen in the test period), by first_ts then item
    target_ts: np.ndarray
    target_relevant: np.ndarray
    trained: np.ndarray | None  # ALS factors as trained, None for a user ALS never saw


@dataclass
class Model:
    """Item factors over all item codes (zero rows where ``has``is False) and popularity."""

    y: np.ndarray
    has: np.ndarray
    pop_score: np.ndarray      # distinct scores: higher = more popular; -inf without factors
    gram: np.ndarray


def make_model(y: np.ndarray, has: np.ndarray, popularity: np.ndarray, item_ids: np.ndarray) -> Model:
    """``popularity``: interaction counts per item code (0 for items outside the model)."""
    order = np.lexsort((item_ids, -popularity))  # most popular first, ties by item id
    pop_score = np.full(len(item_ids), -np.inf)
    pop_score[order] = -np.arange(len(order), dtype=np.float64)
    pop_score[~has] = -np.inf
    return Model(y=y, has=has, pop_score=pop_score, gram=gram(y[has]))


# ---------------------------------------------------------------- pure numpy parts

def ranks_of(scores: np.ndarray, valid: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target among the ``valid`` items by score (ties by lower code);
    ``inf`` for a target that is not valid (no factors)."""
    idx = np.flatnonzero(valid)
    s = scores[idx]
    st = scores[targets][:, None]
    ahead = (s[None, :] > st) | ((s[None, :] == st) & (idx[None, :] < targets[:, None]))
    rank = 1.0 + ahead.sum(axis=1)
    rank[~valid[targets]] = np.inf
    return rank


def hit_ndcg(rank: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    hit = (rank <= k).astype(np.float64)
    with np.errstate(divide="ignore"):
        ndcg = np.where(rank <= k, 1.0 / np.log2(np.minimum(rank, 1e9) + 1.0), 0.0)
    return hit, ndcg


def set_metrics(rank: np.ndarray, k: int = K) -> tuple[float, float]:
    """HR@k and binary NDCG@k of one ranked list against a set of relevant items' ranks."""
    top = rank[rank <= k]
    dcg = float(np.sum(1.0 / np.log2(top + 1.0)))
    idcg = float(np.sum(1.0 / np.log2(np.arange(1, min(rank.size, k) + 1) + 1.0)))
    return float(top.size > 0), dcg / idcg if idcg else 0.0


def state_before(u: UserData, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, summed weights) of the user's events strictly before ``t``: the user's gold
    rows as they stood at ``t``."""
    m = u.ts < t
    items, inv = np.unique(u.items[m], return_inverse=True)
    return items, np.bincount(inv, weights=u.weights[m], minlength=items.size)


def folded(model: Model, items: np.ndarray, weights: np.ndarray, alpha: float, reg: float) -> np.ndarray | None:
    keep = model.has[items]
    if not keep.any():
        return None
    return fold_in(gram_matrix=model.gram, factors=model.y[items[keep]], weights=weights[keep],
                   alpha=alpha, reg_param=reg)


def scores_for(model: Model, x: np.ndarray | None) -> np.ndarray:
    return model.pop_score if x is None else np.where(model.has, model.y @ x, -np.inf)


def replay_user(u: UserData, model: Model, alpha: float, reg: float) -> dict[str, np.ndarray]:
    """Per prediction (one per target): rank under (a) and (b), and popularity-served flags."""
    n = u.target_items.size
    out = {"rank_a": np.empty(n), "rank_b": np.empty(n), "pop_a": np.zeros(n, bool), "pop_b": np.zeros(n, bool)}
    score_a = scores_for(model, u.trained)
    for t in np.unique(u.target_ts):
        at = np.flatnonzero(u.target_ts == t)
        items, weights = state_before(u, t)
        valid = model.has.copy()
        valid[items] = False
        x = folded(model, items, weights, alpha, reg)
        targets = u.target_items[at]
        out["rank_a"][at] = ranks_of(score_a, valid, targets)
        out["rank_b"][at] = ranks_of(scores_for(model, x), valid, targets)
        out["pop_a"][at] = u.trained is None
        out["pop_b"][at] = x is None
    return out


def midpoint(u: UserData) -> int:
    test_ts = u.ts[u.ts >= u.test_start]
    return int(test_ts.min() + (test_ts.max() - test_ts.min()) // 2)


def mean_se(x: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean, iid standard error, and standard error clustered by ``groups`` (CR1)."""
    n = x.size
    if n == 0:
        return {"mean": float("nan"), "se": float("nan"), "se_user": float("nan")}
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    _, g = np.unique(groups, return_inverse=True)
    sums = np.bincount(g, weights=x - mean)
    n_groups = sums.size
    se_user = (float(math.sqrt(n_groups / (n_groups - 1) * np.sum(sums ** 2)) / n)
               if n_groups > 1 else float("nan"))
    return {"mean": mean, "se": se, "se_user": se_user}


def paired(b: np.ndarray, a: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    d = mean_se(b - a, groups)
    half = 1.96 * d["se_user"]
    return {**d, "ci95": [d["mean"] - half, d["mean"] + half]}


def summarise(per: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    g = per["user"][mask]
    out = {"predictions": int(mask.sum()), "users": int(np.unique(g).size)}
    for name in ("a", "b"):
        hit, ndcg = hit_ndcg(per[f"rank_{name}"][mask])
        out[name] = {"hr": mean_se(hit, g), "ndcg": mean_se(ndcg, g)}
    ha, na = hit_ndcg(per["rank_a"][mask])
    hb, nb = hit_ndcg(per["rank_b"][mask])
    out["b_minus_a"] = {"hr": paired(hb, ha, g), "ndcg": paired(nb, na, g)}
    return out


def replay(users: list[UserData], model: Model, alpha: float, reg: float) -> dict:
    parts = []
    for i, u in enumerate(users):
        r = replay_user(u, model, alpha, reg)
        r["user"] = np.full(u.target_items.size, i)
        r["relevant"] = u.target_relevant
        r["unrankable"] = ~model.has[u.target_items]
        parts.append(r)
    per = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    everything = np.ones(per["user"].size, bool)
    return {"all": summarise(per, everything), "relevant": summarise(per, per["relevant"]),
            "targets_without_factors": int(per["unrankable"].sum()),
            "predictions_served_popularity": {"a": int(per["pop_a"].sum()), "b": int(per["pop_b"].sum())}}


def foldin_check(users: list[UserData], model: Model, alpha: float, reg: float) -> dict:
    """Fold-in of the training interactions against (a)'s factors: equal up to float32."""
    rel = []
    for u in users:
        if u.trained is None:
            continue
        x = folded(model, *state_before(u, u.test_start), alpha, reg)
        if x is not None:
            rel.append(np.linalg.norm(x - u.trained) / max(np.linalg.norm(u.trained), 1e-12))
    return {"users": len(rel), "max_relative_error": float(max(rel)) if rel else float("nan"),
            "median_relative_error": float(np.median(rel)) if rel else float("nan")}


def midpoint_eval(users: list[UserData], trained: Model, refit: Model, mids: np.ndarray, alpha: float,
                  reg: float, refit_users: dict[int, np.ndarray]) -> dict:
    """(b) fold-in at the midpoint against (c) the refit, ranked once; ``refit_users``: user
    position -> refit factors."""
    rows = []
    fold_s = 0.0
    t0 = time.perf_counter()
    gram(trained.y[trained.has])  # YᵀY once per model, counted in the fold-in cost
    fold_s += time.perf_counter() - t0
    for i, (u, mid) in enumerate(zip(users, mids)):
        # Every user is folded in (the refit updates everyone), evaluated where a target follows.
        t0 = time.perf_counter()
        items, weights = state_before(u, mid)
        x_b = folded(trained, items, weights, alpha, reg)
        fold_s += time.perf_counter() - t0
        second = u.target_ts >= mid
        if not second.any():
            continue
        targets = u.target_items[second]
        res = {"user": i, "n_relevant": int(targets.size),
               "first_half_events": int(((u.ts >= u.test_start) & (u.ts < mid)).sum())}
        for name, model, x in (("b", trained, x_b), ("c", refit, refit_users.get(i))):
            valid = model.has.copy()
            valid[items] = False
            res[f"hr_{name}"], res[f"ndcg_{name}"] = set_metrics(ranks_of(scores_for(model, x), valid, targets))
            res[f"pop_{name}"] = x is None
        rows.append(res)
    df = pd.DataFrame(rows)
    g = df["user"].to_numpy()
    out = {"users": len(df), "users_folded_in": len(users), "users_with_first_half_events": int((df["first_half_events"] > 0).sum()),
           "second_half_targets": int(df["n_relevant"].sum()),
           "served_popularity": {"b": int(df["pop_b"].sum()), "c": int(df["pop_c"].sum())},
           "fold_in_s": fold_s}
    for name in ("b", "c"):
        out[name] = {m: mean_se(df[f"{m}_{name}"].to_numpy(), g) for m in ("hr", "ndcg")}
    out["c_minus_b"] = {m: paired(df[f"{m}_c"].to_numpy(), df[f"{m}_b"].to_numpy(), g) for m in ("hr", "ndcg")}
    return out


# ---------------------------------------------------------------- Spark parts

def micros(col):
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(col)).alias(col)


def factors_of(df, key: str, codes: dict[str, int], n: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    pdf = df.toPandas()
    y = np.zeros((n, rank))
    has = np.zeros(n, bool)
    for ident, f in zip(pdf[key], pdf["factors"]):
        y[codes[ident]] = np.asarray(f, dtype=np.float64)
        has[codes[ident]] = True
    return y, has


def popularity_codes(df, codes: dict[str, int], n: int) -> np.ndarray:
    from fusionrec.model.fusion import popularity

    pdf = popularity(df).select("item_id", "n_interactions").toPandas()
    pop = np.zeros(n)
    pop[[codes[i] for i in pdf["item_id"]]] = pdf["n_interactions"].to_numpy()
    return pop


def run_dataset(spark, base_cfg, name: str, work: Path, max_test_users: int) -> dict:
    from pyspark.sql import functions as F

    from fusionrec.embed.texts import prepare_texts
    from fusionrec.evaluate.harness import make_split
    from fusionrec.ingest.gold import interactions as aggregate
    from fusionrec.ingest.pipeline import ingest
    from fusionrec.lake import Lake
    from fusionrec.model.als import fit_als
    from fusionrec.model.train import TrainingTables, materialised

    source, folder = DATASETS[name]
    cfg = base_cfg.replace(lake=LakeConfig(root=str(work / name / "lake")))
    ec, mc = cfg.evaluate, cfg.model
    lake = Lake(spark, cfg.lake)
    t0 = time.perf_counter()
    ingest(lake, cfg, source, str(SHARED / folder))
    ingest_s = time.perf_counter() - t0
    print(f"[{name}] ingested in {ingest_s:.0f} s", flush=True)

    interactions = lake.read("gold.interactions")
    events = lake.read("silver.events").select("user_id", "item_id", "rating", "ts", "weight")
    # The harness draws cold items among items with a text vector; these are the documents
    # the embed stage sends to the model.
    embeddable = (prepare_texts(lake.read("gold.item_documents"), "item_id", "text", cfg.embed)
                  .where(F.col("reason").isNull()).select(F.col("record_id").alias("item_id")))
    split = make_split(TrainingTables(interactions=interactions, item_embeddings=embeddable, events=events), cfg)

    t0 = time.perf_counter()
    als = fit_als(split.train, mc)
    user_f, item_f = als.users.toPandas(), als.items
    fit_s = time.perf_counter() - t0
    print(f"[{name}] ALS fitted on the training split in {fit_s:.0f} s", flush=True)

    bounds = split.boundaries.select("user_id", micros("test_start")).toPandas()
    if max_test_users and len(bounds) > max_test_users:
        key = bounds["user_id"].map(lambda s: hashlib.sha256(s.encode()).hexdigest())
        bounds = bounds.loc[key.sort_values().index[:max_test_users]]
    test_users = spark.createDataFrame(bounds[["user_id"]])
    ev = (events.join(F.broadcast(test_users), "user_id").select("user_id", "item_id", micros("ts"), "weight")
          .toPandas())
    test = (split.test.join(F.broadcast(test_users), "user_id")
            .select("user_id", "item_id", micros("first_ts"), "rating", "weight").toPandas())
    all_items = sorted(set(interactions.select("item_id").distinct().toPandas()["item_id"]))
    codes = {item: i for i, item in enumerate(all_items)}
    item_ids = np.array(all_items, dtype=object)
    n_items = len(all_items)

    y, has = factors_of(item_f, "item_id", codes, n_items, als.params.rank)
    trained = make_model(y, has, popularity_codes(split.train, codes, n_items), item_ids)
    trained_x = {u: np.asarray(f, dtype=np.float64) for u, f in zip(user_f["user_id"], user_f["factors"])}

    test["relevant"] = np.where(test["rating"].notna(), test["rating"] >= ec.positive_rating,
                                test["weight"] >= ec.positive_weight)
    ev = ev.assign(code=ev["item_id"].map(codes)).sort_values(["user_id", "ts", "code"], kind="stable")
    test = test.assign(code=test["item_id"].map(codes)).sort_values(["user_id", "first_ts", "item_id"], kind="stable")
    ev_by, test_by = dict(tuple(ev.groupby("user_id", sort=False))), dict(tuple(test.groupby("user_id", sort=False)))
    users: list[UserData] = []
    ids: list[str] = []  # position -> pseudonym, kept in memory only to join the refit's factors
    for uid, start in zip(bounds["user_id"], bounds["test_start"]):
        e, tt = ev_by[uid], test_by[uid]
        users.append(UserData(items=e["code"].to_numpy(), ts=e["ts"].to_numpy(np.int64),
                              weights=e["weight"].to_numpy(np.float64), test_start=int(start),
                              target_items=tt["code"].to_numpy(), target_ts=tt["first_ts"].to_numpy(np.int64),
                              target_relevant=tt["relevant"].to_numpy(bool), trained=trained_x.get(uid)))
        ids.append(uid)

    alpha, reg = als.params.alpha, als.params.reg_param
    t0 = time.perf_counter()
    result = replay(users, trained, alpha, reg)
    replay_s = time.perf_counter() - t0
    check = foldin_check(users, trained, alpha, reg)
    print(f"[{name}] replayed {result['all']['predictions']} predictions in {replay_s:.0f} s", flush=True)

    # Fold-in against a full refit on training + every test user's first half.
    # Every test user's midpoint (not only the replayed ones'), so the refit sees all first halves.
    ts_us = F.unix_micros("ts")
    cut = (events.join(split.boundaries, "user_id").where(F.col("ts") >= F.col("test_start"))
           .groupBy("user_id").agg(F.min(ts_us).alias("lo"), F.max(ts_us).alias("hi"))
           .select("user_id", "lo", (F.col("lo") + F.floor((F.col("hi") - F.col("lo")) / 2).cast("long")).alias("mid")))
    cut = materialised(cut)
    mid_pdf = cut.select("user_id", "mid").toPandas()
    mid_of = dict(zip(mid_pdf["user_id"], mid_pdf["mid"]))
    mids = np.array([mid_of[uid] for uid in ids], dtype=np.int64)
    if any(m != midpoint(u) for m, u in zip(mids, users)):
        raise RuntimeError("midpoints: Spark and numpy disagree")
    first_half = (events.join(cut, "user_id").where((ts_us >= F.col("lo")) & (ts_us < F.col("mid")))
                  .select("user_id", "item_id", "rating", "ts", "weight"))
    refit_events = split.train_events.unionByName(first_half)
    t0 = time.perf_counter()
    refit_inter = materialised(aggregate(refit_events))
    refit = fit_als(refit_inter, mc)
    refit_user_f, refit_item_f = refit.users.toPandas(), refit.items.toPandas()
    refit_s = time.perf_counter() - t0
    y_c = np.zeros((n_items, als.params.rank))
    has_c = np.zeros(n_items, bool)
    for ident, f in zip(refit_item_f["item_id"], refit_item_f["factors"]):
        y_c[codes[ident]], has_c[codes[ident]] = f, True
    refit_model = make_model(y_c, has_c, popularity_codes(refit_inter, codes, n_items), item_ids)
    refit_x = dict(zip(refit_user_f["user_id"], refit_user_f["factors"]))
    refit_users = {i: np.asarray(refit_x[uid], dtype=np.float64) for i, uid in enumerate(ids) if uid in refit_x}
    vs_refit = midpoint_eval(users, trained, refit_model, mids, alpha, reg, refit_users)
    vs_refit.update({"refit_s": refit_s, "refit_interactions": refit_inter.count(),
                     "refit_users": len(refit_x), "refit_items": int(has_c.sum())})
    print(f"[{name}] refit in {refit_s:.0f} s; fold-in of {vs_refit['users']} users in "
          f"{vs_refit['fold_in_s']:.2f} s", flush=True)

    counts = {"interactions": interactions.count(), "train_interactions": split.train.count(),
              "test_interactions": split.test.count(), "test_users_all": split.boundaries.count(),
              "test_users_replayed": len(users), "items": n_items, "als_items": int(has.sum()),
              "als_users": len(trained_x), "cold_items": split.cold_items.count(),
              "test_users_without_als_factors": sum(u.trained is None for u in users)}
    spark.catalog.clearCache()
    return {"dataset": name, "counts": counts, "replay": result, "foldin_check": check,
            "fold_in_vs_refit": vs_refit,
            "timings_s": {"ingest": ingest_s, "als_fit": fit_s, "replay_numpy": replay_s, "refit": refit_s},
            "params": {"rank": als.params.rank, "reg_param": reg, "alpha": alpha, "max_iter": mc.max_iter,
                       "seed": mc.seed, "test_fraction": ec.test_fraction,
                       "cold_item_fraction": ec.cold_item_fraction, "split_seed": ec.seed, "k": K},
            "subsampled": bool(max_test_users and split.boundaries.count() > max_test_users)}


# ---------------------------------------------------------------- report

def fmt(m: dict) -> str:
    return f"{m['mean']:.4f} ±{m['se']:.4f}"


def table(results: list[dict]) -> str:
    lines = ["Replay of the test period, next item (HR@10 / NDCG@10, mean ± s.e. over predictions)",
             f"{'dataset':<10}{'targets':<9}{'preds':>7}{'users':>6}  {'HR (a) trained':>16}{'HR (b) fold-in':>16}"
             f"{'ΔHR b-a [95% CI]':>26}  {'NDCG (a)':>16}{'NDCG (b)':>16}{'ΔNDCG b-a [95% CI]':>26}"]
    for r in results:
        for subset in ("all", "relevant"):
            s = r["replay"][subset]
            dh, dn = s["b_minus_a"]["hr"], s["b_minus_a"]["ndcg"]
            lines.append(
                f"{r['dataset']:<10}{subset:<9}{s['predictions']:>7}{s['users']:>6}  {fmt(s['a']['hr']):>16}"
                f"{fmt(s['b']['hr']):>16}{dh['mean']:>+9.4f} [{dh['ci95'][0]:+.4f},{dh['ci95'][1]:+.4f}]  "
                f"{fmt(s['a']['ndcg']):>16}{fmt(s['b']['ndcg']):>16}"
                f"{dn['mean']:>+9.4f} [{dn['ci95'][0]:+.4f},{dn['ci95'][1]:+.4f}]")
    lines += ["", "Fold-in (b) vs full refit (c) at each user's test midpoint, ranked once, second half as the "
                  "relevant set (mean ± s.e. over users)",
              f"{'dataset':<10}{'users':>6}  {'HR (b) fold-in':>16}{'HR (c) refit':>16}{'ΔHR c-b [95% CI]':>26}  "
              f"{'NDCG (b)':>16}{'NDCG (c)':>16}{'ΔNDCG c-b [95% CI]':>26}  {'refit s':>8}{'fold-in s':>10}"]
    for r in results:
        v = r["fold_in_vs_refit"]
        dh, dn = v["c_minus_b"]["hr"], v["c_minus_b"]["ndcg"]
        lines.append(
            f"{r['dataset']:<10}{v['users']:>6}  {fmt(v['b']['hr']):>16}{fmt(v['c']['hr']):>16}"
            f"{dh['mean']:>+9.4f} [{dh['ci95'][0]:+.4f},{dh['ci95'][1]:+.4f}]  {fmt(v['b']['ndcg']):>16}"
            f"{fmt(v['c']['ndcg']):>16}{dn['mean']:>+9.4f} [{dn['ci95'][0]:+.4f},{dn['ci95'][1]:+.4f}]  "
            f"{v['refit_s']:>8.1f}{v['fold_in_s']:>10.3f}")
    lines.append("")
    for r in results:
        c, rp, chk = r["counts"], r["replay"], r["foldin_check"]
        lines.append(
            f"{r['dataset']}: {c['interactions']} interactions, {c['train_interactions']} training, "
            f"{c['test_interactions']} test pairs of {c['test_users_replayed']}/{c['test_users_all']} test users; "
            f"{rp['targets_without_factors']} targets without ALS factors (miss for both); popularity served "
            f"(a) {rp['predictions_served_popularity']['a']}, (b) {rp['predictions_served_popularity']['b']} "
            f"predictions; fold-in at test start vs trained factors: max relative error "
            f"{chk['max_relative_error']:.1e} over {chk['users']} users")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="movielens,amazon")
    parser.add_argument("--out", default=None, help="JSON results file")
    parser.add_argument("--max-test-users", type=int, default=0, help="deterministic subset; 0 = all")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", default=None, help="scratch folder (a temporary one by default)")
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; expected {', '.join(DATASETS)}")

    from fusionrec.session import build_spark

    start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fusionrec-replay-"))
    cfg = load_config(PROJECT / "conf" / "local.yaml", [
        f"spark.master={args.master}", "spark.show_progress=false", f"spark.checkpoint_dir={work / 'checkpoints'}",
        f"lake.root={work / 'lake'}", "ingest.log_mlflow=false"], base_dir=PROJECT)
    spark = build_spark(cfg)
    spark.sparkContext.setCheckpointDir(str(work / "checkpoints"))
    results: list[dict] = []
    try:
        for n in names:
            results.append(run_dataset(spark, cfg, n, work, args.max_test_users))
            if args.out:  # each dataset as soon as it is done
                Path(args.out).write_text(json.dumps({"results": results}, indent=1))
    finally:
        spark.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - start
    print()
    print(table(results))
    print(f"\nwall time {wall:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "wall_s": wall}, indent=1))
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
