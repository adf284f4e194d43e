"""Scale figures of the real train stage (``fusionrec train``) per phase, and its cost model.

Usage: .venv/bin/python bench/train.py [--interactions 1000000 5000000] [--users 100000]
       [--items 20000] [--dim 384] [--no-events] [--master local[2]] [--json FILE]
       .venv/bin/python bench/train.py --cost-model [--json FILE]   # the projection only, no Spark

What runs: :func:`fusionrec.commands.train.run`, the function ``fusionrec train`` calls
(read the tables, :func:`fusionrec.model.train.fit_pipeline` with its ALS search, cold-item
simulation, ranker and refit, then :func:`~fusionrec.model.train.write_model`), with the
default configuration (conf/local.yaml) except the master, the lake and checkpoint paths
under ``--work``, Spark's console progress off and the UI keeping every job and stage
(their shuffle figures are read back from it).

Data: seeded, with latent structure — users prefer 2 of 20 topics, items belong to a topic,
each item's text vector is its topic centroid plus noise (unit length, ``--dim`` wide), and
interaction counts per user are long-tailed. Interactions are drawn with numpy into
gold.interactions / embeddings.item_embeddings of a bench lake, and silver.events gets
one event per interaction (type from the weight: view 1, click 2, cart 4, purchase 8, as
ingest weighs them), so that the validation split re-aggregates the fit period from the
events as it does after a real ingest (``--no-events``: the lake has no silver.events).
No reviews: the sentiment and review-vector paths are not measured.

Phases are the ``stage(...)`` blocks of the library (``train.read``, ``train.fit`` with
``fit.validation_split``, ``fit.side_features``, ``fit.search_trial`` per ALS fit of the
search, ``fit.ranker``, ``fit.cold_slot`` when ``model.cold_slot`` is on, ``fit.refit``;
``train.write``), picked up by a handler on the ``fusionrec`` logger at DEBUG. Per phase:

- wall time (the stage's own ``elapsed_s``);
- peak RSS of the driver JVM and of this Python process (``/proc/<pid>/status`` VmHWM,
  reset through ``/proc/<pid>/clear_refs`` at every stage boundary and folded into every
  enclosing stage); in local mode the driver JVM runs the executors too, and the Python
  workers of pandas functions are separate processes, not counted. The JVM keeps the heap
  it has grown to, so its RSS peak rises through the run; the peak of its old generation
  (``MemoryPoolMXBean.getPeakUsage``, reset at the same boundaries) is what a phase kept live;
- shuffle read and write bytes of the Spark stages of the phase's jobs: each phase runs
  under its own job group, and the UI's REST API (``/api/v1/applications/<id>/jobs`` and
  ``/stages``) is read after the run. A parent phase's figures include its children's;
  ``train.fit (own)`` is what ``train.fit`` does outside its named steps (the first
  materialisation of the interactions, the validation relevance table, the item count).

The table per size, then the growth per phase from the smallest size to the largest
(time, shuffle, memory), then the cost model (:func:`print_cost_model`, also alone with
``--cost-model`` from :data:`MEASURED`): the figures projected to 100M and 1B interactions
on 16 and 64 executors, and the first phase that breaks - fit.ranker at ~1M items, where
the catalogue's vectors are one 1.45 GB row and a 1.57 GB driver-built broadcast
(:data:`COST_MODEL`). On the 2-core bench machine, train takes 906 s at 1M interactions
and 1,396 s at 4.5M (100k users, 20k items; a 10-fit search, the ranker chosen among three
kinds); 550 s and 823 s with the earlier 4-fit search and two ranker kinds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

#: The phases in run order (``fit.cold_slot`` only with ``model.cold_slot``).
PHASES = ("train.read", "fit.validation_split", "fit.side_features", "fit.search_trial", "fit.ranker",
          "fit.cold_slot", "fit.refit", "train.fit (own)", "train.fit", "train.write", "train")
MB = 1024 * 1024


def generate(n_interactions: int, n_users: int, n_items: int, dim: int, seed: int, out: Path) -> None:
    """Write interactions and item vectors as parquet chunks (bounded memory)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_topics = 20
    centroids = rng.normal(size=(n_topics, dim)).astype(np.float32)
    item_topic = rng.integers(0, n_topics, n_items)
    vecs = centroids[item_topic] + 0.8 * rng.normal(size=(n_items, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    (out / "items").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "embedding": list(vecs)}) \
        .to_parquet(out / "items" / "part-0.parquet")
    item_pop = 1.0 / rng.permutation(np.arange(1, n_items + 1)) ** 0.8  # power-law popularity
    by_topic = [np.flatnonzero(item_topic == t) for t in range(n_topics)]
    topic_p = [item_pop[ix] / item_pop[ix].sum() for ix in by_topic]
    # long-tailed activity: log-normal counts scaled to the target (a little over, for duplicates)
    counts = rng.lognormal(0.0, 1.0, n_users)
    counts = np.clip(np.round(counts / counts.sum() * n_interactions * 1.07), 1, n_items // 4).astype(np.int64)
    (out / "interactions").mkdir(parents=True, exist_ok=True)
    start = np.datetime64("2023-01-01T00:00:00")
    chunk_users = 20_000
    for part, lo in enumerate(range(0, n_users, chunk_users)):
        users = np.arange(lo, min(lo + chunk_users, n_users))
        c = counts[users]
        row_user = np.repeat(users, c)
        prefs = rng.integers(0, n_topics, size=(len(users), 2))
        own = prefs[np.repeat(np.arange(len(users)), c), rng.integers(0, 2, len(row_user))]
        topic = np.where(rng.random(len(row_user)) < 0.8, own, rng.integers(0, n_topics, len(row_user)))
        item = np.empty(len(row_user), dtype=np.int64)
        for t in range(n_topics):  # one vectorised draw per topic
            rows = np.flatnonzero(topic == t)
            item[rows] = rng.choice(by_topic[t], size=len(rows), p=topic_p[t])
        df = pd.DataFrame({"u": row_user, "i": item}).drop_duplicates()
        n = len(df)
        ts = start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
        pd.DataFrame({
            "user_id": "u" + df["u"].astype(str).to_numpy(), "item_id": "i" + df["i"].astype(str).to_numpy(),
            "weight": rng.choice([1.0, 2.0, 4.0, 8.0], n, p=[0.6, 0.25, 0.1, 0.05]),
            "n_events": np.int32(1), "first_ts": ts, "last_ts": ts, "rating": np.nan,
        }).to_parquet(out / "interactions" / f"part-{part}.parquet")


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PhaseProbe(logging.Handler):
    """Follows the library's ``stage=<name> event=start|end|failed`` log lines: a job group per
    stage occurrence, the stage's ``elapsed_s``, and the peak RSS of each pid while it ran."""

    LINE = re.compile(r"stage=(\S+) event=(start|end|failed)(?: elapsed_s=([0-9.]+))?")

    def __init__(self, sc: Any, pids: dict[str, int], prefix: str) -> None:
        super().__init__(level=logging.DEBUG)
        self.sc, self.prefix = sc, prefix
        self.meters: dict[str, tuple[Any, Any]] = {
            who: (lambda pid=pid: peak_mb(pid), lambda pid=pid: reset_peak(pid)) for who, pid in pids.items()}
        pools = [p for p in sc._jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
                 if str(p.getType()) == "Heap memory" and "Old" in p.getName()]
        if pools:  # the JVM's RSS keeps its high-water heap; the old generation's peak says what was live
            self.meters["old_gen"] = (lambda: sum(p.getPeakUsage().getUsed() for p in pools) / MB,
                                      lambda: [p.resetPeakUsage() for p in pools])
        self.open: list[dict[str, Any]] = []
        self.done: list[dict[str, Any]] = []

    def _fold(self) -> None:
        """The peaks since the last boundary go to every open stage (and to the innermost's own)."""
        for who, (read, reset) in self.meters.items():
            mb = read()
            for n, rec in enumerate(self.open):
                rec[f"{who}_peak_mb"] = max(rec.get(f"{who}_peak_mb", 0.0), mb)
                if n == len(self.open) - 1:
                    rec[f"{who}_own_peak_mb"] = max(rec.get(f"{who}_own_peak_mb", 0.0), mb)
            reset()

    def _group(self) -> None:
        if self.open:
            self.sc.setJobGroup(self.open[-1]["group"], self.open[-1]["name"])
        else:
            self.sc.setJobGroup(f"{self.prefix}:outside", "outside the stages")

    def emit(self, record: logging.LogRecord) -> None:
        m = self.LINE.search(record.getMessage())
        if not m:
            return
        name, event, elapsed = m.groups()
        self._fold()
        if event == "start":
            group = f"{self.prefix}:{len(self.done) + len(self.open):03d}:{name}"
            parent = self.open[-1]["group"] if self.open else None
            self.open.append({"name": name, "group": group, "parent": parent})
        else:
            rec = self.open.pop()
            rec["elapsed_s"] = float(elapsed) if elapsed else float("nan")
            rec["status"] = event
            self.done.append(rec)
            print(f"  {'  ' * len(self.open)}{name}: {rec['elapsed_s']:.1f} s ({event})", flush=True)
        self._group()


def rest_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return json.loads(resp.read())


def shuffle_by_group(sc: Any) -> dict[str, dict[str, float]]:
    """``{job group: {shuffle_read_mb, shuffle_write_mb, jobs, stages}}`` from the UI's REST API."""
    base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
    time.sleep(2)  # the UI's listener runs behind the jobs
    stages: dict[int, dict[str, float]] = {}
    for s in rest_json(f"{base}/stages"):
        acc = stages.setdefault(s["stageId"], {"read": 0.0, "write": 0.0})
        acc["read"] += s.get("shuffleReadBytes", 0)  # every attempt's bytes: a retry reads again
        acc["write"] += s.get("shuffleWriteBytes", 0)
    out: dict[str, dict[str, float]] = {}
    for job in rest_json(f"{base}/jobs"):
        g = out.setdefault(job.get("jobGroup") or "", {"shuffle_read_mb": 0.0, "shuffle_write_mb": 0.0,
                                                        "jobs": 0, "stages": 0})
        g["jobs"] += 1
        for sid in job.get("stageIds", []):
            if sid in stages:  # a skipped stage (its shuffle output reused) is in no stage list
                g["stages"] += 1
                g["shuffle_read_mb"] += stages[sid]["read"] / MB
                g["shuffle_write_mb"] += stages[sid]["write"] / MB
    return out


def phase_rows(probe: PhaseProbe, groups: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per phase name (repeated stages summed, ``n`` occurrences), parents inclusive,
    plus ``train.fit (own)`` and ``train`` (the three ``train.*`` stages)."""
    recs = probe.done
    children: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        children.setdefault(r["parent"], []).append(r)

    def shuffle(rec: dict[str, Any], key: str, inclusive: bool = True) -> float:
        own = groups.get(rec["group"], {}).get(key, 0.0)
        return own + (sum(shuffle(c, key) for c in children.get(rec["group"], [])) if inclusive else 0.0)

    rows: dict[str, dict[str, Any]] = {}

    def add(name: str, rec: dict[str, Any], elapsed: float, inclusive: bool = True, suffix: str = "") -> None:
        row = rows.setdefault(name, {"phase": name, "n": 0, "wall_s": 0.0, "jvm_peak_mb": 0.0, "old_gen_peak_mb": 0.0,
                                     "py_peak_mb": 0.0, "shuffle_read_mb": 0.0, "shuffle_write_mb": 0.0})
        row["n"] += 1
        row["wall_s"] += elapsed
        row["jvm_peak_mb"] = max(row["jvm_peak_mb"], rec.get(f"jvm{suffix}_peak_mb", 0.0))
        row["old_gen_peak_mb"] = max(row["old_gen_peak_mb"], rec.get(f"old_gen{suffix}_peak_mb", 0.0))
        row["py_peak_mb"] = max(row["py_peak_mb"], rec.get(f"py{suffix}_peak_mb", 0.0))
        row["shuffle_read_mb"] += shuffle(rec, "shuffle_read_mb", inclusive)
        row["shuffle_write_mb"] += shuffle(rec, "shuffle_write_mb", inclusive)

    for r in recs:
        add(r["name"], r, r["elapsed_s"])
        if r["name"] == "train.fit":
            kids = children.get(r["group"], [])
            add("train.fit (own)", r, r["elapsed_s"] - sum(c["elapsed_s"] for c in kids), inclusive=False,
                suffix="_own")
        if r["name"].startswith("train.") and r["parent"] is None:
            add("train", r, r["elapsed_s"])
    for row in rows.values():
        if row["phase"] == "train":
            row["n"] = 1
        for key in ("wall_s", "jvm_peak_mb", "old_gen_peak_mb", "py_peak_mb", "shuffle_read_mb", "shuffle_write_mb"):
            row[key] = round(row[key], 1)
    return [rows[p] for p in PHASES if p in rows]


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['interactions']:,} interactions, {result['users']:,} users, {result['items']:,} items"
          f" (events: {result['events']:,}; generate {result['generate_s']} s, lake write {result['load_s']} s)")
    print(f"{'phase':<22}{'n':>3}{'wall s':>9}{'JVM RSS MB':>12}{'old gen MB':>12}{'py RSS MB':>11}"
          f"{'shuffle rd MB':>15}{'shuffle wr MB':>15}")
    for r in result["phases"]:
        print(f"{r['phase']:<22}{r['n']:>3}{r['wall_s']:>9.1f}{r['jvm_peak_mb']:>12.0f}{r.get('old_gen_peak_mb', float('nan')):>12.0f}"
              f"{r['py_peak_mb']:>11.0f}"
              f"{r['shuffle_read_mb']:>15.1f}{r['shuffle_write_mb']:>15.1f}")
    if result.get("unattributed"):
        print(f"outside the stages: {result['unattributed']}")


def growth(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per phase, ``b / a`` of wall time and shuffle (read + write) per occurrence (the search
    may make a different number of fits at each size) and of the memory peaks."""
    by_a = {r["phase"]: r for r in a["phases"]}
    out = []
    for rb in b["phases"]:
        ra = by_a.get(rb["phase"])
        if ra is None:
            continue

        def ratio(x: float, y: float) -> float | None:
            return round(y / x, 2) if x > 0 else None

        out.append({"phase": rb["phase"], "time": ratio(ra["wall_s"] / ra["n"], rb["wall_s"] / rb["n"]),
                    "shuffle": ratio((ra["shuffle_read_mb"] + ra["shuffle_write_mb"]) / ra["n"],
                                     (rb["shuffle_read_mb"] + rb["shuffle_write_mb"]) / rb["n"]),
                    "jvm_peak": ratio(ra["jvm_peak_mb"], rb["jvm_peak_mb"]),
                    "old_gen_peak": ratio(ra.get("old_gen_peak_mb", 0.0), rb.get("old_gen_peak_mb", 0.0)),
                    "py_peak": ratio(ra["py_peak_mb"], rb["py_peak_mb"])})
    return out


def print_growth(a: dict[str, Any], b: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    scale = b["interactions"] / a["interactions"]
    print(f"\ngrowth {b['interactions']:,} / {a['interactions']:,} interactions = {scale:.2f}x "
          f"(users {b['users'] / a['users']:.2f}x, items {b['items'] / a['items']:.2f}x)")
    print(f"{'phase (per occurrence)':<22}{'time':>8}{'shuffle':>9}{'JVM RSS':>9}{'old gen':>9}{'py RSS':>8}")
    for r in rows:
        cells = [f"{r[k]:.2f}x" if r[k] is not None else "-"
                 for k in ("time", "shuffle", "jvm_peak", "old_gen_peak", "py_peak")]
        print(f"{r['phase']:<22}{cells[0]:>8}{cells[1]:>9}{cells[2]:>9}{cells[3]:>9}{cells[4]:>8}")


# ---- cost model ------------------------------------------------------------------------

#: The runs the projection starts from (local[2], 6 GB driver heap; README, "Scaling"): the
#: smallest gives the fixed cost of each phase, the largest (4.5M interactions, with
#: ``model.tuning_max_users``) the reference, the others check the model (1M on 100k users:
#: 546 s modelled, 550 s measured; 451k on 10k users: 299 s, 295 s). Per phase
#: ``[wall s, shuffle read + write MB, old generation peak MB]``, from the runs' ``--json``
#: (kept in ``bench/train_measured.json``).
MEASURED: list[dict[str, Any]] = json.loads((Path(__file__).with_name("train_measured.json")).read_text())

#: What a phase's variable cost grows with, as shares of it at the reference size: "I"
#: interactions (shuffles and sorts of interactions/events, ALS rating blocks), "U" users
#: (per-user rows: factor tables), "V" the validation users the search and the ranker use
#: (at most ``model.tuning_max_users``: candidates with features), "VxI" those users x items
#: (a top-N against the whole catalogue, blocked_top_n). From the code; the split of a
#: search trial (ALS + fused fit ~ the refit minus side features, 42 of 59 s at 1M) and of
#: the ranker (~60% of its executor time in the stage that unfolds the candidates with
#: their features, ~40% in the three top-N scorings) from a 1M run's Spark stages.
DRIVERS: dict[str, dict[str, float]] = {
    "train.read": {"I": 1.0}, "fit.validation_split": {"I": 1.0}, "fit.side_features": {"I": 1.0},
    "fit.search_trial": {"I": 0.7, "VxI": 0.3}, "fit.ranker": {"V": 0.6, "VxI": 0.4},
    "fit.cold_slot": {"V": 1.0}, "fit.refit": {"I": 1.0}, "train.fit (own)": {"I": 1.0}, "train.write": {"U": 1.0}}
#: Validation users: those with >= 5 interactions (64% of the bench's users), of whom the
#: search and the ranker take at most ``model.tuning_max_users`` (conf/local.yaml).
VALIDATION_SHARE = 0.64
TUNING_MAX_USERS = 20_000


def tuning_users(users: float) -> float:
    return min(users * VALIDATION_SHARE, TUNING_MAX_USERS)


#: Projection targets: (interactions, users, items) and executors of 4 cores each.
TARGETS = ((100_000_000, 10_000_000, 200_000), (1_000_000_000, 100_000_000, 1_000_000))
EXECUTORS = (16, 64)
CORES_PER_EXECUTOR = 4
BENCH_CORES = 2
#: Shuffle bytes one executor writes + reads per second (local disk and network, 4 cores).
SHUFFLE_MB_S_PER_EXECUTOR = 200.0
#: A Spark row, array or collect_list buffer (BufferHolder) cannot exceed ~2 GB.
ROW_LIMIT_MB = 2048.0

COST_MODEL = """\
Cost model (on paper)

Assumptions. Users grow with interactions at the bench's ~10 interactions per user
(100M -> 10M users, 1B -> 100M users); the catalogue grows slower (200k and 1M items).
Executors of 4 cores / 16 GB (12 GB heap); shuffle partitions raised to 2-3 x the cores;
otherwise the default configuration (model.user_blocks 8, item_blocks 1, candidates_n 100,
rank 32, max_iter 10, 4-6 ALS fits in the search + the refit). Each phase costs
fixed + variable: the fixed part (job scheduling, Delta log, planning; the smallest run's
time) stays, the variable part (the reference run's time minus the fixed part) grows with
DRIVERS and divides by the cores (2 in the bench), plus the projected shuffle bytes at
200 MB/s per executor. Perfect partitioning is assumed, so the times are lower bounds.

Where it breaks first. The search and the ranker use at most model.tuning_max_users
(20,000) validation users, so their per-user rows - blocked_top_n packs each of the
model.user_blocks = 8 blocks of those users into ONE row (ids, vectors, seen item lists) -
stop growing at ~2,500 users a block, and the ranker's cost stops growing with users: it
grows with the catalogue only. What still grows is the catalogue: blocked_top_n's content
scoring packs every item's 384-d vector into one row (item_blocks = 1), and with_features
broadcasts item factors + vectors, built on the driver. At 1B interactions (1M items) these
are 1.45 GB and 1.57 GB: under the 2 GB row limit, but the broadcast is serialised on a
6 GB driver heap in several copies, so fit.ranker (its candidates' features) is the FIRST
phase to break, at about 1M items, whatever the executors; model.item_blocks > 1 and a
larger driver move it. At 100M (200k items) nothing outgrows a row or the driver: time is
ALS shuffles (the search fits and the refit), which grow with interactions, are
partitioned and spill. No phase collects users to the driver (its Python process stays
~0.3 GB).
"""


def block_sizes(users: float, items: float, interactions: float, rank: int = 32, dim: int = 384,
                user_blocks: int = 8, validation_users: float = 0.64,
                validation_interactions: float = 0.91) -> dict[str, float]:
    """MB of the single rows blocked_top_n builds for the validation users (an id ~24 B, a seen
    item id ~16 B) and of the catalogue with_features broadcasts. The validation users are
    those with >= 5 interactions: 64% of the bench's users, holding 91% of the interactions."""
    seen = interactions * validation_interactions * 0.8 / (users * validation_users) * 16  # their fit period
    val_users = tuning_users(users)
    return {"als_user_block_mb": val_users / user_blocks * (rank * 4 + seen + 24) / MB,
            "content_user_block_mb": val_users / user_blocks * (dim * 4 + seen + 24) / MB,
            "content_item_block_mb": items * (dim * 4 + 24) / MB,
            "broadcast_items_mb": items * ((rank + dim) * 4 + 24) / MB}


def _growth(drivers: dict[str, float], inter: float, users: float, items: float, ref: dict[str, Any],
            shuffle: bool = False) -> float:
    v = tuning_users(users) / tuning_users(ref["users"])
    g = {"I": inter / ref["interactions"], "U": users / ref["users"], "V": v,
         "VxI": v * (1.0 if shuffle else items / ref["items"])}
    return sum(share * g[d] for d, share in drivers.items())


def print_cost_model(results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Print the cost model: each phase's fixed + variable cost from the measured runs
    (``results``, else :data:`MEASURED`), projected to :data:`TARGETS` on :data:`EXECUTORS`
    by :data:`DRIVERS`, and the single rows that outgrow the 2 GB limit."""
    runs = [{"interactions": r["interactions"], "users": r["users"], "items": r["items"],
             "phases": {p["phase"]: [p["wall_s"], p["shuffle_read_mb"] + p["shuffle_write_mb"],
                                     p.get("old_gen_peak_mb", 0.0)] for p in r["phases"]}}
            for r in results] if results else MEASURED
    print("\n" + COST_MODEL)
    out: dict[str, Any] = {"assumptions": {"targets": TARGETS, "executors": EXECUTORS, "drivers": DRIVERS,
                                           "cores_per_executor": CORES_PER_EXECUTOR,
                                           "shuffle_mb_s_per_executor": SHUFFLE_MB_S_PER_EXECUTOR}}
    if not runs:
        print("(no measured run: run the bench for the projection)")
        return out
    ref = max(runs, key=lambda r: r["interactions"])
    small = min(runs, key=lambda r: r["interactions"])
    names = [p for p in DRIVERS if p in ref["phases"]]
    print(f"Reference {ref['interactions']:,} interactions / {ref['users']:,} users / {ref['items']:,} items"
          + (f", fixed parts from {small['interactions']:,} / {small['users']:,} / {small['items']:,}"
             if small is not ref else ", no fixed parts (one run)") + f", local[{BENCH_CORES}].")
    def local(name: str, inter: float, users: float, items: float) -> float:
        wall_ref = ref["phases"][name][0]
        fixed = min(small["phases"].get(name, [0.0])[0], wall_ref) if small is not ref else 0.0
        return fixed + (wall_ref - fixed) * _growth(DRIVERS[name], inter, users, items, ref)

    for r in runs:  # the model against the runs it was not built from
        if r is small or r is ref:
            continue
        cells = [(n, r["phases"][n][0], local(n, r["interactions"], r["users"], r["items"]))
                 for n in names if n in r["phases"]]
        print(f"Check on {r['interactions']:,} / {r['users']:,} / {r['items']:,} (measured / modelled s): "
              + ", ".join(f"{n} {m:.0f}/{p:.0f}" for n, m, p in cells))
    out["projection"] = []
    for inter, users, items in TARGETS:
        print(f"\n{inter:,} interactions, {users:,} users, {items:,} items (wall time per phase):")
        print(f"  {'phase':<22}{'shuffle GB':>12}" + "".join(f"{f'{n} executors':>14}" for n in EXECUTORS))
        totals = [0.0] * len(EXECUTORS)
        for name in names:
            wall_ref, shuffle_ref, _ = ref["phases"][name]
            wall_fixed, shuffle_fixed, _ = small["phases"].get(name, [0.0, 0.0, 0.0]) if small is not ref \
                else [0.0, 0.0, 0.0]
            wall_fixed, shuffle_fixed = min(wall_fixed, wall_ref), min(shuffle_fixed, shuffle_ref)
            work = (wall_ref - wall_fixed) * _growth(DRIVERS[name], inter, users, items, ref)
            shuffle_mb = shuffle_fixed + (shuffle_ref - shuffle_fixed) * _growth(
                DRIVERS[name], inter, users, items, ref, shuffle=True)
            walls = [wall_fixed + work * BENCH_CORES / (ex * CORES_PER_EXECUTOR)
                     + shuffle_mb / (SHUFFLE_MB_S_PER_EXECUTOR * ex) for ex in EXECUTORS]
            totals = [t + w for t, w in zip(totals, walls)]
            out["projection"].append({"interactions": inter, "users": users, "items": items, "phase": name,
                                      "shuffle_gb": round(shuffle_mb / 1024, 1),
                                      "wall_s": {ex: round(w) for ex, w in zip(EXECUTORS, walls)}})
            print(f"  {name:<22}{shuffle_mb / 1024:>12.1f}" + "".join(f"{_minutes(w):>14}" for w in walls))
        print(f"  {'train':<22}{'':>12}" + "".join(f"{_minutes(t):>14}" for t in totals))
        b = block_sizes(users, items, inter)
        over = [k[:-3] for k, v in b.items() if k != "broadcast_items_mb" and v > ROW_LIMIT_MB]
        print("  single rows: " + ", ".join(f"{k[:-3]} {v / 1024:.2f} GB" for k, v in b.items()))
        print(f"  over the 2 GB row limit: {', '.join(over) if over else 'none'}")
        out["projection"].append({"interactions": inter, "rows_gb": {k[:-3]: round(v / 1024, 2) for k, v in b.items()},
                                  "over_row_limit": over})
    return out


def _minutes(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_size(n: int, args: argparse.Namespace, spark_holder: dict[str, Any]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from fusionrec.commands import train as train_command
    from fusionrec.config import load_config
    from fusionrec.lake import Lake
    from fusionrec.runlog import RunReport
    from fusionrec.session import build_spark

    run_dir = Path(args.work) / f"n{n}"
    shutil.rmtree(run_dir, ignore_errors=True)
    t = time.perf_counter()
    generate(n, args.users, args.items, args.dim, args.seed, run_dir / "raw")
    gen_s = time.perf_counter() - t
    cfg = load_config(PROJECT / "conf" / "local.yaml", [
        f"spark.master={args.master}", f"lake.root={run_dir / 'lake'}",
        f"spark.checkpoint_dir={run_dir / 'checkpoints'}", "spark.show_progress=false"], base_dir=PROJECT)
    # Every job and stage kept by the UI, so that the shuffle figures can be read back after the run.
    cfg = dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, extra={
        **cfg.spark.extra, "spark.ui.enabled": "true", "spark.ui.retainedJobs": "100000",
        "spark.ui.retainedStages": "100000", "spark.ui.retainedTasks": "1000"}))
    spark = spark_holder.get("spark") or build_spark(cfg)
    spark_holder["spark"] = spark
    sc = spark.sparkContext
    sc.setCheckpointDir(str(run_dir / "checkpoints"))
    jvm_pid = int(sc._jvm.ProcessHandle.current().pid())

    t = time.perf_counter()
    inter = spark.read.parquet(str(run_dir / "raw" / "interactions")).select(
        "user_id", "item_id", "weight", F.col("n_events").cast("int"), F.col("first_ts").cast("timestamp"),
        F.col("last_ts").cast("timestamp"), F.col("rating").cast("double"))
    lake = Lake(spark, cfg.lake)
    lake.overwrite("gold.interactions", inter)
    lake.overwrite("embeddings.item_embeddings", spark.read.parquet(str(run_dir / "raw" / "items")).select(
        "item_id", F.col("embedding").cast("array<float>")))
    n_events = 0
    if not args.no_events:
        event_type = F.element_at(F.create_map(*[F.lit(x) for x in (1.0, "view", 2.0, "click", 4.0, "cart",
                                                                    8.0, "purchase")]), F.col("weight"))
        lake.overwrite("silver.events", lake.read("gold.interactions").select(
            F.concat_ws("|", "user_id", "item_id").alias("event_id"), "user_id", "item_id",
            event_type.alias("event_type"), "rating", F.col("first_ts").alias("ts"), "weight",
            F.lit(None).cast("map<string,string>").alias("extra"), F.lit("bench").alias("source"),
            F.lit("bench").alias("batch_id"), F.current_timestamp().alias("ingest_ts")))
        n_events = lake.read("silver.events").count()
    interactions = lake.read("gold.interactions")
    row: dict[str, Any] = {"interactions": interactions.count(),
                           "users": interactions.select("user_id").distinct().count(), "items": args.items,
                           "events": n_events, "generate_s": round(gen_s, 1),
                           "load_s": round(time.perf_counter() - t, 1)}

    probe = PhaseProbe(sc, {"jvm": jvm_pid, "py": os.getpid()}, prefix=f"n{n}")
    logger = logging.getLogger("fusionrec")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(probe)
    report = RunReport("train")
    try:
        code = train_command.run(cfg, argparse.Namespace(), report)
    finally:
        logger.removeHandler(probe)
        logger.setLevel(level)
        sc.setLocalProperty("spark.jobGroup.id", None)
    if code != 0:
        raise RuntimeError(f"train returned {code}")
    groups = shuffle_by_group(sc)
    row["phases"] = phase_rows(probe, groups)
    row["stages"] = [{k: r.get(k) for k in ("name", "elapsed_s", "jvm_peak_mb", "old_gen_peak_mb", "py_peak_mb")}
                     | {"shuffle_read_mb": round(groups.get(r["group"], {}).get("shuffle_read_mb", 0.0), 1),
                        "shuffle_write_mb": round(groups.get(r["group"], {}).get("shuffle_write_mb", 0.0), 1)}
                     for r in probe.done]
    row["search"] = report.results["train"]["search"]
    row["counts"] = report.results["train"]["counts"]
    outside = groups.get(f"n{n}:outside", {})
    row["unattributed"] = {k: round(v, 1) for k, v in outside.items()} if outside else {}
    spark.catalog.clearCache()
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:6]))
    ap.add_argument("--interactions", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--no-events", action="store_true", help="no silver.events in the bench lake")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--work", default=str(PROJECT / "work" / "bench" / "train"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON here")
    ap.add_argument("--cost-model", action="store_true", help="print the cost model only (no Spark)")
    args = ap.parse_args()

    from fusionrec.runlog import setup_logging

    results: list[dict[str, Any]] = []
    if not args.cost_model:
        setup_logging(0)
        for handler in logging.getLogger().handlers:  # the stage lines at DEBUG go to the probe only
            handler.setLevel(logging.INFO)
        holder: dict[str, Any] = {}
        for n in args.interactions:
            results.append(run_size(n, args, holder))
            print_table(results[-1])
            if args.json:  # after every size: a later size may not finish
                Path(args.json).write_text(json.dumps({"runs": results}, indent=2, default=str) + "\n")
        print("\n(local mode: the driver JVM runs the executors too)")
        for r in results:
            print_table(r)
    out: dict[str, Any] = {"runs": results}
    if len(results) >= 2:
        out["growth"] = growth(results[0], results[-1])
        print_growth(results[0], results[-1], out["growth"])
    out["cost_model"] = print_cost_model(results or None)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
