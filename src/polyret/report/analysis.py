"""The report's analysis: ``analyse(entries)`` -> a typed ``Report``; nothing here renders.

For each benchmark:

* the main table's columns (mono / cross / multi score, max rank distance, same-language rate), mean ±
  std over seeds per system and the difference to the baseline,
* significance of every pairwise difference (trained systems vs the baseline and vs each other): a
  paired bootstrap over QUESTIONS of the macro-mean difference (the family score is a macro mean over
  settings and every question appears in every setting, so questions are the independent units) and a
  paired randomization test, next to the spread over training seeds,
* a plain-language note per column on whether differences between strategies exceed the seed-to-seed
  variation observed in this run,
* per-language tables and the data of the figures (language matrices, rank-distance distributions).

Size: a little over 400 lines: one pass over the entries that every renderer reads; splitting it
would spread the seed statistics and their significance tests over two modules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..evaluation.hierarchical import hierarchical_bootstrap, seeds_to_resolve
from ..evaluation.results import Results
from ..evaluation.settings import split_setting
from ..evaluation.significance import (
    cluster_matrix,
    holm,
    paired_cluster_bootstrap,
    paired_cluster_randomization,
    verdict,
)
from ..vocabulary import BASELINE, FAMILIES, SYSTEM_ORDER
from .claims import DEFAULT_MARGIN, judge_claims
from .document import Report
from .entries import ReportEntry
from .summary import (
    BenchmarkSummary,
    Column,
    ColumnStats,
    Comparison,
    Interval,
    LanguageTable,
    SystemSummary,
    measure_name,
)

DEFAULT_TITLE = "Experiment report"

SeedMatrices = dict[str, dict[str, list[np.ndarray] | None]]  # system -> column -> one matrix per seed


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and x is not None else float("nan")


def _columns(families: Sequence[str], measure: str, has_bias: bool, extra_bias: Sequence[str] = ()) -> list[Column]:
    name = measure_name(measure)
    cols = [
        Column(fam, f"{fam} {name}", "high", 3, lambda r, f=fam: _num(r.macro.get(f, {}).get(measure)), fam, measure)
        for fam in FAMILIES
        if fam in families
    ]
    if has_bias:
        cols.append(
            Column(
                "max_rank_distance",
                "max rank distance \u2193",
                "low",
                1,
                lambda r: _num(r.bias.get("max_rank_distance")),
                "multi",
                "max_rank_distance",
            )
        )
        cols.append(
            Column("same_language_rate", "same-language rate", "chance", 3, lambda r: _num(r.bias.get("same_language_rate")))
        )
    for key in extra_bias:  # the published measures of polyret.evaluation.bias_measures, when the results have them
        label, better, digits = BIAS_COLUMNS[key]
        cols.append(Column(key, label, better, digits, lambda r, k=key: _num(r.bias.get(k)), "multi", key))
    return cols


# key -> (header, better, digits) of the published bias measures' columns; LPR is shown "lower is
# better" (less query-language preference) although a language-blind ranker sits at its chance level
BIAS_COLUMNS = {
    "peer": ("PEER \u2191", "high", 3),
    "max_at_r": ("Max@R \u2193", "low", 1),
    "lpr": ("LPR@k \u2193", "low", 3),
    "lang_ndcg": ("Lang-nDCG@k", "high", 3),
    "mrc": ("MRC \u2191", "high", 3),
}


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), None
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def _order_systems(names: list[str], baseline: str) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[int, int]:
        pos, name = item
        if name == baseline:
            return (0, 0)
        if name in SYSTEM_ORDER:
            return (1, SYSTEM_ORDER.index(name))
        return (2, pos)

    return [n for _, n in sorted(enumerate(names), key=key)]


def _nanmean_stack(mats: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmean(np.stack(mats), axis=0)


def check_entries(entries: Sequence[ReportEntry], verb: str) -> list[ReportEntry]:
    """``entries`` as a list, refused when empty or when one evaluation is given twice.

    Args:
        entries: the evaluations.
        verb: the caller, named in the message (``"build_report"``).

    Raises:
        ValueError naming the duplicate.
    """
    entries = list(entries)
    if not entries:
        raise ValueError(f"{verb}: no entries")
    seen: set[tuple[str, int | None, str]] = set()
    for e in entries:
        key = (e.system, e.seed, e.benchmark)
        if key in seen:
            raise ValueError(f"{verb}: {e.system} seed {e.seed} on {e.benchmark} is given twice")
        seen.add(key)
    return entries


def analyse(
    entries: Sequence[ReportEntry],
    *,
    title: str | None = None,
    measure: str = "map",
    baseline: str = BASELINE,
    n_resamples: int = 1000,
    seed: int = 0,
    claim_margin: float = DEFAULT_MARGIN,
) -> Report:
    """Analyse evaluations into a ``Report`` (render it with ``to_markdown`` / ``to_json`` / ``save``).

    Args:
        entries: the evaluations (system, seed, benchmark, results); each at most once.
        title: the report's title (default ``"Experiment report"``).
        measure: the primary measure; every entry must have it.
        baseline: the system the main table's differences refer to.
        n_resamples: resamples of the bootstrap and randomization tests.
        seed: their seed (the report is deterministic for a given seed).
        claim_margin: the non-inferiority margin of the "at least as good as" claims (in the
            measure's units; see ``polyret.report.claims``).

    Raises:
        ValueError: no entries, an entry given twice, or an entry without ``measure``.
    """
    entries = check_entries(entries, "analyse")
    by_bench: dict[str, list[ReportEntry]] = {}
    for e in entries:
        by_bench.setdefault(e.benchmark, []).append(e)
    benches = [
        _analyse_benchmark(
            bid, es, measure=measure, baseline=baseline, n_resamples=n_resamples, seed=seed, claim_margin=claim_margin
        )
        for bid, es in by_bench.items()
    ]
    return Report(title or DEFAULT_TITLE, measure, baseline, n_resamples, seed, benches, claim_margin, _precision(entries))


def _precision(entries: Sequence[ReportEntry]) -> str | None:
    """The resolved inference precision the entries' results.json record (comma-separated when they
    differ, ``unrecorded`` for entries of an older polyret among recorded ones; None when none records one)."""
    found = {e.results.extra.get("precision") for e in entries}
    named = sorted(str(p) for p in found if p)
    if not named:
        return None
    return ", ".join(named + (["unrecorded"] if None in found or "" in found else []))


def _analyse_benchmark(
    bench_id: str,
    entries: list[ReportEntry],
    *,
    measure: str,
    baseline: str,
    n_resamples: int,
    seed: int,
    claim_margin: float,
) -> BenchmarkSummary:
    by_system: dict[str, list[ReportEntry]] = {}
    for e in entries:
        by_system.setdefault(e.system, []).append(e)
    results: dict[str, list[Results]] = {}
    systems = []
    for name in _order_systems(list(by_system), baseline):
        group = sorted(by_system[name], key=lambda e: -1 if e.seed is None else e.seed)
        systems.append(SystemSummary(name, [e.seed for e in group], mono_share=_mono_shares(group)))
        results[name] = [e.results for e in group]
    all_results = [r for s in systems for r in results[s.name]]
    languages = list(dict.fromkeys(lang for r in all_results for lang in r.languages))
    families = [f for f in FAMILIES if any(f in r.macro for r in all_results)]
    for s in systems:
        for r, sd in zip(results[s.name], s.seeds):
            missing = [f for f in families if f in r.macro and measure not in r.macro[f]]
            if missing:
                raise ValueError(
                    f"report: {s.name} (seed {sd}) on {bench_id} has no measure {measure!r} in {missing} (it has {r.measures})"
                )
    has_bias = any(math.isfinite(_num(r.bias.get("max_rank_distance"))) for r in all_results)
    extra_bias = [k for k in BIAS_COLUMNS if any(math.isfinite(_num(r.bias.get(k))) for r in all_results)]
    columns = _columns(families, measure, has_bias, extra_bias)
    chances = [_num(r.bias.get("same_language_chance")) for r in all_results]
    chance = float(np.nanmean(chances)) if any(math.isfinite(c) for c in chances) else float("nan")
    bench = BenchmarkSummary(bench_id, languages, families, columns, systems, chance)

    base = bench.system(baseline)
    for s in systems:
        for col in columns:
            per_seed = [col.get(r) for r in results[s.name]]
            mean, std = _mean_std(per_seed)
            s.stats[col.key] = ColumnStats(
                mean, std, s.n, {("none" if sd is None else str(sd)): v for sd, v in zip(s.seeds, per_seed)}
            )
    if base is not None:
        for s in systems:
            for col in columns:
                d = s.stats[col.key].mean - base.stats[col.key].mean
                s.stats[col.key].diff_to_base = d if s is not base and math.isfinite(d) else None

    matrices = _per_query_matrices(bench, results)
    _significance(bench, matrices, baseline, n_resamples, seed)
    bench.claims = judge_claims(
        matrices,
        columns={c.key for c in bench.columns},
        systems={s.name for s in bench.systems},
        margin=claim_margin,
        n_resamples=n_resamples,
        seed=seed,
    )
    bench.notes = _seed_notes(bench, baseline)
    bench.language_tables = _language_tables(bench, results, measure)
    for s in systems:
        if "cross" in families and len(languages) > 1:
            s.matrix_languages, s.matrix = _mean_matrix(results[s.name], measure)
        vals = [
            r.per_query.values["max_rank_distance"]
            for r in results[s.name]
            if r.per_query is not None and "max_rank_distance" in r.per_query.values
        ]
        if vals:
            v = np.concatenate(vals)
            s.rank_distances = v[np.isfinite(v)]
    return bench


def _per_query_matrices(bench: BenchmarkSummary, results: dict[str, list[Results]]) -> SeedMatrices:
    """System -> column -> one settings x questions matrix per seed, on shared axes (None without
    per-query data); :func:`_seed_mean` averages them."""
    out: SeedMatrices = {s.name: {} for s in bench.systems}
    families: dict[int, np.ndarray] = {}  # id(per-query table) -> family of each row, computed once
    for s in bench.systems:
        for r in results[s.name]:
            if r.per_query is not None:
                fam_of = {n: split_setting(n)[0] for n in set(r.per_query.setting)}
                families[id(r.per_query)] = np.asarray([fam_of[n] for n in r.per_query.setting], dtype=object)
    for col in bench.columns:
        if col.settings_family is None:
            continue
        fam, m = col.settings_family, col.per_query_measure
        rows: dict[str, list[tuple[list[str], list[str], np.ndarray]]] = {}
        s_axis: dict[str, None] = {}
        c_axis: dict[str, None] = {}
        for s in bench.systems:
            if any(r.per_query is None or m not in r.per_query.values for r in results[s.name]):
                continue
            for r in results[s.name]:
                pq = r.per_query
                keep = np.flatnonzero(families[id(pq)] == fam)
                sets = np.asarray(pq.setting, dtype=object)[keep].tolist()
                qids = np.asarray(pq.query_id, dtype=object)[keep].tolist()
                vals = pq.values[m][keep]
                rows.setdefault(s.name, []).append((sets, qids, vals))
                s_axis.update(dict.fromkeys(sets))
                c_axis.update(dict.fromkeys(qids))
        bench.n_questions = max(bench.n_questions, len(c_axis))
        for s in bench.systems:
            if s.name not in rows:
                out[s.name][col.key] = None
                continue
            out[s.name][col.key] = [
                cluster_matrix(a, b, v, setting_order=list(s_axis), cluster_order=list(c_axis))[2] for a, b, v in rows[s.name]
            ]
    return out


def _seed_mean(mats: list[np.ndarray] | None) -> np.ndarray | None:
    return None if mats is None else _nanmean_stack(mats)


def _significance(
    bench: BenchmarkSummary,
    matrices: SeedMatrices,
    baseline: str,
    n_resamples: int,
    seed: int,
) -> None:
    trained = [s for s in bench.systems if s.name != baseline]
    base = bench.system(baseline)
    pairs = [(s, base) for s in trained] if base is not None else []
    pairs += [(a, b) for i, a in enumerate(trained) for b in trained[i + 1 :]]
    for col in bench.columns:
        if col.settings_family is None:
            continue
        for s in bench.systems:
            mat = _seed_mean(matrices[s.name].get(col.key))
            if mat is None or not np.isfinite(mat).any():
                continue
            ci = paired_cluster_bootstrap(mat, np.where(np.isfinite(mat), 0.0, np.nan), n_resamples, seed)
            s.ci[col.key] = Interval(ci.diff, ci.low, ci.high)
            if s.n > 1:  # the system's own score, over seeds and questions
                h = hierarchical_bootstrap(matrices[s.name][col.key], [np.zeros_like(mat)], n_resamples=n_resamples, seed=seed)
                s.ci_seeds[col.key] = Interval(h.diff, h.low, h.high)
        table: list[Comparison] = []  # the comparisons of this column: one table, one Holm correction
        for a, b in pairs:
            seeds_a, seeds_b = matrices[a.name].get(col.key), matrices[b.name].get(col.key)
            ma, mb = _seed_mean(seeds_a), _seed_mean(seeds_b)
            if ma is None or mb is None or not (np.isfinite(ma) & np.isfinite(mb)).any():
                continue
            boot = paired_cluster_bootstrap(ma, mb, n_resamples=n_resamples, seed=seed)
            perm = paired_cluster_randomization(ma, mb, n_resamples=n_resamples, seed=seed)
            try:
                hier = hierarchical_bootstrap(seeds_a, seeds_b, n_resamples=n_resamples, seed=seed)
            except ValueError:  # no cell every seed of both has: the seed-aware test is not possible
                hier = None
            sig = False  # decided below, after Holm's correction over this column's comparisons
            better = None
            std_a, std_b = a.stats[col.key].std, b.stats[col.key].std
            seed_std = max((x for x in (std_a, std_b) if x is not None), default=None)
            table.append(
                Comparison(
                    a.name,
                    b.name,
                    col.key,
                    boot.diff,
                    boot.low,
                    boot.high,
                    boot.p,
                    perm.p,
                    sig,
                    better,
                    std_a,
                    std_b,
                    bool(seed_std is not None and abs(boot.diff) <= 2 * seed_std),
                    a.n,
                    b.n,
                    hier.low if hier else None,
                    hier.high if hier else None,
                    hier.p if hier else None,
                    bool(hier and a.n > 1 and (b.n > 1 or b.untrained)),
                    seeds_to_resolve(hier, 0.0) if hier and not (hier.low > 0 or hier.high < 0) else None,
                )
            )
        for c, pb, pr in zip(table, holm([c.p_bootstrap for c in table]), holm([c.p_randomization for c in table])):
            c.p_bootstrap_holm, c.p_randomization_holm = pb, pr
            c.significant = verdict(c.diff, c.low, c.high, pr)
            if c.significant:
                a_wins = (c.diff > 0) == (col.better == "high")
                c.better = c.a if a_wins else c.b
        bench.significance.extend(table)


def _seed_notes(bench: BenchmarkSummary, baseline: str) -> dict[str, str]:
    """Per column: do differences between strategies exceed the spread over training seeds of this run?

    Rule: a difference counts as within seed noise when it is at most 2x the largest std over seeds
    of the trained systems in that column (the std of one system's seed mean is of that order).
    """
    trained = [s for s in bench.systems if s.name != baseline and not s.untrained]  # a remedy on base has no seed
    notes: dict[str, str] = {}
    one_seed = [s.name for s in trained if s.n < 2]
    for col in bench.columns:
        means = [(s.name, s.stats[col.key].mean) for s in trained if math.isfinite(s.stats[col.key].mean)]
        if len(means) < 2:
            continue
        stds = [(s.name, s.stats[col.key].std) for s in trained if s.stats[col.key].std is not None]
        fmt = f"{{:.{col.digits + (1 if col.digits >= 3 else 0)}f}}".format
        if col.better == "high":
            goodness = lambda v: v  # noqa: E731
        elif col.better == "low":
            goodness = lambda v: -v  # noqa: E731
        else:
            goodness = lambda v: -abs(v - bench.chance)  # noqa: E731
        ranked = sorted(means, key=lambda t: -goodness(t[1]))
        (best, vb), (second, v2), (worst_sys, vw) = ranked[0], ranked[1], ranked[-1]
        spread, gap = abs(vb - vw), abs(vb - v2)
        if not stds:
            notes[col.key] = (
                f"{col.label}: strategies differ by up to {fmt(spread)} ({best} vs {worst_sys}) on one "
                "seed each, so the seed-to-seed variation of this column is unknown."
            )
            continue
        noisiest, y = max(stds, key=lambda t: t[1])
        y_text = f"{fmt(y)} (largest std over seeds, {noisiest})"
        if spread <= 2 * y:
            text = (
                f"{col.label}: differences between strategies of up to {fmt(spread)} ({best} vs {worst_sys}) are "
                f"within seed-to-seed variation of {y_text}; the ranking of strategies in this column is not reliable."
            )
        elif gap <= 2 * y:
            text = (
                f"{col.label}: strategies span {fmt(spread)} ({best} vs {worst_sys}), more than the seed-to-seed "
                f"variation of {y_text}, but the best two ({best} vs {second}, {fmt(gap)} apart) are within "
                "seed-to-seed variation: their order may be seed noise."
            )
        else:
            text = (
                f"{col.label}: the best strategy ({best}) leads the next ({second}) by {fmt(gap)}, more than twice "
                f"the seed-to-seed variation of {y_text}."
            )
        if one_seed:
            text += f" One seed only for: {', '.join(one_seed)} (their seed spread is unknown)."
        notes[col.key] = text
    return notes


def _language_tables(bench: BenchmarkSummary, results: dict[str, list[Results]], measure: str) -> list[LanguageTable]:
    def cross(r: Results, q: str) -> float:
        vals = [
            v[measure]
            for k, v in r.per_setting.items()
            if split_setting(k)[0] == "cross" and split_setting(k)[1] == q and measure in v
        ]
        return float(np.mean(vals)) if vals else float("nan")

    views = []
    if "mono" in bench.families:
        views.append(("mono", lambda r, q: _num(r.per_setting.get(f"mono:{q}", {}).get(measure)), True))
    if "cross" in bench.families:
        views.append(("cross", cross, True))
    if "multi" in bench.families:
        views.append(("multi", lambda r, q: _num(r.per_setting.get(f"multi:{q}", {}).get(measure)), True))
    if any(c.key == "max_rank_distance" for c in bench.columns):
        views.append(
            ("max_rank_distance", lambda r, q: _num(r.bias.get("per_language", {}).get(q, {}).get("max_rank_distance")), False)
        )
    for key in BIAS_COLUMNS:
        if any(c.key == key for c in bench.columns):
            views.append(
                (key, lambda r, q, k=key: _num(r.bias.get("per_language", {}).get(q, {}).get(k)), BIAS_COLUMNS[key][1] == "high")
            )
    return [
        LanguageTable(
            key,
            high,
            BIAS_COLUMNS[key][2] if key in BIAS_COLUMNS else (3 if high else 1),
            {s.name: [_mean_std([get(r, q) for r in results[s.name]])[0] for q in bench.languages] for s in bench.systems},
        )
        for key, get, high in views
    ]


def _mean_matrix(results: list[Results], measure: str) -> tuple[list[str], np.ndarray]:
    """Query x pool language matrix of ``measure``, aligned on the first seed's languages, mean over seeds."""
    mats = [r.matrix(measure) for r in results]
    langs = mats[0][0]
    aligned = []
    for lg, m in mats:
        idx = [lg.index(x) if x in lg else -1 for x in langs]
        out = np.full((len(langs), len(langs)), np.nan)
        for i, a in enumerate(idx):
            for j, b in enumerate(idx):
                if a >= 0 and b >= 0:
                    out[i, j] = m[a, b]
        aligned.append(out)
    return langs, _nanmean_stack(aligned)


def _mono_shares(group) -> dict[str, float]:
    """seed -> realized share of monolingual steps, from each evaluation's record of its model's training."""
    out = {}
    for e in group:
        training = e.results.extra.get("training")
        share = training.get("realized_mono_share") if isinstance(training, dict) else None
        if isinstance(share, (int, float)) and math.isfinite(share):
            out[str(e.seed)] = float(share)
    return out
