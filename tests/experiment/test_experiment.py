"""The smoke preset end to end (tiny model): train every strategy, evaluate, report, resume."""

import json
import shutil
from pathlib import Path

import pytest

from polyret.experiment import PRESETS, ExperimentConfig, run_experiment


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("exp") / "smoke"
    # keep_checkpoints: a test below resumes from a checkpoint of a finished run (by default they are deleted)
    cfg = PRESETS["smoke"].replace(model=tiny_model_dir, output=str(out), keep_checkpoints=True)
    result = run_experiment(cfg, progress=False)
    return cfg, result


def test_smoke_preset_trains_evaluates_and_reports(smoke):
    cfg, result = smoke
    out = result["output"]
    assert sorted(result["done"]["trained"]) == ["cross seed 0", "hybrid seed 0", "mono seed 0"]
    assert len(result["done"]["evaluated"]) == 4  # base + 3 strategies on one benchmark
    for system in ("mono", "cross", "hybrid"):
        card = (out / "models" / system / "seed0" / "model" / "README.md").read_text()
        assert system in card
        res = json.loads((out / "evals" / system / "seed0" / "xquad-r_test" / "results.json").read_text())
        assert set(res["settings"]) == {"mono", "cross", "multi"}
        assert res["languages"] == ["de", "en"]
    report = (out / "report" / "report.md").read_text()
    for system in ("base", "mono", "cross", "hybrid"):
        assert system in report
    data = json.loads((out / "report" / "report.json").read_text())
    assert set(data["benchmarks"]["xquad-r:test"]["systems"]) == {"base", "mono", "cross", "hybrid"}
    assert list((out / "report").rglob("*.png"))
    # mono, cross and hybrid are alpha 1, 0 and .5: the paper's claims are judged and both alpha figures drawn
    assert "### The paper's claims" in report and "hybrid has less language bias than mono" in report
    assert len(data["benchmarks"]["xquad-r:test"]["claims"]) == 6
    for fig in ("alpha_curves", "alpha_plane"):
        assert fig in report
        assert list((out / "report" / "figures").glob(f"*{fig}*.png")), fig
    # the resolved precision (conftest: a CPU without native bf16, so auto is fp32) wherever results are
    assert json.loads((out / "experiment.json").read_text())["precision"] == "fp32"
    assert json.loads((out / "models" / "hybrid" / "seed0" / "model" / "polyret_train.json").read_text())["precision"] == "fp32"
    assert "precision fp32" in (out / "models" / "hybrid" / "seed0" / "model" / "README.md").read_text()
    assert json.loads((out / "evals" / "base" / "xquad-r_test" / "results.json").read_text())["precision"] == "fp32"
    assert data["precision"] == "fp32" and "Inference precision of the evaluations: fp32." in report
    # the Setup section says what produced the numbers
    assert "## Setup" in report
    setup = data["setup"]
    assert setup["model"] == cfg.model and setup["training steps"] == str(cfg.train_overrides["max_steps"])
    assert setup["evaluation max length"] == f"{cfg.eval_max_seq_length} tokens" and setup["seeds"] == "1 (0)"
    assert setup["evaluation precision"] == "fp32" and "torch" in setup["software"] and setup["hardware"]
    assert setup["date"].endswith("(newest evaluation)")
    assert "learning rate" in setup and "batch" in setup and setup["alpha (hybrid)"] == "0.5"


def test_dry_run_of_a_finished_folder_says_what_is_reused(smoke):
    from polyret.experiment.plan import plan_experiment

    cfg, _ = smoke
    plan = plan_experiment(cfg)
    assert len(plan.reused) == 3 + 4  # three trainings, four evaluations
    assert (
        "3 training(s) and 4 evaluation(s) already finished here are reused, 0 training(s) and 0 evaluation(s) will run"
        in (plan.lines()[0])
    )
    assert not plan.missing


def test_rerun_reuses_everything(smoke):
    cfg, first = smoke
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == [] and again["done"]["evaluated"] == []
    assert again["done"]["pruned"] == []  # removed in the first run; the weights are not needed again


