"""XQuAD-R and MLQA-R (LAReQA): answer-sentence retrieval from a multilingual pool.

Each ``{lang}.json`` is SQuAD-v1.1 JSON whose paragraphs also carry ``sentences`` and
``sentence_breaks`` (``[start, end)`` character spans into ``context``). Following LAReQA:

* every sentence of every paragraph is one candidate; a sentence text that occurs in two paragraphs
  (or twice in one) is two candidates, so the candidate counts match the LAReQA table;
* a question's gold sentence in a language is the sentence of THAT language's paragraph whose span
  holds the (first) answer's ``answer_start``; questions share ids across translations, so
  ``qrels[qid]`` holds one gold sentence per language the question exists in;
* candidate ids are ``"{lang}:{article}:{paragraph}:{sentence}"`` (indices in that language's file),
  stable and unique across the benchmark; the candidate keeps its paragraph as ``context``;
* sentences must match ``context[start:end]`` (up to surrounding spaces): a file with more than 1%
  that do not is refused (the gold labels come from the breaks), fewer are kept with a warning;
  empty sentences are skipped with a warning (an empty gold sentence is an error); language codes
  must be canonical (``"DE "`` is refused, naming ``"de"``).

XQuAD-R is 11-way parallel (same articles, paragraphs and question ids in every file). MLQA-R is not:
a question exists in 2-4 of its 7 languages and articles are different Wikipedia pages per language,
so queries exist only where the question does and qrels are the union over languages.

Train/test splits are by article group: articles are joined when they share a question id or a
title (in any language), so no article, paragraph or question id lands on both sides, and the
split is computed from ALL the dataset's languages, so it is the same whatever ``languages`` asks.

Size: this module is over ~400 lines on purpose: it is one dataset family's parser, its validation
(every check names file and record) and the article split built on the parsed articles; a third of
it is docstrings, and cutting the split out would leave it depending on the parser's internals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from polyret import vocabulary
from polyret.data.download import Fetch, RemoteFile, ensure_file, mlqa_r_file, xquad_r_file
from polyret.data.records import Benchmark, Candidate, DataError, Query
from polyret.data.registry import LAREQA_LANGUAGES, MLQA_R_LANGUAGES, SPLITS, XQUAD_R_LANGUAGES

__all__ = [
    "LAREQA_LANGUAGES",
    "MLQA_R_LANGUAGES",
    "SPLITS",
    "XQUAD_R_LANGUAGES",
    "LareqaArticle",
    "LareqaFile",
    "LareqaParagraph",
    "LareqaQuestion",
    "SplitConfig",
    "article_groups",
    "article_split",
    "build_benchmark",
    "candidate_id",
    "check_languages",
    "load_lareqa",
    "load_lareqa_files",
    "parse_lareqa_file",
    "remote_file",
]
# Share of a file's sentences allowed to differ from ``context[sentence_breaks]`` before the file is
# refused: the real XQuAD-R files have 2 of 13,014 (both in tr.json); past this the gold labels (found
# through the breaks) no longer describe the candidate texts.
MAX_MISMATCH_FRACTION = 0.01

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitConfig:
    """How articles are divided; the same config always gives the same split.

    Args:
        test_fraction: fraction of article groups on the test side, in (0, 1).
        seed: mixed into the hash that orders article groups.
    """

    test_fraction: float = 0.5  # fraction of article groups on the test side
    seed: int = 0  # mixed into the hash that orders article groups

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class LareqaQuestion:
    """One question of a paragraph.

    Args:
        id: the question id (shared by its translations).
        text: the question text.
        answer_start: the answer's character offset in the paragraph.
        gold: the index of the gold sentence in its paragraph.
    """

    id: str
    text: str
    answer_start: int
    gold: int  # index of the gold sentence in its paragraph


@dataclass(frozen=True)
class LareqaParagraph:
    """One paragraph: its text, its sentences (the candidates) and its questions.

    Args:
        context: the paragraph text.
        sentences: its sentences, cut at ``sentence_breaks``.
        questions: the questions answered in it.
    """

    context: str
    sentences: tuple[str, ...]
    questions: tuple[LareqaQuestion, ...]


@dataclass(frozen=True)
class LareqaArticle:
    """One Wikipedia article of the file.

    Args:
        title: the article title.
        paragraphs: its paragraphs.
    """

    title: str
    paragraphs: tuple[LareqaParagraph, ...]


@dataclass(frozen=True)
class LareqaFile:
    """One parsed, validated ``{lang}.json``.

    Args:
        dataset: ``xquad-r`` or ``mlqa-r``.
        lang: the file's language.
        path: where it was read from.
        articles: its articles.
    """

    dataset: str
    lang: str
    path: Path
    articles: tuple[LareqaArticle, ...]

    @property
    def n_questions(self) -> int:
        return sum(len(p.questions) for a in self.articles for p in a.paragraphs)

    @property
    def n_sentences(self) -> int:
        return sum(len(p.sentences) for a in self.articles for p in a.paragraphs)


def candidate_id(lang: str, article: int, paragraph: int, sentence: int) -> str:
    return f"{lang}:{article}:{paragraph}:{sentence}"


def remote_file(dataset: str, lang: str) -> RemoteFile:
    check_languages(dataset, [lang])
    return xquad_r_file(lang) if dataset == "xquad-r" else mlqa_r_file(lang)


def check_languages(dataset: str, languages: Sequence[str]) -> tuple[str, ...]:
    """Validate languages against the dataset; return them in the dataset's canonical order.

    Args:
        dataset: ``xquad-r`` or ``mlqa-r``.
        languages: the codes asked for (``polyret.vocabulary.check_languages`` does the check).

    Raises:
        DataError: an unknown dataset, an unknown or non-canonical code, or an empty list.
    """
    if dataset not in LAREQA_LANGUAGES:
        raise DataError(f"unknown LAReQA dataset {dataset!r}; known: {', '.join(LAREQA_LANGUAGES)}")
    return vocabulary.check_languages(languages, LAREQA_LANGUAGES[dataset], where=dataset, error=DataError)


# ----------------------------------------------------------------------------------------- parsing


def _expect(value: object, kind: type | tuple[type, ...], where: str, what: str) -> None:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int,)))
    if not ok:
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"{where}: {what} must be {name}, got {type(value).__name__}")


def _field(record: object, key: str, kind: type, where: str) -> object:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: missing field {key!r}")
    value = record[key]
    _expect(value, kind, where, repr(key))
    return value


def parse_lareqa_file(path: str | os.PathLike, lang: str, *, dataset: str = "xquad-r", warn: bool = True) -> LareqaFile:
    """Parse and validate one LAReQA file; every problem is a DataError naming file and record.

    Args:
        path: the file.
        lang: its language.
        dataset: ``xquad-r`` or ``mlqa-r``.
        warn: log the tolerated problems (a few sentences that differ from the context, empty sentences) as
            warnings; False logs them at debug level (a file read only for the article split, its language
            not asked for).
    """
    path = Path(path)
    check_languages(dataset, [lang])
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    if not raw.strip():
        raise DataError(f"{path}: empty file")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from exc
    data = _field(doc, "data", list, str(path))
    articles: list[LareqaArticle] = []
    seen: dict[str, str] = {}  # question id -> where it was first seen
    checks: dict[str, list[str]] = {"mismatch": [], "empty": []}  # where each problem sentence is
    for ai, art in enumerate(data):
        where_a = f"{path}: article {ai}"
        title = _field(art, "title", str, where_a)
        where_a = f"{path}: article {ai} ({title!r})"
        paragraphs: list[LareqaParagraph] = []
        for pi, par in enumerate(_field(art, "paragraphs", list, where_a)):
            paragraphs.append(_parse_paragraph(par, f"{where_a}, paragraph {pi}", seen, checks))
        articles.append(LareqaArticle(title=title, paragraphs=tuple(paragraphs)))
    parsed = LareqaFile(dataset=dataset, lang=lang, path=path, articles=tuple(articles))
    if parsed.n_questions == 0:
        raise DataError(f"{path}: no questions in the file (no data)")
    n = parsed.n_sentences
    bad, empty = ([w.removeprefix(f"{path}: ") for w in checks[k]] for k in ("mismatch", "empty"))
    if bad and len(bad) > MAX_MISMATCH_FRACTION * n:
        raise DataError(
            f"{path}: {len(bad)} of {n} sentences differ from context[sentence_breaks] (more than "
            f"{MAX_MISMATCH_FRACTION:.0%}: gold labels would be wrong); first at {bad[0]}"
        )
    log = logger.warning if warn else logger.debug
    if bad:
        log("%s: %d of %d sentences differ from context[sentence_breaks] (first at %s); kept", path, len(bad), n, bad[0])
    if empty:
        log("%s: %d empty sentences are not candidates (first at %s)", path, len(empty), empty[0])
    return parsed


def _parse_paragraph(
    par: object, where: str, seen: dict[str, str], checks: dict[str, list[str]] | None = None
) -> LareqaParagraph:
    context = _field(par, "context", str, where)
    sentences = _field(par, "sentences", list, where)
    breaks = _field(par, "sentence_breaks", list, where)
    if len(sentences) != len(breaks):
        raise DataError(f"{where}: {len(sentences)} sentences but {len(breaks)} sentence_breaks")
    spans: list[tuple[int, int]] = []
    for si, (sent, span) in enumerate(zip(sentences, breaks)):
        _expect(sent, str, where, f"sentence {si}")
        ok = (
            isinstance(span, list)
            and len(span) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            and 0 <= span[0] <= span[1] <= len(context)
        )
        if not ok:
            raise DataError(
                f"{where}: sentence_breaks[{si}] = {span!r} is not a [start, end] span inside the context ({len(context)} chars)"
            )
        spans.append((span[0], span[1]))
        if checks is not None:
            if not sent.strip():
                checks["empty"].append(f"{where}, sentence {si}")
            elif context[span[0] : span[1]].strip() != sent.strip():
                checks["mismatch"].append(f"{where}, sentence {si}")
    questions: list[LareqaQuestion] = []
    for qi, qa in enumerate(_field(par, "qas", list, where)):
        where_q = f"{where}, question {qi}"
        qid = _field(qa, "id", str, where_q)
        where_q = f"{where}, question {qid!r}"
        if not qid:
            raise DataError(f"{where_q}: empty question id")
        if qid in seen:
            raise DataError(f"{where_q}: duplicate question id (first seen at {seen[qid]})")
        seen[qid] = where
        text = _field(qa, "question", str, where_q)
        if not text.strip():
            raise DataError(f"{where_q}: empty question text")
        answers = _field(qa, "answers", list, where_q)
        if not answers:
            raise DataError(f"{where_q}: no answers")
        start = _field(answers[0], "answer_start", int, f"{where_q}, answer 0")
        gold = next((si for si, (s, e) in enumerate(spans) if s <= start < e), None)
        if gold is None:
            raise DataError(f"{where_q}: answer_start {start} lies in no sentence (sentence_breaks {spans})")
        if not sentences[gold].strip():
            raise DataError(f"{where_q}: the answer's sentence {gold} is empty")
        questions.append(LareqaQuestion(id=qid, text=text, answer_start=start, gold=gold))
    return LareqaParagraph(context=context, sentences=tuple(sentences), questions=tuple(questions))


def load_lareqa_files(
    dataset: str,
    languages: Sequence[str] | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    fetch: Fetch | None = None,
    asked: Sequence[str] | None = None,
) -> dict[str, LareqaFile]:
    """Locate (or download) and parse the files of ``languages`` (default: all of the dataset's).

    Args:
        dataset: ``xquad-r`` or ``mlqa-r``.
        languages: the files to read.
        data_dir, download, fetch: where the files are looked up, and whether (how) they are downloaded.
        asked: the languages the caller asked for (None: all read): tolerated problems of the other files
            (read for the article split only) are not warnings.
    """
    langs = check_languages(dataset, list(languages) if languages is not None else LAREQA_LANGUAGES.get(dataset, ()))
    out: dict[str, LareqaFile] = {}
    for lang in langs:
        path = ensure_file(remote_file(dataset, lang), data_dir=data_dir, download=download, fetch=fetch)
        out[lang] = parse_lareqa_file(path, lang, dataset=dataset, warn=asked is None or lang in asked)
    return out


# ------------------------------------------------------------------------------------------- split


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, x: object) -> object:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def article_groups(files: Mapping[str, LareqaFile]) -> list[tuple[str, list[tuple[str, int]]]]:
    """``(key, [(lang, article index), ...])``: articles joined by shared question ids or titles.

    The key is the group's smallest question id (its smallest title when it has no questions), so it
    depends only on the data, never on file or dict order.
    """
    uf = _UnionFind()
    keys: dict[tuple[str, int], list[str]] = {}
    for lang, parsed in files.items():
        for ai, art in enumerate(parsed.articles):
            node = ("article", lang, ai)
            uf.union(node, ("title", art.title))
            qids = [q.id for p in art.paragraphs for q in p.questions]
            for qid in qids:
                uf.union(node, ("question", qid))
            keys[(lang, ai)] = ["q:" + q for q in qids] or ["t:" + art.title]
    members: dict[object, list[tuple[str, int]]] = {}
    for lang, ai in keys:
        members.setdefault(uf.find(("article", lang, ai)), []).append((lang, ai))
    groups = [(min(k for m in group for k in keys[m]), sorted(group)) for group in members.values()]
    return sorted(groups)


def article_split(files: Mapping[str, LareqaFile], config: SplitConfig = SplitConfig()) -> dict[tuple[str, int], str]:
    """``(lang, article index) -> "train" | "test"``: whole article groups go to one side.

    Groups are ordered by a seeded hash of their key and the first ``round(test_fraction * n)`` are
    test, so the sizes are exact and the assignment depends only on the data and the config.
    """
    groups = article_groups(files)
    if len(groups) < 2:
        raise DataError(f"cannot split {len(groups)} article group(s) into train and test")
    ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{config.seed}:{g[0]}".encode()).hexdigest())
    n_test = min(max(round(config.test_fraction * len(groups)), 1), len(groups) - 1)
    side: dict[tuple[str, int], str] = {}
    for rank, (_, group) in enumerate(ranked):
        for member in group:
            side[member] = "test" if rank < n_test else "train"
    return side


# --------------------------------------------------------------------------------------- benchmark


def build_benchmark(
    dataset: str,
    files: Mapping[str, LareqaFile],
    *,
    languages: Sequence[str] | None = None,
    split: str | None = None,
    config: SplitConfig = SplitConfig(),
) -> Benchmark:
    """Assemble a Benchmark from parsed files; ``split`` needs all of the dataset's languages in ``files``."""
    langs = check_languages(dataset, list(languages) if languages is not None else list(files))
    missing = [lang for lang in langs if lang not in files]
    if missing:
        raise DataError(f"{dataset}: no parsed file for {', '.join(missing)}")
    side: dict[tuple[str, int], str] | None = None
    provenance = f"LAReQA {dataset}: " + ", ".join(str(files[lang].path) for lang in langs)
    if split is not None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        absent = [lang for lang in LAREQA_LANGUAGES[dataset] if lang not in files]
        if absent:
            raise DataError(f"{dataset}:{split} is computed from every language; missing {', '.join(absent)}")
        side = article_split(files, config)
        provenance += f"; split {split} by article groups (test_fraction={config.test_fraction}, seed={config.seed})"
    queries: list[Query] = []
    candidates: list[Candidate] = []
    qrels: dict[str, dict[str, int]] = {}
    for lang in langs:
        for ai, art in enumerate(files[lang].articles):
            if side is not None and side[(lang, ai)] != split:
                continue
            for pi, par in enumerate(art.paragraphs):
                ids = [candidate_id(lang, ai, pi, si) for si in range(len(par.sentences))]
                candidates.extend(  # empty sentences are no candidates (counted when parsing); ids keep indices
                    Candidate(id=cid, lang=lang, text=text, context=par.context)
                    for cid, text in zip(ids, par.sentences)
                    if text.strip()
                )
                for q in par.questions:
                    queries.append(Query(id=q.id, lang=lang, text=q.text))
                    qrels.setdefault(q.id, {})[ids[q.gold]] = 1
    bench_id = dataset if split is None else f"{dataset}:{split}"
    if not queries:
        raise DataError(f"{bench_id}: no questions for languages {', '.join(langs)}")
    return Benchmark(
        id=bench_id,
        languages=langs,
        queries=queries,
        candidates=candidates,
        qrels=qrels,
        families=vocabulary.FAMILIES,
        provenance=provenance,
    )


def load_lareqa(
    dataset: str,
    *,
    split: str | None = None,
    data_dir: str | os.PathLike | None = None,
    languages: Sequence[str] | None = None,
    download: bool = True,
    config: SplitConfig = SplitConfig(),
    fetch: Fetch | None = None,
) -> Benchmark:
    """XQuAD-R / MLQA-R (``dataset`` = "xquad-r" | "mlqa-r"), whole or one side of the article split."""
    wanted = check_languages(dataset, list(languages) if languages is not None else LAREQA_LANGUAGES.get(dataset, ()))
    to_read = LAREQA_LANGUAGES[dataset] if split is not None else wanted
    files = load_lareqa_files(dataset, to_read, data_dir=data_dir, download=download, fetch=fetch, asked=wanted)
    return build_benchmark(dataset, files, languages=wanted, split=split, config=config)
