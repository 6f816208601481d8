"""Passage conflicts: which parallel groups may not share a global batch, and the pool that fills batches.

**Passage identity.** Groups are not enough: two questions can share a gold passage (on XQuAD-R train 629
questions have 413 distinct gold sentences), and InfoNCE would then treat the right answer, or its
translation, as a negative. So no GLOBAL batch of one micro-step (all ranks together, since negatives are
gathered across devices) holds two groups whose passage identities (``PairIndex.pair_positive`` /
``pair_negative``, any language) overlap: no repeated positive, and no hard negative that is another
example's positive. While filling a batch, a conflicting group is skipped and deferred: it stays first in
line for the next batch (``BatchInfo.deferred`` counts them per batch). A source with fewer distinct
passages than a batch's groups is a ValueError that says how many it has. Data with no shared identities
gives exactly the batches of the group-only rule.

:class:`Conflicts` holds the identity codes per group; :class:`SourcePool` is one source's groups for one
epoch, consumed greedily under a batch's constraint with conflicting groups deferred, not dropped.
Used by :class:`polyret.training.samplers.ParallelBatchSampler`; batches are exactly those of the
group-only rule when no passage is shared.
"""

from __future__ import annotations

import numpy as np

from polyret.arrays import count_distinct, distinct
from polyret.training.pairs_dataset import PairIndex