def _weights(folder):
    return sorted(p.name for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin"))


def _pruned_folder(smoke, tmp_path):
    """A copy of the finished smoke folder (its models' weights removed) and its config."""
    cfg, first = smoke
    out = tmp_path / "copy"
    shutil.copytree(first["output"], out)
    return cfg.replace(output=str(out)), out


def test_smoke_removes_each_models_weights_once_it_is_evaluated(smoke, tiny_model_dir):
    """keep_models false (the smoke preset): the weights go, the records and a marker that names them stay."""
    from polyret.experiment.runner import model_identity
    from polyret.models import ModelError, resolve, weights_pruned
    from polyret.paths import is_complete, read_marker

    cfg, result = smoke
    out = result["output"]
    assert cfg.keep_models is False and PRESETS["cpu"].keep_models is True and PRESETS["paper"].keep_models is True
    assert sorted(result["done"]["pruned"]) == ["cross seed 0", "hybrid seed 0", "mono seed 0"]
    base_weights = sum(p.stat().st_size for p in Path(tiny_model_dir).rglob("*.safetensors"))
    for system in ("mono", "cross", "hybrid"):
        final = out / "models" / system / "seed0" / "model"
        assert _weights(final) == []
        assert {"polyret_train.json", "batches.jsonl", "README.md"} <= {p.name for p in final.iterdir()}
        assert is_complete(final)  # the files it keeps, with their sha256
        pruned = weights_pruned(final)
        assert list(pruned["files"]) == ["model.safetensors"] and len(pruned["files"]["model.safetensors"]["sha256"]) == 64
        assert pruned["bytes"] == pruned["files"]["model.safetensors"]["size"] > 0.9 * base_weights
        # the identity the evaluation recorded is still the model's: a rerun reuses it by provenance
        ev = read_marker(out / "evals" / system / "seed0" / "xquad-r_test")
        assert ev["model_weights"] == model_identity(final) == pruned["model_weights"]
        assert read_marker(final)["global_step"] == cfg.train_overrides["max_steps"]  # the provenance stays
        with pytest.raises(ModelError, match="--keep-models"):
            resolve(str(final))  # evaluating it says why it cannot, not a transformers traceback


@pytest.mark.parametrize("damage", ["deleted", "edited"])
def test_an_evaluation_that_needs_removed_weights_retrains_just_that_model(smoke, tmp_path, damage):
    from polyret.experiment.plan import plan_experiment
    from polyret.paths import read_marker

    cfg, out = _pruned_folder(smoke, tmp_path)
    ev = out / "evals" / "cross" / "seed0" / "xquad-r_test"
    before = json.loads((ev / "results.json").read_text())
    if damage == "deleted":
        shutil.rmtree(ev)
    else:  # a same-size hand edit: its marker no longer matches, it is redone, and that needs the weights
        text = (ev / "results.json").read_text()
        at = text.index('"map": 0.') + len('"map": 0.')
        (ev / "results.json").write_text(text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1 :])
    plan = plan_experiment(cfg)
    assert "2 training(s) and 3 evaluation(s) already finished here are reused, 1 training(s)" in plan.lines()[0]
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == ["cross seed 0"]
    assert again["done"]["evaluated"] == ["cross seed 0 xquad-r:test"]
    assert again["done"]["pruned"] == ["cross seed 0"]  # removed again once evaluated
    final = out / "models" / "cross" / "seed0" / "model"
    assert _weights(final) == [] and read_marker(ev)["model_weights"] == read_marker(final)["weights_pruned"]["model_weights"]
    after = json.loads((ev / "results.json").read_text())
    assert after["settings"] == before["settings"]  # the same seeded training: the same numbers


def test_a_changed_evaluation_setting_retrains_the_pruned_models(smoke, tmp_path):
    cfg, out = _pruned_folder(smoke, tmp_path)
    (out / "experiment.json").unlink()  # what the message for a changed configuration advises
    again = run_experiment(cfg.replace(eval_max_seq_length=32), progress=False)
    assert sorted(again["done"]["trained"]) == ["cross seed 0", "hybrid seed 0", "mono seed 0"]
    assert len(again["done"]["evaluated"]) == 4
    for system in ("base", "mono", "cross", "hybrid"):
        folder = out / "evals" / system / ("seed0" if system != "base" else "") / "xquad-r_test"
        assert json.loads((folder / "results.json").read_text())["config"]["max_seq_length"] == 32


