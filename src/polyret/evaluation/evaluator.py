"""polyret's evaluation as a sentence-transformers evaluator, for dev scoring during training.

The trainer calls it with the model being trained; it scores every setting family of a dev benchmark
with the same ``score()`` (and so the same metric definitions) as ``polyret evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from ..data.records import Benchmark
from .encoding import encode_benchmark
from .scoring import score


class PolyretEvaluator(SentenceEvaluator):
    """Returns ``{"<name>_<family>_<measure>": value, ...}``; primary: ``<name>_map``, the mean of the
    families' mAP. The trainer reports these as ``eval_<name>_...`` (e.g. ``eval_dev_map``).

    Args:
        benchmark: a benchmark id or a loaded ``Benchmark``.
        languages: a subset of its languages (with an id).
        families: setting families to score (None: the benchmark's own).
        measures: measure names reported.
        data_dir: where benchmark files are looked for (with an id).
        batch_size: texts per encoding batch.
        name: the prefix of every metric name.
        precision: encoding precision, ``auto`` (:func:`polyret.precision.resolve` for the model's device
            at each call), ``fp32``, ``bf16`` or ``fp16``.
    """

    def __init__(
        self,
        benchmark: str | Benchmark,
        *,
        languages: Sequence[str] | None = None,
        families: Sequence[str] | None = None,
        measures: Sequence[str] = ("map", "ndcg@10"),
        data_dir: str | None = None,
        batch_size: int = 64,
        name: str = "dev",
        precision: str = "auto",
    ):
        super().__init__()
        if isinstance(benchmark, str):
            from ..data import load_benchmark

            benchmark = load_benchmark(benchmark, data_dir=data_dir, languages=languages)
        self.benchmark = benchmark
        self.families = families
        self.measures = tuple(measures)
        self.batch_size = batch_size
        self.name = name
        self.precision = precision
        # already prefixed, as __call__ reports it, so the best-checkpoint metric a trainer derives from it
        # before the first evaluation is the key that evaluation returns
        self.primary_metric = f"{name}_map" if name else "map"
        self.greater_is_better = True

    def metric_names(self) -> list[str]:
        """Every key ``__call__`` returns (with the name prefix), known before any evaluation."""
        from .settings import settings_for

        families = sorted({s.family for s in settings_for(self.benchmark, families=self.families)})
        names = [f"{family}_{m}" for family in families for m in self.measures] + ["map"]
        if "multi" in families:
            names.append("max_rank_distance")
        return [f"{self.name}_{n}" if self.name else n for n in names]

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        q, c = encode_benchmark(
            model, self.benchmark, batch_size=self.batch_size, cache=None, progress=False, precision=self.precision
        )
        res, _ = score(self.benchmark, q, c, families=self.families, measures=self.measures)
        metrics: dict[str, float] = {}
        for family, vals in res.macro.items():
            for m, v in vals.items():
                metrics[f"{family}_{m}"] = float(v)
        metrics["map"] = sum(res.macro[f]["map"] for f in res.macro) / len(res.macro)
        if "max_rank_distance" in res.bias:
            metrics["max_rank_distance"] = float(res.bias["max_rank_distance"])
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
