"""The ``polyret`` command: parse, validate, call the public Python verb, print. No logic of its own.

One error path: every command runs inside :class:`PolyretGroup`, which turns a user error (bad data,
config or option, a missing or unwritable file, a full disk) into ``error: ...`` on stderr and exit
code 2, an interrupt into exit code 130, and anything else (a bug) into a one-line message and exit
code 1. ``polyret --debug ...`` (or ``POLYRET_DEBUG=1``) adds the traceback. ``polyret --version``
prints :data:`polyret.__version__`.

One file on purpose: it is the whole thin layer, and much of its length is typer's option declarations;
every command's options, checks and printing read side by side. An option that sets a config field
(``--k`` is ``EvalConfig.k``) takes its help text and default from the field (:func:`_opt`: the class
docstring's ``Args:`` entry, the dataclass default), so neither is typed twice; only the options of the
command line itself (``--output``, ``--dry-run``, ``--set``...) have their help here.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from . import interrupts as _interrupts
from . import process_env  # noqa: F401  (first of polyret's modules: before numpy loads)
from .configs import plain_help
from .evaluation.bias_measures import BIAS_MEASURES as _BIAS_MEASURES
from .evaluation.config import EvalConfig
from .evaluation.debias import METHODS as _DEBIAS_METHODS
from .experiment import PRESETS as _PRESETS
from .experiment.config import ExperimentConfig
from .training.config import RECIPES as _RECIPES
from .training.config import TrainConfig
from .vocabulary import STRATEGIES as _STRATEGIES

_FIELD = object()  # _opt's default: the field's own


def _opt(cls, name: str, *decls: str, default=_FIELD, extra: str = "", none: str = "unset", names=None, **kwargs):
    """A typer option mirroring field ``name`` of config ``cls``: its help is the field's description (the
    class docstring's ``Args:`` entry, :meth:`polyret.configs.ConfigBase.field_help`) and its default the
    field's, so neither is typed twice. A tuple default (``measures``) is the option's as its comma-separated
    text.

    Args:
        cls: the config class (``EvalConfig``, ``TrainConfig``, ``ExperimentConfig``).
        name: the field.
        decls: typer's parameter declarations (``"--output"`` where the option is named otherwise).
        default: the option's default; ``None`` for an option that overrides a config or preset only when
            it is given (``polyret train``, ``polyret experiment``).
        extra: what only the command line needs said, after the field's text (a format, the choices).
        none: how the option spells the field's ``None`` (``unset``: left out; ``0``).
        names: the other fields' options, for the help's mentions of them (``max_tokens`` -> ``--max-tokens``).
        kwargs: further ``typer.Option`` arguments (``envvar``...).
    """
    text = plain_help(cls.field_help(name), none=none, names=names)
    if default is _FIELD:
        default = cls.default(name)
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
    return typer.Option(default, *decls, help=f"{text} {extra}".strip(), **kwargs)


try:  # typer >= 0.24 vendors click; its exceptions are the ones the commands raise
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as cx

console = Console(width=None if sys.stdout.isatty() else 80)  # a log reads at 80 columns too


def _debug_from_env() -> bool:
    return os.environ.get("POLYRET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _user_message(exc: BaseException) -> str | None:
    """The plain message for a user error, or None when ``exc`` is not one (a bug)."""
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        what = exc.strerror or str(exc)
        message = f"{where}: {what}" if where else what
        if exc.errno == errno.ENOSPC:
            message += " (the disk is full: free some space and run the same command again; finished steps are kept)"
        return message
    if isinstance(exc, ValueError):  # DataError, ConfigError, ModelError and config validation
        return str(exc)
    return None


def _continue_hint(ctx, output: str | None = None) -> str:
    """How to continue an interrupted command: ``polyret train`` resumes with ``--resume`` (a fresh run into
    a folder with checkpoints is refused); the other commands reuse finished work when run again."""
    if getattr(ctx, "invoked_subcommand", None) == "train" or output is not None:
        where = f"--output {output}" if output else "--output <the same folder>"
        return f"continue the run with: polyret train {where} --resume (its saved config is reused; checkpoints are kept)"
    return "run the same command again to continue (finished steps are kept)"


def _stop_for_signal(ctx=None, output: str | None = None) -> None:
    """The one message and exit code of an interrupted command: 130 for Ctrl-C, 143 for SIGTERM."""
    import signal

    signum = _interrupts.acknowledge() or signal.SIGINT
    what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    typer.echo(f"error: {what}; {_continue_hint(ctx, output)}", err=True)
    raise typer.Exit(128 + int(signum)) from None


class PolyretGroup(TyperGroup):
    """The one error path of every ``polyret`` command (see the module docstring)."""

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        finally:
            if _interrupts.pending() is not None and not _interrupts.acknowledged():
                _stop_for_signal()  # swallowed on the way (a finalizer): the command still stops as interrupted

    def _invoke(self, ctx):
        debug = bool(ctx.params.get("debug")) or _debug_from_env()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, cx.ClickException):
            raise
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            _stop_for_signal(ctx)
        except Exception as exc:  # noqa: BLE001 - this is the one place that decides what the user sees
            if debug:
                traceback.print_exc()
            message = _user_message(exc)
            if message is not None:
                typer.echo(f"error: {message}", err=True)
                raise typer.Exit(2) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            typer.echo(
                f"error: internal error {type(exc).__name__}"
                + (f": {first}" if first else "")
                + ("" if debug else " (a bug in polyret: rerun with polyret --debug ... for the traceback)"),
                err=True,
            )
            raise typer.Exit(1) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _interrupts.install()  # SIGINT and SIGTERM: always a clean stop, never swallowed (polyret.interrupts)
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except cx.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            code = 2
        except cx.ClickException as exc:  # bad options, unknown command: typer / click found them
            hint = ""
            if isinstance(exc, cx.UsageError) and exc.ctx is not None:
                hint = f" (see: {exc.ctx.command_path} --help)"
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        except KeyboardInterrupt:  # outside a command (while parsing its options)
            code = 128 + (_interrupts.acknowledge() or 2)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    cls=PolyretGroup,
    pretty_exceptions_enable=False,
    help="Train and evaluate multilingual dense retrievers (mono-, cross- and multilingual retrieval).",
)


def _print_version(value: bool) -> None:
    if value:
        from .version import __version__

        typer.echo(f"polyret {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", envvar="POLYRET_DEBUG", help="Show the traceback of an error (also: POLYRET_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print polyret's version and exit."
    ),
) -> None:
    """Train and evaluate multilingual dense retrievers (mono-, cross- and multilingual retrieval)."""
    _one_line_warnings()
    if not (debug or _debug_from_env()):
        from .progress import quiet_third_party

        quiet_third_party()  # polyret reports progress itself; --debug keeps the libraries' own output


def _one_line_warnings() -> None:
    """polyret's own warnings (an emulated precision) as one ``warning: ...`` line on stderr."""
    import warnings

    from .precision import EmulatedPrecisionWarning

    default = warnings.formatwarning
    if getattr(default, "polyret", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, EmulatedPrecisionWarning):
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)

    formatwarning.polyret = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def _split(value: str | None) -> list[str] | None:
    if value is None or value.strip() == "":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _measures(value: str | None, k: int | None = None) -> list[str]:
    """``--measures``: names in any spelling polyret or ir_measures knows, as polyret's stable names.

    Args:
        value: the option's text (None: the default measures).
        k: the run depth, when a measure computed by ir_measures must cut within it.
    """
    from .evaluation.metrics import canonical_measures, parse_measure
    from .vocabulary import DEFAULT_MEASURES

    if value is None:
        return list(DEFAULT_MEASURES)
    try:
        names = canonical_measures(value)
    except ValueError as err:
        raise ValueError(f"--measures: {err}") from None
    for name in names:
        m = parse_measure(name)
        if k is not None and m.kind == "ir" and (m.cutoff is None or m.cutoff > k):
            raise ValueError(f"--measures: {name} is computed by ir_measures on the top --k {k}: give it a cutoff <= {k}")
    return names


