"""The synthetic log generator: seeded, chunked, with preference and text signal."""

from __future__ import annotations

import collections
import json

from fusionrec.generate import CATEGORIES, generate


def _read(files):
    rows = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def test_seeded_chunked_and_signal(tmp_path):
    a = generate(str(tmp_path / "a"), 30_000, 300, 200, seed=5, dirty_share=0.0, chunk_rows=10_000)
    b = generate(str(tmp_path / "b"), 30_000, 300, 200, seed=5, dirty_share=0.0, chunk_rows=10_000)
    c = generate(str(tmp_path / "c"), 30_000, 300, 200, seed=6, dirty_share=0.0, chunk_rows=10_000)
    assert len(a["files"]["events"]) == 3
    read = lambda r: b"".join(open(f, "rb").read() for f in r["files"]["events"])  # noqa: E731
    assert read(a) == read(b) and read(a) != read(c)
    assert a["expected"]["events"] == {"rows_in": 30_000, "accepted": 30_000, "quarantined": 0, "duplicates": 0,
                                       "by_reason": {}, "fixes": {}}

    items = {r["item_id"]: r for r in _read(a["files"]["items"])}
    events = _read(a["files"]["events"])
    reviews = _read(a["files"]["reviews"])
    assert len(items) == 200 and len(events) == 30_000 and len(reviews) == 1_500
    # Texts carry the category: titles name one of its nouns, descriptions use its features.
    vocab = {c.name: c for c in CATEGORIES}
    for item in items.values():
        cat = vocab[item["categories"][0]]
        assert any(n in item["title"] for n in cat.nouns)
        assert any(f in item["description"] for f in cat.features)
    # Users concentrate on few categories (Dirichlet preferences), far from uniform.
    per_user = collections.defaultdict(collections.Counter)
    for e in events:
        per_user[e["user_id"]][items[e["item_id"]]["categories"][0]] += 1
    active = [cnt for cnt in per_user.values() if sum(cnt.values()) >= 50]
    top2 = sum(sum(v for _, v in cnt.most_common(2)) / sum(cnt.values()) for cnt in active) / len(active)
    assert top2 > 0.6  # uniform over 10 categories would give 0.2
    # Review wording follows the rating.
    by_rating = {r["rating"]: r["text"] for r in reviews}
    assert any(w in by_rating[5] for w in ("Excellent", "fantastic", "Outstanding"))
    assert any(w in by_rating[1] for w in ("Terrible", "disappointed", "Waste"))


def test_dirty_rows_of_every_kind(tmp_path):
    r = generate(str(tmp_path), 20_000, 200, 400, seed=1, dirty_share=0.1, n_reviews=4000, compress=True)
    exp = r["expected"]
    assert set(exp["events"]["by_reason"]) == {"unparseable", "blank_line", "missing_user_id", "missing_item_id",
                                              "unknown_event_type", "bad_rating", "rating_out_of_range",
                                              "ts_unparseable", "ts_out_of_range", "duplicate_event"}
    assert set(exp["reviews"]["by_reason"]) >= {"empty_review_text", "duplicate_review", "missing_user_id"}
    assert set(exp["items"]["by_reason"]) == {"unparseable", "blank_line", "missing_item_id", "empty_item_text",
                                             "duplicate_item"}
    assert set(exp["items"]["fixes"]) == {"markup_stripped", "price_unparsed", "text_truncated", "non_utf8_replaced"}
    assert exp["reviews"]["fixes"]["item_unknown"] > 0
    total_dirty = sum(exp["events"]["by_reason"].values()) + exp["events"]["fixes"]["non_utf8_replaced"]
    assert abs(total_dirty / 20_000 - 0.1) < 0.01
    assert all(f.endswith(".jsonl.gz") for f in r["files"]["events"])
