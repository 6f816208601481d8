"""Evaluation results as files other tools can read: results.json, a per-setting CSV, per-query CSV, a heatmap.

``results.json`` layout (stable; ``schema`` is bumped on incompatible changes)::

    settings.<family>.<measure>                     macro mean over that family's settings
    settings.mono.per_language.<lang>.<measure>
    settings.cross.pairs["<query lang>-<pool lang>"].<measure>
    settings.multi.per_language.<lang>.<measure>
    language_bias.max_rank_distance (+ per_language, same_language_preference ...)
    language_bias.{peer,max_at_r,lpr,lpr_chance,lang_ndcg,mrc} (polyret.evaluation.bias_measures; + parameters)
    unretrievable_relevant                          relevant judgements whose docid is not in the corpus
                                                    (counted as never retrieved, as trec_eval would)

A results folder counts as done only when its completion marker (``.complete.json``, see
``polyret.paths.mark_complete``) is there and matches the files: :meth:`Results.write` removes the
marker first and writes it last, so a crash or a full disk mid-way leaves a folder that reads as
unfinished (:func:`is_done`). Folders written before markers existed read as unfinished too.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import (
    COMPLETE_MARKER,
    atomic_write_text,
    clear_complete,
    incomplete_reason,
    is_complete,
    mark_complete,
    read_marker,
)
from ..serialize import jsonable
from ..vocabulary import FAMILIES
from .perquery import PerQuery, fmt_value
from .runtable import RunTable
from .settings import split_setting

__all__ = [
    "SCHEMA",
    "Results",
    "disagreement",
    "evaluation_producer",
    "is_done",
    "load_checked",
    "not_done_reason",
    "split_setting",
]

SCHEMA = 1


@dataclass
class Results:
    """One evaluation's numbers: what ``evaluate()`` returns and ``results.json`` stores.

    Args:
        model: the model spec or name evaluated.
        benchmark: the benchmark id.
        languages: the benchmark's languages that were evaluated, in benchmark order.
        measures: the measure names, in the order asked for.
        per_setting: setting name -> measure -> mean over its queries (plus ``"n_queries"``).
        macro: family -> measure -> macro mean over the family's settings.
        bias: the language-bias summary of the multilingual settings (empty without them).
        timing: seconds per stage (``load_s``, ``encode_s``, ``search_s``, ``metrics_s``, ``total_s``).
        fingerprint: the model fingerprint (weights and encoding options).
        per_query: the per-(setting, query) values, when kept.
        extra: further JSON fields (counts, ``k``, backend, config).
        run: the pooled ``RunTable`` when the caller asked to keep it (not serialised to JSON).
    """

    model: str
    benchmark: str
    languages: list[str]
    measures: list[str]
    per_setting: dict[str, dict[str, float]]  # setting name -> measure -> mean (plus "n_queries")
    macro: dict[str, dict[str, float]]  # family -> measure -> macro mean over its settings
    bias: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    per_query: PerQuery | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    run: RunTable | None = None  # the pooled run table, when the caller asked to keep it (not in JSON)

    # ---- views -------------------------------------------------------------------------------------
    def families(self) -> list[str]:
        return [f for f in FAMILIES if f in self.macro]

    def matrix(self, measure: str = "map") -> tuple[list[str], np.ndarray]:
        """Query language x pool language matrix: cross-lingual off the diagonal, monolingual on it."""
        langs = list(self.languages)
        idx = {lang: i for i, lang in enumerate(langs)}
        m = np.full((len(langs), len(langs)), np.nan)
        for name, vals in self.per_setting.items():
            family, q, p = split_setting(name)
            if family in ("mono", "cross") and q in idx and p in idx and measure in vals:
                m[idx[q], idx[p]] = vals[measure]
        return langs, m

    def to_dict(self) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        for family in self.families():
            block: dict[str, Any] = dict(self.macro[family])
            key = "pairs" if family == "cross" else "per_language"
            block[key] = {}
            for name, vals in self.per_setting.items():
                fam, q, p = split_setting(name)
                if fam != family:
                    continue
                block[key][f"{q}-{p}" if family == "cross" else q] = dict(vals)
            settings[family] = block
        return {
            "schema": SCHEMA,
            "model": self.model,
            "model_fingerprint": self.fingerprint,
            "benchmark": self.benchmark,
            "languages": list(self.languages),
            "measures": list(self.measures),
            "primary_measure": "map",
            "settings": settings,
            "language_bias": self.bias,
            "timing_s": self.timing,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        per_setting: dict[str, dict[str, float]] = {}
        macro: dict[str, dict[str, float]] = {}
        for family, block in data["settings"].items():
            macro[family] = {k: v for k, v in block.items() if not isinstance(v, dict)}
            nested = block.get("pairs" if family == "cross" else "per_language", {})
            for key, vals in nested.items():
                name = f"cross:{key}" if family == "cross" else f"{family}:{key}"
                per_setting[name] = dict(vals)
        known = {
            "schema",
            "model",
            "model_fingerprint",
            "benchmark",
            "languages",
            "measures",
            "primary_measure",
            "settings",
            "language_bias",
            "timing_s",
        }
        return cls(
            model=data["model"],
            benchmark=data["benchmark"],
            languages=list(data["languages"]),
            measures=list(data["measures"]),
            per_setting=per_setting,
            macro=macro,
            bias=data.get("language_bias", {}),
            timing=data.get("timing_s", {}),
            fingerprint=data.get("model_fingerprint", ""),
            extra={k: v for k, v in data.items() if k not in known},
        )

    # ---- files -------------------------------------------------------------------------------------
    def write(
        self,
        output: str | Path,
        *,
        heatmap: bool = True,
        run: RunTable | None = None,
        producer: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        extra_files: list[Path] | tuple[Path, ...] = (),
        exports: Sequence[Callable[[Results, Path], dict[str, Path]]] = (),
    ) -> dict[str, Path]:
        """Write results.json, settings.csv, per_query.csv.gz, the heatmap and (with ``run``) run.npz,
        run.trec and qrels.trec.

        Each file is written atomically; the folder's completion marker is removed first and written
        last, after every file is in place, and lists exactly the files this write produced with their
        sha256 and the provenance (producer, model fingerprint, benchmark, config), so only a finished
        write ever reads as done (:func:`is_done`). Files an earlier write of the folder listed and this
        one does not produce (the ``run.npz`` of an earlier run with ``--trec-run``) are removed. A failed write (a
        full disk, a read-only folder) raises an ``OSError`` naming the file and leaves no marker.

        Args:
            output: the results folder (created if needed).
            heatmap: also draw ``heatmap_map.png`` (when there are mono/cross settings in 2+ languages).
            run: a ``RunTable`` to save as ``run.npz`` inside the same completed step, with ``run.trec``
                (its top-k run, :meth:`RunTable.to_trec_run`) and ``qrels.trec`` (the same query ids,
                :meth:`RunTable.to_trec_qrels`), all listed in the completion marker.
            producer: what wrote the folder (default: :func:`evaluation_producer` of these results).
            provenance: further fields recorded in the marker (e.g. the evaluated model's own marker digest).
            extra_files: files the caller already wrote into ``output`` for this step (listed too).
            exports: further writers of this step, each ``(results, folder) -> {key: path written}``, run
                after the files above and before the marker, their files listed in it and returned (the
                evaluation verb passes the MTEB result files: :func:`polyret.evaluation.pipeline.write_evaluation`).
        """
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        previous = read_marker(out)
        clear_complete(out)
        written = {"results": out / "results.json", "settings_csv": out / "settings.csv"}
        atomic_write_text(written["results"], json.dumps(jsonable(self.to_dict()), indent=2, ensure_ascii=False))
        atomic_write_text(written["settings_csv"], self.settings_csv())
        if self.per_query is not None:
            written["per_query"] = out / "per_query.csv.gz"
            self.per_query.to_csv(written["per_query"])
        if heatmap and any(f in self.macro for f in ("mono", "cross")) and len(self.languages) > 1:
            from ..plotting import heatmap as draw_heatmap

            written["heatmap"] = out / "heatmap_map.png"
            langs, m = self.matrix("map")
            draw_heatmap(m, langs, written["heatmap"], title=f"mAP, {self.model} on {self.benchmark}")
        if run is not None:
            written["run"] = out / "run.npz"
            run.save(written["run"])
            # what trec_eval / ranx / ir_measures read: a plain top-k run and the qrels with the same ids
            written["run_trec"] = out / "run.trec"
            run.to_trec_run(written["run_trec"])
            written["qrels_trec"] = out / "qrels.trec"
            run.to_trec_qrels(written["qrels_trec"])
        for export in exports:
            written.update(export(self, out))
        mine = {p.resolve() for p in [*written.values(), *extra_files]}
        for name in (previous or {}).get("files", {}):  # the earlier write's files this one did not produce
            stale = out / name
            if stale.resolve() not in mine and stale.is_file():
                stale.unlink()
        mark_complete(
            out,
            files=[*written.values(), *extra_files],
            producer=producer or evaluation_producer(self.model, self.benchmark),
            kind=(producer or {}).get("kind", "evaluation"),
            benchmark=self.benchmark,
            model=self.model,
            model_fingerprint=self.fingerprint,
            config=jsonable(self.extra.get("config")),
            **(provenance or {}),
        )
        return written

    def settings_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        bias_langs = (self.bias or {}).get("per_language", {})
        bias_keys = list(dict.fromkeys(k for v in bias_langs.values() for k, x in v.items() if isinstance(x, (int, float))))
        w.writerow(["setting", "family", "query_lang", "pool_lang", "n_queries", *self.measures, *bias_keys])
        for name, vals in self.per_setting.items():
            family, q, p = split_setting(name)
            bias = bias_langs.get(q, {}) if family == "multi" else {}  # language bias: multilingual pools only
            w.writerow(
                [name, family, q, p, int(vals.get("n_queries", 0)), *(fmt_value(vals.get(m)) for m in self.measures)]
                + [fmt_value(bias.get(k)) for k in bias_keys]
            )
        return buf.getvalue()

    @classmethod
    def load(cls, output: str | Path) -> Results:
        out = Path(output)
        res = cls.from_dict(json.loads((out / "results.json").read_text(encoding="utf-8")))
        if (out / "per_query.csv.gz").exists():
            res.per_query = PerQuery.from_csv(out / "per_query.csv.gz")
        return res


def is_done(output: str | Path) -> bool:
    """True iff ``output`` holds a finished evaluation: a valid completion marker (every file it lists
    present with its recorded size and sha256) and results.json. A folder without one is never trusted."""
    return is_complete(output) and (Path(output) / "results.json").is_file()


def evaluation_producer(model: str, benchmark: str) -> dict[str, str]:
    """The owner of an evaluation folder: ``{"kind": "evaluation", "model": ..., "benchmark": ...}``.

    A model spec that names a local folder is recorded resolved, so ``./m`` and ``/abs/m`` are one owner.

    Args:
        model: the model spec or name evaluated.
        benchmark: the benchmark id.
    """
    path = Path(str(model)).expanduser()
    if not str(model).startswith("builtin:") and path.exists():
        model = str(path.resolve())
    return {"kind": "evaluation", "model": str(model), "benchmark": str(benchmark)}


def disagreement(res: Results, *, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """Why ``res``'s results.json numbers disagree with its per-query values (None: they agree).

    Every setting's mean of each measure and its query count are recomputed from ``per_query.csv.gz``
    (stored to 6 significant digits, hence the tolerance), and every family's macro mean from the
    settings. A report checks this before it uses either file.

    Args:
        res: results loaded with their per-query values (:meth:`Results.load`).
        rtol, atol: the tolerance of a mean recomputed from rounded values.
    """
    if res.per_query is None:
        return "no per_query.csv.gz"
    pq = res.per_query
    names, codes = pq.setting_codes()
    counts = np.bincount(codes, minlength=len(names)) if len(names) else np.zeros(0, dtype=np.int64)
    if set(names) != set(res.per_setting):
        only = sorted(set(names) ^ set(res.per_setting))[:3]
        return f"settings differ between results.json and per_query.csv.gz ({', '.join(only)})"
    for code, name in enumerate(names):
        recorded = res.per_setting[name]
        if "n_queries" in recorded and int(recorded["n_queries"]) != int(counts[code]):
            return f"{name}: results.json says {recorded['n_queries']} queries, per_query.csv.gz has {counts[code]}"
        rows = codes == code
        for measure in res.measures:
            if measure not in pq.values or measure not in recorded:
                continue
            mean = float(np.mean(pq.values[measure][rows]))
            value = recorded[measure]
            if value is None or not math.isclose(float(value), mean, rel_tol=rtol, abs_tol=atol):
                return f"{name} {measure}: results.json says {value}, per_query.csv.gz gives {mean:.6g}"
    for family, block in res.macro.items():
        settings = [n for n in res.per_setting if split_setting(n)[0] == family]
        for measure in res.measures:
            if measure not in block or not settings:
                continue
            mean = float(np.mean([res.per_setting[n][measure] for n in settings]))
            if block[measure] is None or not math.isclose(float(block[measure]), mean, rel_tol=rtol, abs_tol=atol):
                return f"{family} {measure}: results.json's mean {block[measure]} is not the mean of its settings ({mean:.6g})"
    return None


def not_done_reason(output: str | Path) -> str | None:
    """Why ``output`` is not a finished, self-consistent evaluation (None: it is one); see :func:`load_checked`.

    Args:
        output: a results folder.
    """
    return load_checked(output)[1]


def load_checked(output: str | Path) -> tuple[Results | None, str | None]:
    """``(results, None)`` for a finished, self-consistent evaluation, else ``(None, why not)``.

    Checks the completion marker (every file's size and sha256), that results.json is listed in it,
    and that results.json agrees with per_query.csv.gz (:func:`disagreement`) before either is used.

    Args:
        output: a results folder.
    """
    out = Path(output)
    reason = incomplete_reason(out)
    if reason is not None:
        return None, reason
    listed = read_marker(out)["files"]
    if "results.json" not in listed:
        return None, f"{out}: results.json is not listed in its {COMPLETE_MARKER}"
    try:
        res = Results.load(out)
    except (KeyError, ValueError, TypeError, OSError, EOFError) as err:
        return None, f"{out / 'results.json'}: unreadable results ({err})"
    if "per_query.csv.gz" in listed:
        why = disagreement(res)
        if why is not None:
            return None, f"{out}: results.json disagrees with per_query.csv.gz: {why}"
    return res, None