class Conflicts:
    """Which groups may not share a global batch: their passage identities overlap (see module doc).

    Per group, the distinct identity codes of its positives (``P``) and hard negatives (``N``) over all its
    languages, as CSR arrays. Groups A and B conflict when ``P_A & P_B``, ``N_A & P_B`` or ``P_A & N_B`` is
    non-empty (two examples sharing a hard negative is harmless). A group none of whose codes can conflict
    with another group's is *clean* and is never checked; only the others ("dirty") go through the check.

    Args:
        index: the training pairs with their identity codes (``pair_positive`` / ``pair_negative``).
    """

    def __init__(self, index: PairIndex) -> None:
        g = index.pair_group
        n_codes = int(
            max(index.num_identities, index.pair_positive.max(initial=0) + 1, index.pair_negative.max(initial=0) + 1, 1)
        )
        n_groups = index.num_groups
        pos = distinct(g * n_codes + index.pair_positive.astype(np.int64))
        neg_codes = index.pair_negative.reshape(len(g), -1)  # one column per hard negative
        neg_group = np.repeat(g, neg_codes.shape[1])
        neg_codes = neg_codes.ravel()
        has_neg = neg_codes >= 0
        neg = distinct(neg_group[has_neg] * n_codes + neg_codes[has_neg].astype(np.int64))
        self.pos_group, self.pos_codes = pos // n_codes, pos % n_codes
        self.neg_group, self.neg_codes = neg // n_codes, neg % n_codes
        self.pos_ptr = np.searchsorted(self.pos_group, np.arange(n_groups + 1))
        self.neg_ptr = np.searchsorted(self.neg_group, np.arange(n_groups + 1))
        as_pos = np.bincount(self.pos_codes, minlength=n_codes)  # groups having the code as a positive
        as_neg = np.bincount(self.neg_codes, minlength=n_codes)
        dirty = np.zeros(n_groups, dtype=bool)
        dirty[self.pos_group[(as_pos + as_neg)[self.pos_codes] > 1]] = True
        dirty[self.neg_group[as_pos[self.neg_codes] > 0]] = True
        self.dirty = dirty
        # one code per group standing for "its passage" when counting distinct passages
        self.first_pos = self.pos_codes[self.pos_ptr[:-1].clip(max=max(len(self.pos_codes) - 1, 0))]
        self._source_passages: dict[int, tuple[np.ndarray, int]] = {}

    ARRAYS = ("pos_group", "pos_codes", "neg_group", "neg_codes", "pos_ptr", "neg_ptr", "dirty", "first_pos")

    def saved_state(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`restore` rebuilds this object from (``polyret.training.index_cache`` saves them)."""
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def restore(cls, index: PairIndex, arrays: dict[str, np.ndarray]) -> Conflicts:
        """The index's Conflicts from saved (memory-mapped) arrays; :meth:`of` then returns it.

        Args:
            index: the index they were computed for.
            arrays: what :meth:`saved_state` returned.
        """
        self = cls.__new__(cls)
        for name in cls.ARRAYS:
            setattr(self, name, arrays[name])
        self._source_passages = {}
        index.__dict__["_conflicts"] = self
        return self

    @classmethod
    def of(cls, index: PairIndex) -> Conflicts:
        """The index's Conflicts, built once and kept on the index: every sampler over one index (the
        plan's, the trainer's) shares its arrays instead of building its own copy.

        Args:
            index: the training pairs (not changed after construction, so the arrays stay valid).
        """
        found = index.__dict__.get("_conflicts")
        if found is None:
            found = index.__dict__["_conflicts"] = cls(index)
        return found

    def source_passages(self, source: int, groups: np.ndarray, has_lang: np.ndarray, multi: np.ndarray):
        """(distinct passages per language, distinct passages of the groups with 2+ languages) of one source,
        computed once per source (the sort behind them is seconds at millions of groups).

        Args:
            source: the source number (the cache key).
            groups: its global group numbers.
            has_lang: groups x languages, whether the group has the language.
            multi: per group, whether it has 2+ languages.
        """
        cached = self._source_passages.get(source)
        if cached is None:
            per_lang = np.asarray(
                [self.distinct_passages(groups[has_lang[:, lang]]) for lang in range(has_lang.shape[1])],
                dtype=np.int64,
            )
            cached = self._source_passages[source] = (per_lang, self.distinct_passages(groups[multi]))
        return cached

    def distinct_passages(self, groups: np.ndarray) -> int:
        """Distinct passages among ``groups`` (one identity per group; an upper bound for batch filling)."""
        return count_distinct(self.first_pos[groups])

    def fits(self, group: int, taken_pos: set, taken_neg: set) -> bool:
        """Whether a dirty group fits beside the taken codes; if so its codes are added to them."""
        p = self.pos_codes[self.pos_ptr[group] : self.pos_ptr[group + 1]].tolist()
        n = self.neg_codes[self.neg_ptr[group] : self.neg_ptr[group + 1]].tolist()
        if any(c in taken_pos or c in taken_neg for c in p) or any(c in taken_pos for c in n):
            return False
        taken_pos.update(p)
        taken_neg.update(n)
        return True


class SourcePool:
    """One source's groups for one epoch: a random order consumed greedily under a per-batch predicate.

    A candidate group whose passages conflict with a group already in the batch is skipped and stays
    unused: the pointer stops at the first unused group, so deferred groups are the first candidates of
    the next batch (as in sentence-transformers' NoDuplicatesBatchSampler), never dropped within a pass.

    Args:
        groups: the source's global group numbers.
        rng: the epoch's generator for this source (one permutation per pass).
        conflicts: the index's :class:`Conflicts`.
        name: the source's name (for error messages).
    """

    def __init__(self, groups: np.ndarray, rng: np.random.Generator, conflicts: Conflicts, name: str) -> None:
        self.groups = groups  # global group numbers
        self.rng = rng
        self.conflicts = conflicts
        self.name = name
        self.dirty = conflicts.dirty[groups]
        self.deferred = 0  # groups deferred by the last take
        self._new_pass()

    def _new_pass(self) -> None:
        self.perm = self.rng.permutation(len(self.groups))
        self.used = np.zeros(len(self.groups), dtype=bool)
        self.ptr = 0

    def _fill(self, need: int, eligible: np.ndarray) -> tuple[np.ndarray, int, int] | None:
        """(picked local groups, deferred count, scanned end) from the current pass, or None when it runs short."""
        width, pos, n = max(2 * need, 64), self.ptr, len(self.perm)
        picked: list[np.ndarray] = []
        count = deferred = 0
        taken_pos: set[int] = set()
        taken_neg: set[int] = set()
        while pos < n:
            seg = self.perm[pos : pos + width]
            at = np.flatnonzero(~self.used[seg] & eligible[seg])  # candidate positions within seg
            ok = seg[at]
            want = need - count
            dirty = self.dirty[ok]
            if len(ok) >= want and not dirty[:want].any():  # fast path: the next ``want`` candidates are clean
                picked.append(ok[:want])
                return np.concatenate(picked), deferred, pos + int(at[want - 1]) + 1
            keep: list[int] = []
            for j, (local, d) in enumerate(zip(ok.tolist(), dirty.tolist())):
                # clean groups never share a conflicting code with anyone: only dirty ones are checked
                if d and not self.conflicts.fits(int(self.groups[local]), taken_pos, taken_neg):
                    deferred += 1
                    continue
                keep.append(local)
                if len(keep) == want:
                    picked.append(np.asarray(keep, dtype=np.int64))
                    return np.concatenate(picked), deferred, pos + int(at[j]) + 1
            picked.append(np.asarray(keep, dtype=np.int64))
            count += len(keep)
            pos += len(seg)
            width *= 4
        return None

    def take(self, need: int, eligible: np.ndarray) -> np.ndarray:
        """``need`` distinct unused, mutually non-conflicting local groups with ``eligible[local]``.

        Restarts the pass when the current one runs short; ValueError when even a fresh pass cannot fill
        the batch (too few distinct passages).
        """
        for _ in range(2):
            got = self._fill(need, eligible)
            if got is not None:
                pick, self.deferred, end = got
                self.used[pick] = True
                span = self.perm[self.ptr : end]
                free = np.flatnonzero(~self.used[span])
                self.ptr += int(free[0]) if len(free) else len(span)
                return self.groups[pick]
            self._new_pass()
        candidates = self.groups[eligible]
        raise ValueError(
            f"source {self.name!r} cannot fill a batch of {need} groups whose passages are all distinct: its "
            f"{len(candidates)} groups eligible for this batch hold "
            f"{self.conflicts.distinct_passages(candidates)} distinct passages (a passage and its translations "
            f"count once, hard negatives must not be another example's positive); use a smaller batch_size x "
            f"world_size or more data"
        )