def _say(*parts) -> None:
    """Print text built from data (paths, model names, messages) as is: never parsed as rich markup.

    Args:
        parts: strings (printed verbatim) or ``(text, style)`` tuples.
    """
    console.print(Text.assemble(*parts), soft_wrap=True)


def results_table(res, title: str | None = None, measures: list[str] | None = None) -> Table:
    """Family x measure table (``measures``: a subset of ``res.measures``, default all); the same view
    ``experiment`` prints per model."""
    title = title or f"{res.model} on {res.benchmark}"
    # as wide as its title (up to the console's width), so a model name is not wrapped at the table's width
    table = Table(title=Text(title), title_justify="left", min_width=len(title) + 1)
    table.add_column(Text("family"))
    table.add_column(Text("settings"), justify="right")
    measures = list(res.measures) if measures is None else measures
    for m in measures:
        table.add_column(Text(m), justify="right", no_wrap=True)
    for family in res.families():
        n = sum(1 for name in res.per_setting if name.startswith(family + ":"))
        table.add_row(Text(family), str(n), *(f"{res.macro[family].get(m, float('nan')):.4f}" for m in measures))
    return table


def _fit(fixed: int, columns: list[str], width: int, cell: int = 6) -> list[list[str]]:
    """``columns`` in consecutive groups whose table fits ``width`` characters beside ``fixed`` characters of
    leading columns (each column: its header or a ``cell``-wide number, plus 3 of padding and border)."""
    groups: list[list[str]] = [[]]
    used = fixed
    for name in columns:
        need = max(len(name), cell) + 3
        if groups[-1] and used + need > width:
            groups.append([])
            used = fixed
        groups[-1].append(name)
        used += need
    return groups


def results_tables(res, title: str | None = None, width: int | None = None) -> list[Table]:
    """:func:`results_table` split by measures into tables that each fit ``width`` columns (default: the
    console's, at most 80 when it is not a terminal): stacked, never truncated."""
    width = width or console.width
    groups = _fit(len("family") + 3 + len("settings") + 3 + 1, list(res.measures), width)
    tables = [results_table(res, title, g) for g in groups]
    for table in tables[1:]:
        table.title = None  # the continuation of the first table
    return tables