def test_a_pruned_marker_that_no_longer_matches_its_evaluation_is_not_reused(smoke, tmp_path):
    """The removed weights' sha256 in the model's marker is what its evaluations are matched on: edit it and
    the evaluation is of other weights, so the model is trained again (its evaluation then counts only if
    the retrained weights are the very bytes it recorded: a seeded CPU run gives them back)."""
    from polyret.experiment.runner import model_identity
    from polyret.paths import read_marker

    cfg, out = _pruned_folder(smoke, tmp_path)
    marker = out / "models" / "hybrid" / "seed0" / "model" / ".complete.json"
    data = json.loads(marker.read_text())
    entry = data["weights_pruned"]["files"]["model.safetensors"]
    entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    marker.write_text(json.dumps(data))
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == ["hybrid seed 0"] and again["done"]["pruned"] == ["hybrid seed 0"]
    ev = out / "evals" / "hybrid" / "seed0" / "xquad-r_test"
    assert read_marker(ev)["model_weights"] == model_identity(marker.parent)  # the true sha256 again


def test_keep_models_on_a_pruned_folder_trains_the_models_again_and_keeps_them(smoke, tmp_path):
    from polyret.experiment.runner import model_identity
    from polyret.paths import read_marker

    cfg, out = _pruned_folder(smoke, tmp_path)
    again = run_experiment(cfg.replace(keep_models=True), progress=False)  # keep_models may change in a folder
    assert sorted(again["done"]["trained"]) == ["cross seed 0", "hybrid seed 0", "mono seed 0"]
    assert again["done"]["pruned"] == []
    for system in ("mono", "cross", "hybrid"):
        final = out / "models" / system / "seed0" / "model"
        assert _weights(final) == ["model.safetensors"]
        # its evaluation is of exactly these weights (reused when the retrained bytes are the same, else redone)
        assert read_marker(out / "evals" / system / "seed0" / "xquad-r_test")["model_weights"] == model_identity(final)


def test_pruning_killed_after_its_marker_finishes_on_the_next_call(tiny_model_dir, tmp_path):
    from polyret.experiment.runner import model_identity
    from polyret.paths import is_complete, mark_complete
    from polyret.training.card import prune_weights

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    mark_complete(folder, global_step=4)
    identity = model_identity(folder)
    weights = (folder / "model.safetensors").read_bytes()
    freed = prune_weights(folder, reason="test", model_weights=identity)
    assert freed == len(weights) and _weights(folder) == [] and is_complete(folder)
    assert model_identity(folder) == identity
    (folder / "model.safetensors").write_bytes(weights)  # as if killed between the marker and the unlink
    assert is_complete(folder)  # an unlisted file: the marker already says the weights are gone
    assert prune_weights(folder, reason="", model_weights=None) == len(weights) and _weights(folder) == []
    assert model_identity(folder) == identity  # the second call kept the first's record


