"""The paper's claims judged in the report, and the seeds + questions interval next to each test."""

from __future__ import annotations

import numpy as np
import pytest

from polyret.report import analyse
from polyret.report.claims import CONTRADICTED, SUPPORTED, UNRESOLVED, Claim, judge
from tests.helpers.report import make_entries


@pytest.fixture(scope="module")
def three_seed_report():
    return analyse(make_entries(seeds=(1, 2, 3)), n_resamples=300)


def test_claims_table_lists_the_paper_claims(three_seed_report):
    bench = three_seed_report.benchmarks[0]
    keys = [v.claim.key for v in bench.claims]
    assert keys == [
        "hybrid>=mono:mono",
        "hybrid>=cross:cross",
        "hybrid>=mono:multi",
        "hybrid>=cross:multi",
        "hybrid<mono:bias",
        "hybrid<cross:bias",
    ]
    for v in bench.claims:
        assert v.verdict in (SUPPORTED, CONTRADICTED, UNRESOLVED)
        assert v.low <= v.diff <= v.high
        assert v.seed_noise_covered and v.n_seeds_a == 3
        # the verdict follows from the interval and the boundary
        if v.claim.relation == "at_least":
            expect = SUPPORTED if v.low > v.boundary else CONTRADICTED if v.high < v.boundary else UNRESOLVED
        else:
            expect = SUPPORTED if v.high < 0 else CONTRADICTED if v.low > 0 else UNRESOLVED
        assert v.verdict == expect
    # the simulated hybrid has the least language offset: its bias claim against mono is supported
    bias = next(v for v in bench.claims if v.claim.key == "hybrid<mono:bias")
    assert bias.verdict == SUPPORTED and bias.high < 0


def test_markdown_and_json_carry_claims_and_seed_intervals(three_seed_report):
    md = three_seed_report.to_markdown()
    assert "### The paper's claims" in md and "hybrid has less language bias than mono" in md
    assert "95% CI (seeds + questions)" in md
    js = three_seed_report.to_json()
    b = next(iter(js["benchmarks"].values()))
    assert len(b["claims"]) == 6 and b["claims"][0]["claim"]["key"] == "hybrid>=mono:mono"
    assert js["claim_margin"] == pytest.approx(0.005)
    comp = b["significance"][0]
    assert comp["seeds_low"] is not None and comp["seeds_low"] <= comp["diff"] <= comp["seeds_high"]
    hybrid = b["systems"]["hybrid"]
    assert set(hybrid["ci_over_seeds_and_questions"]) >= {"mono", "cross", "multi"}


def test_seed_interval_is_wider_than_question_interval(three_seed_report):
    bench = three_seed_report.benchmarks[0]
    wider = [c for c in bench.significance if c.seed_noise_covered and c.seeds_low is not None]
    assert wider
    for c in wider:
        assert (c.seeds_high - c.seeds_low) >= 0.9 * (c.high - c.low)


def test_one_seed_says_seed_noise_is_not_covered():
    rep = analyse(make_entries(seeds=(1,)), n_resamples=200)
    bench = rep.benchmarks[0]
    assert bench.claims and all(not v.seed_noise_covered for v in bench.claims)
    assert all("question sampling only" in v.note for v in bench.claims)
    assert "(1 seed)" in rep.to_markdown()


def test_margin_moves_a_non_inferiority_verdict():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, size=(2, 60))
    a = [base - 0.004 + rng.normal(0, 0.001, base.shape) for _ in range(3)]
    b = [base + rng.normal(0, 0.001, base.shape) for _ in range(3)]
    claim = Claim("a>=b:mono", "a", "b", "mono", "at_least", "a >= b")
    assert judge(claim, a, b, margin=0.01, n_resamples=300, seed=0).verdict == SUPPORTED
    assert judge(claim, a, b, margin=0.0, n_resamples=300, seed=0).verdict == CONTRADICTED
    with pytest.raises(ValueError, match="margin"):
        analyse(make_entries(seeds=(1,)), n_resamples=50, claim_margin=-1)


def test_alpha_of_system_names_and_pareto_front():
    from polyret.report.alpha import pareto_front, system_alpha

    assert [system_alpha(n) for n in ("mono", "cross", "hybrid", "hybrid-a0.25", "hybrid-a1", "base", "x")] == [
        1.0,
        0.0,
        0.5,
        0.25,
        1.0,
        None,
        None,
    ]
    pts = [(0.1, 0.9), (0.5, 0.8), (0.4, 0.7), (0.9, 0.2), (float("nan"), 1.0)]
    assert pareto_front(pts) == [0, 1, 3]  # (0.4, 0.7) is beaten by (0.5, 0.8)


