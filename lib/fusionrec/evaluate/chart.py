"""Bar chart and JSON of an evaluation result."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from fusionrec.evaluate.results import EvaluationResults  # noqa: E402

CHART_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


def save_results(results: EvaluationResults, out_dir: str | Path, name: str = "evaluation") -> dict[str, str]:
    """Write ``<name>.json`` and ``<name>.png`` (metrics per model at the first K, plus the
    cold-item recall) into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    json_path.write_text(results.to_json())
    k = results.table[0]["k"]
    rows = [r for r in results.table if r["k"] == k]
    cold = {r["model"]: r for r in results.cold_items if r["k"] == k}
    metrics = list(CHART_METRICS) + ["cold_recall", "cold_ranked_recall"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(rows), 1)
    for j, row in enumerate(rows):
        c = cold.get(row["model"], {})
        values = [row[m] for m in CHART_METRICS] + [c.get("recall", 0.0), c.get("ranked_recall", 0.0)]
        ax.bar([i + j * width for i in range(len(metrics))], values, width, label=row["model"])
    ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(metrics))])
    ax.set_xticklabels([f"{m}@{k}" for m in metrics], rotation=20)
    ax.set_ylabel("value")
    ax.set_title(f"{name}: models on the same chronological split")
    ax.legend()
    fig.tight_layout()
    png_path = out / f"{name}.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return {"json": str(json_path), "png": str(png_path)}
