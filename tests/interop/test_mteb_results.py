"""MTEB result files round-trip through the ``mteb`` package itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.evaluation import score
from polyret.evaluation.mteb_export import MTEB_LANGUAGES, mteb_measure_name, mteb_task_name, write_mteb_results
from tests.helpers.benchmarks import tiny_benchmark

mteb = pytest.importorskip("mteb")

MEASURES = ["map", "map@20", "ndcg@10", "recall@1", "recall@10", "recall@100", "mrr@10", "p@5", "success@10"]


@pytest.fixture(scope="module")
def scored():
    bench = tiny_benchmark(n_q=8)
    rng = np.random.default_rng(4)
    q = rng.normal(size=(len(bench.queries), 16)).astype(np.float32)
    c = rng.normal(size=(len(bench.candidates), 16)).astype(np.float32)
    res, _ = score(bench, q, c, measures=MEASURES, model_name="org/tiny-model")
    res.fingerprint = "0123456789abcdef"
    return res


def test_measure_names_follow_mtebs_retrieval_evaluator():
    assert [mteb_measure_name(m) for m in MEASURES] == [
        "polyret_map", "map_at_20", "ndcg_at_10", "recall_at_1", "recall_at_10", "recall_at_100", "mrr_at_10",
        "precision_at_5", "hit_rate_at_10",
    ]  # fmt: skip
    assert mteb_task_name("xquad-r:test") == "Polyret-xquad-r-test" and mteb_task_name("miracl/de") == "Polyret-miracl-de"


def test_language_codes_are_valid_mteb_codes():
    from mteb.languages import check_language_code

    for code in MTEB_LANGUAGES.values():
        check_language_code(code)  # raises on an unknown ISO 639-3 or script code


def test_files_round_trip_through_mteb(scored, tmp_path):
    written = write_mteb_results(scored, tmp_path)
    folder = tmp_path / "results" / "org__tiny-model" / "0123456789abcdef"
    assert written["mteb_model_meta"] == folder / "model_meta.json"
    assert {k: v.name for k, v in written.items() if k.startswith("mteb_task_")} == {
        "mteb_task_mono": "Polyret-tiny-mono.json", "mteb_task_cross": "Polyret-tiny-cross.json",
        "mteb_task_multi": "Polyret-tiny-multi.json",
    }  # fmt: skip

    entries = {}
    for family in ("mono", "cross", "multi"):
        one = mteb.TaskResult.from_disk(written[f"mteb_task_{family}"])
        assert one.task_name == f"Polyret-tiny-{family}" and list(one.scores) == ["test"]
        assert one.mteb_version == mteb.__version__  # the installed version, not a constant
        rows = {e["hf_subset"]: e for e in one.scores["test"]}
        assert {r["polyret_setting"].split(":")[0] for r in rows.values()} == {family}  # one family per task
        # MTEB's task score is the family's own macro mean: a leaderboard number means one thing
        assert one.get_score() == pytest.approx(scored.macro[family]["ndcg@10"], abs=1e-6)
        entries.update(rows)
    assert len(entries) == len(scored.per_setting) == 12  # one entry per setting
    assert {"de-de", "de-en", "de-all"} <= set(entries)
    assert entries["de-en"]["languages"] == ["deu-Latn", "eng-Latn"]
    assert entries["de-all"]["languages"] == ["deu-Latn", "eng-Latn", "zho-Hans"]
    for name, vals in scored.per_setting.items():
        fam, _, rest = name.partition(":")
        subset = {"mono": f"{rest}-{rest}", "cross": rest, "multi": f"{rest}-all"}[fam]
        e = entries[subset]
        assert e["main_score"] == pytest.approx(vals["ndcg@10"], abs=1e-6)  # MTEB rounds to 6 digits on disk
        assert e["map_at_20"] == pytest.approx(vals["map@20"], abs=1e-6)
        assert e["polyret_map"] == pytest.approx(vals["map"], abs=1e-6)
        assert e["polyret_setting"] == name and e["polyret_n_queries"] == vals["n_queries"]
    bias = scored.bias["per_language"]["de"]
    assert entries["de-all"]["polyret_max_rank_distance"] == pytest.approx(bias["max_rank_distance"], abs=1e-6)
    assert "polyret_max_rank_distance" not in entries["de-de"]

    # MTEB's own result cache finds the model and its tasks, and reads each family's score back
    cache = mteb.ResultCache(tmp_path)
    results = cache.load_results(include_remote=False, require_model_meta=True)
    (model_result,) = list(results.model_results)
    assert model_result.model_name == "org/tiny-model" and model_result.model_revision == "0123456789abcdef"
    got = {t.task_name: t.get_score() for t in model_result.task_results}
    assert got == pytest.approx({f"Polyret-tiny-{f}": scored.macro[f]["ndcg@10"] for f in ("mono", "cross", "multi")}, abs=1e-6)
    assert json.loads(written["mteb_model_meta"].read_text())["languages"] == ["deu-Latn", "eng-Latn", "zho-Hans"]


def test_two_models_in_one_cache_each_load_their_own_scores(scored, tmp_path):
    import copy

    from polyret.evaluation.mteb_export import mteb_model_name

    other = copy.deepcopy(scored)
    other.model, other.fingerprint = str(tmp_path / "runs" / "hybrid" / "model"), "fedcba9876543210"
    for vals in other.per_setting.values():
        vals["ndcg@10"] = vals["ndcg@10"] / 2
    for fam in other.macro:
        other.macro[fam]["ndcg@10"] /= 2
    (tmp_path / "runs" / "hybrid" / "model").mkdir(parents=True)
    (tmp_path / "runs" / "hybrid" / "model" / "polyret_train.json").write_text("{}")
    assert mteb_model_name(other.model) == "local/hybrid"  # a training output is named after its run
    assert mteb_model_name("builtin:me5-small") == "polyret/builtin-me5-small"  # not intfloat's own weights
    write_mteb_results(scored, tmp_path / "cache")
    write_mteb_results(other, tmp_path / "cache")
    results = mteb.ResultCache(tmp_path / "cache").load_results(include_remote=False, require_model_meta=True)
    by_model = {(m.model_name, m.model_revision): m for m in results.model_results}
    assert set(by_model) == {("org/tiny-model", "0123456789abcdef"), ("local/hybrid", "fedcba9876543210")}
    for key, res in ((("org/tiny-model", "0123456789abcdef"), scored), (("local/hybrid", "fedcba9876543210"), other)):
        got = {t.task_name: t.get_score() for t in by_model[key].task_results}
        assert got["Polyret-tiny-mono"] == pytest.approx(res.macro["mono"]["ndcg@10"], abs=1e-6)
        assert got["Polyret-tiny-multi"] == pytest.approx(res.macro["multi"]["ndcg@10"], abs=1e-6)


def test_an_evaluation_folder_holds_the_mteb_files_inside_its_completed_step(scored, tmp_path):
    from polyret.evaluation.pipeline import write_evaluation
    from polyret.evaluation.results import is_done
    from polyret.paths import COMPLETE_MARKER

    write_evaluation(scored, tmp_path / "out", heatmap=False)  # what evaluate() and polyret score write
    assert is_done(tmp_path / "out")
    listed = json.loads((tmp_path / "out" / COMPLETE_MARKER).read_text())["files"]
    assert "mteb/results/org__tiny-model/0123456789abcdef/Polyret-tiny-multi.json" in listed
    # the results' own writer knows nothing of MTEB: the verb adds the export
    scored.write(tmp_path / "plain", heatmap=False)
    assert is_done(tmp_path / "plain") and not (tmp_path / "plain" / "mteb").exists()


def test_the_interop_path_still_exports_the_mteb_writer():
    import polyret.evaluation.mteb_export as moved
    import polyret.interop.mteb_results as old

    assert old.write_mteb_results is moved.write_mteb_results and set(old.__all__) == set(moved.__all__)