def language_table(res, measure: str = "map") -> Table:
    table = Table(title=Text(f"per query language ({measure})"), title_justify="left")
    table.add_column(Text("lang"))
    fams = res.families()
    for f in fams:
        table.add_column(Text(f if f != "cross" else "cross (mean of pools)"), justify="right", no_wrap=True)
    if "multi" in fams and res.bias.get("per_language"):
        table.add_column("max rank dist.", justify="right", no_wrap=True)
    from .evaluation.settings import split_setting

    for lang in res.languages:
        row = [Text(lang)]
        for f in fams:
            vals = [v[measure] for name, v in res.per_setting.items() if split_setting(name)[:2] == (f, lang) and measure in v]
            row.append(f"{sum(vals) / len(vals):.4f}" if vals else "-")
        if "multi" in fams and res.bias.get("per_language"):
            v = res.bias["per_language"].get(lang, {}).get("max_rank_distance")
            row.append(f"{v:.1f}" if v is not None else "-")
        table.add_row(*row)
    return table


def print_results(res) -> None:
    for table in results_tables(res):
        console.print(table)
    if len(res.languages) > 1:
        console.print(language_table(res))
    if res.bias:
        parts = [f"{k} = {v:.4g}" for k, v in res.bias.items() if isinstance(v, (int, float))]
        console.print(Text.assemble(("language bias (multilingual pool): ", "bold"), ", ".join(parts)))  # wrapped
    t = res.timing
    if t:
        _say(("time: " + ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in t.items()), "dim"))


def _say_precision(requested: str, device: str | None = None, *, training: bool = False) -> None:
    """Print which precision will run and why (``precision: bf16 (auto: CPU has AMX)``).

    Args:
        requested: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: the device the model runs on (None: polyret's default, CUDA when available).
        training: resolve as training does (fp16 needs CUDA).
    """
    from .precision import resolve

    _say(("precision: ", "dim"), (resolve(requested, device, training=training).describe(), "dim"))


def _check_plan_world_size(world_size: int | None, dry_run: bool, error: type[Exception]) -> None:
    """``--world-size`` is only for ``--dry-run`` plans, and at least 1."""
    if world_size is not None and not dry_run:
        raise error("--world-size only plans (--dry-run); to train on N processes launch with torchrun --nproc_per_node N")
    if world_size is not None and world_size < 1:
        raise error(f"--world-size must be >= 1, got {world_size}")


# EvalConfig's fields that `polyret evaluate` has an option of the same name for
_EVAL_OPTIONS = {f: "--" + f.replace("_", "-") for f in EvalConfig.field_names() if f not in ("cache", "cache_dir")}


def _eval_opt(name: str, *decls: str, **kwargs):
    """An option of ``polyret evaluate`` (or ``score``, where it means the same) mirroring :class:`EvalConfig`
    field ``name`` (see :func:`_opt`)."""
    return _opt(EvalConfig, name, *decls, names=_EVAL_OPTIONS, **kwargs)


@app.command()
def evaluate(
    model: str = _eval_opt("model"),
    benchmark: str = _eval_opt("benchmark"),
    languages: str | None = _eval_opt("languages", extra="Comma-separated."),
    families: str | None = _eval_opt("families", extra="Comma-separated."),
    data_dir: Path | None = _eval_opt("data_dir", envvar="POLYRET_DATA_DIR"),
    output: Path | None = typer.Option(None, help="Folder for results.json, settings.csv, per_query.csv.gz, heatmap."),
    batch_size: int = _eval_opt("batch_size"),
    k: int = _eval_opt("k"),
    measures: str = _eval_opt("measures", extra="Comma-separated."),
    backend: str = _eval_opt("backend"),
    with_context: bool = _eval_opt("with_context"),
    max_seq_length: int | None = _eval_opt("max_seq_length"),
    query_prompt: str | None = _eval_opt("query_prompt"),
    passage_prompt: str | None = _eval_opt("passage_prompt"),
    no_cache: bool = typer.Option(False, help="Do not read or write any cache (embeddings, a MIRACL corpus's parsed columns)."),
    trec_run: bool = typer.Option(
        False,
        help="Also write run.npz, run.trec (the top k of each setting and query) and qrels.trec (same query ids): "
        "trec_eval, ranx and ir_measures reproduce map@k, ndcg@10 ... from them; full map needs --k >= the largest pool.",
    ),
    device: str | None = _eval_opt("device"),
    devices: str | None = _eval_opt("devices"),
    precision: str = _eval_opt("precision"),
    store_dtype: str = _eval_opt("store_dtype"),
    store_threshold: int = _eval_opt("store_threshold"),
    max_tokens: int = _eval_opt("max_tokens"),
    corpus: Path | None = _eval_opt("corpus"),
    bias_measures: str | None = _eval_opt("bias_measures", extra=f"Comma-separated, of: {', '.join(_BIAS_MEASURES)}."),
    debias: str | None = _eval_opt("debias"),
    debias_fit: str | None = _eval_opt("debias_fit"),
    debias_fit_max_queries: int = _eval_opt("debias_fit_max_queries", none="0"),
    overwrite: bool = typer.Option(
        False, help="Empty --output first when it holds the finished output of another model, benchmark or verb."
    ),
) -> None:
    """Evaluate a model on a benchmark: monolingual, cross-lingual and multilingual settings, language bias."""
    from . import distributed
    from .evaluation import evaluate as run_evaluate

    distributed.init_from_env()  # under torchrun: every rank encodes, rank 0 searches and writes
    # every value is checked once, by EvalConfig (its messages name the --option); then what needs the
    # registry or the disk (the benchmark's languages and families, the model spec, corpus, output)
    cfg = _options_config(
        EvalConfig,
        model=model,
        benchmark=benchmark,
        languages=_split(languages),
        families=_split(families),
        data_dir=str(data_dir) if data_dir else None,
        batch_size=batch_size,
        k=k,
        backend=backend,
        measures=_split(measures),
        with_context=with_context,
        max_seq_length=max_seq_length,
        query_prompt=query_prompt,
        passage_prompt=passage_prompt,
        cache=not no_cache,
        device=device,
        precision=precision,
        store_dtype=store_dtype,
        store_threshold=store_threshold,
        devices=_split(devices),
        max_tokens=max_tokens,
        corpus=str(corpus) if corpus is not None else None,
        bias_measures=_split(bias_measures),
        debias=debias,
        debias_fit=debias_fit,
        debias_fit_max_queries=debias_fit_max_queries or None,
    )
    check_evaluate_options(cfg, output=output)
    _say_precision(cfg.precision, cfg.devices[0] if cfg.devices else cfg.device)
    res = run_evaluate(cfg.model, cfg.benchmark, config=cfg, output=output, keep_run=trec_run, trec_run=trec_run,
                       overwrite=overwrite)  # fmt: skip
    if not distributed.is_main():
        return  # rank 0 prints and writes the TREC run
    print_results(res)
    if output is not None:
        if trec_run and res.run is not None:  # written with results.json, before the completion marker
            _say((f"wrote {output / 'run.trec'} (top {res.run.k} per setting and query) and {output / 'qrels.trec'}", "dim"))
        _say("results written to ", (str(output), "bold"))
    else:
        _say("no --output: nothing was written (give --output DIR to keep results.json, settings.csv, per_query.csv.gz"
             + (", the TREC run" if trec_run else "") + " and the heatmap)")  # fmt: skip


