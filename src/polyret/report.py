"""The experiment report people read: markdown tables, PNG figures and the same numbers as JSON.

Input is a list of ``ReportEntry`` (one evaluation of one system, one training seed, one benchmark).
For each benchmark the report shows

* a main table (systems x mono / cross / multi score, max rank distance, same-language rate), mean ± std
  over seeds, the best value of each column in bold and the difference to the base model,
* significance of every pairwise difference (trained systems vs base and vs each other): a paired
  bootstrap over QUESTIONS of the macro-mean difference (the family score is a macro mean over
  settings and every question appears in every setting, so questions are the independent units) and a
  paired randomization test, next to the spread over training seeds,
* a plain-language note on whether differences between strategies exceed seed-to-seed variation,
* per-language tables and figures (heatmaps, difference heatmaps, grouped bars, rank-distance distribution).

Experiment folder layout read by ``load_entries`` (and written by the experiment loop, see ``eval_dir``)::

    <exp>/evals/base/<benchmark slug>/results.json (+ per_query.csv.gz)
    <exp>/evals/<system>/seed<k>/<benchmark slug>/results.json (+ per_query.csv.gz)

where the benchmark slug is the benchmark id with ":" and "/" replaced by "_" (the id itself is read
back from results.json).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .data.records import DataError
from .evaluation.results import Results, is_done, split_setting
from .evaluation.significance import cluster_matrix, paired_cluster_bootstrap, paired_cluster_randomization
from .paths import atomic_write_text

SCHEMA = 1
FAMILIES: tuple[str, ...] = ("mono", "cross", "multi")
_KNOWN_ORDER = ("base", "mono", "cross", "hybrid", "mixed")
_SEED_NOISE_NOTE = (
    "changing only the training seed moved cross-lingual mAP by about 0.01 when me5-small was trained for 150 "
    "steps of 32 XQuAD-R pairs on a CPU"
)


@dataclass(frozen=True)
class ReportEntry:
    """One evaluation: ``system`` ("base", "mono", "hybrid(alpha=0.3)", ...) trained with ``seed`` (None for
    an untrained model) and evaluated on ``benchmark``."""

    system: str
    seed: int | None
    benchmark: str
    results: Results


# ---- experiment folder layout ----------------------------------------------------------------------


def benchmark_slug(benchmark: str) -> str:
    """``"xquad-r:test"`` -> ``"xquad-r_test"``, ``"miracl/de"`` -> ``"miracl_de"`` (a folder name)."""
    return benchmark.replace(":", "_").replace("/", "_")


def eval_dir(experiment: str | Path, system: str, seed: int | None, benchmark: str) -> Path:
    """Where the evaluation of ``system`` (trained with ``seed``; None = untrained) on ``benchmark`` lives."""
    if not system or "/" in system or system.startswith("."):
        raise ValueError(f"system name {system!r} cannot be a folder name")
    root = Path(experiment) / "evals" / system
    if seed is not None:
        root = root / f"seed{int(seed)}"
    return root / benchmark_slug(benchmark)


def load_entries(folder: str | Path) -> list[ReportEntry]:
    """Every evaluation under ``<folder>/evals`` (or ``folder`` itself when it is the evals folder).

    A system folder holds either ``seed<k>/<benchmark>/`` folders (trained systems) or ``<benchmark>/``
    folders directly (an untrained model such as base, seed None).
    """
    root = Path(folder)
    evals = root / "evals" if (root / "evals").is_dir() else root
    if not evals.is_dir():
        raise DataError(f"{root}: no evals folder (expected {root / 'evals'}/<system>/[seed<k>/]<benchmark>/results.json)")
    entries: list[ReportEntry] = []
    for system_dir in sorted(p for p in evals.iterdir() if p.is_dir() and not p.name.startswith(".")):
        seeded = [p for p in system_dir.iterdir() if p.is_dir() and re.fullmatch(r"seed\d+", p.name)]
        if seeded:
            places = [(int(p.name[4:]), b) for p in seeded for b in sorted(p.iterdir()) if b.is_dir()]
        else:
            places = [(None, b) for b in sorted(system_dir.iterdir()) if b.is_dir()]
        for seed, bench_dir in sorted(places, key=lambda t: (-1 if t[0] is None else t[0], t[1].name)):
            if not is_done(bench_dir):  # no valid completion marker: unfinished (or an older polyret's)
                if (bench_dir / "results.json").exists():
                    warnings.warn(f"{bench_dir}: evaluation not complete (no valid completion marker); "
                                  "left out of the report, run the experiment again to redo it", stacklevel=2)
                continue
            try:
                res = Results.load(bench_dir)
            except (KeyError, ValueError, json.JSONDecodeError) as err:
                raise DataError(f"{bench_dir / 'results.json'}: unreadable results ({err})") from err
            entries.append(ReportEntry(system_dir.name, seed, res.benchmark, res))
    if not entries:
        raise DataError(f"{evals}: no completed evaluation (results.json with its completion marker) under "
                        "<system>/[seed<k>/]<benchmark>/")
    return entries


# ---- columns of the main table ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    key: str  # "mono" | "cross" | "multi" | "max_rank_distance" | "same_language_rate"
    label: str
    better: str  # "high" | "low" | "chance"
    digits: int
    get: Callable[[Results], float]
    settings_family: str | None = None  # family whose per-query rows feed the significance tests
    per_query_measure: str | None = None


def _columns(families: Sequence[str], measure: str, has_bias: bool) -> list[_Column]:
    name = "mAP" if measure == "map" else measure
    cols = [
        _Column(fam, f"{fam} {name}", "high", 3, lambda r, f=fam: _num(r.macro.get(f, {}).get(measure)), fam, measure)
        for fam in FAMILIES if fam in families
    ]
    if has_bias:
        cols.append(_Column("max_rank_distance", "max rank distance \u2193", "low", 1,
                            lambda r: _num(r.bias.get("max_rank_distance")), "multi", "max_rank_distance"))
        cols.append(_Column("same_language_rate", "same-language rate", "chance", 3,
                            lambda r: _num(r.bias.get("same_language_rate"))))
    return cols


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and x is not None else float("nan")


# ---- aggregation over seeds ------------------------------------------------------------------------


@dataclass
class _System:
    name: str
    seeds: list[int | None]
    results: list[Results]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> mean/std/per_seed/diff
    matrices: dict[str, np.ndarray | None] = field(default_factory=dict)  # column -> settings x questions

    @property
    def n(self) -> int:
        return len(self.results)


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
        if name in _KNOWN_ORDER:
            return (1, _KNOWN_ORDER.index(name))
        return (2, pos)

    return [n for _, n in sorted(enumerate(names), key=key)]


def _nanmean_stack(mats: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmean(np.stack(mats), axis=0)


# ---- the per-benchmark analysis ---------------------------------------------------------------------


@dataclass
class _Bench:
    id: str
    languages: list[str]
    families: list[str]
    columns: list[_Column]
    systems: list[_System]
    chance: float
    significance: list[dict[str, Any]] = field(default_factory=list)
    own_ci: dict[str, dict[str, Any]] = field(default_factory=dict)  # system -> column -> CI of its own mean
    notes: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    n_questions: int = 0

    def system(self, name: str) -> _System | None:
        return next((s for s in self.systems if s.name == name), None)


def _analyse(bench_id: str, entries: list[ReportEntry], *, measure: str, baseline: str,
             n_resamples: int, seed: int) -> _Bench:
    by_system: dict[str, list[ReportEntry]] = {}
    for e in entries:
        by_system.setdefault(e.system, []).append(e)
    names = _order_systems(list(by_system), baseline)
    systems = []
    for name in names:
        group = sorted(by_system[name], key=lambda e: -1 if e.seed is None else e.seed)
        systems.append(_System(name, [e.seed for e in group], [e.results for e in group]))
    all_results = [r for s in systems for r in s.results]
    languages = list(dict.fromkeys(lang for r in all_results for lang in r.languages))
    families = [f for f in FAMILIES if any(f in r.macro for r in all_results)]
    for s in systems:
        for r, sd in zip(s.results, s.seeds):
            missing = [f for f in families if f in r.macro and measure not in r.macro[f]]
            if missing:
                raise ValueError(
                    f"report: {s.name} (seed {sd}) on {bench_id} has no measure {measure!r} in {missing} "
                    f"(it has {r.measures})"
                )
    has_bias = any(math.isfinite(_num(r.bias.get("max_rank_distance"))) for r in all_results)
    columns = _columns(families, measure, has_bias)
    chances = [_num(r.bias.get("same_language_chance")) for r in all_results]
    chance = float(np.nanmean(chances)) if any(math.isfinite(c) for c in chances) else float("nan")
    bench = _Bench(bench_id, languages, families, columns, systems, chance)

    base = bench.system(baseline)
    for s in systems:
        for col in columns:
            per_seed = [col.get(r) for r in s.results]
            mean, std = _mean_std(per_seed)
            s.stats[col.key] = {"mean": mean, "std": std, "n_seeds": s.n,
                                "per_seed": {("none" if sd is None else str(sd)): v for sd, v in zip(s.seeds, per_seed)},
                                "diff_to_base": None}
    if base is not None:
        for s in systems:
            for col in columns:
                d = s.stats[col.key]["mean"] - base.stats[col.key]["mean"]
                s.stats[col.key]["diff_to_base"] = d if s is not base and math.isfinite(d) else None

    _per_query_matrices(bench, measure)
    _significance(bench, baseline, n_resamples, seed)
    bench.notes = _seed_notes(bench, baseline)
    return bench


def _per_query_matrices(bench: _Bench, measure: str) -> None:
    """Settings x questions matrix per system and column, averaged over seeds (None without per-query data)."""
    families: dict[int, np.ndarray] = {}  # id(per-query table) -> family of each row, computed once
    for s in bench.systems:
        for r in s.results:
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
            if any(r.per_query is None or m not in r.per_query.values for r in s.results):
                continue
            for r in s.results:
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
                s.matrices[col.key] = None
                continue
            mats = [cluster_matrix(a, b, v, setting_order=list(s_axis), cluster_order=list(c_axis))[2]
                    for a, b, v in rows[s.name]]
            s.matrices[col.key] = _nanmean_stack(mats)


def _significance(bench: _Bench, baseline: str, n_resamples: int, seed: int) -> None:
    trained = [s for s in bench.systems if s.name != baseline]
    base = bench.system(baseline)
    pairs = [(s, base) for s in trained] if base is not None else []
    pairs += [(a, b) for i, a in enumerate(trained) for b in trained[i + 1:]]
    for col in bench.columns:
        if col.settings_family is None:
            continue
        for s in bench.systems:
            mat = s.matrices.get(col.key)
            if mat is None or not np.isfinite(mat).any():
                continue
            ci = paired_cluster_bootstrap(mat, np.where(np.isfinite(mat), 0.0, np.nan), n_resamples, seed)
            bench.own_ci.setdefault(s.name, {})[col.key] = {"mean": ci.diff, "low": ci.low, "high": ci.high}
        for a, b in pairs:
            ma, mb = a.matrices.get(col.key), b.matrices.get(col.key)
            if ma is None or mb is None or not (np.isfinite(ma) & np.isfinite(mb)).any():
                continue
            boot = paired_cluster_bootstrap(ma, mb, n_resamples=n_resamples, seed=seed)
            perm = paired_cluster_randomization(ma, mb, n_resamples=n_resamples, seed=seed)
            sig = boot.low > 0 or boot.high < 0
            better = None
            if sig:
                a_wins = (boot.diff > 0) == (col.better == "high")
                better = a.name if a_wins else b.name
            seed_std = max((x for x in (a.stats[col.key]["std"], b.stats[col.key]["std"]) if x is not None), default=None)
            bench.significance.append({
                "a": a.name, "b": b.name, "column": col.key, "diff": boot.diff, "low": boot.low, "high": boot.high,
                "p_bootstrap": boot.p, "p_randomization": perm.p, "significant": sig, "better": better,
                "seed_std_a": a.stats[col.key]["std"], "seed_std_b": b.stats[col.key]["std"],
                "within_seed_noise": bool(seed_std is not None and abs(boot.diff) <= 2 * seed_std),
                "n_seeds_a": a.n, "n_seeds_b": b.n,
            })


def _seed_notes(bench: _Bench, baseline: str) -> dict[str, str]:
    """Per column: do differences between strategies exceed the spread over training seeds?

    Rule: a difference counts as within seed noise when it is at most 2x the largest std over seeds
    of the trained systems in that column (the std of one system's seed mean is of that order).
    """
    trained = [s for s in bench.systems if s.name != baseline]
    notes: dict[str, str] = {}
    one_seed = [s.name for s in trained if s.n < 2]
    for col in bench.columns:
        means = [(s.name, s.stats[col.key]["mean"]) for s in trained if math.isfinite(s.stats[col.key]["mean"])]
        if len(means) < 2:
            continue
        stds = [(s.name, s.stats[col.key]["std"]) for s in trained if s.stats[col.key]["std"] is not None]
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
            notes[col.key] = (f"{col.label}: strategies differ by up to {fmt(spread)} ({best} vs {worst_sys}) on one "
                              "seed each, so the seed-to-seed variation of this column is unknown.")
            continue
        noisiest, y = max(stds, key=lambda t: t[1])
        y_text = f"{fmt(y)} (largest std over seeds, {noisiest})"
        if spread <= 2 * y:
            text = (f"{col.label}: differences between strategies of up to {fmt(spread)} ({best} vs {worst_sys}) are "
                    f"within seed-to-seed variation of {y_text}; the ranking of strategies in this column is not reliable.")
        elif gap <= 2 * y:
            text = (f"{col.label}: strategies span {fmt(spread)} ({best} vs {worst_sys}), more than the seed-to-seed "
                    f"variation of {y_text}, but the best two ({best} vs {second}, {fmt(gap)} apart) are within "
                    "seed-to-seed variation: their order may be seed noise.")
        else:
            text = (f"{col.label}: the best strategy ({best}) leads the next ({second}) by {fmt(gap)}, more than twice "
                    f"the seed-to-seed variation of {y_text}.")
        if one_seed:
            text += f" One seed only for: {', '.join(one_seed)} (their seed spread is unknown)."
        notes[col.key] = text
    return notes
    one_seed = [s.name for s in trained if s.n < 2]
    for col in bench.columns:
        means = [(s.name, s.stats[col.key]["mean"]) for s in trained if math.isfinite(s.stats[col.key]["mean"])]
        stds = [(s.name, s.stats[col.key]["std"]) for s in trained if s.stats[col.key]["std"] is not None]
        fmt = f"{{:.{col.digits + (1 if col.digits >= 3 else 0)}f}}"
        if len(means) < 2:
            continue
        hi = max(means, key=lambda t: t[1])
        lo = min(means, key=lambda t: t[1])
        spread = hi[1] - lo[1]
        if not stds:
            notes[col.key] = (
                f"{col.label}: strategies differ by up to {fmt.format(spread)} ({hi[0]} vs {lo[0]}) on one seed each, "
                "so the seed-to-seed variation of this column is unknown."
            )
            continue
        worst = max(stds, key=lambda t: t[1])
        text = (f"{col.label}: differences between strategies of up to {fmt.format(spread)} ({hi[0]} vs {lo[0]}) ")
        if spread <= 2 * worst[1]:
            text += (f"are within seed-to-seed variation of {fmt.format(worst[1])} (largest std over seeds, {worst[0]}); "
                     "the ranking of strategies in this column is not reliable.")
        else:
            text += (f"exceed seed-to-seed variation (largest std over seeds {fmt.format(worst[1])}, {worst[0]}) "
                     "by more than 2x.")
        if one_seed:
            text += f" One seed only for: {', '.join(one_seed)} (their spread is unknown)."
        notes[col.key] = text
    return notes


# ---- figures ----------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_") or "x"


def _colors(names: list[str], baseline: str) -> dict[str, str]:
    """Grey for the baseline, distinct non-grey colours for the others (stable within one report)."""
    import matplotlib

    palette = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    palette = [c for i, c in enumerate(palette) if i != 7]  # tab10's grey is the baseline's colour
    palette += [matplotlib.colors.to_hex(c) for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i % 2]
    out, k = {}, 0
    for name in names:
        if name == baseline:
            out[name] = "#9a9a9a"
        else:
            out[name] = palette[k % len(palette)]
            k += 1
    return out


def _mean_matrix(s: _System, measure: str) -> tuple[list[str], np.ndarray]:
    mats = [r.matrix(measure) for r in s.results]
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


def _figures(bench: _Bench, fig_dir: Path, measure: str, baseline: str) -> None:
    from . import figures

    slug = _slug(bench.id)
    name = "mAP" if measure == "map" else measure
    colors = _colors([s.name for s in bench.systems], baseline)
    if "cross" in bench.families and len(bench.languages) > 1:
        mats = {s.name: _mean_matrix(s, measure) for s in bench.systems}
        finite = np.concatenate([m[np.isfinite(m)] for _, m in mats.values()])
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        for s in bench.systems:
            langs, m = mats[s.name]
            seeds = f", mean of {s.n} seeds" if s.n > 1 else ""
            bench.figures[f"heatmap:{s.name}"] = figures.heatmap(
                m, langs, fig_dir / f"{slug}_{name}_{_slug(s.name)}.png",
                title=f"{name}: {s.name}{seeds}\n{bench.id}; box = mono\ncolour scale shared by all systems", vmin=lo, vmax=hi)
        for a, b in (("hybrid", "mono"), ("hybrid", "cross")):
            if a in mats and b in mats:
                langs, ma = mats[a]
                _, mb = mats[b]
                bench.figures[f"diff:{a}-{b}"] = figures.heatmap(
                    ma - mb, langs, fig_dir / f"{slug}_diff_{a}-{b}.png", diverging=True, fmt="{:+.3f}",
                    title=f"{name}: {a} minus {b}\n{bench.id}, blue = {a} better")
    fam_cols = [c for c in bench.columns if c.key in FAMILIES]
    if fam_cols:
        series = {s.name: ([s.stats[c.key]["mean"] for c in fam_cols],
                           [s.stats[c.key]["std"] if s.stats[c.key]["std"] is not None else float("nan") for c in fam_cols])
                  for s in bench.systems}
        any_std = any(s.n > 1 for s in bench.systems)
        bench.figures["bars"] = figures.grouped_bars(
            [c.key for c in fam_cols], series, fig_dir / f"{slug}_bars.png", colors=colors,
            ylabel=f"macro {name}",
            title=f"{name} per setting family, {bench.id}" + (" (error bars: std over seeds)" if any_std else ""))
    dist = {}
    for s in bench.systems:
        vals = [r.per_query.values["max_rank_distance"] for r in s.results
                if r.per_query is not None and "max_rank_distance" in r.per_query.values]
        if vals:
            v = np.concatenate(vals)
            dist[s.name if s.n == 1 else f"{s.name} ({s.n} seeds)"] = v[np.isfinite(v)]
    dist = {k: v for k, v in dist.items() if len(v)}
    if dist:
        cmap = {k: colors[k.split(" (")[0]] if k.split(" (")[0] in colors else colors.get(k) for k in dist}
        bench.figures["rank_distance"] = figures.distributions(
            dist, fig_dir / f"{slug}_rank_distance.png", colors=cmap, log=True,
            xlabel="max rank distance", title=f"Per-query max rank distance of the gold answers in the multilingual "
            f"pool, {bench.id}\n(all seeds pooled; lower = less language bias)")


# ---- markdown ---------------------------------------------------------------------------------------


def _f(x: float | None, digits: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "\u2013"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _best(bench: _Bench, col: _Column) -> set[str]:
    vals = {s.name: round(s.stats[col.key]["mean"], col.digits) for s in bench.systems
            if math.isfinite(s.stats[col.key]["mean"])}
    if not vals:
        return set()
    if col.better == "high":
        target = max(vals.values())
    elif col.better == "low":
        target = min(vals.values())
    else:
        if not math.isfinite(bench.chance):
            return set()
        dist = {k: round(abs(v - bench.chance), col.digits) for k, v in vals.items()}
        target_d = min(dist.values())
        return {k for k, d in dist.items() if d == target_d}
    return {k for k, v in vals.items() if v == target}


def _sig_vs_base(bench: _Bench, system: str, baseline: str, col: str) -> dict[str, Any] | None:
    return next((r for r in bench.significance if r["a"] == system and r["b"] == baseline and r["column"] == col), None)


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _main_table(bench: _Bench, baseline: str) -> list[str]:
    multi_seed = any(s.n > 1 for s in bench.systems)
    header = ["system", "seeds"]
    for c in bench.columns:
        label = c.label
        if c.key == "same_language_rate" and math.isfinite(bench.chance):
            label += f" (chance {bench.chance:.3f})"
        header.append(label)
    bests = {c.key: _best(bench, c) for c in bench.columns}
    rows = []
    for s in bench.systems:
        row = [s.name, str(s.n) if s.seeds != [None] else "\u2013"]
        for c in bench.columns:
            st = s.stats[c.key]
            cell = _f(st["mean"], c.digits)
            if st["std"] is not None:
                cell += f" \u00b1 {_f(st['std'], c.digits)}"
            if s.name in bests[c.key]:
                cell = f"**{cell}**"
            if st["diff_to_base"] is not None:
                sig = _sig_vs_base(bench, s.name, baseline, c.key)
                mark = "\u2020" if sig and sig["significant"] else ""
                cell += f" ({_f(st['diff_to_base'], c.digits, sign=True)}{mark})"
            row.append(cell)
        rows.append(row)
    out = _table(header, rows)
    crit = ["highest score"]
    if any(c.better == "low" for c in bench.columns):
        crit.append("lowest rank distance")
    if any(c.better == "chance" for c in bench.columns):
        crit.append("same-language rate closest to chance")
    legend = ["", f"Bold: best in the column ({', '.join(crit)})."]
    if multi_seed:
        legend.append("Values are means over training seeds \u00b1 sample std over seeds (column *seeds*).")
    if bench.system(baseline) is not None:
        legend.append(f"In parentheses: difference to `{baseline}`; \u2020 = the 95% bootstrap CI over questions of that "
                      "difference excludes 0 (see Significance).")
    return out + legend


def _per_language_tables(bench: _Bench, measure: str) -> list[str]:
    name = "mAP" if measure == "map" else measure
    views: list[tuple[str, str, Callable[[Results, str], float], bool]] = []
    if "mono" in bench.families:
        views.append(("mono", f"Monolingual {name} (query and pool in the same language)",
                      lambda r, q: _num(r.per_setting.get(f"mono:{q}", {}).get(measure)), True))
    if "cross" in bench.families:
        def cross(r: Results, q: str) -> float:
            vals = [v[measure] for k, v in r.per_setting.items()
                    if split_setting(k)[0] == "cross" and split_setting(k)[1] == q and measure in v]
            return float(np.mean(vals)) if vals else float("nan")
        views.append(("cross", f"Cross-lingual {name}, query language x mean over the other pool languages", cross, True))
    if "multi" in bench.families:
        views.append(("multi", f"Multilingual {name} (pool of all languages)",
                      lambda r, q: _num(r.per_setting.get(f"multi:{q}", {}).get(measure)), True))
    if any(c.key == "max_rank_distance" for c in bench.columns):
        views.append(("max_rank_distance", "Max rank distance in the multilingual pool (lower = less language bias)",
                      lambda r, q: _num(r.bias.get("per_language", {}).get(q, {}).get("max_rank_distance")), False))
    out: list[str] = []
    for key, caption, get, high in views:
        digits = 3 if high else 1
        table: dict[str, list[float]] = {}
        for s in bench.systems:
            table[s.name] = [_mean_std([get(r, q) for r in s.results])[0] for q in bench.languages]
        rows = []
        for i, q in enumerate(bench.languages + ["mean"]):
            vals = {n: (v[i] if i < len(bench.languages) else float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
                    for n, v in table.items()}
            finite = {n: round(v, digits) for n, v in vals.items() if math.isfinite(v)}
            target = (max if high else min)(finite.values()) if finite else None
            cells = [f"**{_f(v, digits)}**" if finite.get(n) == target else _f(v, digits) for n, v in vals.items()]
            rows.append([q if q != "mean" else "*mean*", *cells])
        out += [f"#### {caption}", "", *_table(["query language", *table], rows), ""]
    if out:
        out.append("Means over seeds; bold = best system in the row.")
    return out


def _significance_tables(bench: _Bench, baseline: str, n_resamples: int) -> list[str]:
    if not bench.significance:
        return ["No per-query values (per_query.csv.gz) for at least two systems: no significance tests."]
    out = [
        f"Paired tests over the {bench.n_questions} questions of the benchmark. The family score is a macro mean over "
        "settings and each question appears in every setting and language, so the bootstrap resamples whole questions "
        f"({n_resamples} resamples) and recomputes the macro mean; the randomization test swaps the two systems' values "
        "per question. With several seeds each system's per-query values are averaged over its seeds first, so these "
        "intervals cover query sampling only; the seed std columns show training randomness beside them. "
        "**Bold** = the 95% CI excludes 0. Not corrected for multiple comparisons.",
        "",
    ]
    for col in bench.columns:
        rows_c = [r for r in bench.significance if r["column"] == col.key]
        if not rows_c:
            continue
        d = col.digits + (1 if col.digits >= 3 else 0)
        rows = []
        for r in rows_c:
            diff = f"{_f(r['diff'], d, True)}"
            ci = f"[{_f(r['low'], d, True)}, {_f(r['high'], d, True)}]"
            if r["significant"]:
                diff, ci = f"**{diff}**", f"**{ci}**"
            sa = _f(r["seed_std_a"], d) if r["seed_std_a"] is not None else "1 seed" if r["n_seeds_a"] == 1 else "\u2013"
            sb = _f(r["seed_std_b"], d) if r["seed_std_b"] is not None else "1 seed" if r["n_seeds_b"] == 1 else "\u2013"
            if r["b"] == baseline and r["n_seeds_b"] == 1:
                sb = "\u2013"
            if r["significant"]:
                verdict = f"{r['better']} better"
                if r["within_seed_noise"]:
                    verdict += " (but within 2x seed std)"
            else:
                verdict = "no clear difference"
            rows.append([f"{r['a']} \u2212 {r['b']}", diff, ci, f"{r['p_bootstrap']:.3f}", f"{r['p_randomization']:.3f}",
                         f"{sa} / {sb}", verdict])
        direction = "lower is better" if col.better == "low" else "higher is better"
        out += [f"#### {col.label} ({direction})", "",
                *_table(["a \u2212 b", "diff", "95% CI (questions)", "p (bootstrap)", "p (randomization)",
                         "seed std a / b", "verdict"], rows, ["l", "r", "r", "r", "r", "r", "l"]), ""]
    return out


def _seed_section(bench: _Bench, baseline: str) -> list[str]:
    trained = [s for s in bench.systems if s.name != baseline]
    if not trained:
        return []
    out = ["### Seeds", ""]
    if all(s.n < 2 for s in trained):
        out += [f"**Warning: every trained system was run with one seed.** The ranking of strategies on one seed may "
                f"be noise: {_SEED_NOISE_NOTE}. The confidence intervals in this report cover query sampling only, not "
                "training randomness; run more seeds before drawing conclusions.", ""]
    out += [f"- {text}" for text in bench.notes.values()]
    out.append("")
    cols = [c for c in bench.columns if c.settings_family is not None]
    header = ["system", "seeds"]
    for c in cols:
        header += [f"{c.label}: std over seeds", "\u00b1 95% CI (questions)"]
    rows = []
    for s in bench.systems:
        row = [s.name, str(s.n) if s.seeds != [None] else "\u2013"]
        for c in cols:
            d = c.digits + (1 if c.digits >= 3 else 0)
            st = s.stats[c.key]
            ci = bench.own_ci.get(s.name, {}).get(c.key)
            row += [_f(st["std"], d) if st["std"] is not None else "\u2013",
                    f"\u00b1{_f((ci['high'] - ci['low']) / 2, d)}" if ci else "\u2013"]
        rows.append(row)
    out += ["Spread over training seeds next to the query-sampling uncertainty of each system's own score (half width "
            "of its 95% bootstrap CI over questions, seed-averaged per-query values):", "",
            *_table(header, rows), ""]
    if any(s.n > 1 for s in bench.systems):
        rows = []
        for s in bench.systems:
            if s.seeds == [None]:
                continue
            row = [s.name]
            for c in cols:
                d = c.digits + (1 if c.digits >= 3 else 0)
                row.append(", ".join(f"{k}: {_f(v, d)}" for k, v in s.stats[c.key]["per_seed"].items()))
            rows.append(row)
        out += ["Per-seed values (seed: value):", "", *_table(["system", *(c.label for c in cols)], rows,
                                                                ["l"] * (1 + len(cols))), ""]
    return out


def _markdown(benches: list[_Bench], title: str, measure: str, baseline: str, n_resamples: int, output: Path) -> str:
    name = "mAP" if measure == "map" else measure
    lines = [f"# {title}", "",
             f"Primary measure: **{name}**{' (mean average precision over the full ranking)' if measure == 'map' else ''}. "
             "Families: *mono* = query and candidates in the same language, *cross* = candidates in one other "
             "language, *multi* = one pool of all languages; a family's score is the macro mean over its settings. "
             "*Max rank distance*: per query, rank of the worst-ranked gold translation minus the best-ranked one in the "
             "multilingual pool (lower = less language bias). *Same-language rate*: share of queries whose best-ranked "
             "gold answer is in the query language (a language-blind ranker scores the chance rate).", ""]
    lines += ["Benchmarks: " + ", ".join(f"[{b.id}](#{_anchor(b.id)})" for b in benches), ""]
    for b in benches:
        lines += [f"## {b.id}", "",
                  f"{len(b.languages)} languages ({', '.join(b.languages)}); systems: "
                  + ", ".join(f"{s.name} ({s.n} seed{'s' if s.n != 1 else ''})" if s.seeds != [None] else s.name
                              for s in b.systems) + ".", "",
                  "### Main results", "", *_main_table(b, baseline), ""]
        lines += _seed_section(b, baseline)
        if b.figures:
            lines += ["### Figures", ""]
            for key, path in b.figures.items():
                lines += [f"![{key}]({path.relative_to(output).as_posix()})", ""]
        lines += ["### Significance", "", *_significance_tables(b, baseline, n_resamples)]
        per_lang = _per_language_tables(b, measure)
        if per_lang:
            lines += ["### Per language", "", *per_lang, ""]
    return "\n".join(lines).rstrip() + "\n"


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", text.lower()).replace(" ", "-")


# ---- JSON -------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json(benches: list[_Bench], title: str, measure: str, baseline: str, n_resamples: int, seed: int,
          output: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": SCHEMA, "title": title, "measure": measure, "baseline": baseline,
                           "n_resamples": n_resamples, "seed": seed, "benchmarks": {}}
    for b in benches:
        systems = {}
        for s in b.systems:
            systems[s.name] = {
                "seeds": s.seeds,
                "n_seeds": s.n,
                "columns": s.stats,
                "ci_over_questions": b.own_ci.get(s.name, {}),
            }
        out["benchmarks"][b.id] = {
            "languages": b.languages,
            "families": b.families,
            "columns": {c.key: {"label": c.label, "better": c.better} for c in b.columns},
            "same_language_chance": b.chance,
            "n_questions": b.n_questions,
            "systems": systems,
            "significance": b.significance,
            "seed_notes": b.notes,
            "figures": {k: p.relative_to(output).as_posix() for k, p in b.figures.items()},
        }
    return _jsonable(out)


# ---- the public verb --------------------------------------------------------------------------------


def build_report(
    entries: Sequence[ReportEntry],
    output: str | Path,
    *,
    title: str | None = None,
    measure: str = "map",
    baseline: str = "base",
    n_resamples: int = 1000,
    seed: int = 0,
    figures: bool = True,
) -> dict[str, Path]:
    """Write report.md, report.json and figures/*.png into ``output``; returns name -> path of every file.

    ``baseline`` is the system the main table's differences refer to; ``n_resamples``/``seed`` drive the
    bootstrap and randomization tests (deterministic for a given seed).
    """
    entries = list(entries)
    if not entries:
        raise ValueError("build_report: no entries")
    seen: set[tuple[str, int | None, str]] = set()
    for e in entries:
        key = (e.system, e.seed, e.benchmark)
        if key in seen:
            raise ValueError(f"build_report: {e.system} seed {e.seed} on {e.benchmark} is given twice")
        seen.add(key)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    by_bench: dict[str, list[ReportEntry]] = {}
    for e in entries:
        by_bench.setdefault(e.benchmark, []).append(e)
    benches = [_analyse(bid, es, measure=measure, baseline=baseline, n_resamples=n_resamples, seed=seed)
               for bid, es in by_bench.items()]
    if figures:
        for b in benches:
            _figures(b, out / "figures", measure, baseline)
    title = title or "Experiment report"
    written = {"markdown": out / "report.md", "json": out / "report.json"}
    atomic_write_text(written["json"], json.dumps(
        _json(benches, title, measure, baseline, n_resamples, seed, out), indent=2, ensure_ascii=False))
    atomic_write_text(written["markdown"], _markdown(benches, title, measure, baseline, n_resamples, out))
    for b in benches:
        for key, path in b.figures.items():
            written[f"{b.id}/{key}"] = path
    return written


def read_report(output: str | Path) -> dict[str, Any]:
    """The report.json of a report folder (or the file itself), as written by ``build_report``."""
    path = Path(output)
    path = path / "report.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))
