"""Seeded synthetic logs in the canonical JSON Lines format, at any scale.

The world: ``n_categories`` item categories (at most 10), each with its own vocabulary
(nouns, adjectives, features, brands), so item texts carry the category in their words;
items belong to one category and have a Zipf-like popularity within it; every user has
latent category preferences drawn from a Dirichlet(0.3) distribution (a few favourite
categories) and a log-normal activity level. An event picks a user by activity, a
category by the user's preferences and an item by popularity within the category, so
collaborative filtering and content both carry signal. Ratings and review wording follow
the user's affinity for the item's category. Timestamps are spread uniformly over
2019-01-01 .. 2025-06-30.

A share ``dirty_share`` of rows is dirty, one defect per row, of every kind the cleaning
rules handle (unparseable lines, missing ids, unknown event types, bad or out-of-range
ratings and timestamps, exact duplicates, older duplicate item records, HTML, control
characters, junk prices, over-long texts, invalid UTF-8 bytes, empty or unknown-item
reviews, blank lines). The returned ``expected`` counts say exactly how many rows each
reason code and repair must see, so ingestion can be checked row for row.

Events and reviews are generated and written in chunks with numpy, so memory stays flat
from 1k to 10M+ events.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fusionrec.config import IngestConfig
from fusionrec.errors import InputError

__all__ = ["CATEGORIES", "EVENT_TYPES", "Category", "generate"]

_CHUNK_ROWS = 250_000
_T_START = np.datetime64("2019-01-01T00:00:00", "s").astype(np.int64)
_T_END = np.datetime64("2025-06-30T00:00:00", "s").astype(np.int64)
EVENT_TYPES = np.array(["view", "click", "cart", "purchase", "rating"])
_EVENT_TYPE_P = np.array([0.55, 0.25, 0.10, 0.05, 0.05])
#: Placeholder for an invalid UTF-8 byte: encoded with ``surrogateescape`` it becomes 0xFF.
_BAD_BYTE = "\udcff"
#: Over-long texts exceed the default ingest.max_text_length.
_MAX_TEXT = IngestConfig().max_text_length


@dataclass(frozen=True)
class Category:
    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    features: tuple[str, ...]
    brands: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("Books", ("novel", "anthology", "memoir", "biography", "thriller", "cookbook", "atlas", "poetry collection"),
             ("gripping", "insightful", "illustrated", "classic", "bestselling", "annotated"),
             ("hardcover binding", "vivid characters", "a twisting plot", "detailed footnotes", "a foreword by the author"),
             ("Penrose Press", "Inkwell House", "Bramble Books")),
    Category("Electronics", ("headphones", "smartphone", "laptop", "tablet", "speaker", "smartwatch", "monitor", "router"),
             ("wireless", "high-resolution", "fast-charging", "noise-cancelling", "compact", "bluetooth"),
             ("a long battery life", "a quad-core processor", "USB-C charging", "an OLED display", "low-latency audio"),
             ("Voltaic", "Nexon", "Quantra")),
    Category("Kitchen", ("skillet", "blender", "knife set", "kettle", "cutting board", "espresso maker", "saucepan", "toaster"),
             ("stainless", "non-stick", "dishwasher-safe", "cast-iron", "ergonomic", "heat-resistant"),
             ("even heat distribution", "a riveted handle", "a brewing timer", "a sharp forged blade", "easy cleanup"),
             ("Copperleaf", "Hearthware", "Saltbox")),
    Category("Outdoors", ("tent", "backpack", "sleeping bag", "headlamp", "trekking poles", "camp stove", "rain jacket", "hammock"),
             ("waterproof", "ultralight", "packable", "insulated", "windproof", "rugged"),
             ("taped seams", "a down fill", "a hip belt", "a weatherproof shell", "reflective guy lines"),
             ("Ridgeline", "Summit Trail", "Northwind")),
    Category("Beauty", ("moisturizer", "serum", "lipstick", "shampoo", "face mask", "sunscreen", "perfume", "cleanser"),
             ("hydrating", "fragrance-free", "vegan", "nourishing", "gentle", "radiant"),
             ("hyaluronic acid", "vitamin C", "a silky texture", "broad-spectrum protection", "botanical extracts"),
             ("Lumiere", "Petal & Dew", "Aurelle")),
    Category("Toys", ("puzzle", "building blocks", "plush bear", "board game", "toy train", "doll house", "kite", "robot kit"),
             ("colorful", "educational", "interactive", "wooden", "collectible", "battery-powered"),
             ("hundreds of pieces", "sound effects", "a storage box", "rounded safe edges", "step-by-step instructions"),
             ("Playnest", "Tinker Town", "Jolly Jumper")),
    Category("Music", ("guitar", "keyboard", "drum pad", "ukulele", "microphone", "amplifier", "violin", "metronome"),
             ("acoustic", "electric", "studio-grade", "vintage", "portable", "tuned"),
             ("a solid spruce top", "weighted keys", "a warm tone", "low action strings", "a condenser capsule"),
             ("Harmonia", "Blue Note Works", "Fretline")),
    Category("Sports", ("running shoes", "yoga mat", "dumbbells", "tennis racket", "cycling helmet", "football", "jump rope", "resistance bands"),
             ("breathable", "lightweight", "durable", "adjustable", "cushioned", "grippy"),
             ("a responsive midsole", "a non-slip surface", "quick-dry fabric", "an impact-absorbing shell", "adjustable resistance"),
             ("Stride", "Apex Athletics", "Kinetic")),
    Category("Garden", ("pruning shears", "watering can", "raised bed", "hose reel", "seed kit", "compost bin", "trowel", "planter"),
             ("weather-resistant", "galvanized", "organic", "self-watering", "heavy-duty", "biodegradable"),
             ("a rust-proof coating", "heirloom seeds", "a comfort grip", "drainage holes", "a brass nozzle"),
             ("Greenthumb", "Fernway", "Rootstock")),
    Category("Pets", ("dog bed", "cat tree", "leash", "chew toy", "aquarium filter", "bird feeder", "litter box", "pet carrier"),
             ("washable", "orthopedic", "chew-resistant", "odor-control", "cozy", "reflective"),
             ("memory foam", "a scratching post", "a padded handle", "a quiet pump", "an airline-approved frame"),
             ("Pawsome", "Tailwag", "Whisker & Co")),
)

_DESC_TEMPLATES = (
    "This {adj} {noun} comes with {feature}.",
    "Designed for everyday use, it features {feature} and a {adj2} finish.",
    "A {adj} choice for anyone who wants {feature}.",
    "Customers pick this {noun} for {feature} and its {adj2} design.",
)
_REVIEW_TEMPLATES = {
    1: ("Terrible {noun}, it broke after a week.", "Very disappointed: the {feature} does not work at all.",
        "Waste of money, I returned this {noun}."),
    2: ("Poor quality {noun}, not worth the price.", "The {feature} is flimsy and disappointing.",
        "I expected more from a {adj} {noun}."),
    3: ("An average {noun}, it does the job.", "The {feature} is okay but nothing special.",
        "Decent {noun} for the price, with some flaws."),
    4: ("A good {noun}, I am happy with it.", "I like the {feature}, works well.",
        "Solid {adj} {noun}, would recommend."),
    5: ("Excellent {noun}, absolutely love it!", "The {feature} is fantastic, best purchase this year.",
        "Outstanding {adj} {noun}, highly recommended to everyone."),
}


def _iso(seconds: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s"), "Z")


class _Writer:
    """Numbered ``<kind>-NNNNN.jsonl[.gz]`` files, one per chunk; lines may hold _BAD_BYTE."""

    def __init__(self, out_dir: Path, kind: str, compress: bool):
        self.out_dir, self.kind, self.compress = out_dir, kind, compress
        self.files: list[str] = []
        self.lines = 0

    def write(self, lines: list[str]) -> None:
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        path = self.out_dir / f"{self.kind}-{len(self.files):05d}{suffix}"
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        fh: BinaryIO
        with (gzip.open(path, "wb", compresslevel=1) if self.compress else open(path, "wb")) as fh:
            fh.write(data)
        self.files.append(str(path))
        self.lines += len(lines)


class _Expect:
    """Expected accounting of one kind: reason codes, duplicates and repairs."""

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}
        self.fixes: dict[str, int] = {}
        self.duplicates = 0

    def reason(self, code: str, n: int = 1) -> None:
        self.reasons[code] = self.reasons.get(code, 0) + n

    def fix(self, code: str, n: int = 1) -> None:
        self.fixes[code] = self.fixes.get(code, 0) + n

    def to_dict(self, kind: str, rows_in: int) -> dict[str, Any]:
        quarantined = sum(self.reasons.values())
        by_reason = dict(self.reasons)
        if self.duplicates:
            by_reason[f"duplicate_{kind.rstrip('s')}"] = self.duplicates
        return {"rows_in": rows_in, "accepted": rows_in - quarantined - self.duplicates,
                "quarantined": quarantined, "duplicates": self.duplicates,
                "by_reason": dict(sorted(by_reason.items())), "fixes": dict(sorted(self.fixes.items()))}


def _dirty_positions(rng: np.random.Generator, n: int, share: float, kinds: int) -> dict[int, int]:
    """Row index -> defect kind, for ``round(n * share)`` distinct rows."""
    k = int(round(n * share))
    if k == 0:
        return {}
    rows = rng.choice(n, size=min(k, n), replace=False)
    return dict(zip(rows.tolist(), rng.integers(0, kinds, size=len(rows)).tolist()))


@dataclass
class _World:
    cats: tuple[Category, ...]
    item_cat: np.ndarray            # item -> category
    cat_items: list[np.ndarray]     # category -> its items, by popularity rank
    cat_cdf: list[np.ndarray]       # category -> popularity CDF
    pref: np.ndarray                # user x category preference
    pref_cdf: np.ndarray
    activity_cdf: np.ndarray


def _world(rng: np.random.Generator, n_users: int, n_items: int, n_categories: int) -> _World:
    cats = CATEGORIES[:max(1, min(n_categories, len(CATEGORIES)))]
    item_cat = rng.integers(0, len(cats), size=n_items)
    cat_items, cat_cdf = [], []
    for c in range(len(cats)):
        members = rng.permutation(np.flatnonzero(item_cat == c))
        if members.size == 0:  # tiny catalogues: every category gets at least one item
            members = np.array([c % n_items])
        weights = 1.0 / np.arange(1, members.size + 1) ** 0.9
        cat_items.append(members)
        cat_cdf.append(np.cumsum(weights) / weights.sum())
    pref = rng.dirichlet(np.full(len(cats), 0.3), size=n_users)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    return _World(cats, item_cat, cat_items, cat_cdf, pref, np.cumsum(pref, axis=1),
                  np.cumsum(activity) / activity.sum())


def _sample_interactions(rng: np.random.Generator, world: _World, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``m`` (user, item, affinity) triples following preferences and popularity."""
    users = np.minimum(np.searchsorted(world.activity_cdf, rng.random(m)), len(world.activity_cdf) - 1)
    cats = np.minimum((world.pref_cdf[users] < rng.random(m)[:, None]).sum(axis=1), len(world.cats) - 1)
    items = np.empty(m, dtype=np.int64)
    for c in range(len(world.cats)):
        idx = np.flatnonzero(cats == c)
        if idx.size:
            pick = np.minimum(np.searchsorted(world.cat_cdf[c], rng.random(idx.size)), world.cat_items[c].size - 1)
            items[idx] = world.cat_items[c][pick]
    affinity = world.pref[users, world.item_cat[items]] * len(world.cats)  # 1 = indifferent
    return users, items, affinity


