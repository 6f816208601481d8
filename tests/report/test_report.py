"""The experiment report: tables, significance over question clusters, seeds, JSON and the folder layout."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from polyret.data.records import Benchmark, Candidate, DataError, Query
from polyret.evaluation import score
from polyret.evaluation.significance import (
    cluster_matrix,
    macro_mean,
    paired_cluster_bootstrap,
    paired_cluster_randomization,
)
from polyret.experiment.layout import benchmark_slug, eval_dir
from polyret.report import (
    BenchmarkSummary,
    Column,
    ColumnStats,
    Interval,
    LanguageTable,
    Report,
    ReportEntry,
    SystemSummary,
    analyse,
    build_report,
    load_entries,
    read_report,
)

LANGS = ("en", "de", "fr")
N_Q, N_DISTRACT, DIM = 24, 12, 16
# system -> (noise, language offset): lower noise = better retrieval, lower offset = less language bias
SYSTEMS = {"base": (1.6, 1.2), "mono": (1.2, 1.0), "cross": (1.25, 0.6), "hybrid": (1.05, 0.5)}


def tiny_benchmark(bench_id: str = "tiny:test", langs: tuple[str, ...] = LANGS, families=("mono", "cross", "multi")):
    queries, cands, qrels = [], [], {}
    for i in range(N_Q):
        qid = f"q{i}"
        for lang in langs:
            queries.append(Query(qid, lang, f"{qid} {lang}"))
            cands.append(Candidate(f"{qid}-{lang}", lang, "answer"))
        qrels[qid] = {f"{qid}-{lang}": 1 for lang in langs}
    for j in range(N_DISTRACT):
        for lang in langs:
            cands.append(Candidate(f"d{j}-{lang}", lang, "distractor"))
    return Benchmark(bench_id, langs, queries, cands, qrels, families=families)


def embeddings(bench: Benchmark, noise: float, offset: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each question and its answers share a topic vector; languages add an offset; the seed adds noise."""
    topics = np.random.default_rng(100).normal(size=(N_Q + N_DISTRACT, DIM))
    lang_vec = np.random.default_rng(101).normal(size=(len(LANGS), DIM))
    rng = np.random.default_rng(seed)

    def topic(item_id: str) -> int:
        head = item_id.split("-")[0]
        return int(head[1:]) + (N_Q if head[0] == "d" else 0)

    q = np.stack([topics[topic(x.id)] + offset * lang_vec[LANGS.index(x.lang)] for x in bench.queries])
    c = np.stack([topics[topic(x.id)] + offset * lang_vec[LANGS.index(x.lang)] for x in bench.candidates])
    return q + noise * rng.normal(size=q.shape), c + noise * rng.normal(size=c.shape)


def make_entries(seeds=(1, 2), systems=SYSTEMS, bench=None) -> list[ReportEntry]:
    bench = bench or tiny_benchmark()
    out = []
    for k, (name, (noise, offset)) in enumerate(systems.items()):
        for sd in [None] if name == "base" else seeds:
            q, c = embeddings(bench, noise, offset, 7 if sd is None else 10 * sd + k)
            # the two older bias measures only (the published ones: tests/report/test_report_bias.py)
            res, _ = score(
                bench, q, c, model_name=name, measures=("map", "ndcg@10"), bias_measures=("max_rank_distance", "same_language")
            )
            out.append(ReportEntry(name, sd, bench.id, res))
    return out


@pytest.fixture(scope="module")
def entries() -> list[ReportEntry]:
    return make_entries()


