"""``EvalConfig``: everything that decides an evaluation's numbers, validated on construction.

The shared behaviour (coercion, ``replace``/``from_dict``/``from_file``/``to_dict``, unknown keys) is
:class:`polyret.configs.ConfigBase`'s; ``check_encode_options`` is the one check of the encoding options
(the command line names its ``--options`` through the error's ``key``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .. import distributed
from ..configs import ConfigBase, config_error
from ..encode.stream import STORE_DTYPES
from ..errors import ConfigError, ModelError
from ..precision import CHOICES as PRECISION_CHOICES
from ..vocabulary import DEFAULT_MEASURES, FAMILIES, check_languages

STORE_THRESHOLD = 100_000  # candidates from which they go to an EmbeddingStore instead of the per-text cache


@dataclass(frozen=True)
class EvalConfig(ConfigBase):
    """Everything that decides an evaluation's numbers (and so its cache and output).

    Each field is described once, below (``polyret evaluate --help`` shows the same text).

    Args:
        model: a model spec: ``builtin:me5-small``, a local model folder, or a Hub id.
        benchmark: a benchmark id: ``xquad-r[:train|:test]``, ``mlqa-r[...]``, ``miracl/<lang>``;
            ``polyret benchmarks`` lists them (:func:`polyret.data.list_benchmarks`).
        languages: evaluate only these of the benchmark's languages, e.g. ``de,en,zh`` (None: all).
        families: the setting families scored: ``mono``, ``cross``, ``multi`` (None: all the benchmark has).
        data_dir: the data root, with ``xquad-r/``, ``mlqa-r/``, ``miracl/`` (None: ``POLYRET_DATA_DIR``,
            else polyret's default root; :func:`polyret.paths.data_dir`).
        batch_size: texts per encoding batch (a batch of long texts is cut to ``max_tokens`` padded tokens).
        k: candidates kept per (setting, query) in the run table (the metrics stay exact).
        backend: the search: ``exact`` (blocked matrix products, exact full ranks), ``faiss`` (Flat),
            ``faiss-ivf`` or ``faiss-hnsw`` (approximate); faiss ranks only the top ``k``, so map is reported
            as map@k.
        measures: measure names in any ir_measures or trec_eval spelling (``nDCG@10``, ``AP``, ``RR@10``,
            ``R@100``, ``P@5``, ``Judged@10``, ``ndcg_cut_10``, ``recip_rank`` ...; see
            :func:`polyret.evaluation.metrics.parse_measure`), stored under polyret's stable names (default:
            :data:`polyret.vocabulary.DEFAULT_MEASURES`).
        with_context: encode each candidate sentence followed by its paragraph.
        max_seq_length: truncate texts to this many tokens (None: the model's own).
        query_prompt: the prompt prepended to queries, e.g. ``"query: "`` (None: the model's own).
        passage_prompt: the prompt prepended to passages, e.g. ``"passage: "`` (None: the model's own).
        cache: keep embeddings (and a MIRACL corpus's parsed columns) in the on-disk cache; False reads
            and writes no cache.
        cache_dir: the cache root (None: ``POLYRET_CACHE_DIR`` or the user cache dir).
        device: the torch device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ... (None: the best available).
        precision: inference precision: ``auto`` (bf16 on a GPU or a CPU with native bf16 (AMX,
            AVX512-BF16), else fp16 on GPU / fp32; see :func:`polyret.precision.resolve`), ``fp32`` (the
            reference), ``bf16`` or ``fp16``; autocast, each resolved precision's embeddings cached apart;
            ``evaluate`` records the resolved one (results.json).
        store_dtype: the rows of a corpus's embedding store: ``float32`` or ``float16`` (half the disk and
            RAM).
        store_threshold: candidates from which a corpus goes to the memory-mapped embedding store instead
            of the per-text cache.
        devices: encode with one worker process per device, e.g. ``cuda:0,cuda:1`` (sentence-transformers'
            pool, one machine; under torchrun the ranks share the work instead; None: the one ``device``).
        max_tokens: most padded tokens per encoding batch (texts x longest text).
        corpus: with a ``miracl/<lang>`` benchmark: a MIRACL-format corpus JSONL(.gz) of one's own
            (``{docid, title, text}`` lines), evaluated against that language's topics and qrels (None: the
            data dir's corpus).
        bias_measures: the language-bias measures computed (None: all;
            :data:`polyret.evaluation.bias_measures.BIAS_MEASURES`).
        debias: a training-free remedy applied to the embeddings between encode and search: ``center``,
            ``shift`` or ``leace`` (needs ``debias_fit``; see :mod:`polyret.evaluation.debias`).
        debias_fit: the benchmark id the remedy is fitted on, e.g. ``xquad-r:train``; never the evaluated
            one, nor one sharing its passages.
        debias_fit_max_queries: the first this many parallel questions of ``debias_fit`` fit the remedy
            (None: all).

    Frozen and validated on construction (and on every ``replace``), without the disk: types, ranges, the
    backend, measures, families, bias measures, the remedy's options, the encoding options and the device.
    What needs the benchmark's registry entry or files (its languages and families, a corpus file, the
    model spec, the output folder) is checked by ``evaluate`` / the command line before anything loads.

    Raises:
        ConfigError: a value out of range or of the wrong type; the message names the key (``key``).
        ModelError: ``device`` / ``devices`` names a device this machine does not have.
    """

    KIND: ClassVar[str] = "evaluation"

    model: str = "builtin:me5-small"
    benchmark: str = "xquad-r:test"
    languages: tuple[str, ...] | None = None
    families: tuple[str, ...] | None = None
    data_dir: str | None = None
    batch_size: int = 32
    k: int = 100
    backend: str = "exact"
    measures: tuple[str, ...] = DEFAULT_MEASURES
    with_context: bool = False
    max_seq_length: int | None = None
    query_prompt: str | None = None
    passage_prompt: str | None = None
    cache: bool = True
    cache_dir: str | None = None
    device: str | None = None
    precision: str = "auto"
    store_dtype: str = "float32"
    store_threshold: int = STORE_THRESHOLD
    devices: tuple[str, ...] | None = None
    max_tokens: int = 4096
    corpus: str | None = None
    bias_measures: tuple[str, ...] | None = None
    debias: str | None = None
    debias_fit: str | None = None
    debias_fit_max_queries: int | None = 300

    def __post_init__(self) -> None:
        self._prepare()  # lists -> tuples ("cuda:0,cuda:1" too), whole floats -> ints; a wrong type named
        self.validate()

    def _keyed(self, error: Exception, prefix: str = "invalid evaluation config: ") -> Exception:
        """``error`` (a check's message that starts with the key) as this config's error naming the key."""
        out = config_error(prefix, str(error), self.field_names())
        if isinstance(error, ModelError):  # a device this machine lacks stays a ModelError
            keyed = ModelError(str(out))
            keyed.key, keyed.detail = getattr(out, "key", None), getattr(out, "detail", None)
            return keyed
        return out

    def validate(self) -> None:
        """Every check that needs no file (see the class docstring); ``ConfigError`` names the key."""
        from . import bias_measures as bias_suite
        from . import metrics
        from .debias import check_debias_options
        from .search import BACKENDS

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise self._error(message)

        need(bool(self.model), "model is empty")
        need(bool(self.benchmark), "benchmark is empty")
        if self.languages is not None:
            need(len(self.languages) >= 1, "languages: the language list is empty (leave it unset for all languages)")
            canonical = tuple(lang.strip().lower() for lang in self.languages)
            try:
                check_languages(self.languages, canonical, where="languages", error=ConfigError)
            except ConfigError as exc:
                raise self._keyed(exc) from None
        if self.families is not None:
            bad = [f for f in self.families if f not in FAMILIES]
            unknown = ", ".join(bad) or "(empty list)"
            need(not bad and bool(self.families), f"families: unknown {unknown}; choose from {', '.join(FAMILIES)}")
        for key in ("batch_size", "k"):
            need(getattr(self, key) >= 1, f"{key} must be >= 1, got {getattr(self, key)}")
        need(self.max_seq_length is None or self.max_seq_length >= 1, f"max_seq_length must be >= 1, got {self.max_seq_length}")
        need(self.backend in BACKENDS, f"backend: unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.bias_measures is not None:
            try:
                object.__setattr__(self, "bias_measures", tuple(bias_suite.check_bias_measures(self.bias_measures)))
            except ValueError as exc:
                raise self._keyed(exc) from None
        try:
            check_debias_options(self.debias, self.debias_fit, self.debias_fit_max_queries, self.benchmark)
        except ConfigError as exc:  # as the remedy's checks say it (no prefix), naming the key
            raise self._keyed(exc, prefix="") from None
        try:  # any spelling ir_measures or trec_eval knows; stored under polyret's stable names
            object.__setattr__(self, "measures", tuple(metrics.canonical_measures(self.measures)))
        except ValueError as err:
            raise self._error(f"measures: {err}") from None
        parsed = [(m, metrics.parse_measure(m)) for m in self.measures]
        deep = [m for m, p in parsed if p.kind == "ir" and not 1 <= (p.cutoff or 0) <= self.k]
        need(
            not deep,
            f"measures: {deep[0] if deep else ''} is computed by ir_measures on the top k={self.k} candidates: give it "
            "a cutoff <= k or raise k",
        )
        try:
            check_encode_options(
                precision=self.precision,
                store_dtype=self.store_dtype,
                store_threshold=self.store_threshold,
                devices=self.devices,
                max_tokens=self.max_tokens,
                option=lambda key: key,
            )
            from polyret.models import check_device

            check_device(self.device, option="device")
        except (ConfigError, ModelError) as exc:
            raise self._keyed(exc) from None


_DEVICE = re.compile(r"^[a-z][a-z0-9_]*(:[0-9]+)?$")


def check_encode_options(*, precision, store_dtype, store_threshold, devices, max_tokens, option=None) -> None:
    """Check the encoding options of an evaluation before anything loads; ``ConfigError`` names the key.

    Args:
        precision: one of :data:`polyret.precision.CHOICES` (``auto`` or a precision).
        store_dtype: one of :data:`polyret.encode.STORE_DTYPES`.
        store_threshold: an int >= 0.
        devices: None or a non-empty list of torch device names (``cpu``, ``cuda:1``, ``mps`` ...).
        max_tokens: an int >= 1.
        option: ``option(key)`` is the name the message gives a key (default: the EvalConfig field,
            as ``invalid evaluation config: <key>``; the command line gives its ``--option``).
    """
    name = option or (lambda key: f"invalid evaluation config: {key}")
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"{name('precision')}: unknown {precision!r}; choose from {', '.join(PRECISION_CHOICES)}")
    if str(store_dtype) not in STORE_DTYPES:
        raise ConfigError(f"{name('store_dtype')}: unknown {store_dtype!r}; choose from {', '.join(STORE_DTYPES)}")
    for key, value, low in (("store_threshold", store_threshold, 0), ("max_tokens", max_tokens, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name(key)} must be an integer >= {low}, got {value!r}")
    if devices is not None:
        if isinstance(devices, str) or not isinstance(devices, (list, tuple)) or not devices:
            raise ConfigError(f"{name('devices')} must be a non-empty list of devices such as cuda:0,cuda:1, got {devices!r}")
        bad = [d for d in devices if not isinstance(d, str) or not _DEVICE.match(d)]
        if bad:
            raise ConfigError(f"{name('devices')}: {bad[0]!r} is not a device name (cpu, cuda, cuda:1, mps ...)")
        from polyret.models import check_device

        for d in devices:  # before any worker starts or the model loads
            check_device(d, option=name("devices"))
        if distributed.launched():  # every rank would start a pool over every device
            raise ConfigError(
                f"{name('devices')}: a device pool is for one process without a launcher; under torchrun or "
                "accelerate launch every rank already encodes its share on its own device: drop it"
            )
