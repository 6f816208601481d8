"""A tiny XQuAD-R data dir (LAReQA format) written in a tmp folder: every language the loader reads."""

from __future__ import annotations

import json
from pathlib import Path

XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")  # the loader reads every file
XQUAD_WORDS = {
    "en": "city river capital country year people war king church music school water language history".split(),
    "de": "stadt fluss hauptstadt land jahr menschen krieg könig kirche musik schule wasser sprache geschichte".split(),
}


def write_tiny_xquad(root: Path) -> None:
    """24 parallel articles (1 paragraph of 3 sentences, 2 questions each) per XQuAD-R language."""
    folder = root / "xquad-r"
    folder.mkdir(parents=True)
    for lang in XQUAD_LANGS:
        w = XQUAD_WORDS.get(lang, XQUAD_WORDS["en"])
        articles = []
        for a in range(24):
            sents = [f"{w[(a + i) % 14].capitalize()} {w[(a * 3 + i) % 14]} {w[(a * 5 + 2 * i) % 14]} {a}." for i in range(3)]
            breaks, pos = [], 0
            for s in sents:
                breaks.append([pos, pos + len(s)])
                pos += len(s) + 1
            qas = [
                {
                    "id": f"a{a}q{j}",
                    "question": f"{w[(a + j) % 14]} {w[(a * 7 + j) % 14]} {a}?",
                    "answers": [{"text": "x", "answer_start": breaks[j][0] + 1}],
                }
                for j in range(2)
            ]
            articles.append(
                {
                    "title": f"T{a}",
                    "paragraphs": [{"context": " ".join(sents), "sentences": sents, "sentence_breaks": breaks, "qas": qas}],
                }
            )
        doc = {"version": 1.0, "data": articles}
        (folder / f"{lang}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
