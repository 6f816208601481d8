"""Interoperation with the tools retrieval researchers compare against.

- ``router``: the router mapping that sends training columns down a ``Router`` model's query and
  document routes (``encode_batch`` routes at encoding time).
- ``mteb_results``: MTEB ``TaskResult`` files (``<model>/<revision>/<Task>.json`` + ``model_meta.json``)
  from polyret's ``Results`` (defined in :mod:`polyret.evaluation.mteb_export`, whose verb writes them into
  every results folder; re-exported here).
- ``model_index``: the ``model-index`` block of a model card (as sentence-transformers and
  ``mteb create-meta`` write it) from polyret's ``Results``.

External TREC runs are scored by :mod:`polyret.evaluation.external_runs` (fusion: :mod:`polyret.evaluation.fusion`).
"""
