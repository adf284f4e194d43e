"""The synthetic log generator: seeded, chunked, with preference and text signal."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json

from fusionrec.config import IngestConfig
from fusionrec.generate import CATEGORIES, generate
from fusionrec.ingest.schema import EVENT_TYPES


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


def _lines(files):
    """The raw lines of the written files, as bytes (one per row the ingest will read)."""
    out = []
    for f in files:
        with (gzip.open(f, "rb") if f.endswith(".gz") else open(f, "rb")) as fh:
            data = fh.read()
        out.extend(data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n"))
    return out


def _event_reason(line: bytes, rules: IngestConfig, now: dt.datetime) -> str | None:
    """The reason code of one event line by the rules of the ingest contract (in their order),
    read from the line itself: blank, unparseable, missing ids, event type, rating, timestamp."""
    text = line.decode("utf-8", "replace")
    if not text.strip():
        return "blank_line"
    try:
        row = json.loads(text)
    except json.JSONDecodeError:
        return "unparseable"
    if not isinstance(row, dict):
        return "unparseable"
    if not str(row.get("user_id") or "").strip():
        return "missing_user_id"
    if not str(row.get("item_id") or "").strip():
        return "missing_item_id"
    if str(row.get("event_type") or "").lower() not in EVENT_TYPES:
        return "unknown_event_type"
    rating = row.get("rating")
    if rating is not None and not isinstance(rating, (int, float)) or (row["event_type"] == "rating" and rating is None):
        return "bad_rating"
    if rating is not None and not rules.rating_min <= rating <= rules.rating_max:
        return "rating_out_of_range"
    ts = row.get("ts")
    try:
        when = (dt.datetime.fromtimestamp(ts, dt.timezone.utc) if isinstance(ts, (int, float))
                else dt.datetime.fromisoformat(str(ts)))
    except ValueError:
        return "ts_unparseable"
    when = when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when
    if when < dt.datetime.fromisoformat(rules.min_ts) or when > now + dt.timedelta(seconds=rules.max_future_s):
        return "ts_out_of_range"
    return None


def test_dirty_rows_recounted_from_the_written_files(tmp_path):
    """The generator's expected accounting equals a recount of the files it wrote, made by
    parsing every line with the ingest's rules - not by the generator's own tally."""
    r = generate(str(tmp_path), 20_000, 200, 400, seed=1, dirty_share=0.1, n_reviews=4000, compress=True)
    assert all(f.endswith(".jsonl.gz") for f in r["files"]["events"])
    lines = _lines(r["files"]["events"])
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    reasons, seen, duplicates = collections.Counter(), set(), 0
    for line in lines:
        reason = _event_reason(line, IngestConfig(), now)
        if reason:
            reasons[reason] += 1
            continue
        event_id = json.loads(line.decode("utf-8", "replace"))["event_id"]
        duplicates += event_id in seen
        seen.add(event_id)
    non_utf8 = 0
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            non_utf8 += 1
    if duplicates:
        reasons["duplicate_event"] = duplicates
    expected = r["expected"]["events"]
    assert expected["rows_in"] == len(lines) == r["lines"]["events"]
    assert expected["by_reason"] == dict(sorted(reasons.items()))
    assert expected["duplicates"] == duplicates and expected["fixes"] == {"non_utf8_replaced": non_utf8}
    assert expected["accepted"] == len(seen)
    # Every kind of defect is there, about 10% of the rows (one defect each).
    assert set(reasons) == {"unparseable", "blank_line", "missing_user_id", "missing_item_id", "unknown_event_type",
                            "bad_rating", "rating_out_of_range", "ts_unparseable", "ts_out_of_range",
                            "duplicate_event"}
    assert abs((sum(reasons.values()) + non_utf8) / 20_000 - 0.1) < 0.01

    # Items and reviews: the line counts and the lines no JSON parser reads, recounted too.
    for kind in ("items", "reviews"):
        kind_lines = _lines(r["files"][kind])
        blank = sum(not line.strip() for line in kind_lines)
        unparseable = 0
        for line in kind_lines:
            if line.strip():
                try:
                    unparseable += not isinstance(json.loads(line.decode("utf-8", "replace")), dict)
                except json.JSONDecodeError:
                    unparseable += 1
        exp = r["expected"][kind]
        assert exp["rows_in"] == len(kind_lines)
        assert (exp["by_reason"].get("blank_line", 0), exp["by_reason"].get("unparseable", 0)) == (blank, unparseable)
    assert set(r["expected"]["items"]["fixes"]) == {"markup_stripped", "price_unparsed", "text_truncated",
                                                   "non_utf8_replaced"}
