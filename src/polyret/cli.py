"""The ``polyret`` command: parse, call the public Python verb, print. No logic of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train and evaluate multilingual dense retrievers (mono-, cross- and multilingual retrieval).")
console = Console(width=None if sys.stdout.isatty() else 140)


def _split(value: Optional[str]) -> Optional[list[str]]:
    if value is None or value.strip() == "":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _fail(exc: BaseException) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def results_table(res, title: str | None = None) -> Table:
    """Family x measure table, then language bias; the same view ``experiment`` prints per model."""
    table = Table(title=title or f"{res.model} on {res.benchmark}", title_justify="left")
    table.add_column("setting family")
    table.add_column("settings", justify="right")
    for m in res.measures:
        table.add_column(m, justify="right")
    for family in res.families():
        n = sum(1 for name in res.per_setting if name.startswith(family + ":"))
        table.add_row(family, str(n), *(f"{res.macro[family].get(m, float('nan')):.4f}" for m in res.measures))
    return table


def language_table(res, measure: str = "map") -> Table:
    table = Table(title=f"per query language ({measure})", title_justify="left")
    table.add_column("lang")
    fams = res.families()
    for f in fams:
        table.add_column(f if f != "cross" else "cross (mean over pools)", justify="right")
    if "multi" in fams and res.bias.get("per_language"):
        table.add_column("max rank distance", justify="right")
    for lang in res.languages:
        row = [lang]
        for f in fams:
            vals = [v[measure] for name, v in res.per_setting.items()
                    if name.startswith(f + ":") and name.split(":", 1)[1].split("-")[0] == lang and measure in v]
            row.append(f"{sum(vals) / len(vals):.4f}" if vals else "-")
        if "multi" in fams and res.bias.get("per_language"):
            v = res.bias["per_language"].get(lang, {}).get("max_rank_distance")
            row.append(f"{v:.1f}" if v is not None else "-")
        table.add_row(*row)
    return table


def print_results(res) -> None:
    console.print(results_table(res))
    if len(res.languages) > 1:
        console.print(language_table(res))
    if res.bias:
        parts = [f"{k} = {v:.4g}" for k, v in res.bias.items() if isinstance(v, (int, float))]
        console.print("[bold]language bias (multilingual pool):[/] " + ", ".join(parts))
    t = res.timing
    if t:
        console.print("[dim]time: " + ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in t.items()) + "[/]")


@app.command()
def evaluate(
    model: str = typer.Option("builtin:me5-small", help="builtin:me5-small, a local model folder, or a Hub id."),
    benchmark: str = typer.Option("xquad-r:test", help="Benchmark id: xquad-r[:train|:test], mlqa-r[...], miracl/<lang>."),
    languages: Optional[str] = typer.Option(None, help="Comma-separated subset of languages, e.g. de,en,zh."),
    families: Optional[str] = typer.Option(None, help="Setting families: mono,cross,multi (default: all the benchmark has)."),
    data_dir: Optional[Path] = typer.Option(None, envvar="POLYRET_DATA_DIR", help="Data root with xquad-r/, mlqa-r/, miracl/."),
    output: Optional[Path] = typer.Option(None, help="Folder for results.json, settings.csv, per_query.csv.gz, heatmap."),
    batch_size: int = typer.Option(32, help="Encoding batch size (texts; batches of long texts are cut to 4096 padded tokens)."),
    k: int = typer.Option(100, help="Candidates kept per query in the run table (metrics stay exact)."),
    backend: str = typer.Option("exact", help="exact (chunked matrix products) or faiss (big corpora)."),
    with_context: bool = typer.Option(False, help="Encode each candidate sentence followed by its paragraph."),
    max_seq_length: Optional[int] = typer.Option(None, help="Truncate texts to this many tokens."),
    query_prompt: Optional[str] = typer.Option(None, help="Override the model's query prompt, e.g. 'query: '."),
    passage_prompt: Optional[str] = typer.Option(None, help="Override the model's passage prompt."),
    no_cache: bool = typer.Option(False, help="Do not read or write the embedding cache."),
    trec_run: bool = typer.Option(False, help="Also write the run table as run.npz and a TREC run (run.trec)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1, mps ... (default: best available)."),
) -> None:
    """Evaluate a model on a benchmark: monolingual, cross-lingual and multilingual settings, language bias."""
    from .data.records import DataError
    from .evaluation import evaluate as run_evaluate

    try:
        res = run_evaluate(
            model, benchmark, output=output, keep_run=trec_run,
            languages=_split(languages), families=_split(families),
            data_dir=str(data_dir) if data_dir else None, batch_size=batch_size, k=k, backend=backend,
            with_context=with_context, max_seq_length=max_seq_length, query_prompt=query_prompt,
            passage_prompt=passage_prompt, cache=not no_cache, device=device,
        )
    except (DataError, ValueError, FileNotFoundError, KeyError) as exc:
        _fail(exc)
    print_results(res)
    if output is not None:
        if trec_run and res.run is not None:
            n = res.run.to_trec_run(output / "run.trec")
            console.print(f"[dim]wrote {n} TREC run lines to {output / 'run.trec'}[/]")
        console.print(f"results written to [bold]{output}[/]")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, help="Base model: builtin:me5-small, a folder, or a Hub id."),
    train_data: Optional[str] = typer.Option(None, "--train", help="Comma-separated sources: xquad-r:train, mlqa-r:train, file.jsonl, mmarco."),
    strategy: Optional[str] = typer.Option(None, help="mono | cross | hybrid | mixed."),
    alpha: Optional[float] = typer.Option(None, help="Probability of a monolingual batch (hybrid)."),
    languages: Optional[str] = typer.Option(None, help="Comma-separated training languages."),
    output: Optional[Path] = typer.Option(None, help="Output folder (checkpoints/ and the final model/)."),
    config: Optional[Path] = typer.Option(None, help="YAML/JSON training config."),
    recipe: Optional[str] = typer.Option(None, help="Named recipe to start from: paper, cpu."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps (wins over epochs)."),
    batch_size: Optional[int] = typer.Option(None, help="Pairs per step per device."),
    seed: Optional[int] = typer.Option(None),
    data_dir: Optional[Path] = typer.Option(None, envvar="POLYRET_DATA_DIR"),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in --output."),
    dev: Optional[str] = typer.Option(None, help="Dev benchmark id scored with polyret's evaluator during training; keep the best checkpoint by it."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Any TrainConfig field as key=value (repeatable)."),
) -> None:
    """Train a bi-encoder with mono / cross / hybrid / mixed batches (hybrid batch training)."""
    from .training.config import ConfigError, TrainConfig, parse_overrides
    from .training.train import train as run_train

    try:
        if config is not None:
            cfg = TrainConfig.from_file(config)
            if recipe:
                raise ConfigError("give --config or --recipe, not both")
        else:
            cfg = TrainConfig.from_recipe(recipe) if recipe else TrainConfig()
        overrides = {k: v for k, v in {
            "model": model, "train": _split(train_data), "strategy": strategy, "alpha": alpha,
            "languages": _split(languages), "output_dir": str(output) if output else None,
            "max_steps": max_steps, "batch_size": batch_size, "seed": seed,
            "data_dir": str(data_dir) if data_dir else None, "dev": dev,
        }.items() if v is not None}
        if resume:
            overrides["resume"] = True
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        # one set of overrides (options, then --set), validated once: `--dev X --set save_steps=1` is fine
        overrides.update(parse_overrides(list(set_ or [])))
        cfg = cfg.replace(**overrides)
        path = run_train(cfg)  # builds polyret's dev evaluator for cfg.dev itself
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"trained model written to [bold]{path}[/]")
    console.print(f"evaluate it with: polyret evaluate --model {path} --benchmark xquad-r:test")


def _train_overrides(recipe: str, pairs: list[str]) -> dict:
    """``key=value`` strings as typed TrainConfig values (checked against the recipe, so typos fail now)."""
    from .training.config import TrainConfig, parse_overrides

    raw = parse_overrides(pairs)
    parsed = TrainConfig.from_recipe(recipe).replace(**raw)
    return {key: getattr(parsed, key) for key in raw}


@app.command()
def experiment(
    config: Optional[Path] = typer.Option(None, help="YAML/JSON experiment config (may name a preset)."),
    preset: Optional[str] = typer.Option(None, help="cpu (default), smoke, paper."),
    output: Optional[Path] = typer.Option(None, help="Experiment folder (default: runs/experiment-<preset>)."),
    model: Optional[str] = typer.Option(None, help="Override the base model."),
    seeds: Optional[int] = typer.Option(None, help="Train every strategy this many times."),
    strategies: Optional[str] = typer.Option(None, help="Comma-separated: mono,cross,hybrid,mixed."),
    alpha_sweep: Optional[str] = typer.Option(None, help="Extra hybrid runs at these alphas, e.g. 0.3,0.7."),
    languages: Optional[str] = typer.Option(None, help="Training and evaluation languages."),
    data_dir: Optional[Path] = typer.Option(None, envvar="POLYRET_DATA_DIR"),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Training override for every strategy, a TrainConfig field as key=value "
        "(repeatable), e.g. --set max_steps=150 --set batch_size=32."),
) -> None:
    """Train each strategy, evaluate the base and every trained model, and write one report.

    Run it again after an interruption: finished trainings and evaluations are reused.
    """
    from .experiment import PRESETS, ExperimentConfig, run_experiment

    try:
        if config is not None:
            cfg = ExperimentConfig.from_file(config)
            if preset:
                raise ValueError("give --config or --preset, not both (a config file may name its preset)")
        else:
            name = preset or "cpu"
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
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
            overrides["alpha_sweep"] = tuple(float(a) for a in _split(alpha_sweep) or ())
        if languages is not None:
            overrides["languages"] = tuple(_split(languages) or ())
        if data_dir is not None:
            overrides["data_dir"] = str(data_dir)
        if set_:
            overrides["train_overrides"] = {**cfg.train_overrides, **_train_overrides(cfg.recipe, set_)}
        cfg = cfg.replace(**overrides)
        result = run_experiment(cfg, echo=lambda m: console.print(f"[bold cyan]>>[/] {m}"))
    except ValueError as exc:
        _fail(exc)
    done = result["done"]
    if result.get("rank", 0) != 0:
        console.print(f"rank {result['rank']}: trained {len(done['trained'])}; rank 0 evaluates and writes the report")
        return
    console.print(f"trained {len(done['trained'])}, evaluated {len(done['evaluated'])}, "
                  f"reused {len(done['reused'])} finished steps in {result['seconds']:.0f}s")
    console.print(f"report: [bold]{result['report'].get('markdown', result['output'] / 'report')}[/]")


@app.command("benchmarks")
def list_benchmarks_cmd() -> None:
    """List the benchmark ids polyret knows."""
    from .data import list_benchmarks

    for name in list_benchmarks():
        console.print(name)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
