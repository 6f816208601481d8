"""Shared test helpers, one home each (no test module imports another):

- ``models``: the tiny random BERT (``build_tiny_model``, ``TINY_WORDS``);
- ``benchmarks``: the tiny benchmark and random embeddings for scoring tests, the toy search benchmark, the
  worded benchmark (texts the tiny model tells apart: the golden files' input);
- ``pairs``: training-pair files (JSONL, synthetic store rows, a local mMARCO copy);
- ``miracl``: MIRACL-format corpora and data dirs;
- ``training``: a small ``TrainConfig``, weights of a model folder, a stop-at-step callback;
- ``report``: synthetic systems with known quality and bias, as report entries.
"""