def _option(key: str) -> str:
    """The command-line option of a config key: ``batch_size`` -> ``--batch-size``."""
    return "--" + key.replace("_", "-")


def _options_config(cls, **values):
    """``cls(**values)`` (a config built from a command's options); an error naming a key names its option."""
    from .configs import renamed_error
    from .errors import PolyretError

    try:
        return cls(**values)
    except PolyretError as error:
        raise renamed_error(error, _option) from None


def check_evaluate_options(cfg: EvalConfig, *, output: Path | None = None) -> None:
    """What ``evaluate``'s options need beyond a valid :class:`EvalConfig` (which checks every value), before a
    model loads or a text is encoded: the registry and the disk.

    Args:
        cfg: the evaluation's config (``languages`` and ``families`` must be among the benchmark's own).
        output: a folder that can be created and written (or None).

    Raises:
        ConfigError, DataError or ModelError naming the option and the value.
    """
    from .data.registry import benchmark_info
    from .errors import ConfigError
    from .experiment import check_model_spec
    from .paths import check_writable
    from .vocabulary import check_languages

    info = benchmark_info(cfg.benchmark)  # DataError: unknown benchmark, with the known ids
    check_languages(cfg.languages, info.languages, where=f"--languages: {cfg.benchmark}", error=ConfigError)
    absent = [f for f in cfg.families or () if f not in info.families]
    if absent:
        raise ConfigError(f"--families: {cfg.benchmark} has no {', '.join(absent)} settings; it has {', '.join(info.families)}")
    if cfg.corpus is not None:
        if not cfg.benchmark.startswith("miracl/"):
            raise ConfigError(f"--corpus is for MIRACL-format benchmarks (miracl/<lang>), not {cfg.benchmark}")
        if not Path(cfg.corpus).is_file():
            raise ConfigError(f"--corpus: no corpus file at {cfg.corpus}")
    check_model_spec(cfg.model)
    if output is not None:
        check_writable(output)


# TrainConfig's fields that `polyret train` has an option for (set only when given: a --config or --recipe
# gives the rest), under their option names
_TRAIN_OPTIONS = {
    **{f: "--" + f.replace("_", "-") for f in ("model", "train", "strategy", "alpha", "languages", "recipe")},
    **{f: "--" + f.replace("_", "-") for f in ("max_steps", "batch_size", "seed", "data_dir", "resume", "dev")},
    "keep_checkpoints": "--keep-checkpoints",
    "output_dir": "--output",
}


def _train_opt(name: str, *decls: str, default=None, **kwargs):
    """``polyret train``'s option setting :class:`TrainConfig` field ``name`` when given (see :func:`_opt`)."""
    return _opt(TrainConfig, name, *decls, default=default, names=_TRAIN_OPTIONS, **kwargs)