@pytest.fixture(scope="module")
def report(entries, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    files = build_report(entries, out, title="Tiny", n_resamples=300, seed=0)
    return out, files


# ---- significance over question clusters --------------------------------------------------------------


def _slow_reference(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> tuple[float, np.ndarray]:
    """Loop version: draw questions, then per setting average the drawn questions it has, then over settings."""
    both = np.isfinite(a) & np.isfinite(b)
    rows, cols = both.any(axis=1), both.any(axis=0)
    a, b, both = a[np.ix_(rows, cols)], b[np.ix_(rows, cols)], both[np.ix_(rows, cols)]
    n_s, n_q = a.shape

    def macro(drawn: np.ndarray) -> float:
        per_setting = []
        for s in range(n_s):
            vals = [a[s, q] - b[s, q] for q in drawn if both[s, q]]
            if vals:
                per_setting.append(np.mean(vals))
        return float(np.mean(per_setting))

    rng = np.random.default_rng(seed)
    stats = []
    for lo in range(0, n_resamples, 256):  # same draws as the batched implementation
        idx = rng.integers(0, n_q, size=(min(256, n_resamples - lo), n_q))
        stats += [macro(row) for row in idx]
    return macro(np.arange(n_q)), np.array(stats)


def test_cluster_bootstrap_matches_slow_reference():
    rng = np.random.default_rng(0)
    a = rng.random((5, 30))
    b = a - 0.05 + rng.normal(0, 0.1, a.shape)
    a[rng.random(a.shape) < 0.2] = np.nan  # missing (setting, question) pairs
    b[0, :3] = np.nan
    a[:, 7] = np.nan  # a question nobody has in common
    observed, stats = _slow_reference(a, b, 300, seed=4)
    res = paired_cluster_bootstrap(a, b, n_resamples=300, seed=4)
    assert res.diff == pytest.approx(observed, abs=1e-12)
    low, high = np.quantile(stats, [0.025, 0.975])
    assert res.low == pytest.approx(low, abs=1e-12) and res.high == pytest.approx(high, abs=1e-12)
    extreme = np.count_nonzero(np.abs(stats - observed) >= abs(observed) - 1e-15)
    assert res.p == pytest.approx((extreme + 1) / 301)
    assert res.low < res.diff < res.high


def test_cluster_randomization_matches_slow_reference():
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 20)), rng.random((4, 20))
    a[1, ::3] = np.nan
    d = a - b
    mask = np.isfinite(d)
    observed = np.mean([d[s][mask[s]].mean() for s in range(4)])
    r = np.random.default_rng(9)
    extreme = 0
    for lo in range(0, 500, 256):
        signs = r.integers(0, 2, size=(min(256, 500 - lo), 20), dtype=np.int8) * 2 - 1
        for sg in signs:
            stat = np.mean([(sg * d[s])[mask[s]].mean() for s in range(4)])
            extreme += abs(stat) >= abs(observed) - 1e-15
    res = paired_cluster_randomization(a, b, n_resamples=500, seed=9)
    assert res.diff == pytest.approx(observed)
    assert res.p == pytest.approx((extreme + 1) / 501)


def test_cluster_tests_identical_and_shifted():
    rng = np.random.default_rng(2)
    a = rng.random((3, 40))
    same = paired_cluster_bootstrap(a, a.copy(), n_resamples=200)
    assert same.diff == 0 and same.low <= 0 <= same.high and same.p == 1.0
    assert paired_cluster_randomization(a, a.copy(), n_resamples=200).p == 1.0
    shifted = paired_cluster_bootstrap(a + 0.1 + rng.normal(0, 0.02, a.shape), a, n_resamples=500)
    assert 0 < shifted.low < shifted.diff < shifted.high
    assert paired_cluster_randomization(a + 0.1, a, n_resamples=500).p < 0.01
    with pytest.raises(ValueError):
        paired_cluster_bootstrap(a, a[:2])
    with pytest.raises(ValueError):
        paired_cluster_bootstrap(np.full((2, 2), np.nan), np.ones((2, 2)))


def test_cluster_matrix_gives_results_macro(entries):
    res = entries[1].results
    pq = res.per_query
    for family in ("mono", "cross", "multi"):
        rows = [i for i, s in enumerate(pq.setting) if s.startswith(family + ":")]
        _, _, mat = cluster_matrix([pq.setting[i] for i in rows], [pq.query_id[i] for i in rows], pq.values["map"][rows])
        assert macro_mean(mat) == pytest.approx(res.macro[family]["map"], abs=1e-12)
    with pytest.raises(ValueError, match="more than once"):
        cluster_matrix(["mono:en", "mono:en"], ["q1", "q1"], np.array([0.1, 0.2]))


# ---- the report ----------------------------------------------------------------------------------------


def _seed_mean(entries, system, get):
    return float(np.mean([get(e.results) for e in entries if e.system == system]))


def test_files_written(report):
    out, files = report
    assert files["markdown"] == out / "report.md" and files["json"] == out / "report.json"
    pngs = [p for k, p in files.items() if p.suffix == ".png"]
    keys = set(files)
    for name in ("base", "mono", "cross", "hybrid"):
        assert f"tiny:test/heatmap:{name}" in keys
    assert {"tiny:test/diff:hybrid-mono", "tiny:test/diff:hybrid-cross", "tiny:test/bars", "tiny:test/rank_distance"} <= keys
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = files["markdown"].read_text()
    for p in pngs:  # every figure is linked from the markdown, relative to the report folder
        assert f"]({p.relative_to(out).as_posix()})" in md
    assert not list(out.rglob("*.tmp"))


