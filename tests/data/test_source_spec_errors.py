"""A training-source spec is refused with the same one-line message by every entry that reads one
(``load_pairs``, the trainer's ``load_training_sources``, the experiment's ``check_train_source``).

``source_spec_errors.json`` was first written at commit 83de776, before the three spec parsers became one
(issue 20), and rewritten after (``POLYRET_WRITE_GOLDEN=1``): its git diff is what the one parser changed.
The entries disagreed on a missing ``.jsonl.gz`` / ``.tsv`` (unknown source vs no such file), an unknown
split and a missing file's wording; they now say the same, the trainer's words.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.lareqa import write_tiny_xquad

GOLDEN = Path(__file__).with_name("source_spec_errors.json")

SPECS = {
    "unknown split": ("xquad-r:dev", None),
    "unknown dataset": ("nosuch", None),
    "missing jsonl": ("<tmp>/missing.jsonl", None),
    "missing jsonl.gz": ("<tmp>/missing.jsonl.gz", None),
    "missing tsv": ("<tmp>/missing.tsv", None),
    "jsonl folder": ("<tmp>/folder.jsonl", None),
    "language not in dataset": ("xquad-r:train", ["de", "ja"]),
    "bad language code": ("xquad-r:train", ["xx"]),
    "mlqa language": ("mlqa-r:train", ["el"]),
    "mmarco missing folder": ("mmarco:<tmp>/no-mmarco", None),
    "existing file of another suffix": ("<tmp>/pairs.txt", None),
    "jsonl language absent": ("<tmp>/pairs.jsonl", ["fr"]),
    "empty spec": ("", None),
}


def _messages(spec: str, languages, root: Path) -> dict[str, str]:
    from polyret.data.pairs import load_pairs
    from polyret.experiment.inputs import check_train_source
    from polyret.training.config import TrainConfig
    from polyret.training.pair_sources import load_training_sources

    spec = spec.replace("<tmp>", str(root))
    calls = {
        "load_pairs": lambda: load_pairs(spec, data_dir=root / "data", languages=languages, download=False),
        "load_training_sources": lambda: load_training_sources(
            TrainConfig(
                model="m", train=[spec], output_dir=str(root / "out"), data_dir=str(root / "data"), languages=languages
            )  # fmt: skip
        ),
        "check_train_source": lambda: check_train_source(spec, languages),
    }
    out = {}
    for name, call in calls.items():
        try:
            call()
            out[name] = "ok"
        except (ValueError, OSError) as error:
            out[name] = f"{type(error).__name__}: {error}".replace(str(root), "<tmp>")
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    write_tiny_xquad(root / "data")
    (root / "folder.jsonl").mkdir()
    row = {"id": "g1", "lang": "de", "query": "q", "positive": "p"}
    (root / "pairs.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (root / "pairs.txt").write_text(json.dumps(row) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("case", sorted(SPECS))
def test_spec_errors_are_unchanged(case, root, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(root / "cache"))
    got = _messages(*SPECS[case], root)
    if os.environ.get("POLYRET_WRITE_GOLDEN") == "1":
        saved = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
        saved[case] = got
        GOLDEN.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip("golden written")
    assert got == json.loads(GOLDEN.read_text(encoding="utf-8"))[case]