def _ratings(rng: np.random.Generator, affinity: np.ndarray) -> np.ndarray:
    """1..5 stars: higher for categories the user prefers (affinity > 1)."""
    score = 3.0 + 1.2 * np.tanh(np.log(np.maximum(affinity, 1e-3))) + rng.normal(0, 0.7, affinity.size)
    return np.clip(np.rint(score), 1, 5).astype(int)


def _item_record(rng: np.random.Generator, i: int, cat: Category, updated: int) -> dict[str, Any]:
    noun, adj, adj2 = rng.choice(cat.nouns), rng.choice(cat.adjectives), rng.choice(cat.adjectives)
    brand = rng.choice(cat.brands)
    sentences = [t.format(adj=rng.choice(cat.adjectives), adj2=rng.choice(cat.adjectives), noun=noun,
                          feature=rng.choice(cat.features))
                 for t in rng.choice(_DESC_TEMPLATES, size=int(rng.integers(2, 4)), replace=False)]
    return {
        "item_id": f"i{i}", "title": f"{brand} {adj} {noun} {int(rng.integers(100, 999))}",
        "description": " ".join(sentences), "categories": [cat.name, f"{cat.name} > {noun.title()}"],
        "brand": str(brand), "price": round(float(rng.lognormal(3.0, 0.6)), 2),
        "updated_at": str(_iso(np.array([updated]))[0]),
    }


