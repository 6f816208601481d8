"""The paper's claims as testable statements, each judged from the run's own seeds and questions.

Elmahdy, Lin & Ahmad (2024, arXiv 2408.10536) claim that hybrid batches (a monolingual batch with
probability alpha, else a cross-lingual one) are at least as good as monolingual batches on
monolingual retrieval AND at least as good as cross-lingual batches on cross-lingual and multilingual
retrieval, with less language bias. Their differences were .000-.006 mAP without a test. Here each
claim is a statement about a difference of two systems, judged with the hierarchical (seed x question)
bootstrap interval of :mod:`polyret.evaluation.hierarchical`:

* "A is at least as good as B" (a score, higher is better) is a non-inferiority statement with a
  margin m: **supported** when the whole interval of A - B lies above -m, **contradicted** when it lies
  below -m (A is worse by more than the margin), otherwise **not resolved**.
* "A has less language bias than B" (max rank distance, lower is better) is a superiority statement:
  **supported** when the interval of A - B lies below 0, **contradicted** when it lies above 0.

When a claim is not resolved, the verdict says how many seeds per system the observed variances say
would resolve it (``seeds_to_resolve``), or that more seeds alone would not. With one seed per
system the interval covers questions only, and the verdict says so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from ..evaluation.hierarchical import hierarchical_bootstrap, seeds_to_resolve

DEFAULT_MARGIN = 0.005  # mAP: the size of the paper's largest reported difference (.006) rounded down

SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "not resolved"


@dataclass(frozen=True)
class Claim:
    """One testable statement "a <relation> b on column".

    Args:
        key: a stable id (``"hybrid>=mono:mono"``).
        a: the system the claim is about.
        b: the system it is compared with.
        column: the main-table column (``"mono"``, ``"cross"``, ``"multi"``, ``"max_rank_distance"``).
        relation: ``"at_least"`` (non-inferiority with the margin) or ``"less"`` (strictly lower).
        text: the claim in words.
    """

    key: str
    a: str
    b: str
    column: str
    relation: str
    text: str


def _claim(key: str, a: str, b: str, column: str, relation: str, text: str) -> Claim:
    return Claim(key, a, b, column, relation, text)


PAPER_CLAIMS: tuple[Claim, ...] = (
    _claim("hybrid>=mono:mono", "hybrid", "mono", "mono", "at_least", "hybrid >= mono on monolingual retrieval"),
    _claim("hybrid>=cross:cross", "hybrid", "cross", "cross", "at_least", "hybrid >= cross on cross-lingual retrieval"),
    _claim("hybrid>=mono:multi", "hybrid", "mono", "multi", "at_least", "hybrid >= mono on multilingual retrieval"),
    _claim("hybrid>=cross:multi", "hybrid", "cross", "multi", "at_least", "hybrid >= cross on multilingual retrieval"),
    _claim("hybrid<mono:bias", "hybrid", "mono", "max_rank_distance", "less", "hybrid has less language bias than mono"),
    _claim("hybrid<cross:bias", "hybrid", "cross", "max_rank_distance", "less", "hybrid has less language bias than cross"),
)


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim judged on one benchmark.

    Args:
        claim: the statement.
        verdict: ``"supported"``, ``"contradicted"`` or ``"not resolved"``.
        diff: observed a - b (seed means).
        low: lower end of the 95% interval over seeds and questions.
        high: its upper end.
        boundary: the value the interval is compared with (``-margin`` or 0).
        n_seeds_a: seeds of a.
        n_seeds_b: seeds of b.
        seed_noise_covered: both systems have 2+ seeds, so the interval includes seed noise.
        seeds_needed: when not resolved, seeds per system that would resolve it at the observed
            variances (None: more seeds alone would not, or they are unknown).
        note: one plain sentence explaining the verdict.
    """

    claim: Claim
    verdict: str
    diff: float
    low: float
    high: float
    boundary: float
    n_seeds_a: int
    n_seeds_b: int
    seed_noise_covered: bool
    seeds_needed: int | None
    note: str
    lean: str | None = None


