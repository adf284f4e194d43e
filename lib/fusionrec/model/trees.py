"""A pure-numpy evaluator of an XGBoost gradient-boosted tree ensemble.

Serving scores the ranker without xgboost installed: :meth:`TreeEnsemble.from_xgboost` reads
the booster's JSON model once (at training), :meth:`TreeEnsemble.to_json` stores it compactly,
and :meth:`TreeEnsemble.margin` / :meth:`TreeEnsemble.contributions` reproduce
``Booster.predict(output_margin=True)`` and ``predict(pred_contribs=True, approx_contribs=True)``
with vectorised numpy, all trees of a chunk of rows at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["TreeEnsemble"]

_P = "ranker.trees."
#: How XGBoost maps ``base_score`` (the objective's output space) to margin space (``ProbToMargin``).
_LOGIT = frozenset({"binary:logistic", "reg:logistic"})
_LOG = frozenset({"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"})
_IDENTITY = frozenset({"reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
                       "reg:quantileerror", "binary:logitraw", "binary:hinge",
                       "rank:pairwise", "rank:ndcg", "rank:map"})
#: Node-matrix elements (rows x trees) per chunk: bounds memory, keeps the gathers cache-friendly.
_CHUNK = 1 << 18
_FIELDS = ("feature", "threshold", "left", "right", "default_left", "value")
_DTYPES = {"feature": np.int32, "threshold": np.float32, "left": np.int32, "right": np.int32,
           "default_left": np.bool_, "value": np.float64}


def _fail(field: str, message: str) -> ValueError:
    return ValueError(f"{_P}{field}: {message}")


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Regression trees whose leaf values add up to a margin, as XGBoost's gbtree booster scores.

    Each array is ``(T, M)``: one row per tree, node 0 its root, padded to ``M`` nodes
    (padding and leaves have ``feature == left == right == -1``). A stump, as :meth:`to_json` writes it:

    >>> stump = TreeEnsemble.from_json({"n_features": 1, "base_margin": 0.5, "feature": [[0, -1, -1]],
    ...     "threshold": [[1.0, 0.0, 0.0]], "left": [[1, -1, -1]], "right": [[2, -1, -1]],
    ...     "default_left": [[True, False, False]], "value": [[0.25, -1.0, 1.0]]})
    >>> stump.margin(np.array([[0.0], [1.0], [np.nan]]))  # 1.0 is not < 1.0: right; NaN: left
    array([-0.5,  1.5, -0.5])
    >>> stump.bias, stump.contributions(np.array([[0.0]]))
    (0.75, array([[-1.25]]))
    """

    feature: np.ndarray       # int32 split feature per node
    threshold: np.ndarray     # float32: go left when float32(x[feature]) < threshold (XGBoost's rule)
    left: np.ndarray          # int32 child index
    right: np.ndarray         # int32
    default_left: np.ndarray  # bool: where a NaN goes
    value: np.ndarray         # float64: leaf value; at inner nodes the hessian-weighted mean below (Saabas)
    base_margin: float        # the booster's base score in margin space
    n_features: int

    def __post_init__(self) -> None:
        shape = np.shape(self.feature)
        for name in _FIELDS:
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != _DTYPES[name] or array.shape != shape:
                got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
                raise _fail(name, f"expected a {np.dtype(_DTYPES[name])} array of shape {shape}, got {got}")
            # read-only copies: the compiled layout below is cached, so the arrays must not change
            array = array.copy()
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise _fail("feature", f"expected shape (trees >= 1, nodes >= 1), got {shape}")
        if isinstance(self.n_features, bool) or not isinstance(self.n_features, (int, np.integer)) \
                or self.n_features < 1:
            raise _fail("n_features", f"expected a positive integer, got {self.n_features!r}")
        object.__setattr__(self, "n_features", int(self.n_features))
        if isinstance(self.base_margin, bool) or not isinstance(self.base_margin, (int, float)) \
                or not math.isfinite(self.base_margin):
            raise _fail("base_margin", f"expected a finite number, got {self.base_margin!r}")
        object.__setattr__(self, "base_margin", float(self.base_margin))
        self._check_structure()

    def _check_structure(self) -> None:
        """Leaves are -1 in feature, left and right alike; children are in range, each node has
        one parent at most and the root none, so what the root reaches is a tree."""
        n_nodes = self.feature.shape[1]
        inner = self.feature >= 0
        for name in ("left", "right"):
            bad = (getattr(self, name) >= 0) != inner
            if bad.any():
                t, j = np.argwhere(bad)[0]
                raise _fail(f"{name}[{t}][{j}]", "a node is a leaf (-1) in feature, left and right, or in none")
        for name, top in (("feature", self.n_features), ("left", n_nodes), ("right", n_nodes)):
            array = getattr(self, name)
            bad = (array < -1) | (array >= top)
            if bad.any():
                t, j = np.argwhere(bad)[0]
                raise _fail(f"{name}[{t}][{j}]", f"expected -1 or 0 <= index < {top}, got {array[t, j]}")
        for name in ("threshold", "value"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                t, j = np.argwhere(bad)[0]
                raise _fail(f"{name}[{t}][{j}]", "expected a finite number")
        trees = np.repeat(np.arange(len(inner)), 2 * inner.sum(1))
        children = np.stack([self.left, self.right], axis=-1)[inner].ravel()
        parents = np.zeros(inner.shape, np.int64)
        np.add.at(parents, (trees, children), 1)
        parents[:, 0] += 1  # the root counts as having one: it may have no other
        if (parents > 1).any():
            t, j = np.argwhere(parents > 1)[0]
            raise _fail(f"left[{t}]", f"node {j} has two parents (or is the root and has one)")

    @cached_property
    def _reach(self) -> tuple[int, np.ndarray]:
        """The depth of the deepest tree, and which nodes the roots reach."""
        reached = np.zeros(self.feature.shape, bool)
        level = np.zeros(self.feature.shape, bool)
        level[:, 0] = True
        depth = 0
        while True:
            reached |= level
            t, j = np.nonzero(level & (self.feature >= 0))
            if len(t) == 0:
                return depth, reached
            level = np.zeros_like(level)
            level[t, self.left[t, j]] = level[t, self.right[t, j]] = True
            depth += 1

    @cached_property
    def _flat(self) -> tuple[np.ndarray, ...]:
        """The trees as flat arrays over global node ids ``t * M + j``; a leaf is its own child,
        so that every row walks the same number of levels without a leaf test."""
        n_trees, n_nodes = self.feature.shape
        own = np.arange(n_trees * n_nodes).reshape(n_trees, n_nodes)
        inner = self.feature >= 0
        offset = own[:, :1]
        left = np.where(inner, self.left + offset, own)
        right = np.where(inner, self.right + offset, own)
        # child[2 * node + go_right]: one gather instead of two and a where
        child = np.stack([left, right], axis=-1).ravel().astype(np.intp)
        feature = np.where(inner, self.feature, 0).ravel().astype(np.intp)
        return feature, self.threshold.ravel(), self.default_left.ravel(), child, self.value.ravel()

    @classmethod
    def from_xgboost(cls, model: dict, n_features: int) -> TreeEnsemble:
        """The ensemble of a gbtree booster's JSON model, ``json.loads(booster.save_raw("json"))``.

        Leaf values are XGBoost's ``split_conditions`` at leaves; inner nodes get the
        hessian-weighted mean of their children (as XGBoost's approximate contributions do).
        Nodes that pruning deleted are dropped. Refuses another booster, several outputs,
        categorical splits and split features ``>= n_features``.
        """
        learner = _at(model, "learner")
        booster = _at(learner, "gradient_booster")
        if booster.get("name") != "gbtree":
            raise _fail("gradient_booster.name", f"expected 'gbtree', got {booster.get('name')!r}")
        param = _at(learner, "learner_model_param")
        for key, most in (("num_target", 1), ("num_class", 1)):
            if int(param.get(key, 0)) > most:
                raise _fail(f"learner_model_param.{key}", f"expected one output, got {param[key]}")
        objective = _at(learner, "objective").get("name")
        base_margin = _margin(objective, _base_score(param.get("base_score")))
        body = _at(booster, "model")
        trees = _at(body, "trees")
        if not isinstance(trees, list) or not trees:
            raise _fail("model.trees", "expected a non-empty list of trees")
        if any(info != 0 for info in body.get("tree_info", [])):
            raise _fail("model.tree_info", "expected every tree in output group 0")
        parsed = [_xgboost_tree(tree, i, n_features) for i, tree in enumerate(trees)]
        return cls._padded(parsed, base_margin, n_features)

    @classmethod
    def _padded(cls, trees: list[dict[str, np.ndarray]], base_margin: float, n_features: int) -> TreeEnsemble:
        width = max(len(tree["feature"]) for tree in trees)
        fill = {"feature": -1, "threshold": 0.0, "left": -1, "right": -1, "default_left": False, "value": 0.0}
        arrays = {name: np.full((len(trees), width), fill[name], _DTYPES[name]) for name in _FIELDS}
        for t, tree in enumerate(trees):
            for name in _FIELDS:
                arrays[name][t, :len(tree[name])] = tree[name]
        return cls(**arrays, base_margin=base_margin, n_features=n_features)

    def to_json(self) -> dict:
        """A JSON-serialisable document that :meth:`from_json` reads back exactly:
        ``n_features``, ``base_margin`` and, per field, one list per tree, trimmed of padding."""
        sizes = [int(np.flatnonzero(row).max()) + 1 for row in self._reach[1]]
        doc: dict[str, Any] = {"n_features": self.n_features, "base_margin": self.base_margin}
        for name in _FIELDS:
            # tolist() gives Python floats: a float32 threshold is exact as a double, and so in JSON
            doc[name] = [row[:size].tolist() for row, size in zip(getattr(self, name), sizes)]
        return doc

    @classmethod
    def from_json(cls, data: dict) -> TreeEnsemble:
        """The ensemble :meth:`to_json` wrote; raises ``ValueError`` naming the first bad field."""
        if not isinstance(data, dict):
            raise _fail("document", f"expected an object, got {type(data).__name__}")
        for name in ("n_features", "base_margin", *_FIELDS):
            if name not in data:
                raise _fail(name, "missing")
        features = data["feature"]
        if not isinstance(features, list) or not features:
            raise _fail("feature", "expected a non-empty list of per-tree lists")
        sizes = [len(row) if isinstance(row, list) and row else 1 for row in features]
        trees: list[dict[str, np.ndarray]] = [{} for _ in features]
        for name in _FIELDS:
            rows = data[name]
            if not isinstance(rows, list) or len(rows) != len(features):
                got = f"{len(rows)}" if isinstance(rows, list) else f"a {type(rows).__name__}"
                raise _fail(name, f"expected {len(features)} trees, got {got}")
            for t, row in enumerate(rows):
                trees[t][name] = _json_row(f"{name}[{t}]", row, name, sizes[t])
        return cls._padded(trees, data["base_margin"], data["n_features"])

    @property
    def bias(self) -> float:
        """The margin before any split: base margin plus every root's value (XGBoost's last contribs column)."""
        return self.base_margin + float(self.value[:, 0].sum())

    def margin(self, x: np.ndarray) -> np.ndarray:
        """The raw score of each row of ``x`` ``(n, n_features)``: base margin plus the leaf values reached,
        as ``booster.predict(DMatrix(x), output_margin=True)``; NaN is a missing value."""
        x = self._rows(x)
        value = self._flat[4]
        out = np.empty(len(x))
        for start, stop in self._chunks(len(x)):
            out[start:stop] = value[self._walk(x[start:stop])].sum(axis=1)
        return out + self.base_margin

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Saabas feature contributions ``(n, n_features)``: along each row's path, ``value(child) - value(node)``
        goes to the node's split feature, so ``bias + contributions(x).sum(1) == margin(x)``
        (XGBoost's ``pred_contribs=True, approx_contribs=True`` without its bias column)."""
        x = self._rows(x)
        feature, value = self._flat[0], self._flat[4]
        out = np.empty(x.shape)
        for start, stop in self._chunks(len(x)):
            rows = stop - start
            cell = np.arange(rows)[:, None] * self.n_features
            acc = np.zeros(rows * self.n_features)

            def add(node: np.ndarray, child: np.ndarray) -> None:
                # a leaf is its own child: it adds 0 once its path has ended
                acc[:] += np.bincount((cell + feature[node]).ravel(), (value[child] - value[node]).ravel(),
                                      minlength=len(acc))

            self._walk(x[start:stop], add)
            out[start:stop] = acc.reshape(rows, self.n_features)
        return out

    def _rows(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise _fail("x", f"expected shape (n, {self.n_features}), got {x.shape}")
        # XGBoost compares float32 values with float32 thresholds: cast once, as its DMatrix does
        return np.ascontiguousarray(x, dtype=np.float32)

    def _chunks(self, n: int) -> Iterator[tuple[int, int]]:
        step = max(1, _CHUNK // len(self.feature))
        return ((start, min(start + step, n)) for start in range(0, n, step))

    def _walk(self, x: np.ndarray, visit: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
        """The ``(rows, T)`` leaf ids that the rows of ``x`` reach, one depth level at a time for
        all trees; ``visit(node, child)`` sees every step."""
        feature, threshold, default_left, child, _ = self._flat
        n_trees, n_nodes = self.feature.shape
        flat = x.ravel()
        cell = np.arange(len(x))[:, None] * self.n_features
        node = np.broadcast_to(np.arange(n_trees) * n_nodes, (len(x), n_trees))  # the roots
        missing = bool(np.isnan(x).any())
        for _ in range(self._reach[0]):
            v = flat[cell + feature[node]]
            go_right = ~(v < threshold[node])  # NaN compares False: right, unless the node sends it left
            if missing:
                go_right &= ~(np.isnan(v) & default_left[node])
            step = child[2 * node + go_right]
            if visit is not None:
                visit(node, step)
            node = step
        return node


def _at(obj: Any, key: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _fail(key, "missing from the XGBoost model")
    return obj[key]


def _base_score(raw: Any) -> float:
    """XGBoost 3 writes ``"[5E-1]"`` (one value per target), 2.x ``"5E-1"``."""
    text = str(raw).strip()
    parts = text[1:-1].split(",") if text.startswith("[") and text.endswith("]") else [text]
    try:
        (value,) = (float(part) for part in parts)
    except ValueError:
        raise _fail("learner_model_param.base_score", f"expected one number, got {raw!r}") from None
    return value


def _margin(objective: Any, base_score: float) -> float:
    """``base_score`` in margin space, as the objective's ``ProbToMargin`` (checked against predict)."""
    if objective in _IDENTITY:
        return base_score
    if objective in _LOGIT and 0.0 < base_score < 1.0:
        return math.log(base_score / (1.0 - base_score))
    if objective in _LOG and base_score > 0.0:
        return math.log(base_score)
    raise _fail("objective.name", f"no margin conversion for {objective!r} with base_score {base_score!r}")


def _xgboost_tree(tree: dict, index: int, n_features: int) -> dict[str, np.ndarray]:
    """One XGBoost tree, renumbered breadth-first from the root so that deleted nodes drop out."""
    where = f"trees[{index}]"
    if not isinstance(tree, dict):
        raise _fail(where, "expected an object")
    if int(tree.get("tree_param", {}).get("size_leaf_vector", 1)) > 1:
        raise _fail(f"{where}.tree_param.size_leaf_vector", "multi-target trees are not supported")
    keys = ("left_children", "right_children", "split_indices", "split_conditions", "default_left", "sum_hessian")
    # float32, as XGBoost holds them: the JSON decimals are float32 values
    left, right, split, condition, default, hessian = (
        np.asarray(_at(tree, key), dtype=np.float32 if key in ("split_conditions", "sum_hessian") else np.int64)
        for key in keys)
    size = len(left)
    for key, array in zip(keys, (left, right, split, condition, default, hessian)):
        if array.shape != (size,) or size < 1:
            raise _fail(f"{where}.{key}", f"expected {max(size, 1)} nodes, got shape {array.shape}")
    if any(np.any(np.asarray(tree.get(key, [])) != 0) for key in ("split_type", "categories_nodes")):
        raise _fail(f"{where}.split_type", "categorical splits are not supported")
    order = [0]
    for node in order:  # grows while iterating: breadth-first
        if left[node] != -1:
            if not 0 <= split[node] < n_features:
                raise _fail(f"{where}.split_indices", f"feature {split[node]} >= n_features {n_features}")
            if not (0 < left[node] < size and 0 < right[node] < size) or len(order) + 2 > size:
                raise _fail(f"{where}.left_children", f"node {node}: children out of range or not a tree")
            order += [int(left[node]), int(right[node])]
    new = {old: i for i, old in enumerate(order)}
    value = np.empty(len(order))
    for i in reversed(range(len(order))):  # children come after parents: bottom-up
        old = order[i]
        if left[old] == -1:
            value[i] = float(condition[old])
        else:
            l, r = new[int(left[old])], new[int(right[old])]
            h_l, h_r, h = (float(hessian[k]) for k in (left[old], right[old], old))
            # XGBoost divides by the node's own hessian; a zero hessian would give NaN there
            value[i] = (value[l] * h_l + value[r] * h_r) / h if h > 0 else (value[l] + value[r]) / 2
    inner = left[order] != -1
    return {"feature": np.where(inner, split[order], -1),
            "threshold": np.where(inner, condition[order], 0.0),
            "left": np.array([new[int(c)] if c != -1 else -1 for c in left[order]]),
            "right": np.array([new[int(c)] if c != -1 else -1 for c in right[order]]),
            "default_left": inner & (default[order] != 0),
            "value": value}


def _json_row(field: str, row: Any, name: str, size: int) -> np.ndarray:
    """One tree's list of ``name``, checked for length and element type."""
    if not isinstance(row, list) or len(row) != size:
        got = len(row) if isinstance(row, list) else f"a {type(row).__name__}"
        raise _fail(field, f"expected {size} nodes, got {got}")
    array = np.asarray(row)
    # numpy infers the type: bool lists give "b", int lists "i", numbers with a float "f"; the rest is bad
    kinds, expected = {"default_left": ("b", "booleans"), "threshold": ("if", "numbers"),
                       "value": ("if", "numbers")}.get(name, ("i", "integers"))
    if array.ndim != 1 or array.dtype.kind not in kinds:
        raise _fail(field, f"expected a list of {expected}")
    if name in ("feature", "left", "right") and (array.min() < -1 or array.max() > np.iinfo(np.int32).max):
        raise _fail(field, "index out of range")
    return array
