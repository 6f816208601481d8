"""Issue 9: no passage (or its translation) twice in a global batch; identities from the loaders; audit."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from polyret.data.lareqa import parse_lareqa_file
from polyret.data.pairs import lareqa_pairs, lareqa_passage_identities
from polyret.data.records import Pair, PairGroups
from polyret.training.pairs_dataset import PairIndex
from polyret.training.samplers import STRATEGIES, ParallelBatchSampler

LANGS = ("de", "en", "fr")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_xquad = pytest.mark.skipif(not (SHARED / "xquad-r" / "en.json").is_file(), reason="shared XQuAD-R absent")


def colliding_source(name: str = "c", n_groups: int = 240, seed: int = 0, negatives: bool = True) -> PairGroups:
    """Groups full of deliberate identity collisions, seeded.

    * ~1/3 of the groups share a passage id (all languages) with another group (shared positives);
    * some groups share a passage with another group in ONE language only (the translation case:
      A's de gold is B's de gold, their en golds differ);
    * some groups have no ids: their de text equals another id-less group's de text (fallback by text);
    * hard negatives are often another group's positive passage.
    """
    rng = np.random.default_rng(seed)
    shared = rng.integers(0, n_groups // 3, n_groups)  # passage number per group; many repeats
    groups: dict[str, dict[str, Pair]] = {}
    for g in range(n_groups):
        gid = f"{name}{g}"
        kind = g % 5
        by_lang = {}
        for lang in LANGS:
            if kind == 4 and lang == "fr":
                continue  # ragged: some groups lack a language
            if kind == 3:  # no ids; de text collides with the neighbouring id-less group
                pid, text = None, (f"dup-{g // 10}" if lang == "de" else f"own-{g}-{lang}")
            elif kind == 2 and lang == "de":  # one-language collision with a passage of another group
                pid, text = f"P{shared[(g + 7) % n_groups]}", f"x-{g}"
            elif kind == 2:
                pid, text = f"own{g}", f"own-{g}-{lang}"
            else:
                pid, text = f"P{shared[g]}", f"P{shared[g]}-{lang}"
            neg = neg_id = None
            if negatives:
                other = int(rng.integers(0, n_groups // 3))
                neg_id, neg = (f"P{other}", f"P{other}-{lang}") if rng.random() < 0.5 else (None, f"n-{g}-{lang}")
            by_lang[lang] = Pair(gid, lang, f"q-{g}-{lang}", text, neg, name, positive_id=pid, negative_id=neg_id)
        groups[gid] = by_lang
    return PairGroups(name, groups)


def identity_sets(src: PairGroups, negatives: bool = True) -> dict[str, tuple[set, set]]:
    """Oracle, from the records (not the index): group id -> (positive identities, negative identities)."""
    out = {}
    for gid, by_lang in src.groups.items():
        pos = {("i", p.positive_id) if p.positive_id is not None else ("t", p.lang, p.positive) for p in by_lang.values()}
        neg = {("i", p.negative_id) if p.negative_id is not None else ("t", p.lang, p.negative)
               for p in by_lang.values() if p.negative is not None and negatives}  # fmt: skip
        out[gid] = (pos, neg)
    return out


def assert_global_batches_clean(sampler: ParallelBatchSampler, batches: list[list[int]], oracle) -> int:
    """Every micro-step's global batch (world_size consecutive batches) is conflict-free; returns their count."""
    w = sampler.world_size
    assert len(batches) % w == 0
    for m in range(len(batches) // w):
        groups = [g for b in batches[m * w : (m + 1) * w] for g in sampler.describe(b).groups]
        assert len(groups) == len(set(groups)) == sampler.batch_size * w
        for a, b in itertools.combinations(groups, 2):
            (pa, na), (pb, nb) = oracle[a], oracle[b]
            assert not pa & pb, (m, a, b, pa & pb)
            assert not na & pb and not pa & nb, (m, a, b)
        # and per example, from the index codes: no repeated positive, no negative that is another's positive
        d = sampler.index.decode([i for b in batches[m * w : (m + 1) * w] for i in b])
        pos, neg = sampler.index.pair_positive[d.passage_row], sampler.index.pair_negative[d.passage_row]
        assert len(np.unique(pos)) == len(pos)
        others = neg[:, :, None] == pos[None, None, :]  # example x negative column x batch positive
        others[np.arange(len(pos)), :, np.arange(len(pos))] = False  # its own positive is the data's business
        assert not others[neg >= 0].any()
    return len(batches) // w


@pytest.fixture(scope="module")
def source() -> PairGroups:
    return colliding_source()


@pytest.fixture(scope="module")
def index(source) -> PairIndex:
    return PairIndex([source, colliding_source("d", 120, seed=1)])


# ------------------------------------------------------------------------------------------ index codes
def test_index_codes_follow_ids_then_exact_text(source, index):
    assert index.pair_positive.dtype == np.int32 and index.pair_negative.dtype == np.int32
    assert index.pair_positive.shape == (index.num_pairs,) and index.pair_negative.shape == (index.num_pairs, 1)
    assert index.num_identities == len(
        np.unique(np.concatenate([index.pair_positive, index.pair_negative[index.pair_negative >= 0]]))
    )
    rows = {}
    row = 0
    for src in ("c", "d"):
        for gid, by_lang in (source.groups if src == "c" else colliding_source("d", 120, seed=1).groups).items():
            for lang in sorted(by_lang):
                rows[(src, gid, lang)] = row
                row += 1
    code = lambda key: int(index.pair_positive[rows[key]])  # noqa: E731
    g = source.groups
    # same id -> same code in every language (translations); same text without id -> same code
    a, b = next((x, y) for x, y in itertools.combinations(g, 2)
                if g[x]["en"].positive_id and g[x]["en"].positive_id == g[y]["en"].positive_id)  # fmt: skip
    assert code(("c", a, "de")) == code(("c", a, "en")) == code(("c", b, "fr"))
    assert code(("c", "c3", "de")) == code(("c", "c8", "de"))  # "dup-0", no ids
    assert code(("c", "c3", "en")) != code(("c", "c3", "de"))  # no id: translations are not caught
    # identities are namespaced per source: the same id in source d is another code
    same_id_other_source = [
        k
        for k in rows
        if k[0] == "d"
        and k[2] == "en"
        and colliding_source("d", 120, seed=1).groups[k[1]]["en"].positive_id == g[a]["en"].positive_id
    ]
    assert all(int(index.pair_positive[rows[k]]) != code(("c", a, "en")) for k in same_id_other_source)
    # a negative id that is some positive's id gets that positive's code
    for (src, gid, lang), r in rows.items():
        if src == "c" and g[gid][lang].negative_id is not None:
            match = [rows[("c", h, "en")] for h in g if g[h]["en"].positive_id == g[gid][lang].negative_id]
            if match:
                assert int(index.pair_negative[r, 0]) == int(index.pair_positive[match[0]])
                break
    else:
        pytest.fail("no negative id matched a positive id")
    dropped = PairIndex([source], negatives=False)
    assert (dropped.pair_negative == -1).all()


# ------------------------------------------------------------------------------- the property test
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("world_size", [1, 2, 4])
@pytest.mark.parametrize("accum", [1, 2])
def test_no_global_batch_repeats_a_passage(source, index, strategy, world_size, accum):
    oracle = {**identity_sets(source), **identity_sets(colliding_source("d", 120, seed=1))}
    bs = 8 // world_size if world_size > 1 else 6
    make = lambda **kw: ParallelBatchSampler(index, bs, strategy=strategy, alpha=0.5, seed=5,  # noqa: E731
                                             world_size=world_size, grad_accum_steps=accum, **kw)  # fmt: skip
    sampler = make()
    deferred = 0
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert assert_global_batches_clean(sampler, batches, oracle) == len(batches) // world_size
        infos = sampler.plan(epoch)
        deferred += sum(i.deferred for i in infos if i.rank == 0)
        # step type and micro-step are shared by the global batch as before
        for m in range(len(infos) // world_size):
            chunk = infos[m * world_size : (m + 1) * world_size]
            assert len({(i.kind, i.language, i.source, i.step, i.deferred) for i in chunk}) == 1
    assert deferred > 0  # the collisions were real and the sampler had to defer groups
    # deterministic, and exact resume at several points (state_dict and per-rank views agree)
    sampler.set_epoch(1)
    full = list(sampler)
    again = make()
    again.set_epoch(1)
    assert list(again) == full
    for k in (1, len(full) // 3, len(full) - 1):
        resumed = make()
        resumed.set_epoch(1)
        resumed.load_state_dict(sampler.state_dict(consumed=k))
        assert list(resumed) == full[k:]
    for r in range(world_size):
        own = make(rank=r)
        own.set_epoch(1)
        assert list(own) == full[r::world_size]


def test_deferred_groups_come_back_and_data_is_not_dropped(source):
    ix = PairIndex([source])
    sampler = ParallelBatchSampler(ix, 16, strategy="mixed", seed=2)
    batches = list(sampler)
    used = [g for b in batches for g in sampler.describe(b).groups]
    infos = sampler.plan(0)
    assert sum(i.deferred for i in infos) > 0
    # the epoch's blocks take as many groups as the source has; deferring only pushes groups later, so
    # a group repeats only once a pass has run dry, after (almost) every group was used
    assert len(batches) == len(source) // 16
    first_repeat = next((i for i, g in enumerate(used) if g in used[:i]), len(used))
    assert first_repeat >= 0.9 * len(source)
    assert len(set(used)) >= 0.9 * len(source)


def test_conflict_free_data_keeps_the_group_only_batches():
    """Data whose identities never collide gives exactly the stream of the group-only rule (old streams)."""
    src = colliding_source("u", 120, negatives=False)
    ix = PairIndex([src])
    ix_unique = PairIndex([src])
    ix_unique.pair_positive = np.arange(ix.num_pairs, dtype=np.int32)  # every passage distinct
    ix_unique.num_identities = ix.num_pairs
    a = ParallelBatchSampler(ix_unique, 8, strategy="hybrid", seed=1)
    assert not a._conflicts.dirty.any() and sum(i.deferred for i in a.plan(0)) == 0
    b = ParallelBatchSampler(ix, 8, strategy="hybrid", seed=1)
    assert list(a) != list(b)  # the collisions change the batches ...
    assert [i.kind for i in a.plan(0)] == [i.kind for i in b.plan(0)]  # ... not the batch types


def test_too_few_distinct_passages_is_an_error_that_counts_them():
    groups = {
        f"g{i}": {lang: Pair(f"g{i}", lang, f"q{i}{lang}", f"p{i % 10}{lang}", positive_id=f"P{i % 10}") for lang in LANGS}
        for i in range(50)
    }
    ix = PairIndex([PairGroups("small", groups)])
    for strategy in STRATEGIES:
        with pytest.raises(ValueError, match=r"10 distinct passages"):
            ParallelBatchSampler(ix, 8, strategy=strategy, world_size=2)
    ParallelBatchSampler(ix, 5, strategy="hybrid", world_size=2)  # 10 groups fit


def test_a_source_whose_negatives_leave_too_few_compatible_groups_fails_at_sampling():
    # 20 distinct positives, but group i's negative is group i+1's positive: at most 10 fit together
    groups = {}
    for i in range(20):
        groups[f"g{i}"] = {lang: Pair(f"g{i}", lang, f"q{i}", f"p{i}", f"p{(i + 1) % 20}", "ring",
                                      positive_id=f"P{i}", negative_id=f"P{(i + 1) % 20}") for lang in LANGS}  # fmt: skip
    ix = PairIndex([PairGroups("ring", groups)])
    sampler = ParallelBatchSampler(ix, 12, strategy="mixed", seed=0)
    with pytest.raises(ValueError, match=r"source 'ring' cannot fill a batch of 12 groups .* 20 distinct passages"):
        list(sampler)
    ok = ParallelBatchSampler(ix, 6, strategy="mixed", seed=0)
    assert all(len(b) == 6 for b in ok)


# ---------------------------------------------------------------------------------- LAReQA identity
def _paragraph(sentences: list[str], qas: list[tuple[str, int]]) -> dict:
    context, breaks, pos = "", [], 0
    for s in sentences:
        if context:
            context += " "
            pos += 1
        breaks.append([pos, pos + len(s)])
        context += s
        pos += len(s)
    qa = [{"id": qid, "question": f"{qid}?", "answers": [{"text": "x", "answer_start": breaks[si][0] + 1}]}
          for qid, si in qas]  # fmt: skip
    return {"context": context, "sentences": sentences, "sentence_breaks": breaks, "qas": qa}


@pytest.fixture
def lareqa_dir(tmp_path) -> Path:
    """en/de/th with different sentence splits: de merges en sentences 1+2, th has 2 sentences.

    q1 (en E0, de D0, th T0), q2 (en E1, de D1, th T0), q3 (en E2, de D1), q4 (en E3, de D2):
    q1~q2 through th, q2~q3 through de -> one identity; q4 alone. Paragraph 1: q5, q6 distinct.
    Paragraph 2 (en only): q7's gold is the same TEXT as q5's en gold -> q5's identity.
    """
    root = tmp_path / "data" / "xquad-r"
    root.mkdir(parents=True)
    paragraphs = {
        "en": [_paragraph(["E0 a.", "E1 b.", "E2 c.", "E3 d."], [("q1", 0), ("q2", 1), ("q3", 2), ("q4", 3)]),
               _paragraph(["F0 same.", "F1 x."], [("q5", 0), ("q6", 1)]),
               _paragraph(["Z0 y.", "F0 same."], [("q7", 1)])],
        "de": [_paragraph(["D0 a.", "D1 bc.", "D2 d."], [("q1", 0), ("q2", 1), ("q3", 1), ("q4", 2)]),
               _paragraph(["G0 s.", "G1 x."], [("q5", 0), ("q6", 1)])],
        "th": [_paragraph(["T0 ab.", "T1 cd."], [("q1", 0), ("q2", 0)]),
               _paragraph(["H0 s.", "H1 x."], [("q5", 0), ("q6", 1)])],
    }  # fmt: skip
    for lang, pars in paragraphs.items():
        doc = {"version": 1.0, "data": [{"title": "A", "paragraphs": pars}]}
        (root / f"{lang}.json").write_text(json.dumps(doc), encoding="utf-8")
    return tmp_path / "data"


def test_lareqa_identity_links_translations_and_shared_golds(lareqa_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    files = {lang: parse_lareqa_file(lareqa_dir / "xquad-r" / f"{lang}.json", lang) for lang in ("de", "en", "th")}
    ident = lareqa_passage_identities(files)
    assert ident[("en", 0, 0, 0)] == ident[("de", 0, 0, 1)] == ident[("th", 0, 0, 0)] == ident[("en", 0, 0, 2)]
    assert ident[("en", 0, 0, 0)] == "de:0:0:0"  # the smallest candidate id of the component
    assert ident[("en", 0, 0, 3)] == ident[("de", 0, 0, 2)] != ident[("en", 0, 0, 0)]
    assert ident[("th", 0, 0, 1)] == "th:0:0:1"  # nobody's gold: its own identity
    assert ident[("en", 0, 2, 1)] == ident[("en", 0, 1, 0)] == ident[("th", 0, 1, 0)]  # same text, same passage
    assert ident[("en", 0, 1, 1)] != ident[("en", 0, 1, 0)]

    pairs = lareqa_pairs("xquad-r", None, data_dir=lareqa_dir, languages=["de", "en", "th"], download=False,
                         hard_negatives=True, seed=0)  # fmt: skip
    pid = {gid: {p.positive_id for p in by_lang.values()} for gid, by_lang in pairs.groups.items()}
    assert all(len(ids) == 1 for ids in pid.values())  # one identity per question, in every language
    assert pid["q1"] == pid["q2"] == pid["q3"] and pid["q4"] != pid["q1"]
    assert pid["q5"] == pid["q7"] != pid["q6"]
    q4 = pairs.groups["q4"]["en"]
    assert q4.negative is not None and q4.negative_id == ident[("en", 0, 0, ["E0 a.", "E1 b.", "E2 c."].index(q4.negative))]
    # the sampler sees 4 distinct passages among the 7 questions: a batch of 5 is refused, 2 is served clean
    ix = PairIndex([pairs])
    with pytest.raises(ValueError, match="4 distinct passages"):
        ParallelBatchSampler(ix, 5, strategy="mixed")
    sampler = ParallelBatchSampler(ix, 2, strategy="mixed", seed=0)
    for b in sampler:
        codes = ix.pair_positive[ix.decode(b).passage_row]
        assert len(set(codes.tolist())) == 2


@needs_xquad
def test_real_xquad_train_identities_and_clean_batches():
    from polyret.data.pairs import load_pairs

    pairs = load_pairs("xquad-r:train", data_dir=SHARED, download=False, hard_negatives=True)
    ix = PairIndex([pairs])
    per_group = {gid: {p.positive_id for p in by.values()} for gid, by in pairs.groups.items()}
    assert all(len(s) == 1 for s in per_group.values())
    distinct = len({next(iter(s)) for s in per_group.values()})
    assert len(pairs) == 629 and distinct < 413  # fewer identities than distinct English golds
    oracle = identity_sets(pairs, negatives=ix.has_negatives)
    for strategy in ("hybrid", "mixed"):
        sampler = ParallelBatchSampler(ix, 32, strategy=strategy, seed=0)
        assert assert_global_batches_clean(sampler, list(sampler), oracle) == len(sampler)


def test_every_one_of_k_mined_negatives_is_kept_apart_from_the_batch_positives():
    """k = 3 negatives per pair (a mined file): each negative's identity is a column of ``pair_negative``
    and the sampler keeps every one of them away from the other examples' positives."""
    from polyret.data.records import Pair

    rng = np.random.default_rng(5)
    groups = {}
    for i in range(120):
        others = rng.choice([j for j in range(120) if j != i], size=3, replace=False)
        groups[f"g{i}"] = {
            lang: Pair(
                f"g{i}",
                lang,
                f"q{i} {lang}",
                f"p{i} {lang}",
                positive_id=f"P{i}",
                negative=tuple(f"p{j} {lang}" for j in others),
                negative_id=tuple(f"P{j}" for j in others),
            )
            for lang in ("de", "en")
        }
    index = PairIndex([PairGroups("mined", groups)], negatives=3)
    assert index.pair_negative.shape == (index.num_pairs, 3)
    assert set(index.pair_negative.ravel().tolist()) <= set(index.pair_positive.tolist())
    for strategy in ("mono", "cross", "hybrid", "mixed"):
        sampler = ParallelBatchSampler(index, 8, strategy=strategy, seed=3)
        for batch in sampler:
            d = index.decode(batch)
            pos, neg = index.pair_positive[d.passage_row], index.pair_negative[d.passage_row]
            assert len(np.unique(pos)) == len(pos)
            assert not np.isin(neg, pos).any(), strategy  # no negative is a positive of this batch