def lean_of(relation: str, diff: float, low: float, high: float, boundary: float) -> str:
    """Which way an unresolved claim leans: "leans against" when its interval lies entirely on the wrong side
    of 0 (below 0 for "at least", above 0 for "less") or its point estimate is past the boundary on the
    wrong side; otherwise "leans for".

    Args:
        relation: ``"at_least"`` or ``"less"``.
        diff: the point estimate of a - b.
        low, high: its 95% interval.
        boundary: the verdict's boundary (``-margin`` or 0).
    """
    if relation == "at_least":
        return "leans against" if high < 0 or diff < boundary else "leans for"
    return "leans against" if low > 0 or diff > boundary else "leans for"


def judge(claim: Claim, seeds_a, seeds_b, *, margin: float, n_resamples: int, seed: int) -> ClaimVerdict:
    """Judge one claim from the per-seed settings x questions matrices of its two systems.

    Args:
        claim: the statement.
        seeds_a: one matrix per seed of ``claim.a``.
        seeds_b: one matrix per seed of ``claim.b``.
        margin: the non-inferiority margin of ``"at_least"`` claims.
        n_resamples: bootstrap resamples.
        seed: the resampling seed.
    """
    r = hierarchical_bootstrap(seeds_a, seeds_b, n_resamples=n_resamples, seed=seed)
    if claim.relation == "at_least":
        boundary = -margin
        verdict = SUPPORTED if r.low > boundary else CONTRADICTED if r.high < boundary else UNRESOLVED
    elif claim.relation == "less":
        boundary = 0.0
        verdict = SUPPORTED if r.high < boundary else CONTRADICTED if r.low > boundary else UNRESOLVED
    else:
        raise ValueError(f"claim {claim.key}: unknown relation {claim.relation!r}")
    needed = seeds_to_resolve(r, boundary) if verdict == UNRESOLVED else None
    covered = r.seed_noise_covered
    d = 1 if claim.column == "max_rank_distance" else 4
    bound = f"{boundary:+.{d}f}"
    if verdict != UNRESOLVED:
        side = "above" if r.low > boundary else "below"
        note = f"the 95% interval [{r.low:+.{d}f}, {r.high:+.{d}f}] lies {side} {bound}"
    elif needed is not None:
        note = f"the interval spans {bound}; about {needed} seeds per system would resolve it at the observed variances"
    elif covered:
        note = f"the interval spans {bound}; more seeds alone would not resolve it (too close, or question noise)"
    else:
        note = f"the interval spans {bound}; with one seed the seed variance is unknown"
    if not covered:
        note += "; one seed: the interval covers question sampling only, not training-seed noise"
    lean = lean_of(claim.relation, r.diff, r.low, r.high, boundary) if verdict == UNRESOLVED else None
    return ClaimVerdict(claim, verdict, r.diff, r.low, r.high, boundary, r.n_seeds_a, r.n_seeds_b, covered, needed, note,
                        lean)  # fmt: skip


def judge_claims(
    matrices: Mapping[str, Mapping[str, list[np.ndarray] | None]],
    *,
    columns: Collection[str],
    systems: Collection[str],
    margin: float = DEFAULT_MARGIN,
    n_resamples: int = 1000,
    seed: int = 0,
    claims: tuple[Claim, ...] = PAPER_CLAIMS,
) -> list[ClaimVerdict]:
    """Every claim whose two systems and column the benchmark has, judged.

    Args:
        matrices: system -> column -> per-seed settings x questions matrices (analysis builds them).
        columns: the benchmark's main-table column keys.
        systems: the benchmark's system names.
        margin: the non-inferiority margin.
        n_resamples: bootstrap resamples.
        seed: the resampling seed.
        claims: the statements to judge (default the paper's).
    """
    if margin < 0:
        raise ValueError(f"claim margin must be >= 0, got {margin}")
    out = []
    for claim in claims:
        if claim.column not in columns or claim.a not in systems or claim.b not in systems:
            continue
        sa, sb = matrices.get(claim.a, {}).get(claim.column), matrices.get(claim.b, {}).get(claim.column)
        if not sa or not sb:
            continue
        try:
            out.append(judge(claim, sa, sb, margin=margin, n_resamples=n_resamples, seed=seed))
        except ValueError:  # no (setting, question) cell shared by every seed of both systems
            continue
    return out
