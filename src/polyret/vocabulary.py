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
