"""Every command the README shows runs as written: extracted from README.md, so the two cannot drift.

The README's bash blocks are read line by line (continuation lines joined, comments dropped). A command
that is cheap as written (``--dry-run``, ``--help``, ``polyret benchmarks``) runs as written; one that
trains or encodes runs with ``--dry-run`` (train, experiment: every check of the real run, nothing
trained) or ``--help`` (the other verbs: its options exist), in a scratch folder; one that reads a file an
earlier step produces (``mined.jsonl``) against files of that shape, and ``make experiment``'s command (the
Makefile's) as a dry run. Python blocks: their imports run (every name exists); the sentence-transformers
sampler snippet runs whole (slow: it loads me5-small).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
# files the README names as the user's own: what a user would have written (the README says what they hold)
USER_FILES = {"my.yaml": "recipe: cpu\nmax_steps: 150\n"}
VERBS_WITH_DRY_RUN = ("train", "experiment")


def blocks(kind: str) -> list[str]:
    """The README's fenced code blocks of ``kind`` (``bash``, ``python``, ``yaml``)."""
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def readme_commands() -> list[list[str]]:
    """Every ``polyret`` command of the README's bash blocks as argv after ``polyret`` (torchrun lines: the
    arguments after ``-m polyret.cli``)."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["polyret"]:
                out.append(words[1:])
            elif words[:1] == ["torchrun"] and "polyret.cli" in words:
                out.append(words[words.index("polyret.cli") + 1 :])
    return out


def as_run(argv: list[str]) -> tuple[list[str], bool]:
    """(the argv to run, whether it is the README's own): cheap commands as written, others checked."""
    verb = next((w for w in argv if not w.startswith("-")), "")
    if "--dry-run" in argv or "--help" in argv or verb == "benchmarks":
        return argv, True
    if verb in VERBS_WITH_DRY_RUN:
        extra = ["--world-size", "8"] if "--preset" in argv and "paper" in argv and "--world-size" not in argv else []
        return [*argv, "--dry-run", *extra], False
    return [*argv, "--help"], False


def _setup_folder(folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    for name, text in USER_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    yaml_blocks = blocks("yaml")  # the README's experiment config (`exp.yaml` in its commands)
    (folder / "exp.yaml").write_text(yaml_blocks[0], encoding="utf-8")
    (folder / "paper-local.yaml").write_text("preset: paper\n", encoding="utf-8")  # its train: the user's /data copies


def test_the_readme_has_the_commands_this_test_reads():
    commands = readme_commands()
    verbs = {next(w for w in c if not w.startswith("-")) for c in commands}
    assert {"evaluate", "train", "mine", "experiment", "score", "benchmarks"} <= verbs
    assert ["experiment", "--preset", "paper", "--dry-run", "--world-size", "8"] in commands
    assert ["train", "--output", "runs/hybrid", "--resume"] in commands


# inputs an earlier README step produces by a real run (`polyret mine ... --output mined.jsonl`: minutes of
# encoding with me5-small): the commands reading them run against a file of that shape written by the test
# (test_readme_mined_negatives_command_dry_run_runs_the_batch_checks)
PRODUCED = ("mined.jsonl",)
CHEAP = [c for c in readme_commands() if as_run(c)[1] or "--help" in as_run(c)[0]]
CHECKED = [c for c in readme_commands() if c not in CHEAP and not any(p in c for p in PRODUCED)]
MINED = [c for c in readme_commands() if c[:1] == ["train"] and any(p in c for p in PRODUCED)]


def test_every_readme_command_is_run_or_checked():
    """No README command falls between the tests: cheap ones run as written, the others pass their dry
    run (or --help), those reading a produced file run against one of its shape."""
    commands = readme_commands()
    assert commands and all(c in CHEAP or c in CHECKED or c in MINED for c in commands)
    assert MINED == [["train", "--train", "mined.jsonl", "--set", "negatives=3", "--output", "runs/hybrid-hn"]]


@pytest.mark.parametrize("argv", CHEAP, ids=lambda a: " ".join(a)[:60])
def test_cheap_readme_commands_run_as_written(argv, tmp_path, monkeypatch):
    _setup_folder(tmp_path, monkeypatch)
    run, _ = as_run(argv)
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 0, f"polyret {' '.join(run)}\n{result.output}"


@pytest.mark.slow
@pytest.mark.parametrize("argv", CHECKED, ids=lambda a: " ".join(a)[:60])
def test_readme_training_commands_pass_their_dry_run(argv, tmp_path, monkeypatch):
    _setup_folder(tmp_path, monkeypatch)
    run, _ = as_run(argv)
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 0, f"polyret {' '.join(run)}\n{result.output}"
    assert "dry run: nothing" in result.output
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_readme_python_imports_exist():
    for block in blocks("python"):
        tree = ast.parse(block)  # every block is valid Python
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if any(isinstance(n, ast.Import) and n.names[0].name == "mteb" for n in imports):
            pytest.importorskip("mteb")
        exec(compile(ast.Module(body=imports, type_ignores=[]), "README.md", "exec"), {})


@pytest.mark.slow
def test_readme_sentence_transformers_snippet_runs(tmp_path, monkeypatch, me5_small_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(Path(me5_small_dir).parents[1]))
    block = next(b for b in blocks("python") if "SentenceTransformerTrainer(" in b)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert "model" in scope and scope["trainer"].model is scope["model"]
    row = scope["dataset"][0]
    assert set(row) == {"anchor", "positive"} and row["anchor"] and row["positive"]
    assert scope["dataset"].column_names == ["q", "s"]  # what print(dataset) shows, as the README says


def make_experiment_command() -> list[str]:
    """The polyret command ``make experiment`` (the README's quick start) runs, as argv after ``polyret``."""
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^experiment:.*\n\t(.*)", makefile, re.M).group(1)
    preset = re.search(r"^PRESET \?= *(\S+)", makefile, re.M).group(1)
    words = shlex.split(recipe.replace("$(PRESET)", preset))
    return words[next(i for i, w in enumerate(words) if w.endswith("/polyret")) + 1 :]


def test_the_readme_make_targets_exist():
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    lines = [line for b in blocks("bash") for line in b.replace("\\\n", " ").splitlines()]
    targets = {w[1] for line in lines if (w := shlex.split(line, comments=True))[:1] == ["make"]}
    assert targets == {"experiment", "test"}
    assert all(re.search(rf"^{t}:", makefile, re.M) for t in targets)
    assert make_experiment_command() == ["experiment", "--preset", "cpu"]


@pytest.mark.slow
def test_make_experiment_passes_its_dry_run(tmp_path, monkeypatch):
    _setup_folder(tmp_path, monkeypatch)
    run, _ = as_run(make_experiment_command())
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 0, f"polyret {' '.join(run)}\n{result.output}"
    assert "dry run: nothing" in result.output and not (tmp_path / "runs").exists()


def _write_mined(path: Path, groups: int, ring: bool) -> None:
    """Rows in the shape `polyret mine --k 3` writes (id, lang, query, positive, positive_id, 3 negatives
    with their negative_id), de and en. ``ring``: group g's negatives are the positives of groups g+1..g+3,
    so no batch holds two neighbours and at most a quarter of the groups fit one batch; otherwise every
    negative is a passage of its own."""
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(groups):
            for lang in ("de", "en"):
                if ring:
                    others = [(g + j) % groups for j in (1, 2, 3)]
                    negatives, ids = [f"passage {o} {lang}" for o in others], [f"P{o}" for o in others]
                else:
                    negatives, ids = [f"other passage {g}.{j} {lang}" for j in range(3)], [f"N{g}.{j}" for j in range(3)]
                row = {"id": f"g{g}", "lang": lang, "query": f"question {g} {lang}", "positive": f"passage {g} {lang}",
                       "positive_id": f"P{g}", "negative": negatives, "negative_id": ids}  # fmt: skip
                fh.write(json.dumps(row) + "\n")


@pytest.mark.parametrize("ring", [False, True], ids=["fillable", "unfillable"])
def test_readme_mined_negatives_command_dry_run_runs_the_batch_checks(tmp_path, monkeypatch, ring):
    """The README's `polyret train --train mined.jsonl --set negatives=3` as written, with --dry-run: on a
    mined file its batches can be drawn from, the plan; on one where a batch cannot be filled (every hard
    negative is another group's positive: the failure issue 24 met at step 0), the same error the run would
    stop with, exit 2, before any model loads and with nothing written."""
    (argv,) = MINED
    _setup_folder(tmp_path, monkeypatch)
    _write_mined(tmp_path / "mined.jsonl", 150, ring)
    run, _ = as_run(argv)
    assert run == [*argv, "--dry-run"]
    result = CliRunner().invoke(app, run)
    if ring:
        assert result.exit_code == 2, result.output
        assert "a batch of the run cannot be formed" in result.output and "Traceback" not in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "dry run: nothing" in result.output
    assert not (tmp_path / "runs").exists()


# A default the README states: "`--store-threshold N` (default 100,000", "`--precision`, default `auto`",
# "`--k`, default 100" (an option or key, then within the clause "default" and a number or a `literal`), and
# "`keep_models: true`, the default".
_STATED_DEFAULT = re.compile(r"`(?:--)?([a-z][a-z0-9_-]*)[^`]*`[^`.;]{0,45}?\bdefault:? (`[^`]+`|\d[\d,.]*\d|\d)")
_KEY_IS_DEFAULT = re.compile(r"`([a-z][a-z0-9_]*): ([^`]+)`,? the default")


def _as_value(text: str):
    text = text.strip("`")
    if re.fullmatch(r"\d[\d,]*", text):
        return int(text.replace(",", ""))
    if re.fullmatch(r"\d*\.\d+", text):
        return float(text)
    return {"true": True, "false": False}.get(text, text)


def test_the_defaults_the_readme_states_are_the_config_fields_and_options():
    """The README names some defaults in its prose; each one is a config field's default (where the name is
    a field's) or a command's option default, so a changed default cannot leave the README behind. The full
    list of keys, their meaning and defaults is not typed in the README: it is `--help` and the configs'
    docstrings (one text, see tests/test_configs.py)."""
    import typer.main

    from polyret.evaluation import EvalConfig
    from polyret.experiment import ExperimentConfig
    from polyret.training import TrainConfig

    known: dict[str, set] = {}
    for cls in (EvalConfig, TrainConfig, ExperimentConfig):
        for name in cls.field_names():
            default = cls.default(name)
            known.setdefault(name, set()).add(",".join(default) if isinstance(default, tuple) else default)
    for command in typer.main.get_command(app).commands.values():
        for param in command.params:
            if param.default is not None:
                for opt in param.opts:
                    known.setdefault(opt.lstrip("-").split("/")[0].replace("-", "_"), set()).add(param.default)
    text = README.read_text(encoding="utf-8")
    stated = [(m.group(1).replace("-", "_"), m.group(2)) for m in _STATED_DEFAULT.finditer(text)]
    stated += [(m.group(1), m.group(2)) for m in _KEY_IS_DEFAULT.finditer(text)]
    checked = set()
    for name, value in stated:
        if name in known:
            assert _as_value(value) in known[name], f"README says {name} defaults to {value}; it is {known[name]}"
            checked.add(name)
    # the statements this test is known to read (so a change of the README's wording does not skip them)
    assert {"store_threshold", "max_tokens", "precision", "debias_fit_max_queries", "k", "keep_models"} <= checked
    assert "relative_margin" in checked  # polyret mine's option
