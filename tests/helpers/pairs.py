"""Training-pair inputs: parallel JSONL files, synthetic pair-store rows and a tiny local mMARCO copy."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from polyret.data.records import Pair, PairGroups
from tests.helpers.models import TINY_WORDS

PAIR_LANGS = ("de", "en", "es")
PAIR_WORDS = "the capital city of river year country der die stadt fluss la ciudad río".split()
# one word per (language, number): a group's topic marker and each query's language marker; all in the
# tiny model's vocabulary, so each is one token
MARKERS = [
    w for w in dict.fromkeys(TINY_WORDS) if w.isascii() and w.isalpha() and w not in PAIR_WORDS and w not in ("query", "passage")
][:30]


def marker(lang: str, i: int) -> str:
    return MARKERS[PAIR_LANGS.index(lang) * 10 + i]


def write_pairs(path: Path, groups: int, seed: int = 0) -> Path:
    """Parallel pairs in 3 languages; a group's query and passage share a 3-word topic (learnable)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(groups):
            topic = [rng.choice(PAIR_WORDS) for _ in range(3)] + [marker(PAIR_LANGS[g % 3], g % 10)]
            for lang in PAIR_LANGS:
                query = " ".join(topic + [rng.choice(PAIR_WORDS) for _ in range(rng.randint(1, 4))] + [marker(lang, 0)])
                positive = " ".join(topic + [rng.choice(PAIR_WORDS) for _ in range(rng.randint(2, 30))])
                negative = " ".join(rng.choice(PAIR_WORDS) for _ in range(8))
                row = {"id": f"g{g}", "lang": lang, "query": query, "positive": positive, "negative": negative}
                fh.write(json.dumps(row) + "\n")
    return path


