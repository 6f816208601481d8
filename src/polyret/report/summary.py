"""The typed report: what the analysis (``analysis.analyse``) finds and every renderer reads.

``Report`` -> one ``BenchmarkSummary`` per benchmark -> one ``SystemSummary`` per system (its
``ColumnStats`` per main-table column, the CI of its own score, the data of its figures), the pairwise
``Comparison``s, the per-language tables (``LanguageTable``) and the seed notes, in ``ReportData``. Rendering
lives in ``markdown``, ``latex``, ``jsonout`` and ``figures`` (they read a ``ReportData``); ``document.Report``
renders itself through them (``Report.save`` writes all of them, ``files``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..evaluation.results import Results
from .claims import ClaimVerdict

SCHEMA = 1  # of report.json


def measure_name(measure: str) -> str:
    """How a measure is written in labels: ``"map"`` -> ``"mAP"``, others as they are."""
    return "mAP" if measure == "map" else measure


@dataclass(frozen=True)
class Column:
    """One column of the main table.

    Args:
        key: ``"mono"`` | ``"cross"`` | ``"multi"`` | ``"max_rank_distance"`` | ``"same_language_rate"``.
        label: its header (``"cross mAP"``).
        better: ``"high"``, ``"low"`` or ``"chance"`` (closest to the same-language chance rate).
        digits: decimals shown.
        get: the column's value in one ``Results``.
        settings_family: the family whose per-query rows feed the significance tests (None: no tests).
        per_query_measure: the per-query measure of those rows.
    """

    key: str
    label: str
    better: str
    digits: int
    get: Callable[[Results], float]
    settings_family: str | None = None
    per_query_measure: str | None = None


@dataclass
class ColumnStats:
    """One system's value of one column over its seeds (report.json ``systems.<name>.columns.<key>``).

    Args:
        mean: mean over seeds (NaN when no seed has a value).
        std: sample std over seeds (None with fewer than two values).
        n_seeds: how many seeds (entries) the system has.
        per_seed: seed (``"none"`` for an untrained model) -> value.
        diff_to_base: mean minus the baseline's mean (None for the baseline itself or without one).
    """

    mean: float
    std: float | None
    n_seeds: int
    per_seed: dict[str, float]
    diff_to_base: float | None = None


@dataclass
class Interval:
    """A bootstrap estimate with its 95% CI over questions.

    Args:
        mean: the estimate.
        low: lower end of the 95% CI.
        high: upper end of the 95% CI.
    """

    mean: float
    low: float
    high: float


@dataclass
class Comparison:
    """A paired test of system ``a`` against ``b`` in one column (report.json ``significance[]``).

    Args:
        a: the first system.
        b: the second system (the baseline in comparisons against it).
        column: the column key.
        diff: macro-mean difference a - b (seed-averaged per-query values).
        low: lower end of the 95% bootstrap CI over questions.
        high: upper end of that CI.
        p_bootstrap: two-sided bootstrap p value.
        p_randomization: two-sided paired randomization p value.
        significant: the CI excludes 0, the difference is not a tie (``significance.TIE_TOLERANCE``) and the
            Holm-adjusted randomization p-value is below 0.05 (``significance.verdict``).
        better: the better system when significant, else None.
        seed_std_a: ``a``'s std over seeds (None with one seed).
        seed_std_b: ``b``'s std over seeds.
        within_seed_noise: ``|diff|`` is at most twice the larger of the two seed stds.
        n_seeds_a: ``a``'s number of seeds.
        n_seeds_b: ``b``'s number of seeds.
        seeds_low: lower end of the 95% CI over seeds AND questions (hierarchical bootstrap,
            ``polyret.evaluation.hierarchical``; None when it could not be computed).
        seeds_high: its upper end.
        p_seeds: its two-sided p value.
        seed_noise_covered: that interval includes training-seed noise (every trained side has >= 2 seeds).
        seeds_needed: when that interval includes 0, the seeds per system the observed variance says
            would exclude it (None: resolved, or more seeds alone would not).
        p_bootstrap_holm: ``p_bootstrap`` Holm-adjusted over the comparisons of its column (one table).
        p_randomization_holm: ``p_randomization`` Holm-adjusted likewise.
    """

    a: str
    b: str
    column: str
    diff: float
    low: float
    high: float
    p_bootstrap: float
    p_randomization: float
    significant: bool
    better: str | None
    seed_std_a: float | None
    seed_std_b: float | None
    within_seed_noise: bool
    n_seeds_a: int
    n_seeds_b: int
    seeds_low: float | None = None
    seeds_high: float | None = None
    p_seeds: float | None = None
    seed_noise_covered: bool = False
    seeds_needed: int | None = None
    p_bootstrap_holm: float | None = None
    p_randomization_holm: float | None = None


@dataclass
class SystemSummary:
    """What the report knows of one system on one benchmark (the experiment's ``System`` is what is
    trained; this is its statistics).

    Args:
        name: the system name.
        seeds: its seeds in order (``[None]`` for an untrained model).
        stats: column key -> ``ColumnStats``.
        ci: column key -> ``Interval`` of its own score over questions (columns with per-query values).
        ci_seeds: column key -> ``Interval`` of its own score over seeds and questions (2+ seeds).
        matrix_languages: the languages of ``matrix`` (None when the benchmark has no cross family).
        matrix: query x pool language matrix of the measure, mean over seeds.
        rank_distances: per-query max rank distances of all seeds pooled (finite; None without them).
        mono_share: seed -> the share of its optimizer steps that were monolingual, as its training's
            batch log recorded it (results.json ``training``; empty for an untrained model or an evaluation
            of a model without that record). What the run did; the name says only the nominal alpha.
    """

    name: str
    seeds: list[int | None]
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    ci: dict[str, Interval] = field(default_factory=dict)
    ci_seeds: dict[str, Interval] = field(default_factory=dict)
    matrix_languages: list[str] | None = None
    matrix: np.ndarray | None = None
    rank_distances: np.ndarray | None = None
    mono_share: dict[str, float] = field(default_factory=dict)

    @property
    def mono_share_mean(self) -> float | None:
        """The realized share of monolingual steps, mean over seeds (None when not recorded)."""
        return float(np.mean(list(self.mono_share.values()))) if self.mono_share else None

    @property
    def n(self) -> int:
        """How many evaluations (seeds) the system has."""
        return len(self.seeds)

    @property
    def untrained(self) -> bool:
        """True for a system without a training seed (the base model)."""
        return self.seeds == [None]


@dataclass
class LanguageTable:
    """One per-language table: a value per system and query language, mean over seeds.

    Args:
        key: ``"mono"``, ``"cross"`` (mean over the other pool languages), ``"multi"`` or
            ``"max_rank_distance"``.
        higher_is_better: which end is best (for the bold cell of each row).
        digits: decimals shown.
        values: system -> one value per benchmark language (NaN where absent).
    """

    key: str
    higher_is_better: bool
    digits: int
    values: dict[str, list[float]]


@dataclass
class BenchmarkSummary:
    """The analysis of one benchmark.

    Args:
        id: the benchmark id.
        languages: its languages, in first-seen order over the entries.
        families: its setting families (``polyret.vocabulary.FAMILIES`` order).
        columns: the main table's columns.
        systems: one summary per system, baseline first, then ``SYSTEM_ORDER``, then as given.
        chance: the same-language chance rate (NaN without bias results).
        n_questions: questions in the per-query significance matrices.
        significance: every pairwise test (trained vs baseline, then trained vs trained).
        claims: the paper's claims, judged (``polyret.report.claims``).
        notes: column key -> plain-language seed note.
        language_tables: the per-language tables.
        figures: figure key -> path relative to the report folder (filled by ``Report.save``).
    """

    id: str
    languages: list[str]
    families: list[str]
    columns: list[Column]
    systems: list[SystemSummary]
    chance: float
    n_questions: int = 0
    significance: list[Comparison] = field(default_factory=list)
    claims: list[ClaimVerdict] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    language_tables: list[LanguageTable] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def system(self, name: str) -> SystemSummary | None:
        """The summary of system ``name``, or None."""
        return next((s for s in self.systems if s.name == name), None)

    def comparison(self, a: str, b: str, column: str) -> Comparison | None:
        """The test of ``a`` against ``b`` in ``column``, or None."""
        return next((r for r in self.significance if r.a == a and r.b == b and r.column == column), None)


@dataclass
class ReportData:
    """An analysed experiment: the numbers every renderer (markdown, JSON, figures) reads. The renderers take
    this; :class:`polyret.report.document.Report` (what ``polyret.report.analyse`` returns) adds the methods
    that render it (``to_markdown``, ``to_json``, ``save``), so the data sits below its renderers.

    Args:
        title: the report's title.
        measure: the primary measure (``"map"``, ``"ndcg@10"``...).
        baseline: the system differences refer to.
        n_resamples: bootstrap / randomization resamples.
        seed: the seed of those resamples.
        benchmarks: one summary per benchmark, in the order first seen.
        claim_margin: the non-inferiority margin the claims were judged with.
        precision: the evaluations' inference precision as their results.json record it (``"bf16"``;
            several comma-separated when they differ; None when none records it: an older polyret's).
        setup: the Setup section's rows (what produced the numbers: model, data, training, evaluation,
            software, hardware, date; :func:`polyret.report.setup.collect_setup`), empty when unknown.
    """

    title: str
    measure: str
    baseline: str
    n_resamples: int
    seed: int
    benchmarks: list[BenchmarkSummary]
    claim_margin: float = 0.005
    precision: str | None = None
    setup: dict[str, str] = field(default_factory=dict)