def test_interrupted_training_resumes_from_checkpoint(smoke, tmp_path):
    cfg, first = smoke
    out = tmp_path / "copy"  # damage a copy: the module-scoped smoke folder stays as the other tests expect it
    shutil.copytree(first["output"], out)
    cfg = cfg.replace(output=str(out))
    run_dir = out / "models" / "hybrid" / "seed0"
    # as if the process died after the step-2 checkpoint: no final model, no evaluation yet
    shutil.rmtree(run_dir / "model")
    shutil.rmtree(out / "evals" / "hybrid")
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-4")
    assert [p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == ["hybrid seed 0"]
    assert again["done"]["evaluated"] == ["hybrid seed 0 xquad-r:test"]
    info = json.loads((run_dir / "model" / "polyret_train.json").read_text())
    assert info["resumed_from"] == "checkpoint-2"
    assert info["global_step"] == cfg.train_overrides["max_steps"]


def test_changed_config_in_same_folder_is_refused(smoke, monkeypatch):
    cfg, first = smoke
    from polyret import precision

    with monkeypatch.context() as mp:  # the same config on a machine where auto is bf16: fp32 results are not mixed in
        mp.delenv(precision.CPU_BF16_ENV)
        mp.setattr(precision, "_cpu_capabilities", lambda: {"amx_bf16": True})
        with pytest.raises(ValueError, match=r"different configuration \(.*: precision differ"):
            run_experiment(cfg, progress=False)
    with pytest.raises(ValueError, match="different configuration.*train_overrides"):
        run_experiment(cfg.replace(train_overrides={**cfg.train_overrides, "lr": 1e-3}), progress=False)
    with pytest.raises(ValueError, match="different configuration.*alpha"):
        run_experiment(cfg.replace(alpha=0.3), progress=False)


def test_more_seeds_extend_the_experiment(smoke, tmp_path):
    cfg, first = smoke
    out = tmp_path / "copy"
    shutil.copytree(first["output"], out)
    wider = cfg.replace(output=str(out), seeds=2, strategies=("hybrid",))
    again = run_experiment(wider, progress=False)
    assert again["done"]["trained"] == ["hybrid seed 1"]  # seed 0 and the base are reused
    assert again["done"]["evaluated"] == ["hybrid seed 1 xquad-r:test"]
    systems = json.loads((out / "report" / "report.json").read_text())["benchmarks"]["xquad-r:test"]["systems"]
    assert set(systems) == {"base", "hybrid"}  # only what the config asks for; mono/cross stay on disk
    assert systems["hybrid"]["seeds"] == [0, 1]
    assert json.loads((out / "experiment.json").read_text())["seeds"] == 2


def test_config_file_and_validation(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("preset: smoke\nstrategies: mono,hybrid\nalpha_sweep: [0.3]\nseeds: 2\n")
    cfg = ExperimentConfig.from_file(f)
    assert [s.name for s in cfg.systems()] == ["mono", "hybrid", "hybrid-a0.3"]
    assert cfg.seed_values() == [0, 1]
    f.write_text("preset: cpu\ntrain_overrides: {max_steps: 100, lr: 3.0e-5}\n")
    cfg = ExperimentConfig.from_file(f)
    assert cfg.train_overrides == {**PRESETS["cpu"].train_overrides, "max_steps": 100, "lr": 3e-5}
    with pytest.raises(ValueError, match="unknown strategies"):
        PRESETS["smoke"].replace(strategies=("nope",))
    with pytest.raises(ValueError, match="unknown experiment config key"):
        PRESETS["smoke"].replace(steps=3)


@pytest.mark.parametrize(
    "text, named",
    [
        ("preset: smokee\n", "smokee"),
        ('preset: smoke\nseeds: "two"\n', "seeds must be an integer"),
        ("preset: smoke\nalpha: high\n", "alpha must be a number"),
        ("preset: smoke\nstrategies: 3\n", "strategies must be a list of str"),
        ("preset: smoke\ntrain_overrides: [1, 2]\n", "train_overrides must be a mapping"),
        ("preset: smoke\neval_batch_size: 0\n", "eval_batch_size must be >= 1"),
        ("preset: smoke\nbenchmarks: [xquad-r:tset]\n", "xquad-r:tset"),
        ("preset: smoke\nbenchmarks: [miracl/de]\n", "miracl/de has no language en"),
        ("preset: smoke\neval_languages: {mlqa-r: [de]}\n", "mlqa-r"),
        ("preset: smoke\ntrain_overrides: {lr: -1}\n", "lr must be > 0"),
        ("preset: smoke\ntrain_overrides: {alpha: 0.9}\n", "--alpha-sweep"),
        ("preset: smoke\nlanguages: [de]\nstrategies: [hybrid]\n", "needs at least 2 languages"),
        ("preset: smoke\nsteps: 3\n", "unknown experiment config key"),
    ],
)
def test_config_file_values_are_type_checked_with_the_key_named(tmp_path, text, named):
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    with pytest.raises(ValueError) as info:
        ExperimentConfig.from_file(f)
    assert str(f) in str(info.value) and named in str(info.value)


def test_config_file_accepts_lists_commas_and_whole_numbers(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text(
        "preset: smoke\nalpha: 1\nseeds: 2.0\nalpha_sweep: [0, 0.7]\neval_max_seq_length: null\n"
        "eval_languages: {xquad-r:test: de}\n"
    )
    cfg = ExperimentConfig.from_file(f)
    assert cfg.alpha == 1.0 and cfg.seeds == 2 and cfg.alpha_sweep == (0.0, 0.7)
    assert cfg.eval_max_seq_length is None and cfg.eval_languages == {"xquad-r:test": ("de",)}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"benchmarks": ("xquad-r:tset",)}, "xquad-r:tset"),
        ({"model": "./no-such-model"}, "./no-such-model"),
        ({"train": ("missing.jsonl",)}, "missing.jsonl"),
        ({"train": ("xquad-r:valid",)}, "valid"),
    ],
)
def test_nothing_is_written_before_the_config_is_valid(tmp_path, change, named):
    import dataclasses

    out = tmp_path / "exp"
    # a config is checked when it is made (a benchmark id), the disk by run_experiment (model, sources)
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        run_experiment(dataclasses.replace(PRESETS["smoke"], output=str(out), **change), progress=False)
    assert not out.exists()  # so the corrected rerun into this folder is not "a different configuration"


def test_an_unusable_output_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        run_experiment(PRESETS["smoke"].replace(output=str(blocker / "exp")), progress=False)