def test_main_table_best_and_diff_to_base(entries, report):
    out, _ = report
    md = (out / "report.md").read_text()
    main = md.split("### Main results")[1].split("### Seeds")[0]
    rows = {line.split("|")[1].strip(): line for line in main.splitlines() if line.startswith("| ")}
    get_cross = lambda r: r.macro["cross"]["map"]  # noqa: E731
    means = {s: _seed_mean(entries, s, get_cross) for s in SYSTEMS}
    best = max(means, key=means.get)
    stds = {s: float(np.std([get_cross(e.results) for e in entries if e.system == s], ddof=1)) for s in SYSTEMS if s != "base"}
    assert f"**{means[best]:.3f} \u00b1 {stds[best]:.3f}**" in rows[best]
    for s in SYSTEMS:
        if s not in (best, "base"):
            assert f"{means[s]:.3f} \u00b1 {stds[s]:.3f} (" in rows[s] and f"**{means[s]:.3f}" not in rows[s]
            assert f"({means[s] - means['base']:+.3f}" in rows[s]
    # rank distance: the LOWEST is bold
    get_rd = lambda r: r.bias["max_rank_distance"]  # noqa: E731
    rd = {s: _seed_mean(entries, s, get_rd) for s in SYSTEMS}
    low = min(rd, key=rd.get)
    assert re.search(rf"\*\*{rd[low]:.1f}( \u00b1 [0-9.]+)?\*\*", rows[low])
    assert "| base | \u2013 |" in md  # base: no seeds
    assert "Warning: every trained system was run with one seed" not in md


def test_json_numbers_and_round_trip(entries, report):
    out, files = report
    data = read_report(out)
    assert data == json.loads(files["json"].read_text())
    b = data["benchmarks"]["tiny:test"]
    assert b["languages"] == list(LANGS) and b["families"] == ["mono", "cross", "multi"]
    for s in SYSTEMS:
        sysd = b["systems"][s]
        assert sysd["n_seeds"] == (1 if s == "base" else 2)
        for fam in ("mono", "cross", "multi"):
            col = sysd["columns"][fam]
            vals = [e.results.macro[fam]["map"] for e in entries if e.system == s]
            assert col["mean"] == pytest.approx(np.mean(vals))
            assert sorted(col["per_seed"].values()) == pytest.approx(sorted(vals))
            if s == "base":
                assert col["diff_to_base"] is None and col["std"] is None
            else:
                base = b["systems"]["base"]["columns"][fam]["mean"]
                assert col["diff_to_base"] == pytest.approx(np.mean(vals) - base)
                assert col["std"] == pytest.approx(np.std(vals, ddof=1))
    # the significance diff (seed-averaged per-query values, macro over settings) equals the table's diff
    sig = {(r["a"], r["b"], r["column"]): r for r in b["significance"]}
    assert len(sig) == (3 + 3) * 4  # 3 vs base + 3 pairs, for mono/cross/multi mAP and rank distance
    for (a, bb, col), r in sig.items():
        ma = b["systems"][a]["columns"][col]["mean"]
        mb = b["systems"][bb]["columns"][col]["mean"]
        assert r["diff"] == pytest.approx(ma - mb, abs=1e-9)
        assert r["low"] <= r["diff"] <= r["high"]
        assert r["significant"] == (r["low"] > 0 or r["high"] < 0)
        assert 0 < r["p_bootstrap"] <= 1 and 0 < r["p_randomization"] <= 1
    # the clearly better hybrid beats base everywhere (lower rank distance = better)
    assert sig[("hybrid", "base", "cross")]["better"] == "hybrid"
    assert sig[("hybrid", "base", "max_rank_distance")]["diff"] < 0
    assert sig[("hybrid", "base", "max_rank_distance")]["better"] == "hybrid"


def test_deterministic(entries, tmp_path):
    build_report(entries, tmp_path / "a", n_resamples=100, seed=3, figures=False)
    build_report(entries, tmp_path / "b", n_resamples=100, seed=3, figures=False)
    assert (tmp_path / "a" / "report.json").read_text() == (tmp_path / "b" / "report.json").read_text()
    assert (tmp_path / "a" / "report.md").read_text() == (tmp_path / "b" / "report.md").read_text()


def test_one_seed_warning(tmp_path):
    entries = make_entries(seeds=(1,))
    files = build_report(entries, tmp_path, n_resamples=100, figures=False)
    md = files["markdown"].read_text()
    assert "Warning: every trained system was run with one seed" in md
    assert "ranking of strategies on one seed may be noise" in md
    assert "\u00b1" not in md.split("### Main results")[1].split("### Seeds")[0]  # no std with one seed


