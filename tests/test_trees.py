"""The numpy tree evaluator scores as XGBoost does: margins, Saabas contributions, the JSON document.

Small boosters are trained here (fixed seeds, one thread) and compared with their own
``predict``; no Spark.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Callable

import numpy as np
import pytest
import xgboost as xgb

from fusionrec.model.trees import TreeEnsemble

N_FEATURES = 10
FIELDS = ("feature", "threshold", "left", "right", "default_left", "value")


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    signal = 2 * x[:, 0] + np.sin(3 * x[:, 1]) + x[:, 2] * x[:, 3] + 0.3 * rng.normal(size=n)
    return x, signal


def train(params: dict[str, Any], x: np.ndarray, label: np.ndarray, rounds: int,
          qid: np.ndarray | None = None) -> xgb.Booster:
    return xgb.train({"seed": 0, "nthread": 1, **params}, xgb.DMatrix(x, label, qid=qid), rounds)


def ranker() -> tuple[xgb.Booster, np.ndarray]:
    x, signal = synthetic()
    relevance = np.digitize(signal, np.quantile(signal, [0.5, 0.8, 0.95]))  # grades 0..3
    qid = np.repeat(np.arange(len(x) // 10), 10)  # sorted groups of 10
    return train({"objective": "rank:ndcg", "max_depth": 4}, x, relevance, 30, qid), x


def classifier() -> tuple[xgb.Booster, np.ndarray]:
    x, signal = synthetic()
    return train({"objective": "binary:logistic", "max_depth": 4}, x, (signal > 0.5).astype(float), 30), x


def regressor_with_nans() -> tuple[xgb.Booster, np.ndarray]:
    x, signal = synthetic()
    x[np.random.default_rng(1).random(x.shape) < 0.15] = np.nan
    return train({"objective": "reg:squarederror", "max_depth": 6}, x, signal, 50), x


def pruned() -> tuple[xgb.Booster, np.ndarray]:
    """``gamma`` prunes splits after growth: the JSON keeps the deleted nodes."""
    x, signal = synthetic()
    return train({"objective": "reg:squarederror", "max_depth": 6, "gamma": 2.0, "tree_method": "exact"},
                 x, signal, 20), x


CASES: dict[str, Callable[[], tuple[xgb.Booster, np.ndarray]]] = {
    "rank:ndcg": ranker, "binary:logistic": classifier, "reg:squarederror+nan": regressor_with_nans,
    "pruned": pruned}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[xgb.Booster, dict, np.ndarray, TreeEnsemble]:
    booster, x = CASES[request.param]()
    model = json.loads(booster.save_raw("json"))
    return booster, model, x, TreeEnsemble.from_xgboost(model, N_FEATURES)


@pytest.fixture(scope="module")
def classifier_model() -> dict:
    return json.loads(classifier()[0].save_raw("json"))


@pytest.fixture(scope="module")
def document(classifier_model) -> dict:
    return TreeEnsemble.from_xgboost(classifier_model, N_FEATURES).to_json()


def test_margin_equals_xgboost(case):
    booster, _, x, trees = case
    expected = booster.predict(xgb.DMatrix(x), output_margin=True)
    got = trees.margin(x)
    assert got.shape == (len(x),) and got.dtype == np.float64
    assert np.ptp(got) > 0.5  # the trees do split these rows
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_contributions_equal_approximate_contribs(case):
    booster, _, x, trees = case
    expected = booster.predict(xgb.DMatrix(x), pred_contribs=True, approx_contribs=True)
    got = trees.contributions(x)
    assert got.shape == (len(x), N_FEATURES)
    np.testing.assert_allclose(got, expected[:, :-1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(trees.bias, expected[:, -1], rtol=0, atol=1e-5)


def test_bias_plus_contributions_is_the_margin(case):
    _, _, x, trees = case
    np.testing.assert_allclose(trees.bias + trees.contributions(x).sum(axis=1), trees.margin(x), rtol=0, atol=1e-9)


def test_json_round_trip_is_exact(case):
    _, _, x, trees = case
    text = json.dumps(trees.to_json(), allow_nan=False)  # strict JSON
    loaded = TreeEnsemble.from_json(json.loads(text))
    assert np.array_equal(loaded.margin(x), trees.margin(x))
    assert np.array_equal(loaded.contributions(x), trees.contributions(x))
    assert (loaded.base_margin, loaded.n_features) == (trees.base_margin, trees.n_features)
    for name in FIELDS:
        assert np.array_equal(getattr(loaded, name), getattr(trees, name)), name


def test_a_value_on_a_threshold_goes_right(case):
    """XGBoost sends ``x < threshold`` left: rows set exactly on thresholds must agree."""
    booster, _, x, trees = case
    rng = np.random.default_rng(2)
    on = x[:300].copy()
    for f in range(N_FEATURES):
        cuts = trees.threshold[trees.feature == f]
        if len(cuts):
            on[:, f] = rng.choice(cuts, size=len(on))
    expected = booster.predict(xgb.DMatrix(on), output_margin=True)
    np.testing.assert_allclose(trees.margin(on), expected, rtol=0, atol=1e-5)
    # a double just below a threshold is the threshold in float32, as XGBoost compares
    below = np.nextafter(on.astype(np.float64), -np.inf)
    np.testing.assert_allclose(trees.margin(below), expected, rtol=0, atol=1e-5)


def test_missing_values_go_both_ways():
    booster, x = regressor_with_nans()
    trees = TreeEnsemble.from_xgboost(json.loads(booster.save_raw("json")), N_FEATURES)
    inner = trees.feature >= 0
    assert trees.default_left[inner].any() and not trees.default_left[inner].all()
    rows = np.full((4, N_FEATURES), np.nan, np.float32)
    rows[1:, :3] = x[~np.isnan(x[:, :3]).any(axis=1)][:3, :3]
    np.testing.assert_allclose(trees.margin(rows), booster.predict(xgb.DMatrix(rows), output_margin=True),
                               rtol=0, atol=1e-5)


def test_pruned_nodes_are_dropped():
    booster, _ = pruned()
    model = json.loads(booster.save_raw("json"))
    raw = model["learner"]["gradient_booster"]["model"]["trees"]
    assert sum(int(tree["tree_param"]["num_deleted"]) for tree in raw) > 0
    doc = TreeEnsemble.from_xgboost(model, N_FEATURES).to_json()
    kept = sum(len(row) for row in doc["feature"])
    assert kept == sum(int(t["tree_param"]["num_nodes"]) - int(t["tree_param"]["num_deleted"]) for t in raw)


@pytest.mark.parametrize("objective, extra", [
    ("rank:pairwise", {}), ("rank:map", {}), ("reg:logistic", {}), ("binary:logitraw", {}), ("binary:hinge", {}),
    ("count:poisson", {}), ("reg:gamma", {}), ("reg:tweedie", {}), ("survival:cox", {"base_score": 0.5}),
    ("reg:absoluteerror", {}), ("reg:pseudohubererror", {}), ("reg:squaredlogerror", {}),
    ("reg:quantileerror", {"quantile_alpha": 0.3}), ("rank:ndcg", {"base_score": 0.25}),
    ("binary:logistic", {"base_score": 0.2}),
])
def test_base_score_in_margin_space(objective, extra):
    x, signal = synthetic(600, seed=3)
    if objective.startswith("rank") and objective != "rank:map":
        label = np.digitize(signal, [0.0, 1.0]).astype(float)
    elif objective.startswith("binary") or objective in ("reg:logistic", "rank:map"):
        label = (signal > 0).astype(float)
    else:
        label = np.exp(0.3 * signal)  # positive, for the log-link objectives
    qid = np.repeat(np.arange(60), 10) if objective.startswith("rank") else None
    booster = train({"objective": objective, "max_depth": 3, **extra}, x, label, 3, qid)
    trees = TreeEnsemble.from_xgboost(json.loads(booster.save_raw("json")), N_FEATURES)
    np.testing.assert_allclose(trees.margin(x), booster.predict(xgb.DMatrix(x), output_margin=True),
                               rtol=0, atol=1e-5)


def test_base_score_in_either_form(classifier_model):
    """XGBoost 3 writes ``"[4.82E-1]"``; 2.x wrote ``"4.82E-1"``."""
    model = copy.deepcopy(classifier_model)
    param = model["learner"]["learner_model_param"]
    assert param["base_score"].startswith("[")
    p = float(param["base_score"].strip("[]"))
    bracketed = TreeEnsemble.from_xgboost(model, N_FEATURES)
    param["base_score"] = param["base_score"].strip("[]")
    plain = TreeEnsemble.from_xgboost(model, N_FEATURES)
    assert bracketed.base_margin == plain.base_margin == pytest.approx(math.log(p / (1 - p)), abs=1e-12)


def _edit(path: str, value: Any) -> Callable[[dict], None]:
    def edit(model: dict) -> None:
        *parents, last = path.split(".")
        node: Any = model
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


TREE0 = "learner.gradient_booster.model.trees.0"


@pytest.mark.parametrize("edit, n_features, field", [
    (_edit("learner", {}), N_FEATURES, "gradient_booster: missing"),
    (_edit("learner.gradient_booster.name", "dart"), N_FEATURES, "gradient_booster.name"),
    (_edit("learner.learner_model_param.num_target", "2"), N_FEATURES, "learner_model_param.num_target"),
    (_edit("learner.learner_model_param.num_class", "3"), N_FEATURES, "learner_model_param.num_class"),
    (_edit("learner.objective.name", "multi:softprob"), N_FEATURES, "objective.name"),
    (_edit("learner.learner_model_param.base_score", "[1E0,2E0]"), N_FEATURES, "learner_model_param.base_score"),
    (_edit(f"{TREE0}.split_type.0", 1), N_FEATURES, "trees[0].split_type"),
    (_edit(f"{TREE0}.tree_param.size_leaf_vector", "2"), N_FEATURES, "trees[0].tree_param.size_leaf_vector"),
    (_edit(f"{TREE0}.sum_hessian", [1.0]), N_FEATURES, "trees[0].sum_hessian"),
    (lambda model: None, 1, "split_indices"),
])
def test_refuses_what_it_cannot_evaluate(classifier_model, edit, n_features, field):
    model = copy.deepcopy(classifier_model)
    edit(model)
    with pytest.raises(ValueError) as raised:
        TreeEnsemble.from_xgboost(model, n_features)
    assert str(raised.value).startswith("ranker.trees.") and field in str(raised.value)


def test_refuses_a_dart_booster():
    x, signal = synthetic(500)
    booster = train({"objective": "reg:squarederror", "booster": "dart", "max_depth": 2}, x, signal, 2)
    with pytest.raises(ValueError, match=r"^ranker\.trees\.gradient_booster\.name: expected 'gbtree', got 'dart'"):
        TreeEnsemble.from_xgboost(json.loads(booster.save_raw("json")), N_FEATURES)


def _drop(name: str) -> Callable[[dict], None]:
    return lambda doc: doc.pop(name)


@pytest.mark.parametrize("edit, message", [
    (_drop("value"), r"ranker\.trees\.value: missing"),
    (_drop("n_features"), r"ranker\.trees\.n_features: missing"),
    (lambda doc: doc["threshold"].pop(), r"ranker\.trees\.threshold: expected 30 trees, got 29"),
    (lambda doc: doc["threshold"][1].pop(), r"ranker\.trees\.threshold\[1\]: expected \d+ nodes, got \d+"),
    (lambda doc: doc["left"].__setitem__(2, None), r"ranker\.trees\.left\[2\]: expected \d+ nodes, got a NoneType"),
    (lambda doc: doc["feature"][0].__setitem__(0, "f0"), r"ranker\.trees\.feature\[0\]: expected a list of integers"),
    (lambda doc: doc["default_left"][0].__setitem__(0, 1), r"ranker\.trees\.default_left\[0\]: expected a list of b"),
    (lambda doc: doc["value"][0].__setitem__(0, "1.0"), r"ranker\.trees\.value\[0\]: expected a list of numbers"),
    (lambda doc: doc["value"][0].__setitem__(0, math.nan), r"ranker\.trees\.value\[0\]\[0\]: expected a finite"),
    (lambda doc: doc["left"][0].__setitem__(0, 10_000), r"ranker\.trees\.left\[0\]\[0\]: expected -1 or"),
    (lambda doc: doc["right"][0].__setitem__(0, -1), r"ranker\.trees\.right\[0\]\[0\]: a node is a leaf"),
    (lambda doc: doc["right"][0].__setitem__(0, doc["left"][0][0]), r"ranker\.trees\.left\[0\]: node \d+ has two"),
    (lambda doc: doc["left"][0].__setitem__(doc["left"][0][0], 0), r"ranker\.trees\.left\[0\]: node 0 has two"),
    (lambda doc: doc.__setitem__("n_features", 2), r"ranker\.trees\.feature\[\d+\]\[\d+\]: expected -1 or"),
    (lambda doc: doc.__setitem__("n_features", "10"), r"ranker\.trees\.n_features: expected a positive integer"),
    (lambda doc: doc.__setitem__("base_margin", None), r"ranker\.trees\.base_margin: expected a finite number"),
])
def test_broken_document_raises_naming_the_field(document, edit, message):
    broken = copy.deepcopy(document)
    edit(broken)
    with pytest.raises(ValueError, match="^" + message):
        TreeEnsemble.from_json(broken)


def test_the_unbroken_document_loads(document):
    assert TreeEnsemble.from_json(copy.deepcopy(document)).to_json() == document


def test_rows_of_the_wrong_width_are_refused(document):
    trees = TreeEnsemble.from_json(document)
    with pytest.raises(ValueError, match=r"^ranker\.trees\.x: expected shape \(n, 10\)"):
        trees.margin(np.zeros((3, 9)))
    assert trees.margin(np.zeros((0, N_FEATURES))).shape == (0,)
