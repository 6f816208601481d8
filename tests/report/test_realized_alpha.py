"""The report shows what each hybrid run did: its realized share of monolingual steps next to the nominal
alpha, in the main table, report.json and the alpha figures (issue 21 §1b)."""

from __future__ import annotations

import json

from polyret.evaluation import score
from polyret.evaluation.pipeline import training_record
from polyret.report import ReportEntry, analyse, build_report
from polyret.report.alpha import realized_alpha
from tests.helpers.report import report_benchmark as tiny_benchmark
from tests.helpers.report import report_embeddings as embeddings

SYSTEMS = {"base": (1.6, 1.2), "cross": (1.25, 0.6), "hybrid-a0.25": (1.1, 0.55), "hybrid": (1.05, 0.5), "mono": (1.2, 1.0)}
# the draws: "alpha .5" seeds drew 3, 12 and 11 mono steps of 20; "alpha .25" 1, 8 and 4
SHARES = {"cross": (0.0, 0.0), "hybrid-a0.25": (0.05, 0.40), "hybrid": (0.15, 0.60), "mono": (1.0, 1.0)}


def _entries():
    bench = tiny_benchmark()
    out = []
    for k, (name, (noise, offset)) in enumerate(SYSTEMS.items()):
        for i, sd in enumerate([None] if name == "base" else (1, 2)):
            q, c = embeddings(bench, noise, offset, 7 if sd is None else 10 * sd + k)
            res, _ = score(bench, q, c, model_name=name, measures=("map", "ndcg@10"))
            if sd is not None:
                res.extra["training"] = {"strategy": name.split("-")[0], "realized_mono_share": SHARES[name][i]}
            out.append(ReportEntry(name, sd, bench.id, res))
    return out


def test_main_table_and_json_give_the_realized_share(tmp_path):
    files = build_report(_entries(), tmp_path, title="Tiny", n_resamples=200, seed=0)
    text = files["markdown"].read_text(encoding="utf-8")
    assert "mono share (realized)" in text and "nominal alpha" in text
    row = next(line for line in text.splitlines() if line.startswith("| hybrid |"))
    assert "0.38 (0.15 / 0.60)" in row
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    share = data["benchmarks"]["tiny:test"]["systems"]["hybrid-a0.25"]["realized_mono_share"]
    assert share == {"per_seed": {"1": 0.05, "2": 0.4}, "mean": 0.225}
    assert data["benchmarks"]["tiny:test"]["systems"]["base"]["realized_mono_share"]["mean"] is None
    assert any(name.endswith("alpha_curves.png") for name in map(str, data["benchmarks"]["tiny:test"]["figures"].values()))


def test_alpha_figures_plot_the_realized_share():
    report = analyse(_entries(), n_resamples=100, seed=0)
    systems = {s.name: s for s in report.benchmarks[0].systems}
    assert realized_alpha(0.5, systems["hybrid"]) == 0.375  # not the nominal .5
    assert realized_alpha(0.25, systems["hybrid-a0.25"]) == 0.225
    systems["hybrid"].mono_share.clear()
    assert realized_alpha(0.5, systems["hybrid"]) == 0.5  # not recorded: the nominal alpha


def test_an_evaluation_records_its_models_training(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    assert training_record(str(model)) is None and training_record("builtin:me5-small") is None
    (model / "polyret_train.json").write_text(json.dumps({"config": {"strategy": "hybrid", "alpha": 0.5}, "global_step": 4}))
    (model / "batches.jsonl").write_text("".join(json.dumps({"step": s, "kind": k}) + "\n" for s, k in
                                                 [(1, "mono"), (2, "cross"), (3, "cross"), (4, "cross")]))  # fmt: skip
    record = training_record(str(model))
    assert record["realized_mono_share"] == 0.25 and record["alpha_schedule"] == "draw" and record["steps"] == 4
