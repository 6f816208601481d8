"""Issue 21, further cases: no verb writes over one of its inputs, whatever the spelling.

Every verb (evaluate, score, train, mine, experiment) and every input it reads (the model folder, the
training file, the registry data files, a run, a compared evaluation, the data root), the output named
the same place through a symlink, a hard link, a ``..`` spelling, a relative path or a trailing slash:
exit 2 naming the option before any model loads, and the input's bytes unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from tests.helpers.lareqa import write_tiny_xquad
from tests.helpers.pairs import write_de_en_pairs

runner = CliRunner()


@pytest.fixture()
def w(tmp_path, tiny_model_dir, monkeypatch):
    """A private copy of everything (the tests point outputs at inputs): model, data root, pairs, a run."""
    import polyret.models

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: pytest.fail("a model was loaded before the refusal"))
    write_tiny_xquad(tmp_path / "data")
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    write_de_en_pairs(tmp_path / "p.jsonl")
    (tmp_path / "r.trec").write_text("a0q0@de Q0 de:x 1 1.0 t\n")
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.json").write_text("{}")
    os.symlink(model, tmp_path / "model-link")
    os.symlink(model / "config.json", tmp_path / "config-link")
    os.symlink(tmp_path / "ev", tmp_path / "ev-link")
    os.link(tmp_path / "p.jsonl", tmp_path / "p-hardlink.jsonl")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (inputs and all) by content, symlinks not followed."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and "cache" not in p.parts
    }


MINE = ["mine", "--model", "model", "--languages", "de,en", "--keep-short"]
CASES = {
    # mine: the registry files it reads, the model folder it scores with, the training file spelt otherwise
    "mine --output a registry data file": MINE + ["--train", "xquad-r:train", "--output", "data/xquad-r/en.json"],
    "mine --output a data file, '..'": MINE + ["--train", "xquad-r:train", "--output", "data/xquad-r/../xquad-r/de.json"],
    "mine --output a file of the --model folder": MINE + ["--train", "p.jsonl", "--output", "model/config.json"],
    "mine --output a symlink to a file of the --model folder": MINE + ["--train", "p.jsonl", "--output", "config-link"],
    "mine --model a symlink, --output inside the real folder": ["mine", "--model", "model-link", "--train", "p.jsonl",
                                                               "--keep-short", "--output", "model/new.jsonl"],
    "mine --output a hard link of --train": MINE + ["--train", "p.jsonl", "--output", "p-hardlink.jsonl"],
    "mine --output relative, --train absolute (one file)": MINE + ["--train", "$W/p.jsonl", "--output", "./p.jsonl"],
    # evaluate: the model folder
    "evaluate --output a symlink to the --model folder": ["evaluate", "--model", "model", "--languages", "de,en",
                                                          "--output", "model-link"],
    "evaluate --model a symlink, --output the folder with a trailing slash": ["evaluate", "--model", "model-link",
                                                                              "--languages", "de,en", "--output", "$W/model/"],
    "evaluate --output the data root, relative": ["evaluate", "--model", "model", "--languages", "de,en", "--output", "data/."],
    # train: the model folder, the data root, the training file
    "train --output a symlink to the --model folder": ["train", "--model", "model", "--train", "p.jsonl", "--languages", "de,en",
                                                       "--max-steps", "1", "--batch-size", "4", "--output", "model-link"],
    "train --output the data root, '..' spelling": ["train", "--model", "model", "--train", "xquad-r:train", "--languages",
                                                     "de,en", "--max-steps", "1", "--output", "data/xquad-r/.."],
    "train --output the hard link of --train": ["train", "--model", "model", "--train", "p.jsonl", "--languages", "de,en",
                                                "--max-steps", "1", "--output", "p-hardlink.jsonl"],
    # score: the run, a compared evaluation (through a symlink), the data root
    "score --output a symlink to a --compare folder": ["score", "--run", "r.trec", "--benchmark", "xquad-r:test", "--compare",
                                                       "ev", "--output", "ev-link"],
    "score --output the data root, absolute": ["score", "--run", "r.trec", "--benchmark", "xquad-r:test", "--output", "$W/data"],
    # experiment: the model folder, the data root
    "experiment --output a symlink to the --model folder": ["experiment", "--preset", "smoke", "--model", "model",
                                                            "--data-dir", "data", "--output", "model-link"],
    "experiment --output the data root, '..' spelling": ["experiment", "--preset", "smoke", "--model", "model",
                                                         "--data-dir", "$W/data", "--output", "data/xquad-r/.."],
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(w, case):
    before = _digest(w)
    args = [a.replace("$W", str(w)) for a in CASES[case]]
    res = runner.invoke(app, args, env={"POLYRET_CACHE_DIR": str(w / "cache"), "POLYRET_DATA_DIR": str(w / "data")})
    assert res.exit_code == 2, (res.exit_code, res.output[-2000:])
    message = " ".join(res.output[res.output.index("error:") :].split())
    assert "output" in message and "Traceback" not in res.output, message
    assert _digest(w) == before  # no input changed, nothing written beside them