def _aliases() -> str:
    """TrainConfig's keys under transformers' names, for ``--set``'s help: ``learning_rate is lr, ...``."""
    names = [f"{alias} is {key}" for alias, key in TrainConfig.ALIASES.items()]
    return ", ".join([*names, "per_device_train_batch_size is batch_size with batch_scope=per_device"])


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    model: str | None = _train_opt("model"),
    train_data: str | None = _train_opt("train", "--train", extra="Comma-separated."),
    strategy: str | None = _train_opt("strategy", extra=f"Choices: {', '.join(_STRATEGIES)}."),
    alpha: float | None = _train_opt("alpha"),
    languages: str | None = _train_opt("languages", extra="Comma-separated."),
    output: Path | None = _train_opt("output_dir", "--output"),
    config: Path | None = typer.Option(None, help="YAML/JSON training config."),
    recipe: str | None = _train_opt("recipe", extra=f"Choices: {', '.join(_RECIPES)}."),
    max_steps: int | None = _train_opt("max_steps"),
    batch_size: int | None = _train_opt("batch_size"),
    seed: int | None = _train_opt("seed"),
    data_dir: Path | None = _train_opt("data_dir", envvar="POLYRET_DATA_DIR"),
    resume: bool = _train_opt("resume", default=False, extra="Its saved config is reused: the other options may be left out."),
    keep_checkpoints: bool = _train_opt("keep_checkpoints", "--keep-checkpoints", default=False),
    dev: str | None = _train_opt("dev"),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="Any TrainConfig field as key=value (repeatable; help(polyret.TrainConfig) describes each); transformers "
        f"names work too ({_aliases()}), other trainer arguments via trainer_args={{max_grad_norm: 1}}.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Resolve the plan (data sizes, steps, batch per step and device, memory) and stop."
    ),
    world_size: int | None = typer.Option(
        None, "--world-size", help="With --dry-run: plan for this many processes (simulated; default: the launcher's)."
    ),
) -> None:
    """Train a bi-encoder with mono / cross / hybrid / mixed batches (hybrid batch training)."""
    from .training import train as run_train
    from .training.config import ConfigError, TrainConfig, parse_overrides

    saved = _saved_run_config(output) if resume else None
    if config is not None:
        cfg = TrainConfig.from_file(config)
        if recipe:
            raise ConfigError("give --config or --recipe, not both")
    elif saved is not None:
        cfg = saved  # --resume: the saved run is the base; options given must agree with it
        if recipe and recipe != saved.recipe:
            raise ConfigError(f"--recipe {recipe}: the run in {output} was started with recipe {saved.recipe}; "
                              "leave --recipe out to resume it")  # fmt: skip
    else:
        cfg = TrainConfig.from_recipe(recipe) if recipe else TrainConfig()
    overrides = {
        k: v
        for k, v in {
            "model": model,
            "train": _split(train_data),
            "strategy": strategy,
            "alpha": alpha,
            "languages": _split(languages),
            "output_dir": str(output) if output else None,
            "max_steps": max_steps,
            "batch_size": batch_size,
            "seed": seed,
            "data_dir": str(data_dir) if data_dir else None,
            "dev": dev,
        }.items()
        if v is not None
    }
    if resume:
        overrides["resume"] = True
    if keep_checkpoints:
        overrides["keep_checkpoints"] = True
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    # one set of overrides (options, then --set), validated once: `--dev X --set save_steps=1` is fine
    overrides.update(parse_overrides(list(set_ or [])))
    cfg = cfg.replace(**overrides)
    if saved is not None:
        _check_same_run(saved, cfg, output)
    _check_plan_world_size(world_size, dry_run, ConfigError)
    if dry_run:
        from .training.plan import dry_run as plan_run

        for line in plan_run(cfg, world_size=world_size).lines():
            _say(line)
        _say("dry run: nothing trained or written")
        return
    _say_precision(cfg.precision, training=True)
    try:
        path = run_train(cfg)  # builds polyret's dev evaluator for cfg.dev itself
    except KeyboardInterrupt:
        _stop_for_signal(None, cfg.output_dir)
    _say("trained model written to ", (str(path), "bold"))
    _say(f"evaluate it with: polyret evaluate --model {path} --benchmark xquad-r:test")


# TrainConfig fields a resumed run may change: how it runs, not what it trains
_RESUME_MAY_CHANGE = ("resume", "keep_checkpoints", "logging_steps", "dataloader_num_workers", "output_dir", "data_dir")


def _saved_run_config(output: Path | None):
    """The config ``polyret train`` saved in ``output`` (``polyret_train.json``), or None when there is none.

    Args:
        output: the ``--output`` folder of a ``--resume``.
    """
    from .training.card import RUN_CONFIG
    from .training.config import ConfigError, TrainConfig

    if output is None:
        raise ConfigError("--resume needs --output: the folder of the run to continue")
    if not (output / RUN_CONFIG).is_file():
        return None  # nothing saved yet: resume starts from the options given (the trainer warns)
    return TrainConfig.from_file(output / RUN_CONFIG)


def _check_same_run(saved, cfg, output: Path) -> None:
    """Refuse a ``--resume`` whose options change what the saved run trains, naming each option.

    Args:
        saved: the config saved in ``output``.
        cfg: the config the options give.
        output: the run's folder (named in the message).
    """
    from .training.config import ConfigError

    differ = [
        f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(cfg, f.name)!r}"
        for f in dataclasses.fields(saved)
        if f.name not in _RESUME_MAY_CHANGE and getattr(saved, f.name) != getattr(cfg, f.name)
    ]
    if differ:
        raise ConfigError(
            f"cannot resume {output}: an option differs from the saved run ({'; '.join(differ)}); leave it out "
            "to continue the run as it was started, or use a new --output"
        )


def _train_overrides(recipe: str, pairs: list[str]) -> dict:
    """``key=value`` strings as typed TrainConfig values (checked against the recipe, so typos fail now)."""
    from .experiment import check_train_overrides
    from .training.config import TrainConfig, parse_overrides

    raw = TrainConfig.canonical_keys(parse_overrides(pairs))  # learning_rate=... is lr=...
    check_train_overrides(raw)  # keys the experiment sets per run: name the option to use instead
    parsed = TrainConfig.from_recipe(recipe).replace(**raw)
    return {key: getattr(parsed, key) for key in raw}