def _items(out: Path, rng: np.random.Generator, world: _World, n_items: int, dirty_share: float,
           compress: bool) -> tuple[_Writer, _Expect]:
    writer, expect = _Writer(out, "items", compress), _Expect()
    updated = rng.integers(_T_START, _T_END, size=n_items)
    defects = ("html", "control", "price_junk", "overlong", "non_utf8", "older_duplicate",
               "missing_id", "unparseable", "empty_text", "blank")
    dirty = _dirty_positions(rng, n_items, dirty_share, len(defects))
    lines: list[str] = []
    for i in range(n_items):
        rec = _item_record(rng, i, world.cats[world.item_cat[i]], int(updated[i]))
        defect = defects[dirty[i]] if i in dirty else None
        if i % 5 == 0:
            rec["pages"] = int(rng.integers(50, 900))  # an extra field, rescued into `extra`
        line = json.dumps(rec)
        if defect == "html":
            rec["title"] = f"<b>{rec['title']}</b> &amp; more"
            rec["description"] = f"<p>{rec['description']}</p><br/>&nbsp;"
            line = json.dumps(rec)
            expect.fix("markup_stripped")
        elif defect == "control":
            rec["description"] = rec["description"].replace(" ", " \t\u0007 ", 3) + "\u200b  \n "
            line = json.dumps(rec)
        elif defect == "price_junk":
            rec["price"] = ".a-box-inner{background-color:#fff}"
            line = json.dumps(rec)
            expect.fix("price_unparsed")
        elif defect == "overlong":
            rec["description"] = (rec["description"] + " ") * (_MAX_TEXT // max(1, len(rec["description"])) + 2)
            line = json.dumps(rec)
            expect.fix("text_truncated")
        elif defect == "non_utf8":
            line = json.dumps(rec).replace('"title": "', f'"title": "{_BAD_BYTE}', 1)
            expect.fix("non_utf8_replaced")
        lines.append(line)
        # Defects that add a row keep the catalogue intact (events and reviews refer to it).
        if defect == "older_duplicate":
            older = dict(rec, title=rec["title"] + " (old edition)",
                         updated_at=str(_iso(np.array([int(updated[i]) - 86400 * 30]))[0]))
            lines.append(json.dumps(older))
            expect.duplicates += 1
        elif defect == "missing_id":
            lines.append(json.dumps(dict(rec, item_id="")))
            expect.reason("missing_item_id")
        elif defect == "unparseable":
            lines.append(line[: len(line) // 2])
            expect.reason("unparseable")
        elif defect == "empty_text":
            lines.append(json.dumps({"item_id": f"i-empty-{i}", "title": "<span class=\"a-size\"", "description": ""}))
            expect.reason("empty_item_text")
        elif defect == "blank":
            lines.append("")
            expect.reason("blank_line")
    writer.write(lines)
    return writer, expect


def _events(out: Path, seed: int, world: _World, n_events: int, dirty_share: float,
            compress: bool, chunk_rows: int) -> tuple[_Writer, _Expect]:
    writer, expect = _Writer(out, "events", compress), _Expect()
    defects = ("unparseable", "missing_user", "missing_item", "unknown_type", "bad_rating", "rating_range",
               "ts_unparseable", "ts_old", "ts_future", "duplicate", "non_utf8", "blank")
    for chunk, start in enumerate(range(0, n_events, chunk_rows)):
        m = min(chunk_rows, n_events - start)
        rng = np.random.default_rng([seed, 2, chunk])
        users, items, affinity = _sample_interactions(rng, world, m)
        types = EVENT_TYPES[np.searchsorted(np.cumsum(_EVENT_TYPE_P), rng.random(m) * 0.999999)]
        stars = _ratings(rng, affinity)
        seconds = rng.integers(_T_START, _T_END, size=m)
        iso = _iso(seconds)
        as_epoch = rng.random(m) < 0.3
        has_session = rng.random(m) < 0.2
        dirty = _dirty_positions(rng, m, dirty_share, len(defects))
        lines: list[str] = []
        for j in range(m):
            t = types[j]
            ts = f"{int(seconds[j])}" if as_epoch[j] else f'"{iso[j]}"'
            rating = f',"rating":{stars[j]}' if t == "rating" else ""
            extra = f',"session":"s{int(users[j]) % 9973}-{j % 7}"' if has_session[j] else ""
            user, item = f'"u{users[j]}"', f',"item_id":"i{items[j]}"'
            defect = defects[dirty[j]] if j in dirty else None
            if defect == "missing_user":
                user = '""'
                expect.reason("missing_user_id")
            elif defect == "missing_item":
                item = ""
                expect.reason("missing_item_id")
            elif defect == "unknown_type":
                t, rating = "hover", ""
                expect.reason("unknown_event_type")
            elif defect == "bad_rating":
                t, rating = "rating", ',"rating":"five"'
                expect.reason("bad_rating")
            elif defect == "rating_range":
                t, rating = "rating", ',"rating":7.5'
                expect.reason("rating_out_of_range")
            elif defect == "ts_unparseable":
                ts = '"sometime last week"'
                expect.reason("ts_unparseable")
            elif defect == "ts_old":
                ts = '"1990-05-01T00:00:00Z"'
                expect.reason("ts_out_of_range")
            elif defect == "ts_future":
                ts = '"2099-01-01T00:00:00Z"'
                expect.reason("ts_out_of_range")
            elif defect == "non_utf8":
                extra = f',"device":"mob{_BAD_BYTE}ile"'
                expect.fix("non_utf8_replaced")
            line = (f'{{"event_id":"ev{seed}-{start + j}","user_id":{user}{item},"event_type":"{t}",'
                    f'"ts":{ts}{rating}{extra}}}')
            if defect == "unparseable":
                line = line[: len(line) // 2]
                expect.reason("unparseable")
            lines.append(line)
            if defect == "duplicate":
                lines.append(line)
                expect.duplicates += 1
            elif defect == "blank":
                lines.append("   ")
                expect.reason("blank_line")
        writer.write(lines)
    return writer, expect


def _reviews(out: Path, seed: int, world: _World, n_reviews: int, dirty_share: float,
             compress: bool, chunk_rows: int) -> tuple[_Writer, _Expect, int]:
    writer, expect = _Writer(out, "reviews", compress), _Expect()
    defects = ("unparseable", "missing_user", "missing_item", "bad_rating", "rating_range", "ts_unparseable",
               "ts_out_of_range", "empty_text", "duplicate", "unknown_item", "html", "non_utf8", "overlong")
    unknown_items = 0
    for chunk, start in enumerate(range(0, n_reviews, chunk_rows)):
        m = min(chunk_rows, n_reviews - start)
        rng = np.random.default_rng([seed, 3, chunk])
        users, items, affinity = _sample_interactions(rng, world, m)
        stars = _ratings(rng, affinity)
        iso = _iso(rng.integers(_T_START, _T_END, size=m))
        with_id = rng.random(m) < 0.7
        dirty = _dirty_positions(rng, m, dirty_share, len(defects))
        lines: list[str] = []
        for j in range(m):
            cat = world.cats[world.item_cat[items[j]]]
            feature = str(rng.choice(cat.features)).removeprefix("a ").removeprefix("an ")
            words = {"noun": rng.choice(cat.nouns), "adj": rng.choice(cat.adjectives), "feature": feature}
            templates = _REVIEW_TEMPLATES[int(stars[j])]
            text = " ".join(t.format(**words) for t in rng.choice(templates, size=2, replace=False))
            rec: dict[str, Any] = {"user_id": f"u{users[j]}", "item_id": f"i{items[j]}", "rating": int(stars[j]),
                                   "title": templates[0].format(**words).split(",")[0], "text": text,
                                   "ts": str(iso[j]), "user_name": f"Reviewer {users[j]}"}
            if with_id[j]:
                rec = {"review_id": f"rv{seed}-{start + j}", **rec}
            defect = defects[dirty[j]] if j in dirty else None
            if defect == "missing_user":
                rec["user_id"] = None
                expect.reason("missing_user_id")
            elif defect == "missing_item":
                del rec["item_id"]
                expect.reason("missing_item_id")
            elif defect == "bad_rating":
                rec["rating"] = "great"
                expect.reason("bad_rating")
            elif defect == "rating_range":
                rec["rating"] = 6
                expect.reason("rating_out_of_range")
            elif defect == "ts_unparseable":
                rec["ts"] = "31/02/2020 25:00"
                expect.reason("ts_unparseable")
            elif defect == "ts_out_of_range":
                rec["ts"] = "1994-12-31T23:59:59Z"
                expect.reason("ts_out_of_range")
            elif defect == "empty_text":
                rec["text"] = " <br/> \n "
                expect.reason("empty_review_text")
            elif defect == "unknown_item":
                rec["item_id"] = f"i-unknown-{start + j}"
                unknown_items += 1
            elif defect == "html":
                rec["text"] = f"<p>{text}</p> &quot;recommended&quot;"
                expect.fix("markup_stripped")
            elif defect == "overlong":
                rec["text"] = (text + " ") * (_MAX_TEXT // len(text) + 2)
                expect.fix("text_truncated")
            line = json.dumps(rec)
            if defect == "non_utf8":
                line = line.replace('"text": "', f'"text": "{_BAD_BYTE}', 1)
                expect.fix("non_utf8_replaced")
            elif defect == "unparseable":
                line = line[: len(line) // 2]
                expect.reason("unparseable")
            lines.append(line)
            if defect == "duplicate":
                lines.append(line)
                expect.duplicates += 1
        writer.write(lines)
    expect.fix("item_unknown", unknown_items)
    return writer, expect, unknown_items


def generate(out_dir: str, n_events: int, n_users: int, n_items: int, seed: int, dirty_share: float = 0.05,
             n_reviews: int | None = None, n_categories: int = 10, compress: bool = False,
             chunk_rows: int = _CHUNK_ROWS) -> dict[str, Any]:
    """Write ``items-*.jsonl``, ``events-*.jsonl`` and ``reviews-*.jsonl`` to ``out_dir``.

    :param n_reviews: default ``n_events // 20``.
    :param dirty_share: share of generated rows with one defect each (0 for clean data).
    :returns: ``out_dir``, ``files`` and ``lines`` per kind, and ``expected``: per kind the
        exact accounting ingestion must report (``rows_in``, ``accepted``, ``quarantined``,
        ``duplicates``, ``by_reason``, ``fixes``).
    """
    if n_events < 0 or n_users < 1 or n_items < 1 or not 0.0 <= dirty_share < 1.0:
        raise InputError("generate: need n_events >= 0, n_users >= 1, n_items >= 1 and 0 <= dirty_share < 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("events-*.jsonl*"), *out.glob("items-*.jsonl*"), *out.glob("reviews-*.jsonl*")]:
        old.unlink()
    n_reviews = n_events // 20 if n_reviews is None else n_reviews
    world = _world(np.random.default_rng([seed, 0]), n_users, n_items, n_categories)
    items_w, items_e = _items(out, np.random.default_rng([seed, 1]), world, n_items, dirty_share, compress)
    events_w, events_e = _events(out, seed, world, n_events, dirty_share, compress, chunk_rows)
    reviews_w, reviews_e, _ = _reviews(out, seed, world, n_reviews, dirty_share, compress, chunk_rows)
    writers = {"items": items_w, "events": events_w, "reviews": reviews_w}
    expects = {"items": items_e, "events": events_e, "reviews": reviews_e}
    return {
        "out_dir": str(out.resolve()),
        "seed": seed,
        "files": {k: w.files for k, w in writers.items()},
        "lines": {k: w.lines for k, w in writers.items()},
        "expected": {k: expects[k].to_dict(k, writers[k].lines) for k in writers},
        "categories": [c.name for c in world.cats],
    }
