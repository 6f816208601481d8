"""Training-free remedies on stored embeddings: what each method does, LEACE's guarantee, the refusals,
the cache, and the remedy run from ``polyret evaluate``."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.evaluation import debias
from polyret.training.config import ConfigError

LANGS = ("de", "en", "zh")


def synthetic(n_groups=40, dim=12, seed=0):
    """Parallel data: one meaning vector per group, plus a fixed offset per language (the "bias")."""
    rng = np.random.default_rng(seed)
    meaning = rng.normal(size=(n_groups, dim))
    offset = {lg: rng.normal(size=dim) * 2 for lg in LANGS}
    q_offset = {lg: rng.normal(size=dim) * 2 for lg in LANGS}
    qs, ps, langs, groups = [], [], [], []
    for g in range(n_groups):
        for lg in LANGS:
            qs.append(meaning[g] + q_offset[lg] + rng.normal(size=dim) * 0.05)
            ps.append(meaning[g] + offset[lg] + rng.normal(size=dim) * 0.05)
            langs.append(lg)
            groups.append(f"q{g}")
    data = debias.FitData(
        query_texts=[""] * len(qs),
        query_langs=np.asarray(langs),
        query_groups=np.asarray(groups),
        passage_texts=[""] * len(ps),
        passage_langs=np.asarray(langs),
        passage_groups=np.asarray(groups),
    )
    return np.asarray(qs, np.float32), np.asarray(ps, np.float32), data, offset


def test_center_removes_each_language_mean():
    q, p, data, _ = synthetic()
    tr = debias.fit_transform("center", q, p, data)
    for lg in LANGS:
        sel = data.passage_langs == lg
        assert np.allclose(tr.arrays["passage_means"][tr.langs.index(lg)], p[sel].mean(0), atol=1e-5)
    out = tr.apply(p, data.passage_langs, "passage")
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # re-normalised for cosine search


def test_shift_vector_is_the_mean_offset_from_english_and_leaves_queries():
    q, p, data, offset = synthetic()
    tr = debias.fit_transform("shift", q, p, data)
    de = tr.arrays["shift_vectors"][tr.langs.index("de")]
    assert np.allclose(de, offset["de"] - offset["en"], atol=0.05)  # noise 0.05 per coordinate, averaged
    assert np.allclose(tr.arrays["shift_vectors"][tr.langs.index("en")], 0.0)
    assert np.array_equal(tr.apply(q, data.query_langs, "query"), q)  # the index side only
    shifted = tr.apply(p, data.passage_langs, "passage")
    # after the shift a German passage's nearest passage is one of its translations, not another German one
    de_rows = np.flatnonzero(data.passage_langs == "de")
    for emb, expected in ((p, False), (shifted, True)):
        sims = emb[de_rows] @ emb.T
        sims[np.arange(len(de_rows)), de_rows] = -np.inf
        same_group = data.passage_groups[np.argmax(sims, axis=1)] == data.passage_groups[de_rows]
        assert bool(same_group.mean() > 0.9) is expected


def test_leace_leaves_no_linear_trace_of_the_language():
    q, p, data, _ = synthetic()
    tr = debias.fit_transform("leace", q, p, data)
    x = np.concatenate([q, p]).astype(np.float64)
    lab = np.concatenate([data.query_langs, data.passage_langs])
    left, right, bias = tr.arrays["proj_left"], tr.arrays["proj_right"], tr.arrays["bias"]
    erased = x - ((x - bias) @ right.T) @ left.T  # before re-normalisation: LEACE's guarantee
    means = np.stack([erased[lab == lg].mean(0) for lg in LANGS])
    # linear guardedness: every class-conditional mean equals the overall mean, so no linear
    # classifier beats the constant one (Belrose et al. 2023, Theorem 3.1)
    assert np.abs(means - erased.mean(0)).max() < 1e-8
    before = np.stack([x[lab == lg].mean(0) for lg in LANGS])
    assert np.abs(before - x.mean(0)).max() > 0.5  # there was a language signal to remove


def test_refusals_name_the_key():
    debias.check_debias_options(None, None, 300, "xquad-r:test")
    with pytest.raises(ConfigError, match="is \\(or contains\\) the evaluated benchmark"):
        debias.check_debias_options("shift", "xquad-r:test", 300, "xquad-r:test")
    with pytest.raises(ConfigError, match="contains"):
        debias.check_debias_options("shift", "xquad-r", 300, "xquad-r:test")
    with pytest.raises(ConfigError, match="unknown remedy 'tilt'"):
        debias.check_debias_options("tilt", "xquad-r:train", 300, "xquad-r:test")
    with pytest.raises(ConfigError, match="needs the data it is fitted on"):
        debias.check_debias_options("center", None, 300, "xquad-r:test")
    with pytest.raises(ConfigError, match="without a remedy"):
        debias.check_debias_options(None, "xquad-r:train", 300, "xquad-r:test")
    debias.check_debias_options("leace", "xquad-r:train", 300, "xquad-r:test")


def test_shared_passages_are_refused():
    from polyret.data.records import Benchmark, Candidate, Query

    a = Benchmark("a", ("en",), [Query("q", "en", "q?")], [Candidate("en:1", "en", "x")], {"q": {"en:1": 1}})
    b = Benchmark("b", ("en",), [Query("r", "en", "r?")], [Candidate("en:1", "en", "x")], {"r": {"en:1": 1}})
    with pytest.raises(ConfigError, match="shares 1 passage"):
        debias.check_disjoint(a, b)


def test_cache_round_trip_and_checksum(tmp_path):
    q, p, data, _ = synthetic()
    tr = debias.fit_transform("center", q, p, data)
    path = debias.cache_file(tmp_path, "fp", "center", "xquad-r:train", 300)
    assert path.name == "center__xquad-r_train__q300.npz"
    digest = debias.save_transform(tr, path)
    back = debias.load_transform(path)
    assert back.info["sha256"] == digest and back.langs == tr.langs
    assert np.array_equal(back.arrays["query_means"], tr.arrays["query_means"])
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF  # a flipped byte: the checksum no longer matches, the transform is fitted again
    path.write_bytes(bytes(raw))
    assert debias.load_transform(path) is None


runner = CliRunner()


@pytest.mark.slow
def test_evaluate_debias_from_the_command_line(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    base = ["evaluate", "--model", tiny_model_dir, "--benchmark", "xquad-r:test", "--languages", "de,en"]
    refused = runner.invoke(app, [*base, "--debias", "shift", "--debias-fit", "xquad-r:test", "--output", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "evaluated benchmark" in refused.output
    assert not (tmp_path / "x" / "results.json").exists()
    out = tmp_path / "out"
    args = [*base, "--debias", "shift", "--debias-fit", "xquad-r:train", "--debias-fit-max-queries", "8"]
    result = runner.invoke(app, [*args, "--bias-measures", "max_rank_distance,peer,mrc", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    rec = data["debias"]
    assert (
        rec["method"] == "shift" and rec["fit"] == "xquad-r:train" and rec["n_fit_queries"] == 8 * 2
    )  # de, en: the evaluated languages
    assert len(rec["sha256"]) == 64 and rec["from_cache"] is False
    assert set(data["language_bias"]["measures"]) == {"max_rank_distance", "peer", "mrc"}
    assert "lpr" not in data["language_bias"] and 0 <= data["language_bias"]["peer"] <= 1
    header = (out / "settings.csv").read_text().splitlines()[0].split(",")
    assert "peer" in header and "mrc" in header
    again = runner.invoke(app, [*args, "--output", str(tmp_path / "out2")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "out2" / "results.json").read_text())["debias"]["from_cache"] is True