def _exp_opt(name: str, *decls: str, default=None, **kwargs):
    """``polyret experiment``'s option setting :class:`ExperimentConfig` field ``name`` when given, over the
    preset's or config file's value (see :func:`_opt`)."""
    return _opt(ExperimentConfig, name, *decls, default=default, **kwargs)


@app.command()
def experiment(
    config: Path | None = typer.Option(None, help="YAML/JSON experiment config (may name a preset)."),
    preset: str | None = _exp_opt("preset", extra=f"Choices: {', '.join(_PRESETS)} (default: cpu)."),
    output: Path | None = _exp_opt("output", extra="Default: the preset's (runs/experiment-<preset>)."),
    model: str | None = _exp_opt("model"),
    seeds: int | None = _exp_opt("seeds"),
    strategies: str | None = _exp_opt("strategies", extra=f"Comma-separated, of: {', '.join(_STRATEGIES)}."),
    alpha_sweep: str | None = _exp_opt("alpha_sweep", extra="Comma-separated, e.g. 0.3,0.7."),
    languages: str | None = _exp_opt("languages", extra="Comma-separated."),
    remedies: str | None = _exp_opt("remedies", extra=f"Comma-separated; methods: {', '.join(_DEBIAS_METHODS)}."),
    remedy_fit: str | None = _exp_opt("remedy_fit", extra=f"Default: {ExperimentConfig.default('remedy_fit')}."),
    data_dir: Path | None = _exp_opt("data_dir", envvar="POLYRET_DATA_DIR"),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="Training override for every strategy, a TrainConfig field as key=value "
        "(repeatable), e.g. --set max_steps=150 --set batch_size=32.",
    ),
    eval_set: list[str] | None = typer.Option(
        None,
        "--eval-set",
        help="Evaluation override for every evaluation, an EvalConfig field as key=value (repeatable), e.g. "
        "--eval-set backend=faiss --eval-set store_dtype=float16 (the config key eval_overrides).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Resolve every training's plan (data, steps, batches, memory) and the evaluations; stop."
    ),
    world_size: int | None = typer.Option(
        None, "--world-size", help="With --dry-run: plan for this many processes (simulated; default: the launcher's)."
    ),
    keep_checkpoints: bool = _exp_opt("keep_checkpoints", "--keep-checkpoints", default=False),
    keep_models: bool | None = _exp_opt("keep_models", "--keep-models/--no-keep-models"),
) -> None:
    """Train each strategy, evaluate the base and every trained model, and write one report.

    Run it again after an interruption: finished trainings and evaluations are reused.
    """
    from .experiment import PRESETS, ExperimentConfig, run_experiment

    if config is not None:
        cfg = ExperimentConfig.from_file(config)
        if preset:
            raise ValueError("give --config or --preset, not both (a config file may name its preset)")
    else:
        name = preset or "cpu"
        if name not in PRESETS:
            raise ValueError(f"--preset: unknown preset {name!r}; known: {', '.join(PRESETS)}")
        cfg = PRESETS[name]
    overrides: dict = {}
    if output is not None:
        overrides["output"] = str(output)
    if model is not None:
        overrides["model"] = model
    if seeds is not None:
        overrides["seeds"] = seeds
    if strategies is not None:
        overrides["strategies"] = tuple(_split(strategies) or ())
    if alpha_sweep is not None:
        try:
            overrides["alpha_sweep"] = tuple(float(a) for a in _split(alpha_sweep) or ())
        except ValueError:
            raise ValueError(f"--alpha-sweep: expected comma-separated numbers, got {alpha_sweep!r}") from None
    if languages is not None:
        overrides["languages"] = tuple(_split(languages) or ())
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    if keep_checkpoints:
        overrides["keep_checkpoints"] = True
    if keep_models is not None:
        overrides["keep_models"] = keep_models
    if remedies is not None:
        overrides["remedies"] = tuple(_split(remedies) or ())
    if remedy_fit is not None:
        overrides["remedy_fit"] = remedy_fit
    if set_:
        overrides["train_overrides"] = {**cfg.train_overrides, **_train_overrides(cfg.recipe, set_)}
    if eval_set:
        from .configs import parse_overrides

        overrides["eval_overrides"] = {**cfg.eval_overrides, **EvalConfig.canonical_keys(parse_overrides(eval_set))}
    cfg = cfg.replace(**overrides)
    _check_plan_world_size(world_size, dry_run, ValueError)
    if dry_run:
        from .experiment.plan import plan_experiment

        for line in plan_experiment(cfg, world_size=world_size).lines():
            _say(line)
        _say("dry run: nothing trained, evaluated or written")
        return
    result = run_experiment(cfg, echo=lambda m: _say((">> ", "bold cyan"), m))
    done = result["done"]
    if result.get("rank", 0) != 0:
        _say(f"rank {result['rank']}: trained {len(done['trained'])}; rank 0 wrote the results and the report")
        return
    _say(
        f"trained {len(done['trained'])}, evaluated {len(done['evaluated'])}, "
        f"reused {len(done['reused'])} finished steps in {result['seconds']:.0f}s"
    )
    if done.get("pruned"):
        _say(
            f"removed the weights of {len(done['pruned'])} trained model(s) once evaluated (keep_models false; their "
            "records and evaluations stay; --keep-models keeps the weights)"
        )
    _say("report: ", (str(result["report"].get("markdown", result["output"] / "report")), "bold"))


