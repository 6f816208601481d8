"""One home for polyret's shared words: strategies, setting families, default measures, languages.

Every other module imports these names from here (DESIGN.md: one definition of each concept). Light to
import: no numpy, no torch.

- ``STRATEGIES``: how a training batch picks its languages (Elmahdy, Lin, Ahmad 2024, arXiv 2408.10536):
  ``mono`` (one language per batch, "X-X-mono"), ``cross`` (query language != passage language, "X-Y"),
  ``hybrid`` (per batch: mono with probability alpha, else cross), ``mixed`` (any pair per example).
- ``FAMILIES``: the evaluation settings of LAReQA (Roy et al. 2020): ``mono`` (query and pool in one
  language), ``cross`` (query in x, pool in y != x), ``multi`` (one pool of every language).
- ``DEFAULT_MEASURES``: what ``evaluate()`` reports when no measures are named.
- ``check_languages``: the one validation of a language subset against what a dataset has.
- ``ISO_639_1`` / ``check_language_code``: the codes a data file may use for a language (ISO 639-1, the
  canonical two lower-case letters, as the LAReQA files and the model card's ``language`` use them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

STRATEGIES: tuple[str, ...] = ("mono", "cross", "hybrid", "mixed")
FAMILIES: tuple[str, ...] = ("mono", "cross", "multi")
DEFAULT_MEASURES: tuple[str, ...] = ("map", "map@20", "ndcg@10", "recall@1", "recall@10", "recall@100", "mrr@10")
BASELINE = "base"  # the system name of the untrained model in experiments and reports
SYSTEM_ORDER: tuple[str, ...] = (BASELINE, *STRATEGIES)  # the order systems are listed in


def check_languages(
    requested: Iterable[str] | None,
    available: Sequence[str],
    *,
    where: str,
    error: type[ValueError] = ValueError,
) -> tuple[str, ...]:
    """Validate a language subset; return it in ``available``'s order (all of ``available`` for None).

    Args:
        requested: language codes asked for, or None for all.
        available: the codes the dataset, benchmark or source has, in its canonical order.
        where: what ``available`` belongs to, named in the message (e.g. ``"benchmark 'xquad-r:test'"``).
        error: the ValueError subclass to raise (``DataError``, ``ConfigError``, ...).

    Raises:
        error: a code is unknown (a non-canonical spelling such as ``"DE "`` is named with its fix),
            or the subset is empty.
    """
    if requested is None:
        return tuple(available)
    chosen = list(dict.fromkeys(requested))
    known = set(available)
    unknown = [lang for lang in chosen if lang not in known]
    for lang in unknown:  # "DE " is not a new language, nor silently "de": say how to write it
        if isinstance(lang, str) and lang.strip().lower() in known:
            raise error(
                f"{where}: language code {lang!r} is not canonical; write {lang.strip().lower()!r} (lower case, no spaces)"
            )
    if unknown:
        raise error(f"{where} has no language {', '.join(map(str, unknown))}; it has {', '.join(available)}")
    if not chosen:
        raise error(f"{where}: the language list is empty; name at least one of {', '.join(available)}")
    keep = set(chosen)
    return tuple(lang for lang in available if lang in keep)


# ISO 639-1: the two-letter codes of the registry (183 in use, plus the retired "bh" and "sh" older data still carries)
ISO_639_1: frozenset[str] = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
    ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik
    io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml
    mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd
    se sg sh si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu
    """.split()
)


def check_language_code(code: str, *, where: str, error: type[ValueError] = ValueError) -> str:
    """``code`` if it is a canonical ISO 639-1 code (two lower-case letters of the registry), else ``error``.

    ``"EN"`` or ``" en"`` is refused naming ``"en"`` (accepted, it would train as a second language beside
    ``en``); ``"english"`` or ``"xx"`` is refused as not a code.

    Args:
        code: the language field of a record.
        where: ``file:line`` (and record) for the message.
        error: the ValueError subclass to raise (``DataError`` for data files).
    """
    if code in ISO_639_1:
        return code
    fixed = code.strip().lower() if isinstance(code, str) else None
    if fixed in ISO_639_1:
        raise error(f"{where}: language code {code!r} is not canonical; write {fixed!r} (ISO 639-1, lower case)")
    raise error(f"{where}: language {code!r} is not an ISO 639-1 code (two letters, e.g. 'en', 'de', 'zh')")