@pytest.mark.parametrize("key", ["alpha", "seed", "strategy", "output_dir", "resume", "model", "dev"])
def test_train_overrides_the_experiment_sets_itself_are_refused(key):
    with pytest.raises(ValueError, match=f"train override '{key}' is not allowed"):
        PRESETS["smoke"].replace(train_overrides={**PRESETS["smoke"].train_overrides, key: "x"})


def test_evaluate_refuses_an_unusable_output_before_loading_the_model(tmp_path, monkeypatch):
    import polyret.models
    from polyret.evaluation import evaluate

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        evaluate("some/model", "xquad-r:test", output=blocker / "out", languages=["de"])


def test_model_spec_check_keeps_hub_ids_and_builtins(tmp_path):
    from polyret.experiment import check_model_spec
    from polyret.models import ModelError

    check_model_spec("intfloat/multilingual-e5-base")  # a Hub id is not looked up here
    check_model_spec("builtin:me5-small")  # known builtin: not built just to check it
    check_model_spec(str(tmp_path))  # an existing folder
    for bad in ("./missing", "/no/such/model", "~/no-such-model-here", "builtin:nope", "a/b/c"):
        with pytest.raises(ModelError):
            check_model_spec(bad)


def test_layout_is_the_one_place_that_names_the_folders(tmp_path):
    from polyret.experiment import layout

    assert layout.config_path(tmp_path) == tmp_path / "experiment.json"
    assert layout.model_dir(tmp_path, "hybrid-a0.3", 2) == tmp_path / "models" / "hybrid-a0.3" / "seed2"
    assert layout.final_model_dir(layout.model_dir(tmp_path, "mono", 0)) == tmp_path / "models" / "mono" / "seed0" / "model"
    assert layout.eval_dir(tmp_path, "base", None, "xquad-r:test") == tmp_path / "evals" / "base" / "xquad-r_test"
    assert layout.report_dir(tmp_path) == tmp_path / "report"
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="cannot be a folder name"):
            layout.model_dir(tmp_path, bad, 0)
    for system, seed, bench in (("base", None, "miracl/de"), ("mono", 1, "xquad-r:test"), ("mono", 0, "xquad-r:test")):
        layout.eval_dir(tmp_path, system, seed, bench).mkdir(parents=True)
    (tmp_path / "evals" / ".tmp-x").mkdir()  # a hidden folder is no system
    assert [(s, k, p.name) for s, k, p in layout.find_evals(tmp_path)] == [
        ("base", None, "miracl_de"),
        ("mono", 0, "xquad-r_test"),
        ("mono", 1, "xquad-r_test"),
    ]
    assert layout.find_evals(tmp_path / "evals") == layout.find_evals(tmp_path)


def test_a_folder_of_polyret_0_1_with_old_train_override_keys_is_continued(smoke, tmp_path):
    cfg, first = smoke
    out = tmp_path / "old"
    shutil.copytree(first["output"], out)
    record = json.loads((out / "experiment.json").read_text())
    overrides = record["train_overrides"]
    overrides["dev_pairs"] = overrides.pop("dev_groups")  # as polyret 0.1.0 wrote it
    (out / "experiment.json").write_text(json.dumps(record))
    for run in (out / "models").glob("*/seed0/model/polyret_train.json"):
        saved = json.loads(run.read_text())
        saved["config"]["dev_pairs"] = saved["config"].pop("dev_groups")
        run.write_text(json.dumps(saved))
        # and its completion marker as 0.1.0 wrote it (sizes only): an edit under a checksummed marker
        # would be a hand edit, and the model would rightly be retrained
        marker = json.loads((run.parent / ".complete.json").read_text())
        marker["files"] = {name: (run.parent / name).stat().st_size for name in marker["files"]}
        (run.parent / ".complete.json").write_text(json.dumps(marker))
    again = run_experiment(cfg.replace(output=str(out)), progress=False)
    assert again["done"]["trained"] == [] and again["done"]["evaluated"] == []


def test_cpu_sweep_preset_is_the_alpha_grid_with_seeds():
    """The cpu-sweep preset trains the paper's alpha grid (0 = cross, 1 = mono) with 3 seeds each."""
    from polyret.report.alpha import system_alpha

    cfg = PRESETS["cpu-sweep"]
    cfg.validate()
    names = [s.name for s in cfg.systems()]
    assert sorted(system_alpha(n) for n in names) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cfg.seed_values() == [0, 1, 2]
    assert cfg.languages == ("de", "en", "th", "zh")
