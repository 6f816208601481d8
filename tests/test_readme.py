"""Every command the README shows runs as written: extracted from README.md, so the two cannot drift.

The README's bash blocks are read line by line (continuation lines joined, comments dropped). A command
that is cheap as written (``--dry-run``, ``--help``, ``polyret benchmarks``) runs as written; one that
trains or encodes runs with ``--dry-run`` (train, experiment: every check of the real run, nothing
trained) or ``--help`` (the other verbs: its options exist), in a scratch folder. Python blocks: their
imports run (every name exists); the sentence-transformers sampler snippet runs whole (slow: it loads
me5-small).
"""

from __future__ import annotations

import ast
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
# encoding): the commands reading them are left to the end-to-end tests of that verb
PRODUCED = ("mined.jsonl",)
CHEAP = [c for c in readme_commands() if as_run(c)[1] or "--help" in as_run(c)[0]]
CHECKED = [c for c in readme_commands() if c not in CHEAP and not any(p in c for p in PRODUCED)]


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