@app.command("benchmarks")
def list_benchmarks_cmd(
    data_dir: Path | None = typer.Option(None, envvar="POLYRET_DATA_DIR", help="Data root with xquad-r/, mlqa-r/, miracl/."),
) -> None:
    """List the benchmarks: id, languages, size (queries, candidates) and whether the data is on disk."""
    from .data import list_benchmarks
    from .data.download import missing_files
    from .data.registry import benchmark_info, recorded_size

    table = Table(title=Text("benchmarks (sizes: all languages; ? = known once downloaded)"), title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("languages")
    table.add_column("queries", justify="right", no_wrap=True)
    table.add_column("candidates", justify="right", no_wrap=True)
    table.add_column("data", no_wrap=True)
    for info in (benchmark_info(b) for b in list_benchmarks()):
        queries, candidates = recorded_size(info.id)
        missing = missing_files(info.id, data_dir=str(data_dir) if data_dir else None)
        data = "on disk" if not missing else f"download {len(missing)}/{len(info.files)}"
        langs = " ".join(info.languages) if len(info.languages) <= 4 else f"{len(info.languages)}: {' '.join(info.languages)}"
        table.add_row(
            Text(info.id), Text(langs), f"{queries:,}" if queries else "?", f"{candidates:,}" if candidates else "?", data
        )
    console.print(table)
    _say("on disk: in the data root or cache; download N/M: N of M files fetched when used")


@app.command()
def mine(
    train_data: str = typer.Option(
        ..., "--train", help="Training source, as for polyret train: xquad-r:train, file.jsonl, mmarco[:folder]."
    ),
    output: Path = typer.Option(..., help="The mined JSONL to write (train on it with --set negatives=K)."),
    model: str = typer.Option("builtin:me5-small", help="Model that scores candidates (default: the base model)."),
    k: int = typer.Option(3, "--k", help="Hard negatives per pair."),
    languages: str | None = typer.Option(None, help="Comma-separated subset of languages."),
    relative_margin: float = typer.Option(
        0.05, help="False-negative guard: skip candidates scoring above pos - |pos| * margin (sentence-transformers' semantics)."
    ),
    no_relative_margin: bool = typer.Option(False, help="Turn the relative-margin guard off."),
    absolute_margin: float | None = typer.Option(None, help="Skip candidates with score + margin > pos."),
    max_score: float | None = typer.Option(None, help="Skip candidates scoring above this."),
    min_score: float | None = typer.Option(None, help="Skip candidates scoring below this."),
    range_min: int = typer.Option(0, help="Skip this many of the best candidates that pass the guard."),
    range_max: int | None = typer.Option(None, help="Consider only this many best candidates per query."),
    keep_short: bool = typer.Option(False, help="Keep pairs that got fewer than k negatives (default: leave them out)."),
    max_groups: int | None = typer.Option(None, help="A seeded subsample of this many groups."),
    seed: int = typer.Option(0, help="Seed of the subsample."),
    data_dir: Path | None = typer.Option(None, envvar="POLYRET_DATA_DIR"),
    batch_size: int = typer.Option(64, help="Encoding batch size."),
    max_seq_length: int | None = typer.Option(None, help="Truncate texts to this many tokens."),
    no_cache: bool = typer.Option(False, help="Do not read or write the embedding cache."),
    device: str | None = typer.Option(None, help="cpu, cuda, mps ... (default: best available)."),
    precision: str = typer.Option(
        "auto",
        help="Encoding precision: auto (bf16 where the GPU or CPU has it natively, else fp16 on GPU / fp32), fp32, bf16, fp16.",
    ),
) -> None:
    """Mine k language-aware hard negatives per training pair (never the positive's passage or another gold)."""
    from .training.mining import mine as run_mine
    from .training.mining import stats_path

    _say_precision(precision, device)
    stats = run_mine(
        train_data, output, model=model, k=k, languages=_split(languages),
        data_dir=str(data_dir) if data_dir else None, max_groups=max_groups, seed=seed,
        relative_margin=None if no_relative_margin else relative_margin,
        absolute_margin=absolute_margin, max_score=max_score, min_score=min_score, range_min=range_min,
        range_max=range_max, keep_short=keep_short, batch_size=batch_size, cache=not no_cache,
        device=device, max_seq_length=max_seq_length, precision=precision,
    )  # fmt: skip
    skipped = ", ".join(f"{name} {n}" for name, n in stats.skipped.items() if n) or "none"
    _say(
        f"mined {stats.negatives} negatives for {stats.written} of {stats.pairs} pairs "
        f"({stats.short} got fewer than {k}{', left out' if stats.dropped else ''}); skipped: {skipped}"
    )
    _say("wrote ", (str(output), "bold"), f" and {stats_path(output)}")
    if stats.short and not stats.dropped:  # kept short pairs: training takes as many as every pair has
        _say(
            f"train on it with: polyret train --train {output} (pairs have fewer than {k} negatives: "
            "--set negatives=<the fewest any pair has>)"
        )
    else:
        _say(f"train on it with: polyret train --train {output} --set negatives={k}")


@app.command("score")
def score_cmd(
    run: list[str] = typer.Option(
        ...,
        "--run",
        help="A TREC run file (qid Q0 docid rank score tag), or NAME=path to name the system; repeat for several.",
    ),
    benchmark: str = _eval_opt("benchmark", default=..., extra="The one the runs rank."),
    fuse: str | None = typer.Option(
        None, help="Also score a fusion of the runs: rrf (reciprocal rank), combsum or combmnz (min-max normalised, as ranx)."
    ),
    rrf_k: int = typer.Option(60, help="The RRF constant k (Cormack et al. 2009)."),
    compare: list[Path] | None = typer.Option(None, help="A finished `polyret evaluate --output` folder to compare against."),
    baseline: str | None = typer.Option(None, help="The report's reference system (default: first --compare, else first run)."),
    languages: str | None = _eval_opt("languages", extra="Comma-separated."),
    families: str | None = _eval_opt("families", extra="Comma-separated."),
    measures: str = _eval_opt("measures", extra="Comma-separated."),
    data_dir: Path | None = _eval_opt("data_dir", envvar="POLYRET_DATA_DIR"),
    output: Path | None = typer.Option(None, help="Results folder (several systems: one folder each plus report/)."),
    latex: bool = typer.Option(False, help="Also write the report's tables as LaTeX (report/report.tex, booktabs)."),
    bias_measures: str | None = _eval_opt("bias_measures", extra=f"Comma-separated, of: {', '.join(_BIAS_MEASURES)}."),
    overwrite: bool = typer.Option(
        False, help="Empty --output first when it holds the finished output of another verb or other runs (an evaluation)."
    ),
) -> None:
    """Score external TREC runs (BM25, a vendor API, ...) in polyret's settings: measures, bias, significance."""
    from .evaluation.bias_measures import check_bias_measures
    from .report.runs import check_system_name, score_runs

    names: list[str | None] = []
    paths: list[str] = []
    for value in run:  # NAME=path names the system; a value that is an existing file is a path as it is
        name, eq, path = value.partition("=")
        if eq and not Path(value).exists():
            names.append(check_system_name(name.strip()))
            paths.append(path)
        else:
            names.append(None)
            paths.append(value)
    measure_list = _measures(measures)
    langs, fams = _split(languages), _split(families)
    from .data.registry import benchmark_info
    from .paths import check_writable
    from .vocabulary import check_languages

    info = benchmark_info(benchmark)  # DataError: unknown benchmark, with the known ids
    check_languages(langs, info.languages, where=f"--languages: {benchmark}")
    bad = [f for f in fams or [] if f not in info.families]
    if bad:
        raise ValueError(f"--families: {benchmark} has no {', '.join(bad)} settings; it has {', '.join(info.families)}")
    if output is not None:
        check_writable(output)
    if latex and output is None:
        raise ValueError("--latex writes report/report.tex: give --output")
    results = score_runs(
        paths, benchmark, names=names, output=output, fuse=fuse, rrf_k=rrf_k, compare=[str(c) for c in compare or []],
        baseline=baseline, families=fams, languages=langs, measures=measure_list, latex=latex, overwrite=overwrite,
        data_dir=str(data_dir) if data_dir else None, bias_measures=check_bias_measures(_split(bias_measures)),
    )  # fmt: skip
    for name, res in results.items():
        for table in results_tables(res, title=f"{name} on {res.benchmark}"):
            console.print(table)
        if res.bias:
            parts = [f"{key} = {v:.4g}" for key, v in res.bias.items() if isinstance(v, (int, float))]
            _say(("language bias (multilingual pool): ", "bold"), ", ".join(parts))
    if output is not None:
        where = output / "report" / "report.md" if len(results) > 1 else output
        _say("results written to ", (str(where), "bold"))


@app.command("card")
def card_cmd(
    model: Path = typer.Option(..., help="The model folder whose README.md gets the model-index block."),
    results: list[Path] = typer.Option(..., help="A finished `polyret evaluate --output` folder of that model; repeatable."),
    name: str | None = typer.Option(None, help="The model's name in model-index (default: the folder's name)."),
) -> None:
    """Write evaluation numbers into a model card as a `model-index` block (what the Hub indexes)."""
    from .evaluation.results import Results, is_done
    from .interop.model_card import add_evaluation
    from .models import fingerprint, load

    if not model.is_dir():
        raise ValueError(f"--model: no model folder at {model}")
    loaded = []
    for folder in results:
        if not is_done(folder):
            raise ValueError(f"--results: {folder} is not a finished evaluation (results.json with its completion marker)")
        loaded.append(Results.load(folder))
    fp = fingerprint(load(str(model), device="cpu"))  # the numbers must be this model's: same weights, same prompts
    path = add_evaluation(model, loaded, model_name=name, fingerprint=fp, sources=[f"--results {r}" for r in results])
    _say("model-index written to ", (str(path), "bold"))


def _utf8_or_reexec() -> None:
    """Under a locale whose encoding is ASCII (``LC_ALL=C`` with UTF-8 mode off), Python decodes a
    non-ASCII path into surrogate escapes that every UTF-8 file write then refuses ("surrogates not
    allowed"). Run the same command again in Python's UTF-8 mode (``-X utf8``) instead, once."""
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower() not in ("ascii", "ansi_x3.4-1968"):
        return
    argv = getattr(sys, "orig_argv", None)
    if not argv:  # pragma: no cover - Python < 3.10
        return
    os.execv(sys.executable, [sys.executable, "-X", "utf8", *argv[1:]])


def main() -> None:  # pragma: no cover - console entry
    _utf8_or_reexec()
    app(prog_name="polyret")


if __name__ == "__main__":  # pragma: no cover
    main()
