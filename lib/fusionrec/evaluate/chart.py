"""Bar chart and JSON of an evaluation result."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from fusionrec.evaluate.results import EvaluationResults  # noqa: E402
from fusionrec.lake import EVALUATION_NAME, REPORTS, evaluation_report  # noqa: E402
from fusionrec.validation.metrics import METRICS  # noqa: E402

__all__ = ["EVALUATION_NAME", "REPORTS", "evaluation_report", "render_results"]

def render_results(results: EvaluationResults, name: str = "evaluation") -> dict[str, bytes]:
    """``{"json": ..., "png": ...}``: the results as JSON and a bar chart (metrics per model
    at the first K, plus the cold-item recall), as bytes for any store."""
    document = results.to_json().encode("utf-8")
    k = results.table[0]["k"]
    rows = [r for r in results.table if r["k"] == k]
    cold = {r["model"]: r for r in results.cold_items if r["k"] == k}
    metrics = list(METRICS) + ["cold_recall", "cold_ranked_recall"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(rows), 1)
    for j, row in enumerate(rows):
        c = cold.get(row["model"], {})
        values = [row[m] for m in METRICS] + [c.get("recall", 0.0), c.get("ranked_recall", 0.0)]
        ax.bar([i + j * width for i in range(len(metrics))], values, width, label=row["model"])
    ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(metrics))])
    ax.set_xticklabels([f"{m}@{k}" for m in metrics], rotation=20)
    ax.set_ylabel("value")
    ax.set_title(f"{name}: models on the same chronological split")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return {"json": document, "png": buffer.getvalue()}
