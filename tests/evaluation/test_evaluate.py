"""evaluate(): encode once, score every setting, write files that other tools can read."""

import json

import numpy as np
import pytest
import pytrec_eval

from polyret.data import load_benchmark
from polyret.data.records import Benchmark
from polyret.evaluation import Results, evaluate, score
from tests.helpers.benchmarks import random_embeddings, tiny_benchmark


def test_score_matches_trec_eval_per_setting():
    bench = tiny_benchmark()
    q, c = random_embeddings(bench)
    res, run = score(bench, q, c, measures=["map", "ndcg@10"])
    assert len(res.per_setting) == 3 + 6 + 3
    # independent: build each setting's full ranking by brute force and ask trec_eval
    for name, vals in res.per_setting.items():
        family, _, rest = name.partition(":")
        qlang = rest.split("-")[0]
        pool = {"mono": {qlang}, "cross": {rest.split("-")[-1]}, "multi": set(bench.languages)}[family]
        qrels, runs = {}, {}
        for qi, query in enumerate(bench.queries):
            if query.lang != qlang:
                continue
            gold = {d: r for d, r in bench.qrels[query.id].items() if d.split(":")[0] in pool}
            if not gold:
                continue
            qrels[query.id] = gold
            runs[query.id] = {cand.id: float(q[qi] @ c[ci]) for ci, cand in enumerate(bench.candidates) if cand.lang in pool}
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut_10"}).evaluate(runs)
        assert vals["map"] == pytest.approx(np.mean([v["map"] for v in ev.values()]), abs=1e-6)
        assert vals["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in ev.values()]), abs=1e-6)
        assert vals["n_queries"] == len(qrels)
    for family in ("mono", "cross", "multi"):
        expect = np.mean([v["map"] for n, v in res.per_setting.items() if n.startswith(family)])
        assert res.macro[family]["map"] == pytest.approx(expect)


def test_results_files_round_trip(tmp_path):
    bench = tiny_benchmark()
    q, c = random_embeddings(bench)
    res, _ = score(bench, q, c, model_name="random")
    files = res.write(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    # the documented keys other tools rely on
    assert data["settings"]["mono"]["map"] == pytest.approx(res.macro["mono"]["map"])
    assert data["settings"]["cross"]["pairs"]["de-en"]["map"] == pytest.approx(res.per_setting["cross:de-en"]["map"])
    assert data["settings"]["multi"]["per_language"]["zh"]["map"] == pytest.approx(res.per_setting["multi:zh"]["map"])
    assert isinstance(data["language_bias"]["max_rank_distance"], float)
    assert files["heatmap"].stat().st_size > 1000
    back = Results.load(tmp_path)
    assert back.macro == res.macro and back.per_setting == res.per_setting
    assert len(back.per_query) == len(res.per_query)
    np.testing.assert_allclose(back.per_query.values["map"], res.per_query.values["map"], atol=1e-5)
    header = (tmp_path / "settings.csv").read_text().splitlines()[0]
    assert header.startswith("setting,family,query_lang,pool_lang,n_queries,map")
    assert not list(tmp_path.glob(".*tmp"))


def test_per_query_rank_distance_column_matches_bias_mean():
    bench = tiny_benchmark()
    q, c = random_embeddings(bench)
    res, _ = score(bench, q, c)
    col = res.per_query.values["max_rank_distance"]
    multi = np.array([s.startswith("multi:") for s in res.per_query.setting])
    assert np.isnan(col[~multi]).all() and np.isfinite(col[multi]).all()
    langs = np.array(res.per_query.query_lang)
    per_lang = [col[multi & (langs == lang)].mean() for lang in bench.languages]
    assert res.bias["max_rank_distance"] == pytest.approx(np.mean(per_lang))


def test_evaluate_with_tiny_model_encodes_once_and_caches(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    bench = load_benchmark("xquad-r:test", languages=["de", "en"])
    small = Benchmark(
        bench.id, bench.languages, [q for q in bench.queries if int(q.id, 16) % 8 == 0], bench.candidates, bench.qrels
    )
    res = evaluate(tiny_model_dir, small, output=tmp_path / "out", progress=False)
    assert set(res.macro) == {"mono", "cross", "multi"}
    assert res.timing["encode_s"] > 0
    shards = list((tmp_path / "cache" / "embeddings").rglob("shard-*.npz"))
    n_keys = 0
    for shard in shards:  # one cached embedding per distinct (kind, text), none twice
        with np.load(shard) as z:
            assert z["emb"].ndim == 2 and len(z["emb"]) == len(z["keys"])
            n_keys += len(z["keys"])
    assert n_keys == len({q.text for q in small.queries}) + len({c.text for c in small.candidates})
    # second and third runs (a fresh load, then the same model object twice): all from the cache
    from polyret.models import load

    model = load(tiny_model_dir)
    for _ in range(2):
        again = evaluate(model, small, progress=False)
        assert again.macro == res.macro
        assert sorted((tmp_path / "cache" / "embeddings").rglob("shard-*.npz")) == sorted(shards)


def test_unknown_language_is_a_clear_error():
    bench = tiny_benchmark()
    with pytest.raises(ValueError, match=r"benchmark '.*' has no language xx; it has de, en, zh"):
        evaluate("unused", bench, languages=["xx"], progress=False)


# ------------------------------------------------------------------ completion marker, output checks


def test_write_puts_the_completion_marker_last_and_rewrites_clear_it(tmp_path, monkeypatch):
    from polyret.evaluation.pipeline import write_evaluation
    from polyret.evaluation.results import is_done
    from polyret.paths import COMPLETE_MARKER

    bench = tiny_benchmark()
    q, c = random_embeddings(bench)
    res, run = score(bench, q, c, model_name="random")
    files = write_evaluation(res, tmp_path / "out", run=run)  # the verb's writer: the results' files + MTEB's
    marker = json.loads((tmp_path / "out" / COMPLETE_MARKER).read_text())
    tasks = ("Polyret-tiny-mono.json", "Polyret-tiny-cross.json", "Polyret-tiny-multi.json", "model_meta.json")
    mteb = {f"mteb/results/local__random/no_revision_available/{n}" for n in tasks}
    written = {"results.json", "settings.csv", "per_query.csv.gz", "heatmap_map.png", "run.npz", "run.trec", "qrels.trec"}
    assert set(marker["files"]) == written | mteb
    assert marker["kind"] == "evaluation" and is_done(tmp_path / "out")
    assert files["run"].is_file()
    # the marker is the last file written: its mtime is at least every other's
    assert all(p.stat().st_mtime_ns <= (tmp_path / "out" / COMPLETE_MARKER).stat().st_mtime_ns for p in files.values())
    # a rewrite removes the marker first: a crash mid-way (here: drawing the heatmap) leaves no marker
    import polyret.plotting

    def boom(*a, **k):
        raise RuntimeError("crash while drawing")

    monkeypatch.setattr(polyret.plotting, "heatmap", boom)
    with pytest.raises(RuntimeError):
        res.write(tmp_path / "out")
    assert not (tmp_path / "out" / COMPLETE_MARKER).exists() and not is_done(tmp_path / "out")
    assert (tmp_path / "out" / "results.json").exists()  # present but not trusted


def test_folder_of_an_older_polyret_without_marker_is_not_done(tmp_path):
    from polyret.evaluation.results import is_done
    from polyret.paths import COMPLETE_MARKER

    bench = tiny_benchmark()
    q, c = random_embeddings(bench)
    res, _ = score(bench, q, c)
    res.write(tmp_path, heatmap=False)
    assert is_done(tmp_path)
    (tmp_path / COMPLETE_MARKER).unlink()  # the layout written before markers existed
    assert not is_done(tmp_path)
    res.write(tmp_path, heatmap=False)
    (tmp_path / "per_query.csv.gz").write_bytes(b"")  # truncated after the marker was written
    assert not is_done(tmp_path)


def test_unusable_output_fails_before_the_model_is_loaded(tmp_path):
    bench = tiny_benchmark()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # "no-such-model" would fail to load; the output check must come first
    with pytest.raises(ValueError, match="a-file exists and is not a folder"):
        evaluate("no-such-model", bench, output=blocker, progress=False)
    with pytest.raises(ValueError, match="a-file exists and is not a folder"):
        evaluate("no-such-model", bench, output=blocker / "sub", progress=False)
    assert blocker.read_text() == "x"


def test_qrels_naming_unknown_candidates_in_a_multilingual_benchmark_fail_before_the_model(tmp_path):
    from polyret.data.records import DataError

    bench = tiny_benchmark()
    bench.qrels["q0"]["fr:404"] = 1
    with pytest.raises(DataError, match=r"qrels of query 'q0' name candidate 'fr:404'.*1 such judgements"):
        evaluate("no-such-model", bench, progress=False)


def _unreadable(root):
    """Paths under ``root`` lacking group/other read (files 0644, folders 0755 wanted)."""
    import stat

    bad = []
    for p in sorted(root.rglob("*")):
        mode = stat.S_IMODE(p.stat().st_mode)
        want = 0o755 if p.is_dir() else 0o644
        if mode & want != want:
            bad.append(f"{p.relative_to(root)} {oct(mode)}")
    return bad


def test_results_report_and_cache_files_are_group_and_other_readable_under_umask_022(tmp_path):
    import os

    from polyret.encode import EmbeddingCache
    from polyret.report import build_report, load_entries

    old = os.umask(0o022)
    try:
        bench = tiny_benchmark()
        q, c = random_embeddings(bench)
        res, run = score(bench, q, c, model_name="random")
        res.write(tmp_path / "evals" / "base" / "tiny", run=run)
        build_report(load_entries(tmp_path), tmp_path / "report", n_resamples=20)
        EmbeddingCache(tmp_path / "cache" / "fp").put([b"k" * 16], np.ones((1, 4), dtype=np.float32) / 2)
    finally:
        os.umask(old)
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) >= 9
    assert _unreadable(tmp_path) == []


class _AnyInfo(dict):
    """Training info for the model card: any key the card asks for exists."""

    def __missing__(self, key):
        return 1


def test_trained_model_folder_is_group_and_other_readable_under_umask_022(tmp_path, tiny_model_dir):
    import os

    from polyret.models import load
    from polyret.training.card import write_final_model as _write_final_model
    from polyret.training.config import TrainConfig

    model = load(tiny_model_dir)
    old = os.umask(0o022)
    try:
        _write_final_model(model, tmp_path / "model", TrainConfig(), _AnyInfo(languages=["de"]), tmp_path / "none")
    finally:
        os.umask(old)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert _unreadable(tmp_path) == []
