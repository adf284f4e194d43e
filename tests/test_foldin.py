"""Fold-in: the numpy user step against the dense formula, and against Spark ALS's own user factors."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F

from fusionrec.model.als import fit_als
from fusionrec.model.foldin import fold_in, fold_in_users, gram, latest_first, session_vector
from fusionrec.model.fusion import session_vectors
from _synthetic import synthetic


def test_fold_in_is_the_dense_implicit_als_step():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(30, 5))
    items = np.array([2, 7, 11, 19])
    w = np.array([1.0, 0.5, 3.0, 2.0])
    alpha, reg = 2.0, 0.3
    c = np.ones(30)
    c[items] = 1 + alpha * w
    p = np.zeros(30)
    p[items] = 1.0
    dense = np.linalg.solve(y.T @ np.diag(c) @ y + reg * len(items) * np.eye(5), y.T @ (c * p))
    got = fold_in(gram_matrix=gram(y), factors=y[items], weights=w, alpha=alpha, reg_param=reg)
    np.testing.assert_allclose(got, dense, rtol=1e-10, atol=1e-12)


def test_fold_in_without_items_is_zero_and_session_is_the_mean_of_the_latest():
    y = np.eye(3)
    assert not fold_in(gram_matrix=gram(y), factors=y[:0], weights=np.empty(0), alpha=1.0, reg_param=0.1).any()
    order = latest_first(["b", "a", "c"], [5.0, 5.0, 9.0])
    assert order.tolist() == [2, 1, 0]  # latest first, ties by item id
    np.testing.assert_allclose(session_vector(y[order][:2]), [0.0, 0.5, 0.5])
    assert session_vector(y[:0]) is None


def test_folding_in_training_users_gives_back_spark_als_user_factors(cfg, spark):
    d = synthetic(spark, n_users=40, n_items=30, per_user=10)
    mc = cfg.model
    als = fit_als(d["interactions"], mc)
    items = als.items.toPandas()
    g = gram(np.stack(items["factors"].to_numpy()))
    folded = fold_in_users(d["interactions"], als.items, gram_matrix=g, alpha=als.params.alpha,
                           reg_param=als.params.reg_param, session_items=mc.session_items)
    got = folded.join(als.users.select("user_id", F.col("factors").alias("als")), "user_id").toPandas()
    assert len(got) == 40
    x = np.stack(got["factors"].to_numpy()).astype(np.float64)
    ref = np.stack(got["als"].to_numpy()).astype(np.float64)
    cosine = (x * ref).sum(axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(ref, axis=1)
    relative = np.linalg.norm(x - ref, axis=1) / np.linalg.norm(ref, axis=1)
    print(f"fold-in vs ALS: min cosine {cosine.min():.8f}, max relative error {relative.max():.2e}")
    assert cosine.min() > 0.999999
    assert relative.max() < 1e-5  # measured 2.3e-08: float32 rounding

    sessions = session_vectors(d["interactions"], als.items, mc.session_items).toPandas().set_index("user_id")
    for row in got.itertuples():
        np.testing.assert_allclose(row.session, sessions.loc[row.user_id, "factors"], rtol=1e-5, atol=1e-6)
