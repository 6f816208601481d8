"""Behaviour unchanged across issue 20's one training-source path: each source kind (XQuAD-R, JSONL, both),
with and without hard negatives and with a dev hold-out, yields the very examples it yielded before.

The golden file ``training_streams.json`` was written by ``tests/helpers/stream.py`` at commit 83de776,
when XQuAD-R sources were still held in memory (``POLYRET_WRITE_GOLDEN=1`` rewrites it; never do that to
make a failure pass: a difference is a change of what a run trains on). One field was edited by hand
since, a defect fix: ``jsonl-ids-2lang``'s ``languages`` were the languages of the file's store
(``de, en, fr``) although the view trains on ``de, en`` only; an index lists its views' languages now.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from polyret.training.config import TrainConfig
from tests.helpers.lareqa import write_tiny_xquad
from tests.helpers.pairs import synthetic_rows, write_pairs
from tests.helpers.stream import training_stream, write_golden

GOLDEN = Path(__file__).with_name("training_streams.json")


def _shared_gold(root: Path) -> None:
    """Make the tiny XQuAD-R share passages: in every third article both questions answer with sentence 0,
    and every fifth article's last sentence repeats the first article's (same text, one passage)."""
    for path in sorted((root / "xquad-r").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        first = doc["data"][0]["paragraphs"][0]
        for a, art in enumerate(doc["data"]):
            par = art["paragraphs"][0]
            if a % 3 == 0:
                par["qas"][1]["answers"][0]["answer_start"] = par["qas"][0]["answers"][0]["answer_start"]
            if a % 5 == 4:
                par["sentences"][2] = first["sentences"][2]
                par["context"] = " ".join(par["sentences"])
                pos, breaks = 0, []
                for s in par["sentences"]:
                    breaks.append([pos, pos + len(s)])
                    pos += len(s) + 1
                par["sentence_breaks"] = breaks
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


CASES = {
    "xquad-3lang": dict(train=["xquad-r:train"], languages=["de", "en", "es"], max_groups=20, batch_size=4),
    "xquad-3lang-hardneg": dict(
        train=["xquad-r:train"], languages=["de", "en", "es"], max_groups=20, batch_size=4, hard_negatives=True
    ),
    "xquad-all-cross": dict(train=["xquad-r:train"], batch_size=6, strategy="cross", seed=5),
    "xquad-whole-2lang-mixed": dict(train=["xquad-r"], languages=["en", "de"], batch_size=5, strategy="mixed"),
    "xquad-test-mono-hardneg": dict(
        train=["xquad-r:test"], languages=["ar", "zh", "en"], batch_size=3, strategy="mono", hard_negatives=True
    ),
    "jsonl": dict(train=["<pairs>"], batch_size=4),
    "jsonl-hardneg": dict(train=["<pairs>"], batch_size=4, hard_negatives=True),
    "jsonl-ids-2lang": dict(train=["<ids>"], languages=["de", "en"], batch_size=3, max_groups=30),
    "mixed": dict(train=["xquad-r:train", "<pairs>"], languages=["de", "en", "es"], max_groups=25, batch_size=4),
    "mixed-hardneg-dev": dict(
        train=["xquad-r:train", "<pairs>"], languages=["de", "en", "es"], batch_size=3, hard_negatives=True, dev_groups=12
    ),
    "xquad-dev": dict(train=["xquad-r:train"], languages=["de", "en"], batch_size=3, dev_groups=6, alpha=0.8),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streams")
    write_tiny_xquad(root / "data")
    _shared_gold(root / "data")
    write_pairs(root / "pairs.jsonl", 40, seed=1)
    rows = synthetic_rows(60, langs=("de", "en", "fr"), seed=2)
    (root / "ids.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def _stream(name: str, root: Path, monkeypatch) -> dict:
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(root / "cache"))
    case = dict(CASES[name])
    files = {"<pairs>": str(root / "pairs.jsonl"), "<ids>": str(root / "ids.jsonl")}
    case["train"] = [files.get(s, s) for s in case["train"]]
    config = TrainConfig(model="unused", output_dir=str(root / "out"), data_dir=str(root / "data"),
                         **{"seed": 3, **case})  # fmt: skip
    return training_stream(config, tmp=str(root))


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_stream_is_unchanged(name, inputs, monkeypatch):
    got = _stream(name, inputs, monkeypatch)
    if os.environ.get("POLYRET_WRITE_GOLDEN") == "1":
        saved = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
        saved[name] = got
        write_golden(GOLDEN, saved)
        pytest.skip("golden written")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    assert got == want


# the real XQuAD-R (its many shared gold sentences exercise the passage-identity rules): digests only
GOLDEN_XQUAD = Path(__file__).with_name("training_streams_xquad.json")
REAL_CASES = {
    "train-4lang-hardneg-dev": dict(
        train=["xquad-r:train"], languages=["de", "en", "es", "zh"], batch_size=16, hard_negatives=True, dev_groups=64
    ),
    "train-4lang-dev": dict(train=["xquad-r:train"], languages=["de", "en", "es", "zh"], batch_size=16, dev_groups=64),
    "train-all-cross": dict(train=["xquad-r:train"], batch_size=32, strategy="cross", seed=7),
    "test-2lang-mono": dict(train=["xquad-r:test"], languages=["ar", "hi"], batch_size=8, strategy="mono", max_groups=200),
}


def _real_data() -> Path | None:
    root = os.environ.get("POLYRET_DATA_DIR")
    return Path(root) if root and (Path(root) / "xquad-r" / "en.json").is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(_real_data() is None, reason="needs the real XQuAD-R under POLYRET_DATA_DIR")
@pytest.mark.parametrize("name", sorted(REAL_CASES))
def test_training_stream_on_real_xquad_is_unchanged(name, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    config = TrainConfig(model="unused", output_dir=str(tmp_path / "out"), data_dir=str(_real_data()),
                         **{"seed": 3, **REAL_CASES[name]})  # fmt: skip
    try:
        got = training_stream(config, batches=60, tmp=str(tmp_path), texts=False)
    except ValueError as error:  # DataError / ConfigError: the message must stay the same too
        got = {"error": f"{type(error).__name__}: {error}".replace(str(tmp_path), "<tmp>")}
    if os.environ.get("POLYRET_WRITE_GOLDEN") == "1":
        saved = json.loads(GOLDEN_XQUAD.read_text(encoding="utf-8")) if GOLDEN_XQUAD.exists() else {}
        saved[name] = got
        write_golden(GOLDEN_XQUAD, saved)
        pytest.skip("golden written")
    assert got == json.loads(GOLDEN_XQUAD.read_text(encoding="utf-8"))[name]
