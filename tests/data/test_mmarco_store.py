"""mMARCO as the paper uses it: every triple (or k per query), joined by id across languages on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyret.data import mmarco
from polyret.data.mmarco import mmarco_local_files, mmarco_pairs, mmarco_source
from polyret.data.pairs import load_pair_source
from polyret.data.pairstore import PairSource
from polyret.data.records import DataError
from polyret.training.pairs_dataset import PairIndex
from tests.helpers.pairs import reference_identity_codes

LANGS = ("en", "de", "fr")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


def build_copy(root: Path, n_queries: int = 40, n_passages: int = 60, seed: int = 0) -> dict:
    """A seeded mMARCO-format copy; returns the texts and triples the files hold (the reference)."""
    rng = np.random.default_rng(seed)
    texts = {}
    for li, lang in enumerate(LANGS):
        queries = {str(1000 + q): f"{lang} query {q}" for q in range(n_queries) if not (li and q % 7 == 3)}
        passages = {str(5000 + p): f"{lang} passage {p}\twith a tab" for p in range(n_passages) if not (li == 2 and p % 5 == 0)}
        (root / lang).mkdir(parents=True)
        order = rng.permutation(list(queries))  # files in any order
        (root / lang / "queries.tsv").write_text("".join(f"{k}\t{queries[k]}\n" for k in order) + "\n", encoding="utf-8")
        (root / lang / "collection.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in passages.items()), encoding="utf-8")
        texts[lang] = (queries, passages)
    triples = []
    for q in range(n_queries):
        pos = str(5000 + int(rng.integers(n_passages)))
        for _ in range(int(rng.integers(1, 5))):
            triples.append((str(1000 + q), pos, str(5000 + int(rng.integers(n_passages)))))
    order = rng.permutation(len(triples))
    triples = [triples[i] for i in order]  # a query's triples spread over the file
    (root / "triples.tsv").write_text("".join("\t".join(t) + "\n" for t in triples), encoding="utf-8")
    return {"texts": texts, "triples": triples}


def reference(copy: dict, langs, k: int | None) -> dict:
    """group -> {lang: (query, positive, negative, pos id, neg id)}, computed with plain dicts."""
    seen: dict[str, int] = {}
    out: dict[str, dict] = {}
    for qid, pos, neg in copy["triples"]:
        rank = seen.get(qid, 0)
        seen[qid] = rank + 1
        if k is not None and rank >= k:
            continue
        gid = qid if rank == 0 else f"{qid}#{rank}"
        for lang in langs:
            queries, passages = copy["texts"][lang]
            if qid in queries and pos in passages and neg in passages:
                out.setdefault(gid, {})[lang] = (queries[qid], passages[pos].strip(), passages[neg].strip(), pos, neg)
    return out


@pytest.mark.parametrize("k", [None, 1, 2])
def test_every_triple_joined_across_languages(tmp_path, k):
    copy = build_copy(tmp_path / "mm")
    got = mmarco_pairs(mmarco_local_files(tmp_path / "mm"), max_triples_per_query=k).groups
    want = reference(copy, sorted(LANGS), k)
    assert sorted(got) == sorted(want) and len(got) == (len(copy["triples"]) if k is None else len(got))
    for gid, by_lang in want.items():
        assert {lang: (p.query, p.positive, p.negative, p.positive_id, p.negative_id) for lang, p in got[gid].items()} == by_lang
    assert list(got)[0] == copy["triples"][0][0]  # groups in triples-file order


def test_the_trainer_view_is_integer_rows_over_the_store(tmp_path):
    build_copy(tmp_path / "mm")
    view = load_pair_source(f"mmarco:{tmp_path / 'mm'}", languages=["fr", "en"], max_groups=30, seed=2)
    assert isinstance(view, PairSource) and len(view) == 30 and view.languages == ("en", "fr")
    index = PairIndex([view])
    pos, neg = reference_identity_codes([view.to_pair_groups()], index.num_negatives)
    assert np.array_equal(index.pair_positive, pos) and np.array_equal(index.pair_negative, neg)
    again = PairIndex([view.to_pair_groups()])  # the same pairs as Pair objects: through their own store
    assert index.texts(np.arange(index.num_rows)) == again.texts(np.arange(again.num_rows))
    # a passage id is one identity in every language: translations never meet as in-batch negatives
    g = view.to_pair_groups().groups
    multi = next(gid for gid, by_lang in g.items() if len(by_lang) == 2)
    rows = index.group_start[list(index.group_ids).index(multi)] + np.arange(2)
    assert index.pair_positive[rows[0]] == index.pair_positive[rows[1]]
    assert view.store.meta["languages"] == ["en", "fr"]


def test_qrels_give_one_group_per_relevant_passage(tmp_path):
    copy = build_copy(tmp_path / "mm")
    (tmp_path / "mm" / "triples.tsv").unlink()
    (tmp_path / "mm" / "qrels.tsv").write_text("1000 0 5001 1\n1000 0 5002 1\n1000 0 5003 0\n1001 5004\n", encoding="utf-8")
    got = mmarco_pairs(mmarco_local_files(tmp_path / "mm"), languages=["en"]).groups
    assert list(got) == ["1000", "1000#1", "1001"]
    assert got["1000#1"]["en"].positive == copy["texts"]["en"][1]["5002"].strip() and got["1000"]["en"].negative is None
    one = mmarco_pairs(mmarco_local_files(tmp_path / "mm"), languages=["en"], max_triples_per_query=1).groups
    assert list(one) == ["1000", "1001"]


def test_store_is_rebuilt_when_a_collection_changes_and_errors_name_the_line(tmp_path):
    build_copy(tmp_path / "mm")
    a = mmarco_source(f"mmarco:{tmp_path / 'mm'}", files=mmarco_local_files(tmp_path / "mm"), languages=["de"])
    b = mmarco_source(f"mmarco:{tmp_path / 'mm'}", files=mmarco_local_files(tmp_path / "mm"), languages=["de"])
    assert a.store.folder == b.store.folder
    coll = tmp_path / "mm" / "de" / "collection.tsv"
    coll.write_text(coll.read_text(encoding="utf-8") + "no-tab-line\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"de/collection\.tsv:61: expected 'id<TAB>text'"):
        mmarco_source(f"mmarco:{tmp_path / 'mm'}", files=mmarco_local_files(tmp_path / "mm"), languages=["de"])
    with pytest.raises(DataError, match="max_triples_per_query must be >= 1"):
        mmarco_source(f"mmarco:{tmp_path / 'mm'}", files=mmarco_local_files(tmp_path / "mm"), languages=["en"],
                      max_triples_per_query=0)  # fmt: skip
    with pytest.raises(DataError, match=r"\(mMARCO files\) has no language xx"):
        mmarco_source(f"mmarco:{tmp_path / 'mm'}", files=mmarco_local_files(tmp_path / "mm"), languages=["xx"])


def test_the_hub_path_reads_the_hub_file_names(tmp_path, monkeypatch):
    """The Hub copy goes through ``hub_dataset_file`` (huggingface_hub); here it answers from local files."""
    copy = build_copy(tmp_path / "mm")
    local = {"data/triples.train.ids.small.tsv": tmp_path / "mm" / "triples.tsv"}
    for lang, full in (("en", "english"), ("de", "german")):
        local[f"data/google/queries/train/{full}_queries.train.tsv"] = tmp_path / "mm" / lang / "queries.tsv"
        local[f"data/google/collections/{full}_collection.tsv"] = tmp_path / "mm" / lang / "collection.tsv"
    asked = []
    monkeypatch.setattr(mmarco, "hub_dataset_file", lambda repo, name: asked.append((repo, name)) or local[name])
    view = load_pair_source("mmarco", languages=["de", "en"], max_triples_per_query=1)
    assert {r for r, _ in asked} == {"unicamp-dl/mmarco"} and {n for _, n in asked} == set(local)
    assert sorted(view.to_pair_groups().groups) == sorted(reference(copy, ["de", "en"], 1))
    with pytest.raises(DataError, match="needs an explicit language list"):
        load_pair_source("mmarco")


def test_the_config_field_chooses_every_triple_or_k_per_query(tmp_path):
    from polyret.training.config import ConfigError, TrainConfig
    from polyret.training.pair_sources import load_training_sources

    copy = build_copy(tmp_path / "mm")
    spec = f"mmarco:{tmp_path / 'mm'}"
    for k in (None, 1, 2):
        config = TrainConfig.from_dict({"train": [spec], "languages": ["de", "en"], "max_triples_per_query": k})
        (view,) = load_training_sources(config)
        assert len(view) == len(reference(copy, ["de", "en"], k))
    assert TrainConfig().with_overrides([f"train={spec}", "max_triples_per_query=2"]).max_triples_per_query == 2
    with pytest.raises(ConfigError, match="max_triples_per_query must be >= 1"):
        TrainConfig(train=(spec,), max_triples_per_query=0)
    with pytest.raises(ConfigError, match="applies to mmarco sources only"):
        load_training_sources(TrainConfig(train=("pairs.jsonl",), max_triples_per_query=1))