def test_alpha_figures_are_drawn_for_a_sweep(tmp_path):
    systems = {"base": (1.6, 1.2), "cross": (1.25, 0.6), "hybrid-a0.25": (1.1, 0.55), "hybrid": (1.05, 0.5), "mono": (1.2, 1.0)}
    rep = analyse(make_entries(seeds=(1, 2), systems=systems), n_resamples=100)
    written = rep.save(tmp_path)
    bid = rep.benchmarks[0].id
    for key in ("alpha_curves", "alpha_plane"):
        path = written[f"{bid}/{key}"]
        assert path.stat().st_size > 10_000
    md = (tmp_path / "report.md").read_text()
    assert "alpha_plane" in md and "alpha_curves" in md
    # two alphas are not a sweep: no alpha figures
    few = analyse(
        make_entries(seeds=(1,), systems={"base": (1.6, 1.2), "mono": (1.2, 1.0), "hybrid": (1.05, 0.5)}), n_resamples=50
    )
    written = few.save(tmp_path / "few")
    assert not any("alpha" in k for k in written)


def test_alpha_plane_labels_sit_beside_their_own_markers_for_close_points():
    from polyret.report.alpha import label_offsets

    # two points almost on top of each other (a sweep's alpha .75 and mono), one far away
    offsets = label_offsets([(0.50, 0.800), (0.501, 0.801), (0.9, 0.2)])
    (ax, ay), (bx, by) = offsets[0], offsets[1]
    assert ax < 0 and ay < 0 and bx > 0 and by > 0  # opposite sides, each away from the other
    assert all(abs(np.hypot(*o) - 16.0) < 1e-6 for o in offsets)  # every label at the same distance
    assert label_offsets([(0.3, 0.3)]) == [(16.0 * 0.7, 16.0 * 0.7)]


def test_alpha_plane_front_includes_an_undominated_base(tmp_path, monkeypatch):
    import polyret.report.alpha as alpha

    fronts = []
    real = alpha.pareto_front
    monkeypatch.setattr(alpha, "pareto_front", lambda pts: fronts.append(list(pts)) or real(pts))
    # the base model is best on mono here (no trained system beats it on both): it is on the front
    systems = {"base": (0.2, 1.2), "cross": (1.25, 0.6), "hybrid-a0.25": (1.1, 0.55), "hybrid": (1.05, 0.5), "mono": (1.2, 1.0)}
    rep = analyse(make_entries(seeds=(1,), systems=systems), n_resamples=50)
    rep.save(tmp_path)
    pts = fronts[-1]
    assert len(pts) == 5  # four alpha systems and the base, last
    base = rep.benchmarks[0].system("base")
    assert pts[-1] == (base.stats["multi"].mean, base.stats["mono"].mean)
    dominated = any(p[0] >= pts[-1][0] and p[1] >= pts[-1][1] for p in pts[:-1])
    assert (len(pts) - 1 in real(pts)) is not dominated


def test_verdict_words_say_provisional_and_lean():
    from polyret.report.claims import ClaimVerdict, lean_of
    from polyret.report.markdown import _verdict_cell

    claim = Claim("a>=b:mono", "a", "b", "mono", "at_least", "a >= b")
    one = ClaimVerdict(claim, SUPPORTED, 0.01, 0.002, 0.02, -0.005, 1, 1, False, None, "")
    assert _verdict_cell(one).startswith("**supported**, provisional (1 seed")
    three = ClaimVerdict(claim, SUPPORTED, 0.01, 0.002, 0.02, -0.005, 3, 3, True, None, "")
    assert _verdict_cell(three) == "**supported**"
    # an interval entirely below 0 that spans the margin leans against; one spanning 0 with diff >= 0 leans for
    assert lean_of("at_least", -0.004, -0.008, -0.001, -0.005) == "leans against"
    assert lean_of("at_least", 0.001, -0.007, 0.004, -0.005) == "leans for"
    assert lean_of("less", -2.0, -5.0, 1.0, 0.0) == "leans for" and lean_of("less", 1.0, 0.5, 3.0, 0.0) == "leans against"
    open_ = ClaimVerdict(claim, UNRESOLVED, -0.004, -0.008, -0.001, -0.005, 3, 3, True, None, "", "leans against")
    assert _verdict_cell(open_) == "not resolved, leans against"


def test_report_setup_section_in_markdown_and_json(tmp_path):
    from polyret.report import build_report, read_report

    setup = {"model": "builtin:me5-small", "evaluation max length": "64 tokens"}
    build_report(make_entries(seeds=(1,)), tmp_path, n_resamples=50, figures=False, setup=setup)
    md = (tmp_path / "report.md").read_text()
    assert "## Setup" in md and "| evaluation max length | 64 tokens |" in md
    assert read_report(tmp_path)["setup"] == setup