def test_one_seed_report_has_no_seed_noise_numbers(tmp_path):
    """With one seed the report says seed noise is not covered, and gives no number for it (none measured)."""
    files = build_report(make_entries(seeds=(1,)), tmp_path, n_resamples=50, figures=False)
    md = files["markdown"].read_text()
    warning = next(line for line in md.splitlines() if line.startswith("**Warning: every trained system"))
    assert "not training randomness" in warning
    assert not re.search(r"\d", warning.replace("95%", "")), warning  # no seed-noise figure of any kind
    assert "me5-small" not in md and "150 steps" not in md  # the old fixed, measured-elsewhere claim
    data = read_report(tmp_path)["benchmarks"]["tiny:test"]
    assert all(col["std"] is None for s in data["systems"].values() for col in s["columns"].values())
    assert all("seed-to-seed variation of this column is unknown" in note for note in data["seed_notes"].values())
    seeds_section = md.split("### Seeds")[1].split("###")[0]
    assert "within seed-to-seed variation of" not in seeds_section and "largest std over seeds" not in seeds_section


def test_two_seed_note_uses_the_runs_own_seed_std(entries):
    """With seeds >= 2 the seed note quotes the observed std over seeds of that column, from the Report."""
    report = analyse(entries, n_resamples=50)
    bench = report.benchmarks[0]
    trained = [s for s in bench.systems if s.name != "base"]
    noisiest = max(trained, key=lambda s: s.stats["cross"].std)
    assert f"{noisiest.stats['cross'].std:.4f} (largest std over seeds, {noisiest.name})" in bench.notes["cross"]


def _hand_made_report() -> Report:
    cols = [Column("mono", "mono mAP", "high", 3, lambda r: float("nan"), "mono", "map")]
    base = SystemSummary(
        "base", [None], {"mono": ColumnStats(0.4, None, 1, {"none": 0.4})}, ci={"mono": Interval(0.4, 0.35, 0.45)}
    )
    mono = SystemSummary(
        "mono", [1, 2], {"mono": ColumnStats(0.5, 0.01, 2, {"1": 0.49, "2": 0.51}, 0.1)}, ci={"mono": Interval(0.5, 0.46, 0.52)}
    )
    bench = BenchmarkSummary(
        "hand:made",
        ["en", "de"],
        ["mono"],
        cols,
        [base, mono],
        float("nan"),
        n_questions=7,
        language_tables=[LanguageTable("mono", True, 3, {"base": [0.3, 0.5], "mono": [0.6, 0.4]})],
    )
    return Report("By hand", "map", "base", 10, 0, [bench])


def test_markdown_and_json_are_functions_of_the_report_object(tmp_path):
    """Renderers read only the Report: one built by hand (no results behind it) renders its own numbers."""
    report = _hand_made_report()
    md = report.to_markdown()
    assert md.startswith("# By hand\n")
    assert "| base | \u2013 | 0.400 |" in md
    assert "| mono | 2 | **0.500 \u00b1 0.010** (+0.100) |" in md
    assert "| en | 0.300 | **0.600** |" in md and "| *mean* | 0.400 | **0.500** |" in md
    assert "| mono | 1: 0.4900, 2: 0.5100 |" in md  # per-seed values
    assert "### Figures" not in md  # none drawn
    data = report.to_json()
    bench = data["benchmarks"]["hand:made"]
    assert bench["systems"]["mono"]["columns"]["mono"] == {
        "mean": 0.5,
        "std": 0.01,
        "n_seeds": 2,
        "per_seed": {"1": 0.49, "2": 0.51},
        "diff_to_base": 0.1,
    }
    assert bench["systems"]["base"]["ci_over_questions"] == {"mono": {"mean": 0.4, "low": 0.35, "high": 0.45}}
    assert bench["same_language_chance"] is None and bench["n_questions"] == 7 and bench["significance"] == []
    # a change to the object is a change to both renderings (nothing is recomputed from elsewhere)
    report.benchmarks[0].systems[1].stats["mono"].mean = 0.25
    assert "| mono | 2 | 0.250 \u00b1 0.010 (+0.100) |" in report.to_markdown()
    assert report.to_json()["benchmarks"]["hand:made"]["systems"]["mono"]["columns"]["mono"]["mean"] == 0.25
    files = report.save(tmp_path, figures=False)
    assert files["markdown"].read_text() == report.to_markdown()
    assert json.loads(files["json"].read_text()) == report.to_json()


