"""MIRACL-format inputs written in a tmp dir: a corpus JSONL(.gz), and a data dir of Swahili topics, qrels and corpus."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def write_corpus(path: Path, docs: list[dict], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_miracl_dir(tmp_path: Path, topics: str, qrels: str, corpus: str) -> Path:
    """``<tmp>/data/miracl/{topics,qrels,corpus}`` holding the given texts for language ``sw``; returns the data dir."""
    root = tmp_path / "data" / "miracl"
    for sub, name, text in (
        ("topics", "topics.miracl-v1.0-sw-dev.tsv", topics),
        ("qrels", "qrels.miracl-v1.0-sw-dev.tsv", qrels),
        ("corpus", "sw.jsonl", corpus),
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / name).write_text(text, encoding="utf-8")
    return tmp_path / "data"