def synthetic_rows(n_groups: int, langs=("de", "en", "fr"), seed: int = 0) -> list[dict]:
    """Groups interleaved across the file, some languages missing, ids on some passages, 0-3 negatives."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        for lang in langs:
            if rng.random() < 0.25:
                continue
            row = {"id": f"g{g}" if g % 3 else g, "lang": lang, "query": f"q {g} {lang}", "positive": f"p {g % 17} {lang}"}
            if g % 2:
                row["positive_id"] = f"P{g % 11}"  # shared by translations, and by a few groups
            k = int(rng.integers(0, 4))
            if k:
                row["negative"] = [f"n {g + j} {lang}" for j in range(k)] if k > 1 else f"n {g} {lang}"
                if g % 4 == 1 and k > 1:
                    ids = [f"P{(g + j) % 13}" if j % 2 else None for j in range(k)]
                    # never the row's own positive (refused at load, issue 21)
                    row["negative_id"] = [None if i == row.get("positive_id") else i for i in ids]
            rows.append(row)
    order = rng.permutation(len(rows))  # translations far apart in the file
    return [rows[i] for i in order]


PAPER_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")
MMARCO_WORDS = "the capital city of river year country people war king church music school water language history".split()


def write_mmarco(folder: Path, queries: int, languages=PAPER_LANGS, seed: int = 0) -> Path:
    """A tiny local mMARCO copy: ``<lang>/queries.tsv``, ``<lang>/collection.tsv`` and ``triples.tsv``
    (one positive and one negative passage per query, ids shared across languages)."""
    rng = random.Random(seed)
    topics = [" ".join(rng.choice(MMARCO_WORDS) for _ in range(4)) for _ in range(2 * queries)]
    for lang in languages:
        sub = folder / lang
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "queries.tsv").write_text("".join(f"q{i}\t{topics[i]} {lang}\n" for i in range(queries)), encoding="utf-8")
        (sub / "collection.tsv").write_text(
            "".join(f"p{i}\t{topics[i]} {' '.join(rng.choice(MMARCO_WORDS) for _ in range(6))}\n" for i in range(2 * queries)),
            encoding="utf-8",
        )
    (folder / "triples.tsv").write_text("".join(f"q{i}\tp{i}\tp{queries + i}\n" for i in range(queries)))
    return folder


SAMPLER_LANGS = ("ar", "de", "en", "es", "zh")


def make_source(name: str, n_groups: int, langs=SAMPLER_LANGS, *, ragged: bool = False, negatives: bool = False) -> PairGroups:
    """Texts encode their origin: ``q|<source>|<group>|<lang>`` so a trainer-side batch can be decoded."""
    groups = {}
    for i in range(n_groups):
        gid = f"{name}{i}"
        group_langs = langs[: 1 + i % len(langs)] if ragged else langs
        groups[gid] = {
            lang: Pair(
                gid,
                lang,
                f"q|{name}|{gid}|{lang}",
                f"p|{name}|{gid}|{lang}",
                f"n|{name}|{gid}|{lang}" if negatives else None,
                name,
            )
            for lang in group_langs
        }
    return PairGroups(name, groups)


def write_de_en_pairs(path: Path, positive: str = "{lang} passage city {g}", groups: int = 12) -> Path:
    """``groups`` parallel de/en groups as a JSONL training file (the fault tests' small pairs); ``positive``
    is a template with ``{lang}`` and ``{g}``."""
    rows = [
        {"id": f"g{g}", "lang": lang, "query": f"{lang} stadt river {g}", "positive": positive.format(lang=lang, g=g)}
        for g in range(groups)
        for lang in ("de", "en")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def reference_pairs(path, *, languages=None, max_groups: int | None = None, seed: int = 0) -> PairGroups:
    """The oracle the pair store is checked against: a JSONL pair file read in memory by the documented
    rules (rows validated by ``pairrows``; groups in first-seen order, languages in line order; only
    ``languages``, groups left empty dropped; a seeded ``max_groups`` subsample kept in order).

    Args:
        path: the JSONL file.
        languages: keep only these.
        max_groups: a seeded subsample of this many groups.
        seed: its seed.
    """
    from polyret.data.pairrows import jsonl_rows

    groups: dict[str, dict[str, Pair]] = {}
    for _, row in jsonl_rows(path):
        ids = row.negative_ids if any(i is not None for i in row.negative_ids) else None
        groups.setdefault(row.group, {})[row.lang] = Pair(row.group, row.lang, row.query, row.positive,
                                                          row.negatives or None, str(path), row.positive_id, ids)  # fmt: skip
    if languages is not None:
        groups = {g: kept for g, by in groups.items() if (kept := {k: p for k, p in by.items() if k in languages})}
    if max_groups is not None and max_groups < len(groups):
        keys = list(groups)
        groups = {keys[i]: groups[keys[i]] for i in np.sort(np.random.default_rng(seed).permutation(len(keys))[:max_groups])}
    return PairGroups(str(path), groups)


def reference_identity_codes(sources: list[PairGroups], negatives: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity codes a PairIndex must give, from Pair objects by the definition
    (``records.passage_identity``): per pair row (groups in order, languages sorted) its positive's code and
    its first ``negatives`` negatives' (-1: none), numbered by first occurrence, one range per source.

    Args:
        sources: the index's sources, as Pair objects.
        negatives: the index's ``num_negatives``.
    """
    from polyret.data.records import passage_identity

    pos: list[int] = []
    neg: list[list[int]] = []
    offset = 0
    for src in sources:
        codes: dict[tuple, int] = {}
        for by_lang in src.groups.values():
            for lang in sorted(by_lang):
                p = by_lang[lang]
                pos.append(codes.setdefault(passage_identity(lang, p.positive, p.positive_id), len(codes)) + offset)
                row = [codes.setdefault(passage_identity(lang, t, i), len(codes)) + offset
                       for t, i in zip(p.negatives, p.negative_ids)]  # fmt: skip
                neg.append((row + [-1] * max(negatives, 1))[: max(negatives, 1)] if negatives else [-1])
        offset += len(codes)
    return np.asarray(pos), np.asarray(neg)