def test_build_report_is_analyse_then_save(entries, tmp_path):
    build_report(entries, tmp_path / "a", n_resamples=60, seed=1, figures=False)
    report = analyse(entries, n_resamples=60, seed=1)
    report.save(tmp_path / "b", figures=False)
    for name in ("report.md", "report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_seed_note_when_strategies_are_within_seed_noise(tmp_path):
    """Two strategies that are the same model under different seed labels differ by less than the seed spread."""
    bench = tiny_benchmark()
    runs = {}
    for sd in (1, 2, 3):
        q, c = embeddings(bench, 1.3, 0.8, 50 + sd)
        runs[sd] = score(bench, q, c, model_name="x", measures=("map",))[0]
    entries = [ReportEntry("mono", sd, bench.id, runs[sd]) for sd in (1, 2, 3)]
    entries += [ReportEntry("cross", sd, bench.id, runs[perm]) for sd, perm in zip((1, 2, 3), (2, 3, 1))]
    md = build_report(entries, tmp_path, n_resamples=100, figures=False)["markdown"].read_text()
    assert "are within seed-to-seed variation of" in md
    data = read_report(tmp_path)
    assert data["benchmarks"]["tiny:test"]["significance"][0]["diff"] == pytest.approx(0, abs=1e-12)


def test_two_benchmarks_with_mono_only(entries, tmp_path):
    mono_bench = tiny_benchmark("miracl/de", langs=("de",), families=("mono",))
    extra = make_entries(seeds=(1,), systems={"base": SYSTEMS["base"], "hybrid": SYSTEMS["hybrid"]}, bench=mono_bench)
    files = build_report(entries + extra, tmp_path, n_resamples=100)
    md = files["markdown"].read_text()
    assert "## tiny:test" in md and "## miracl/de" in md
    section = md.split("## miracl/de")[1]
    header = next(line for line in section.splitlines() if line.startswith("| system"))
    assert header == "| system | seeds | mono mAP |"
    assert "max rank distance" not in section and "cross mAP" not in section and "multi mAP" not in section
    assert "Warning: every trained system was run with one seed" in section  # one seed here, two on tiny:test
    assert "Warning: every trained system" not in md.split("## miracl/de")[0]
    data = read_report(tmp_path)["benchmarks"]["miracl/de"]
    assert data["families"] == ["mono"] and list(data["systems"]) == ["base", "hybrid"]
    assert [r["column"] for r in data["significance"]] == ["mono"]
    assert "miracl/de/bars" in files and not any(k.startswith("miracl/de/heatmap") for k in files)


def test_load_entries_round_trip(entries, tmp_path):
    for e in entries:
        e.results.write(eval_dir(tmp_path, e.system, e.seed, e.benchmark), heatmap=False)
    assert eval_dir(tmp_path, "hybrid", 2, "xquad-r:test") == tmp_path / "evals" / "hybrid" / "seed2" / "xquad-r_test"
    assert eval_dir(tmp_path, "base", None, "miracl/de") == tmp_path / "evals" / "base" / "miracl_de"
    assert benchmark_slug("mlqa-r") == "mlqa-r"
    loaded = load_entries(tmp_path)
    assert sorted((e.system, e.seed or 0) for e in loaded) == sorted((e.system, e.seed or 0) for e in entries)
    assert all(e.benchmark == "tiny:test" and e.results.per_query is not None for e in loaded)
    build_report(entries, tmp_path / "r1", n_resamples=100, figures=False)
    build_report(loaded, tmp_path / "r2", n_resamples=100, figures=False)
    j1, j2 = read_report(tmp_path / "r1"), read_report(tmp_path / "r2")
    for s in SYSTEMS:
        for col, v in j1["benchmarks"]["tiny:test"]["systems"][s]["columns"].items():
            assert j2["benchmarks"]["tiny:test"]["systems"][s]["columns"][col]["mean"] == pytest.approx(v["mean"], abs=1e-5)
    with pytest.raises(DataError):
        load_entries(tmp_path / "nothing-here")


def test_bad_input(entries, tmp_path):
    with pytest.raises(ValueError, match="no entries"):
        build_report([], tmp_path)
    with pytest.raises(ValueError, match="twice"):
        build_report([entries[1], entries[1]], tmp_path)
    with pytest.raises(ValueError, match="ndcg@20"):
        build_report(entries, tmp_path, measure="ndcg@20", figures=False)


def test_a_language_row_without_any_value_has_no_bold_cell():
    report = _hand_made_report()
    report.benchmarks[0].language_tables[0].values["base"][1] = float("nan")
    report.benchmarks[0].language_tables[0].values["mono"][1] = float("nan")
    md = report.to_markdown()
    assert "| de | \u2013 | \u2013 |" in md  # nothing to be best at: no **\u2013**
    assert "| en | 0.300 | **0.600** |" in md
