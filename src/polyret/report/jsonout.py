"""report.json: a ``Report`` as a JSON-ready dict (schema ``SCHEMA``; keys as ``read_report`` returns them)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..serialize import jsonable
from .summary import SCHEMA, ReportData


def render_json(report: ReportData) -> dict[str, Any]:
    """report.json's content, JSON-ready (NaN as null).

    Args:
        report: the analysed report (its benchmarks' ``figures`` are listed when present).
    """
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "title": report.title,
        "measure": report.measure,
        "baseline": report.baseline,
        "n_resamples": report.n_resamples,
        "seed": report.seed,
        "claim_margin": report.claim_margin,
        "precision": report.precision,  # the evaluations' resolved inference precision (results.json)
        "setup": dict(report.setup),
        "benchmarks": {},
    }
    for b in report.benchmarks:
        systems = {}
        for s in b.systems:
            systems[s.name] = {
                "seeds": s.seeds,
                "n_seeds": s.n,
                "columns": {k: dataclasses.asdict(v) for k, v in s.stats.items()},
                "ci_over_questions": {k: dataclasses.asdict(v) for k, v in s.ci.items()},
                "ci_over_seeds_and_questions": {k: dataclasses.asdict(v) for k, v in s.ci_seeds.items()},
                # what each training did: the share of its optimizer steps that were monolingual
                "realized_mono_share": {"per_seed": s.mono_share, "mean": s.mono_share_mean},
            }
        out["benchmarks"][b.id] = {
            "languages": b.languages,
            "families": b.families,
            "columns": {c.key: {"label": c.label, "better": c.better} for c in b.columns},
            "same_language_chance": b.chance,
            "n_questions": b.n_questions,
            "systems": systems,
            "significance": [dataclasses.asdict(c) for c in b.significance],
            "claims": [dataclasses.asdict(v) for v in b.claims],
            "seed_notes": b.notes,
            "figures": dict(b.figures),
        }
    return jsonable(out)
