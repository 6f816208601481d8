"""The dev set of a training run: held-out parallel groups (a dev loss) and a dev benchmark (an evaluator).

:func:`polyret.training.pair_sources.split_dev_sources` holds ``dev_groups`` parallel groups out of the
training data; :func:`dev_dataset` turns them into the batches the strategy would form.
:func:`build_dev_evaluator` is polyret's evaluator
on ``config.dev``; :class:`CallableEvaluator` lets a plain ``fn(model) -> float | dict`` stand in for a
sentence-transformers evaluator; :func:`best_metric_name` is the trainer's key for the best checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

from sentence_transformers.base.evaluation import BaseEvaluator

from polyret.data.pairstore import PairSource
from polyret.training.config import ConfigError, TrainConfig


def dev_dataset(dev_sources: list[PairSource], config: TrainConfig, *, per_device: int | None = None, world_size: int = 1):
    """Dev pairs in the batches the strategy would form (fixed seed), materialised as text rows.

    The dev loss is read in order, ``per_device`` rows per batch, and under DDP batch ``i`` goes to rank
    ``i % world_size``; the rows are one global stream of the strategy's sampler at that world size, so
    the ``world_size`` consecutive batches of a dev micro-step share their kind (and, with gathered
    negatives, hold each group once), as the training batches do.

    Args:
        dev_sources: the held-out groups (:func:`polyret.training.pair_sources.split_dev_sources`).
        config: the run's config (strategy, alpha, batch size, seed, negatives).
        per_device: rows per device per dev batch (None: ``config.batch_size``;
            :func:`polyret.training.plan.dev_per_device`).
        world_size: training processes.
    """
    from datasets import Dataset

    from polyret.training.pairs_dataset import PairIndex
    from polyret.training.samplers import ParallelBatchSampler

    per_device = per_device or config.batch_size
    index = PairIndex(dev_sources, negatives=config.num_negatives)
    try:
        sampler = ParallelBatchSampler(index, per_device, strategy=config.strategy, alpha=config.alpha,
                                       seed=config.seed + 1, world_size=world_size)  # fmt: skip
    except ValueError as error:
        raise ConfigError(
            f"dev_groups={config.dev_groups} is too small for dev batches of {per_device} x {world_size} device(s): {error}"
        ) from None
    rows = [i for batch in sampler for i in batch]
    return Dataset.from_dict(index.texts(rows))


class CallableEvaluator(BaseEvaluator):
    """Adapts ``fn(model) -> float | dict`` to sentence-transformers' evaluator protocol.

    A float result is reported as ``primary_metric`` (default ``"score"``); a dict's keys are the metrics,
    its first key the primary one unless ``primary_metric`` names another. Metrics are prefixed with
    ``name`` (``dev_map``), as sentence-transformers' own evaluators do.

    Args:
        fn: scores a model; returns a number or a mapping of metric name to number.
        name: the evaluator's name (the metric prefix).
        primary_metric: the metric that picks the best checkpoint (None: as above).
    """

    def __init__(self, fn: Callable, name: str = "dev", primary_metric: str | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.name = name
        self.primary_metric = primary_metric

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        result = self.fn(model)
        if not isinstance(result, dict):
            self.primary_metric = self.primary_metric or "score"
            result = {self.primary_metric: float(result)}
        if self.primary_metric is None:
            self.primary_metric = next(iter(result))
        metrics = self.prefix_name_to_metrics({k: float(v) for k, v in result.items()}, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics


def is_st_evaluator(evaluator) -> bool:
    """Whether ``evaluator`` is a sentence-transformers evaluator (or a list of them).

    Args:
        evaluator: anything passed as ``train(evaluator=...)``.
    """
    return isinstance(evaluator, BaseEvaluator) or (
        isinstance(evaluator, list) and all(isinstance(e, BaseEvaluator) for e in evaluator)
    )


def as_st_evaluator(evaluator, config: TrainConfig, *, has_eval_loss: bool):
    """``evaluator`` as the trainer takes it: a sentence-transformers evaluator as is, a function wrapped.

    Args:
        evaluator: None, a sentence-transformers evaluator, or ``fn(model) -> float | dict``.
        config: the run's config (``metric_for_best_model`` names the wrapped function's primary metric).
        has_eval_loss: whether held-out dev groups give a dev loss (which picks the best checkpoint when
            ``metric_for_best_model`` is unset).
    """
    if evaluator is None or is_st_evaluator(evaluator):
        return evaluator
    if not callable(evaluator):
        raise TypeError(
            f"evaluator must be a sentence-transformers evaluator or fn(model) -> float | dict, got {type(evaluator).__name__}"
        )
    metric = config.metric_for_best_model
    primary = None
    if metric is not None and metric.removeprefix("eval_") != "loss":
        primary = metric.removeprefix("eval_").removeprefix("dev_")
    elif metric is None and not has_eval_loss:
        raise ConfigError(
            "a plain evaluator function needs metric_for_best_model (one of the keys it returns, "
            "e.g. 'map') to pick the best checkpoint"
        )
    return CallableEvaluator(evaluator, "dev", primary)


def build_dev_evaluator(config: TrainConfig):
    """polyret's dev evaluator (:class:`PolyretEvaluator`) for ``config.dev``, restricted to the training
    languages the benchmark has; an unknown benchmark id or missing file is a ``DataError`` now.

    Args:
        config: the run's config (``dev``, ``languages``, ``data_dir``).
    """
    from polyret.data.registry import benchmark_info
    from polyret.evaluation.evaluator import PolyretEvaluator

    info = benchmark_info(config.dev)  # unknown id: fails before any file is read
    languages = None
    if config.languages:
        languages = [lang for lang in config.languages if lang in info.languages]
        if not languages:
            raise ConfigError(
                f"dev benchmark {config.dev!r} has none of the training languages {list(config.languages)} "
                f"(it has {', '.join(info.languages)})"
            )
    # the training's precision: "auto" means the same for the dev encoding (polyret.precision.resolve)
    return PolyretEvaluator(config.dev, languages=languages, data_dir=config.data_dir, precision=config.precision)


def best_metric_name(config: TrainConfig, evaluator, *, has_eval_loss: bool) -> str | None:
    """The key the trainer will find in its evaluation metrics for ``metric_for_best_model``.

    Evaluator metrics reach the trainer as ``eval_<evaluator name>_<metric>`` (``eval_dev_map``); the dev
    loss as ``eval_loss``. ``metric_for_best_model`` may be given in any of the forms ``map``,
    ``dev_map`` or ``eval_dev_map``. An evaluator with ``metric_names()`` has the name checked here.

    Args:
        config: the run's config (``dev``, ``dev_groups``, ``metric_for_best_model``).
        evaluator: the sentence-transformers evaluator scoring the dev set, or None.
        has_eval_loss: whether held-out dev groups give an ``eval_loss``.
    """
    if not config.has_dev:
        return None
    name = getattr(evaluator, "name", "") or ""

    def prefixed(key: str) -> str:
        return key if not name or key.startswith(f"{name}_") else f"{name}_{key}"

    wanted = config.metric_for_best_model
    if wanted is None:
        if has_eval_loss:
            return "eval_loss"
        primary = getattr(evaluator, "primary_metric", None)
        if not primary:
            raise ConfigError("the evaluator has no primary_metric; set metric_for_best_model")
        return f"eval_{prefixed(primary)}"
    key = wanted.removeprefix("eval_")
    if key == "loss":
        if not has_eval_loss:
            raise ConfigError("metric_for_best_model=loss needs held-out dev pairs (dev_groups > 0)")
        return "eval_loss"
    if evaluator is None:
        raise ConfigError(
            f"metric_for_best_model={wanted!r} needs a dev evaluator (set dev); with dev_groups only, "
            "the metric is the dev loss ('loss')"
        )
    metric = f"eval_{prefixed(key)}"
    names = getattr(evaluator, "metric_names", None)
    if callable(names):
        known = sorted({f"eval_{n}" for n in names()} | ({"eval_loss"} if has_eval_loss else set()))
        if metric not in known:
            raise ConfigError(
                f"metric_for_best_model={wanted!r}: the dev evaluator reports no {metric!r}; known: {', '.join(known)}"
            )
    return metric
