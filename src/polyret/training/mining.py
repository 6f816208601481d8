"""Language-aware hard-negative mining: k negatives per training pair, found with a retriever.

For a pair whose passage is in language b, the candidates are every distinct passage text of the source
in language b (all positives, and the negatives the source already has), so a negative is always in the
passage's language. Every text is encoded once through :func:`polyret.encode.encode` (and its on-disk
:class:`~polyret.encode.EmbeddingCache`), and each query is scored against its language's candidates by a
chunked exact matrix product.

What is never a negative of a pair ``p``:

* a passage with the same *identity* as a gold passage of ``p``'s query: gold passages are the positives
  of every pair in ``p``'s group (any language) and of every pair with the same ``(lang, query text)``
  (a JSONL source may list a query with several gold passages under different ids). Identity is
  ``positive_id`` / ``negative_id`` when the source gives one (shared by translations, so a translation
  of the positive is caught), else the exact ``(lang, text)`` (:func:`polyret.data.records.passage_identity`,
  the one definition); the exact text
  of a gold passage is excluded as well.
* a candidate that fails the false-negative guard. The guard follows sentence-transformers'
  ``mine_hard_negatives`` (``sentence_transformers/util/hard_negatives.py``, v6.2) and keeps its names
  and semantics: with ``pos`` the query's score for its positive,

  - ``absolute_margin``: skip a candidate if ``score + absolute_margin > pos``;
  - ``relative_margin``: skip it if ``score > pos - |pos| * relative_margin`` (0.05: keep a negative only
    if it scores at least 5% of the positive's magnitude below it; NV-Retriever's TopK-PercPos 95%);
  - ``max_score`` / ``min_score``: skip it if ``score > max_score`` / ``score < min_score``;
  - ``range_max``: only the ``range_max`` best-scoring candidates (after the identity exclusion) are
    considered; default, as there, ``range_min + 10 * k`` when a margin or score bound is set, else
    ``range_min + k``;
  - ``range_min``: of the candidates that pass, skip the ``range_min`` best, then take the next ``k``
    (sentence-transformers' ``sampling_strategy="top"``).

  Counters are kept per rule, in that order, over the candidates still standing (as there).

Why not call ``mine_hard_negatives`` itself: it searches one corpus for all anchors and recognises a
positive only by its exact text, so it knows neither languages nor passage identities, and it embeds
with its own cache rather than polyret's. The loop here is the same selection with those two additions.

:func:`mine` writes the result as JSONL that ``polyret train`` reads (``negative`` a list of k texts,
``negative_id`` the aligned identities), atomically, plus ``<output>.stats.json``.

The module is a little over 400 lines because it is one procedure (candidates, exclusion, guard,
selection, writing) whose rules are documented here once; splitting it would separate the rules from
the code that applies them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyret.data.records import Pair, PairGroups, passage_identity

GUARD_RULES = ("absolute_margin", "relative_margin", "max_score", "min_score")


def positive_identity(pair: Pair) -> tuple[str, ...]:
    """:func:`passage_identity` of a pair's positive: ``pair.positive_id`` if set, else (lang, text).

    Args:
        pair: a training pair.
    """
    return passage_identity(pair.lang, pair.positive, pair.positive_id)


@dataclass
class MineStats:
    """What :func:`mine_negatives` did; ``skipped`` counts candidates per exclusion rule.

    Args:
        k: negatives asked for per pair.
        pairs, written, short, dropped, negatives: counts (see the field comments).
        candidates: distinct passage texts per language.
        skipped: candidates skipped per rule (``identity`` and the guard rules).
        mean_positive_score, mean_negative_score: mean scores of positives and of written negatives.
    """

    k: int
    pairs: int = 0  # pairs mined for
    written: int = 0  # pairs in the output
    short: int = 0  # pairs that got fewer than k negatives
    dropped: int = 0  # short pairs left out of the output (keep_short=False)
    negatives: int = 0  # negatives written
    candidates: dict[str, int] = field(default_factory=dict)  # distinct passage texts per language
    skipped: dict[str, int] = field(default_factory=lambda: {"identity": 0, **{r: 0 for r in GUARD_RULES}})
    mean_positive_score: float | None = None
    mean_negative_score: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Passages:
    """The distinct passage texts of one language: identity codes and the first explicit id of each."""

    texts: list[str] = field(default_factory=list)
    unit: dict[str, int] = field(default_factory=dict)  # text -> unit number
    label: list[str | None] = field(default_factory=list)  # first explicit passage id seen for the text
    by_code: dict[int, list[int]] = field(default_factory=dict)  # identity code -> units carrying it


def _registry_files(spec: object, data_dir) -> list[Path]:
    """The local files a registry source (``xquad-r:train``) is read from, wherever they may be (the data
    root, the download cache); nothing for a file path or an unknown id."""
    from polyret.data.download import local_candidates
    from polyret.data.registry import benchmark_info

    if not isinstance(spec, str):
        return []
    try:
        info = benchmark_info(spec)
    except (ValueError, KeyError):
        return []
    return [path for remote in info.files for path in local_candidates(remote, data_dir=data_dir)]


def _check_guard(relative_margin, absolute_margin, max_score, min_score) -> None:
    for name, value in (("relative_margin", relative_margin), ("absolute_margin", absolute_margin),
                        ("max_score", max_score), ("min_score", min_score)):  # fmt: skip
        if value is not None and not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if relative_margin is not None and relative_margin < 0:
        raise ValueError(f"relative_margin must be >= 0, got {relative_margin}")


def _check_ranges(k: int, range_min: int, range_max: int | None, guarded: bool) -> int:
    if k < 1:
        raise ValueError(f"k (negatives per pair) must be >= 1, got {k}")
    if range_min < 0:
        raise ValueError(f"range_min must be >= 0, got {range_min}")
    if range_max is None:
        range_max = range_min + (10 * k if guarded else k)
    if range_max <= range_min:
        raise ValueError(f"range_min ({range_min}) must be smaller than range_max ({range_max})")
    if k > range_max - range_min:
        raise ValueError(
            f"cannot mine {k} negatives per pair: only {range_max - range_min} candidates remain after "
            f"skipping the first range_min={range_min} of range_max={range_max}"
        )
    return range_max


def mine_negatives(
    pairs: PairGroups,
    model,
    *,
    k: int = 3,
    relative_margin: float | None = 0.05,
    absolute_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    range_min: int = 0,
    range_max: int | None = None,
    keep_short: bool = False,
    batch_size: int = 64,
    cache=None,
    chunk_elements: int = 1 << 24,
    precision: str = "auto",
) -> tuple[PairGroups, MineStats]:
    """Mine ``k`` hard negatives for every pair of ``pairs`` (see the module docstring for the rules).

    Args:
        pairs: the training source; its positives and existing negatives are the candidate pool.
        model: a sentence-transformers model (``polyret.models.load``); its query / passage prompts apply.
        k: negatives per pair.
        relative_margin: false-negative guard, sentence-transformers semantics (``None``: off).
        absolute_margin: the same with an absolute margin (``None``: off).
        max_score: skip candidates scoring above this (``None``: off).
        min_score: skip candidates scoring below this (``None``: off).
        range_min: skip this many of the best candidates that pass the guard.
        range_max: consider only this many best candidates per query (default as sentence-transformers).
        keep_short: keep pairs that got fewer than ``k`` negatives (else they are dropped and counted).
        batch_size: encoding batch size.
        cache: an :class:`~polyret.encode.EmbeddingCache` of this model, or ``None``.
        chunk_elements: scores held at once (query rows x candidates) in the search.
        precision: encoding precision (``auto``: :func:`polyret.precision.resolve` for the model's device).

    Returns:
        (a new :class:`PairGroups` whose pairs carry the mined negatives, the :class:`MineStats`).
    """
    from polyret.encode import encode

    _check_guard(relative_margin, absolute_margin, max_score, min_score)
    guarded = any(v is not None for v in (relative_margin, absolute_margin, max_score, min_score))
    range_max = _check_ranges(k, range_min, range_max, guarded)
    stats = MineStats(k=k, settings=dict(
        relative_margin=relative_margin, absolute_margin=absolute_margin, max_score=max_score,
        min_score=min_score, range_min=range_min, range_max=range_max, keep_short=keep_short,
    ))  # fmt: skip

    # ---- identities as integer codes; the distinct passages of each language
    codes: dict[tuple[str, ...], int] = {}

    def code(key: tuple[str, ...]) -> int:
        return codes.setdefault(key, len(codes))

    pool: dict[str, _Passages] = {}

    def add(lang: str, text: str, passage_id: str | None) -> int:
        p = pool.setdefault(lang, _Passages())
        unit = p.unit.get(text)
        if unit is None:
            unit = p.unit[text] = len(p.texts)
            p.texts.append(text)
            p.label.append(passage_id)
            p.by_code.setdefault(code(passage_identity(lang, text, None)), []).append(unit)
        elif p.label[unit] is None:
            p.label[unit] = passage_id
        if passage_id is not None:
            units = p.by_code.setdefault(code(passage_identity(lang, text, passage_id)), [])
            if unit not in units:
                units.append(unit)
        return unit

    flat: list[Pair] = [pair for by_lang in pairs.groups.values() for pair in by_lang.values()]
    own_unit = []
    for pair in flat:
        own_unit.append(add(pair.lang, pair.positive, pair.positive_id))
        for text, nid in zip(pair.negatives, pair.negative_ids):
            add(pair.lang, text, nid)
    # gold identities of a group (all its languages) and of a (lang, query text)
    gold_by_group: dict[str, set[int]] = {}
    gold_by_query: dict[tuple[str, str], set[int]] = {}
    for pair in flat:
        gold = {code(positive_identity(pair)), code(passage_identity(pair.lang, pair.positive, None))}
        gold_by_group.setdefault(pair.group, set()).update(gold)
        gold_by_query.setdefault((pair.lang, pair.query), set()).update(gold)
    stats.pairs = len(flat)
    stats.candidates = {lang: len(p.texts) for lang, p in sorted(pool.items())}

    mined: list[tuple[list[int], np.ndarray]] = [([], np.zeros(0, np.float32))] * len(flat)
    pos_scores = np.zeros(len(flat), dtype=np.float64)
    for lang in sorted(pool):
        p = pool[lang]
        rows = [i for i, pair in enumerate(flat) if pair.lang == lang]
        q_emb = encode(model, [flat[i].query for i in rows], kind="query", batch_size=batch_size, cache=cache,
                       precision=precision)  # fmt: skip
        c_emb = encode(model, p.texts, kind="passage", batch_size=batch_size, cache=cache, precision=precision)
        n_cand = len(p.texts)
        chunk = max(1, min(len(rows), chunk_elements // max(1, n_cand)))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            scores = q_emb[start : start + len(part)] @ c_emb.T  # cosine: encode() L2-normalises
            own = np.asarray([own_unit[i] for i in part])
            pos = scores[np.arange(len(part)), own].astype(np.float64)
            pos_scores[part] = pos
            for r, i in enumerate(part):
                pair = flat[i]
                gold = gold_by_group[pair.group] | gold_by_query[(lang, pair.query)]
                excluded = {u for c in gold for u in p.by_code.get(c, ())}
                stats.skipped["identity"] += len(excluded) - 1  # the positive itself is not news
                scores[r, list(excluded)] = -np.inf
            picks, picked_scores = _select(scores, pos, k=k, range_min=range_min, range_max=range_max,
                                           absolute_margin=absolute_margin, relative_margin=relative_margin,
                                           max_score=max_score, min_score=min_score, skipped=stats.skipped)  # fmt: skip
            for r, i in enumerate(part):
                mined[i] = (picks[r], picked_scores[r])

    # ---- the new source
    out: dict[str, dict[str, Pair]] = {}
    neg_scores = []
    for i, pair in enumerate(flat):
        units, s = mined[i]
        if len(units) < k:
            stats.short += 1
            if not keep_short:
                stats.dropped += 1
                continue
        p = pool[pair.lang]
        negative = tuple(p.texts[u] for u in units)
        negative_id = tuple(p.label[u] for u in units)
        out.setdefault(pair.group, {})[pair.lang] = Pair(
            group=pair.group, lang=pair.lang, query=pair.query, positive=pair.positive, negative=negative or None,
            source=pair.source, positive_id=pair.positive_id,
            negative_id=negative_id if negative and any(x is not None for x in negative_id) else None,
        )  # fmt: skip
        stats.written += 1
        stats.negatives += len(units)
        neg_scores.append(s)
    if flat:
        stats.mean_positive_score = round(float(pos_scores.mean()), 6)
    if stats.negatives:
        stats.mean_negative_score = round(float(np.concatenate(neg_scores).mean()), 6)
    return PairGroups(name=pairs.name, groups=out), stats


def _select(
    scores: np.ndarray,
    pos: np.ndarray,
    *,
    k: int,
    range_min: int,
    range_max: int,
    absolute_margin: float | None,
    relative_margin: float | None,
    max_score: float | None,
    min_score: float | None,
    skipped: dict[str, int],
) -> tuple[list[list[int]], list[np.ndarray]]:
    """Per row of ``scores`` (excluded candidates already at -inf): the chosen candidates, best first."""
    n_rows, n_cand = scores.shape
    width = min(range_max, n_cand)
    if width == 0:
        return [[] for _ in range(n_rows)], [np.zeros(0, np.float32) for _ in range(n_rows)]
    # the range_max best per row, ordered by score, ties by candidate number (deterministic)
    if width < n_cand:
        top = np.sort(np.argpartition(-scores, width - 1, axis=1)[:, :width], axis=1)
    else:
        top = np.tile(np.arange(n_cand), (n_rows, 1))
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1).astype(np.float64)
    keep = np.isfinite(top_scores)
    pos_col = pos[:, None]
    rules = []
    if absolute_margin is not None:
        rules.append(("absolute_margin", top_scores + absolute_margin > pos_col))
    if relative_margin is not None:
        rules.append(("relative_margin", top_scores > pos_col - np.abs(pos_col) * relative_margin))
    if max_score is not None:
        rules.append(("max_score", top_scores > max_score))
    if min_score is not None:
        rules.append(("min_score", top_scores < min_score))
    for name, removed in rules:
        removed &= keep
        skipped[name] += int(removed.sum())
        keep &= ~removed
    rank = np.cumsum(keep, axis=1) - 1
    chosen = keep & (rank >= range_min) & (rank < range_min + k)
    picks = [top[r][chosen[r]].tolist() for r in range(n_rows)]
    picked = [top_scores[r][chosen[r]].astype(np.float32) for r in range(n_rows)]
    return picks, picked


def write_mined_jsonl(path: str | os.PathLike, pairs: PairGroups) -> int:
    """Write pairs as the JSONL ``load_pairs`` reads (negatives as lists), atomically; returns the rows.

    Args:
        path: the output file (replaced only once it is completely written).
        pairs: the pairs, e.g. from :func:`mine_negatives`.
    """
    from polyret.paths import atomic_path

    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for by_lang in pairs.groups.values():
            for pair in by_lang.values():
                row = {"id": pair.group, "lang": pair.lang, "query": pair.query, "positive": pair.positive,
                       "positive_id": pair.positive_id, "negative": list(pair.negatives),
                       "negative_id": list(pair.negative_ids)}  # fmt: skip
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    return n


def stats_path(output: str | os.PathLike) -> Path:
    """Where :func:`mine` writes its statistics: ``<output>.stats.json``.

    Args:
        output: the mined JSONL file.
    """
    output = Path(output)
    return output.with_name(output.name + ".stats.json")


def mine(
    train: str,
    output: str | os.PathLike,
    *,
    model: str | Any = "builtin:me5-small",
    k: int = 3,
    languages: Sequence[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    relative_margin: float | None = 0.05,
    absolute_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    range_min: int = 0,
    range_max: int | None = None,
    keep_short: bool = False,
    batch_size: int = 64,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    device: str | None = None,
    max_seq_length: int | None = None,
    precision: str = "auto",
) -> MineStats:
    """Load a training source, mine ``k`` negatives per pair with ``model``, write JSONL + stats.

    Args:
        train: a training source spec as ``polyret train --train`` takes (``xquad-r:train``, a .jsonl, ...).
        output: the JSONL to write (``polyret train --train <output> --set negatives=<k>`` reads it).
        model: a model spec for ``polyret.models.load`` or a loaded model (default: the base model).
        k: negatives per pair.
        languages: only these languages (default: all the source has).
        data_dir: the data root (the data-dir setting).
        max_groups: a seeded subsample of groups of the source.
        seed: the subsample's seed.
        relative_margin: see :func:`mine_negatives` (the others likewise).
        absolute_margin: see :func:`mine_negatives`.
        max_score: see :func:`mine_negatives`.
        min_score: see :func:`mine_negatives`.
        range_min: see :func:`mine_negatives`.
        range_max: see :func:`mine_negatives`.
        keep_short: see :func:`mine_negatives`.
        batch_size: encoding batch size.
        cache: read and write polyret's embedding cache for this model.
        cache_dir: cache root (default: the user cache).
        device: torch device for the model.
        max_seq_length: truncate texts to this many tokens.
        precision: encoding precision: ``auto`` (:func:`polyret.precision.resolve` for the model's device),
            ``fp32``, ``bf16`` or ``fp16``; the stats record the resolved one.

    Returns:
        The :class:`MineStats` (also written to :func:`stats_path`).
    """
    from polyret import models
    from polyret.data.pairs import load_pairs
    from polyret.encode import EmbeddingCache
    from polyret.encode.stream import resolve_for
    from polyret.errors import ConfigError
    from polyret.guards import check_outputs_spare_inputs
    from polyret.paths import atomic_write_text, check_writable, output_lock
    from polyret.paths import cache_dir as resolve_cache_dir
    from polyret.precision import CHOICES

    if precision not in CHOICES:
        raise ValueError(f"precision: unknown {precision!r}; choose from {', '.join(CHOICES)}")
    guarded = any(v is not None for v in (relative_margin, absolute_margin, max_score, min_score))
    _check_guard(relative_margin, absolute_margin, max_score, min_score)  # NaN margins too, before the model loads
    _check_ranges(k, range_min, range_max, guarded)  # before the model and data are loaded
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed (of the --max-groups subsample) must be an integer >= 0, got {seed!r}")
    models.check_device(device, option="--device")
    target = Path(output).expanduser()
    if target.is_dir():
        raise ValueError(f"--output {target} is a folder; name the JSONL file to write")
    check_outputs_spare_inputs(
        {"--train": train, "--model": model if isinstance(model, str) else None,
         f"--train's data files ({train})": _registry_files(train, data_dir)},
        {"--output": target, "the stats file of --output": stats_path(target)},
    )  # fmt: skip
    if isinstance(model, str) and Path(model).expanduser().is_dir():  # never a file of the scoring model's folder
        folder = Path(model).expanduser().resolve()
        for name, out in (("--output", target), ("the stats file of --output", stats_path(target))):
            if folder in out.resolve().parents:
                raise ConfigError(f"{name} {out} is inside the model folder --model {model}: write the mined file elsewhere")
    check_writable(target.parent, what="the folder of --output")  # now, not after the encoding
    with output_lock(target, "polyret mine", file=True):  # one writer of this file; dead writers' temp files removed
        source = load_pairs(train, data_dir=data_dir, languages=languages, max_groups=max_groups, seed=seed)
        spec = model if isinstance(model, str) else type(model).__name__
        if isinstance(model, str):
            model = models.load(model, device=device, max_seq_length=max_seq_length, cache_dir=cache_dir)
        precision = resolve_for(model, precision)  # recorded resolved, never "auto"
        emb_cache = None
        if cache:
            emb_cache = EmbeddingCache.for_model(models.fingerprint(model),
                                                 root=resolve_cache_dir(cache_dir) / "embeddings")  # fmt: skip
        pairs, stats = mine_negatives(
            source, model, k=k, relative_margin=relative_margin, absolute_margin=absolute_margin, max_score=max_score,
            min_score=min_score, range_min=range_min, range_max=range_max, keep_short=keep_short,
            batch_size=batch_size, cache=emb_cache, precision=precision,
        )  # fmt: skip
        stats.settings.update(train=train, model=spec, languages=list(source.languages), max_groups=max_groups,
                              seed=seed, output=str(output), precision=precision)  # fmt: skip
        if not pairs.groups:
            raise ValueError(
                f"{train}: no pair got {k} negatives (of {stats.pairs}); lower k, range_min or the margins, or pass keep_short"
            )
        # stats describe the JSONL beside them: drop stale ones first, so a crash leaves none rather than wrong ones
        stats_path(output).unlink(missing_ok=True)
        write_mined_jsonl(output, pairs)
        atomic_write_text(stats_path(output), json.dumps(stats.to_dict(), indent=2) + "\n")
        return stats
