"""polyret's PEER against the reference implementation (``peer-measure``, by the paper's authors) on a real run.

``peer-measure`` 0.0.1 needs ``ir-measures`` <= 0.3.1, which cannot share polyret's environment, so it
runs in its own virtual environment, given as ``--peer-python``::

    python3 -m venv /work/venv-peer && /work/venv-peer/bin/pip install 'ir-measures<=0.3.1' peer-measure==0.0.1
    polyret evaluate --benchmark xquad-r:test --trec-run --output runs/base     # writes runs/base/run.npz
    python bench/bench_peer_agreement.py runs/base/run.npz --peer-python /work/venv-peer/bin/python

The multilingual settings' top-k lists go to a TREC run, their gold passages to qrels with one
0-judgement per query (the reference implementation needs one), every document's language to a
mapping; the reference computes ``PEER(weights={0: .5, 1: .5}, lang_mapping=...)@k`` per query and the
script prints how many queries agree with :func:`polyret.evaluation.bias_measures.peer` and the
largest difference. Where every item of a relevance level sits at the same rank the reference divides
0 by 0 and returns NaN; polyret gives that level p = 1 (no evidence of unequal expected ranks): those
queries are counted apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from polyret.evaluation import bias_measures
from polyret.evaluation.runtable import RunTable

_REFERENCE = """
import json, sys
import ir_measures
from peer_measure import PEER
folder = sys.argv[1]
meta = json.load(open(folder + "/meta.json"))
mapping = json.load(open(folder + "/langs.json"))
measure = PEER(weights={int(k): v for k, v in meta["weights"].items()}, lang_mapping=mapping) @ meta["cutoff"]
qrels = list(ir_measures.read_trec_qrels(folder + "/qrels.txt"))
run = list(ir_measures.read_trec_run(folder + "/run.trec"))
out = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qrels, run)}
json.dump(out, open(folder + "/reference.json", "w"))
"""


def export(run: RunTable, folder: Path, weights: dict[int, float]) -> int:
    """Write the multilingual settings as run.trec, qrels.txt (gold + one 0 judgement), langs.json."""
    multi = run.filter([s for s in run.settings if s.family == "multi"])
    qrels = multi.to_qrels_dict()
    top = multi.retrieved & (multi.relevance == 0)
    qids = np.char.add(
        np.char.add(np.char.add(np.asarray(multi.setting_names, dtype=str)[multi.setting], "/"), multi.query_ids[multi.query]),
        np.char.add("@", multi.query_langs[multi.query]),
    )
    # the top k only (deeper gold passages are unretrieved for PEER@k), scored -rank: a run file's
    # 7-digit scores tie neighbours that differ in float32, and the reference breaks ties by docid
    # ascending where polyret's ranks follow trec_eval (descending); the rank pins the same ranking
    rows = np.flatnonzero(multi.retrieved)
    with open(folder / "run.trec", "w", encoding="utf-8") as fh:
        for qid, doc, rank in zip(qids[rows].tolist(), multi.doc_ids[multi.doc[rows]].tolist(), multi.rank[rows].tolist()):
            fh.write(f"{qid} Q0 {doc} {rank} {-rank} polyret\n")
    zero: dict[str, str] = {}
    for qid, doc in zip(qids[top].tolist(), multi.doc_ids[multi.doc[top]].tolist()):
        zero.setdefault(qid, doc)
    with open(folder / "qrels.txt", "w", encoding="utf-8") as fh:
        for qid, rel in qrels.items():
            for doc, r in rel.items():
                fh.write(f"{qid} 0 {doc} {r}\n")
            if qid in zero:
                fh.write(f"{qid} 0 {zero[qid]} 0\n")
    (folder / "langs.json").write_text(json.dumps(dict(zip(multi.doc_ids.tolist(), multi.doc_langs.tolist()))))
    (folder / "meta.json").write_text(json.dumps({"weights": {str(k): v for k, v in weights.items()}, "cutoff": int(run.k)}))
    return len(qrels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run.npz written by polyret evaluate --trec-run")
    ap.add_argument("--peer-python", required=True, help="python of an environment with peer-measure and ir-measures<=0.3.1")
    args = ap.parse_args()
    run = RunTable.load(args.run)
    ours = bias_measures.peer(run)
    weights = {int(k): v for k, v in ours.extra["weights"].items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n = export(run, folder, weights)
        subprocess.run([args.peer_python, "-c", _REFERENCE, str(folder)], check=True)
        ref = json.loads((folder / "reference.json").read_text())
    mine = {f"{s}/{q}@{lg}": v for s, q, lg, v in zip(ours.setting_names, ours.query_ids, ours.query_langs, ours.values.tolist())}
    common = sorted(set(mine) & set(ref))
    ref_nan = [q for q in common if not np.isfinite(ref[q])]  # the reference's 0/0 (every item at one rank)
    finite = [q for q in common if np.isfinite(ref[q])]
    diff = np.abs(np.asarray([mine[q] - ref[q] for q in finite]))
    report = {
        "queries_exported": n,
        "queries_compared": len(common),
        "only_polyret": len(set(mine) - set(ref)),
        "only_reference": len(set(ref) - set(mine)),
        "reference_nan": len(ref_nan),
        "polyret_values_where_reference_nan": sorted({round(mine[q], 12) for q in ref_nan}),
        "max_abs_diff_elsewhere": float(diff.max()) if len(diff) else None,
        "n_within_1e-9": int((diff <= 1e-9).sum()),
        "polyret_mean_over_those": float(np.mean([mine[q] for q in finite])),
        "reference_mean_over_those": float(np.mean([ref[q] for q in finite])),
        "weights": ours.extra["weights"],
        "cutoff": ours.extra["cutoff"],
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
