"""Issue 21 (folders, locks, interrupts): every output belongs to what produced it.

* Results folders are trusted by content and provenance: the completion marker records every file's
  sha256 and what produced it; a same-size edit is caught; results.json is checked against
  per_query.csv.gz before either is used.
* A folder has one owner and one content: another producer's finished folder is refused (exit 2) unless
  ``--overwrite``; ``run.trec`` is written before the marker and listed in it.
* One writer per output: a second evaluate / score / train / mine / experiment on a locked output exits 2
  naming the holder (a real second process); a dead holder's lock is taken over.
* The experiment reuses by provenance (the recorded training config, the model's own marker), redoes a
  disagreeing results folder, and drops the figures of systems it no longer has.
* Ctrl-C and SIGTERM always stop a run (also when they land in a finalizer); messages name the variable,
  file or setting at fault; temp files of dead writers are removed, set-aside copies bounded.

Tiny models and a 24-article XQuAD-R-shaped benchmark (2 of its languages): every command takes seconds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polyret
from polyret.cli import app
from polyret.evaluation.results import is_done, load_checked
from polyret.experiment.runner import model_identity
from polyret.paths import (
    COMPLETE_MARKER,
    LOCK_FILE,
    OutputConflict,
    atomic_path,
    cache_dir,
    file_sha256,
    is_complete,
    mark_complete,
    output_lock,
    read_marker,
    refuse_output_over_inputs,
    set_aside,
    sweep_dead_temps,
)
from tests.helpers.lareqa import write_tiny_xquad
from tests.helpers.pairs import write_de_en_pairs

SRC = str(Path(polyret.__file__).resolve().parent.parent)
BENCH = "xquad-r:test"
LANGS = "de,en"
runner = CliRunner()


def _env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("POLYRET_DEBUG", "POLYRET_TEST_KILL")}
    env.update(
        {
            "PYTHONPATH": SRC,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "POLYRET_CACHE_DIR": str(root / "cache"),
            "POLYRET_DATA_DIR": str(root / "data"),
            "TOKENIZERS_PARALLELISM": "false",
            **extra,
        }
    )
    return env


def _cli(root: Path, *args: str):
    """``polyret <args>`` in this process, with the world's data and a private cache."""
    return runner.invoke(app, list(args), env={"POLYRET_CACHE_DIR": str(root / "cache"), "POLYRET_DATA_DIR": str(root / "data")})


def _evaluate(root: Path, model: str, output: Path, *extra: str):
    return _cli(root, "evaluate", "--model", model, "--benchmark", BENCH, "--languages", LANGS, "--output", str(output), *extra)


def _exp_args(w: dict, out: Path, *extra: str) -> list[str]:
    # --keep-models: these tests damage a trained model's weights (the smoke preset removes them once evaluated;
    # tests/experiment/test_experiment.py covers that folder)
    return [
        "experiment", "--preset", "smoke", "--model", w["model"], "--strategies", "hybrid", "--languages", LANGS,
        "--data-dir", str(w["root"] / "data"), "--set", "max_steps=2", "--set", "save_steps=1", "--keep-models",
        "--output", str(out), *extra,
    ]  # fmt: skip


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


def _same_size_edit(path: Path) -> None:
    """Change one digit of the first mAP value, keeping the file's size (a hand edit)."""
    text = path.read_text(encoding="utf-8")
    at = text.index('"map": 0.') + len('"map": 0.')
    digit = text[at]
    path.write_text(text[:at] + ("1" if digit != "1" else "2") + text[at + 1 :], encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    """Data, model A (the tiny model) and B (a copy elsewhere: another producer), A's finished evaluation."""
    root = tmp_path_factory.mktemp("folder-faults")
    write_tiny_xquad(root / "data")
    shutil.copytree(tiny_model_dir, root / "model-b")
    w = {"root": root, "model": tiny_model_dir, "model_b": str(root / "model-b"), "eval_a": root / "eval-a"}
    res = _evaluate(root, tiny_model_dir, w["eval_a"], "--trec-run")
    assert res.exit_code == 0, res.output[-3000:]
    return w


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------------- §2 results by content
def test_marker_lists_every_file_with_sha256_and_provenance(world):
    ev = world["eval_a"]
    marker = read_marker(ev)
    assert set(marker["files"]) == _files(ev)  # every file, run.trec included (it was written after the marker)
    assert {"results.json", "per_query.csv.gz", "run.npz", "run.trec"} <= set(marker["files"])
    for name, entry in marker["files"].items():
        assert entry["sha256"] == file_sha256(ev / name) and entry["size"] == (ev / name).stat().st_size
    assert marker["producer"] == {"kind": "evaluation", "model": str(Path(world["model"]).resolve()), "benchmark": BENCH}
    assert len(marker["model_fingerprint"]) == 16 and marker["benchmark"] == BENCH
    assert marker["config"]["languages"] == ["de", "en"]


def test_same_size_edit_of_results_json_is_not_trusted(world, tmp_path):
    ev = _copy(world["eval_a"], tmp_path / "ev")
    size = (ev / "results.json").stat().st_size
    _same_size_edit(ev / "results.json")
    assert (ev / "results.json").stat().st_size == size
    assert not is_done(ev)
    res, why = load_checked(ev)
    assert res is None and "sha256" in why and "results.json" in why


def test_results_json_that_disagrees_with_per_query_is_never_used(world, tmp_path):
    import warnings

    from polyret.data.records import DataError
    from polyret.report import load_entries

    ev = _copy(world["eval_a"], tmp_path / "exp" / "evals" / "base" / "xquad-r_test")
    data = json.loads((ev / "results.json").read_text(encoding="utf-8"))
    data["settings"]["mono"]["per_language"]["de"]["map"] += 0.5  # a large disagreement
    (ev / "results.json").write_text(json.dumps(data), encoding="utf-8")
    info = {k: v for k, v in read_marker(ev).items() if k != "files"}
    mark_complete(ev, **info)  # a marker that matches the edited bytes
    assert is_done(ev)  # the marker alone cannot tell
    res, why = load_checked(ev)
    assert res is None and "disagrees with per_query.csv.gz" in why and "mono:de map" in why
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="no completed evaluation"):
        warnings.simplefilter("always")
        load_entries(tmp_path / "exp")  # the report leaves it out instead of rendering it
    assert any("disagrees" in str(c.message) for c in caught)


# ----------------------------------------------------------------------------------- §3 one owner, one content
def test_evaluate_into_another_models_finished_folder_is_refused_unless_overwrite(world, tmp_path):
    ev = _copy(world["eval_a"], tmp_path / "ev")
    before = (ev / COMPLETE_MARKER).read_bytes()
    res = _evaluate(world["root"], world["model_b"], ev)
    assert res.exit_code == 2, res.output[-2000:]
    message = " ".join(res.output.split())
    assert str(Path(world["model"]).resolve()) in message and world["model_b"] in message and "--overwrite" in message
    assert (ev / COMPLETE_MARKER).read_bytes() == before and is_done(ev)
    res = _evaluate(world["root"], world["model_b"], ev, "--overwrite")
    assert res.exit_code == 0, res.output[-2000:]
    marker = read_marker(ev)
    assert marker["producer"]["model"] == world["model_b"]
    assert set(marker["files"]) == _files(ev)  # nothing of A's left: no run.trec, run.npz, mteb/results/<A>
    assert not (ev / "run.trec").exists() and not (ev / "run.npz").exists()


def test_score_never_overwrites_an_evaluation(world, tmp_path):
    ev = _copy(world["eval_a"], tmp_path / "ev")
    shutil.copyfile(ev / "run.trec", tmp_path / "r.trec")
    before = (ev / "results.json").read_bytes()
    args = ["score", "--run", str(tmp_path / "r.trec"), "--benchmark", BENCH, "--languages", LANGS, "--output", str(ev)]
    res = _cli(world["root"], *args)
    assert res.exit_code == 2, res.output[-2000:]
    assert "evaluation" in res.output and "score" in res.output
    assert (ev / "results.json").read_bytes() == before and is_done(ev)
    # the folder holding the run it reads is a folder above an input: refused too
    res = _cli(world["root"], "score", "--run", str(ev / "run.trec"), "--benchmark", BENCH, "--output", str(ev))
    assert res.exit_code == 2 and "holds the input" in " ".join(res.output.split())


def test_rerun_of_the_same_model_drops_the_files_it_no_longer_writes(world, tmp_path):
    ev = _copy(world["eval_a"], tmp_path / "ev")
    res = _evaluate(world["root"], world["model"], ev)  # the same producer, now without --trec-run
    assert res.exit_code == 0, res.output[-2000:]
    assert not (ev / "run.trec").exists() and not (ev / "run.npz").exists()
    assert set(read_marker(ev)["files"]) == _files(ev) and is_done(ev)


def test_outputs_that_are_the_root_home_or_above_an_input_are_refused(world, tmp_path):
    from polyret.experiment import PRESETS

    for bad in ("/", str(Path.home())):
        with pytest.raises(OutputConflict):
            refuse_output_over_inputs(bad, [])
        cfg = PRESETS["smoke"].replace(output=bad, model=world["model"], data_dir=str(world["root"] / "data"))
        with pytest.raises(ValueError, match="cannot be an output folder"):
            cfg.check_inputs()  # before anything is written
    with pytest.raises(OutputConflict, match="holds the input"):
        refuse_output_over_inputs(world["root"], [world["root"] / "data"])
    (tmp_path / "c.yaml").write_text(f"preset: smoke\noutput: {world['root']}\nmodel: {world['model']}\n")
    res = _cli(world["root"], "experiment", "--config", str(tmp_path / "c.yaml"))
    assert res.exit_code == 2 and "holds the input" in " ".join(res.output.split())
    assert not (world["root"] / "experiment.json").exists()
    ev = _copy(world["eval_a"], tmp_path / "ev")  # an experiment into an evaluation's finished folder
    res = _cli(world["root"], *_exp_args(world, ev))
    assert res.exit_code == 2 and "finished output of kind evaluation" in " ".join(res.output.split()), res.output[-2000:]
    assert is_done(ev) and not (ev / "experiment.json").exists()


# ----------------------------------------------------------------------------------- §3 one writer: locks
HOLDER = r"""
import sys, time
from polyret.paths import output_lock
with output_lock(sys.argv[1], "polyret holder-test", file=sys.argv[2] == "file"):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(path: Path, *, file: bool = False, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "file" if file else "folder"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("verb", ["evaluate", "score", "train", "mine", "experiment"])
def test_a_second_writer_of_a_locked_output_exits_2_naming_the_holder(world, tmp_path, verb):
    out = tmp_path / "out"
    root, model = world["root"], world["model"]
    shutil.copyfile(world["eval_a"] / "run.trec", tmp_path / "r.trec")
    args = {
        "evaluate": ["evaluate", "--model", model, "--benchmark", BENCH, "--languages", LANGS, "--output", str(out)],
        "score": ["score", "--run", str(tmp_path / "r.trec"), "--benchmark", BENCH, "--output", str(out)],
        "train": ["train", "--model", model, "--train", "xquad-r:train", "--languages", LANGS, "--max-steps", "1",
                  "--output", str(out)],
        "mine": ["mine", "--train", "xquad-r:train", "--model", model, "--languages", LANGS, "--output", str(out / "p.jsonl")],
        "experiment": _exp_args(world, out),
    }[verb]  # fmt: skip
    holder = _hold(out / "p.jsonl" if verb == "mine" else out, file=verb == "mine", env=_env(root))
    try:
        res = _cli(root, *args)
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2, res.output[-2000:]
    message = " ".join(res.output.split())
    assert f"pid {holder.pid}" in message and "polyret holder-test" in message, message
    assert not (out / "model").exists() and not (out / "p.jsonl").exists() and not (out / "evals").exists()


def test_the_lock_of_a_killed_writer_is_taken_over(world, tmp_path):
    out = tmp_path / "out"
    holder = _hold(out, env=_env(world["root"]))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # the dead holder's record is still there
    with output_lock(out, "polyret test") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (out / LOCK_FILE).exists()


@pytest.fixture(scope="module")
def experiment(world):
    """Two real ``polyret experiment`` processes on one folder: the second exits 2 naming the first,
    which finishes a clean 2-step run. The finished folder is the base of the provenance tests."""
    out = world["root"] / "exp"
    cmd = [sys.executable, "-m", "polyret.cli", *_exp_args(world, out)]
    first = subprocess.Popen(cmd, env=_env(world["root"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / LOCK_FILE).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, env=_env(world["root"]), capture_output=True, text=True, timeout=300)
    out_first, err_first = first.communicate(timeout=600)
    world["race"] = {"first": (first.returncode, out_first, err_first), "second": second, "first_pid": first.pid}
    assert first.returncode == 0, err_first[-3000:]
    world["report"] = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    return out


def test_two_experiments_on_one_folder_one_runs_the_other_exits_2(world, experiment):
    second, pid = world["race"]["second"], world["race"]["first_pid"]
    assert second.returncode == 2, second.stderr[-2000:]
    message = " ".join(second.stderr.split())
    assert f"pid {pid}" in message and "polyret experiment" in message
    lines = (experiment / "models" / "hybrid" / "seed0" / "batches.jsonl").read_text().splitlines()
    assert len(lines) == 2  # a 2-step run logged 2 batches, not the interleaving of two runs
    assert not (experiment / LOCK_FILE).exists()


def _rerun(world, out: Path, *extra: str):
    res = _cli(world["root"], *_exp_args(world, out, *extra))
    assert res.exit_code == 0, res.output[-3000:]
    return " ".join(res.output.split())


def _report(out: Path) -> dict:
    return json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))


def test_models_trained_with_another_config_are_not_reused(world, experiment, tmp_path):
    out = _copy(experiment, tmp_path / "exp")
    (out / "experiment.json").unlink()  # what the message for a damaged record advises
    said = _rerun(world, out, "--set", "lr=0.5")
    assert "trained 1, evaluated 1, reused 1" in said, said  # the base evaluation is still the base model's
    final = out / "models" / "hybrid" / "seed0" / "model"
    assert json.loads((final / "polyret_train.json").read_text())["config"]["lr"] == 0.5
    ev = out / "evals" / "hybrid" / "seed0" / "xquad-r_test"
    assert read_marker(ev)["model_weights"] == model_identity(final)  # evaluated from the new weights


def test_a_truncated_trained_model_is_retrained_not_reused(world, experiment, tmp_path):
    out = _copy(experiment, tmp_path / "exp")
    weights = out / "models" / "hybrid" / "seed0" / "model" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    said = _rerun(world, out)
    assert "trained 1" in said and "evaluated 1" in said, said
    assert is_complete(weights.parent)
    assert _report(out) == world["report"]  # the same 2 steps from the same checkpoint: the same model


def test_a_hand_edited_results_json_is_redone_to_the_true_numbers(world, experiment, tmp_path):
    out = _copy(experiment, tmp_path / "exp")
    _same_size_edit(out / "evals" / "hybrid" / "seed0" / "xquad-r_test" / "results.json")
    said = _rerun(world, out)
    assert "trained 0, evaluated 1, reused 2" in said, said
    assert _report(out) == world["report"]


@pytest.mark.parametrize("marker", ["kept", "rewritten"])
def test_a_disagreeing_results_folder_is_redone_not_rendered(world, experiment, tmp_path, marker):
    """results.json far off its per_query.csv.gz (the report's error bars went negative: a matplotlib
    crash): a same-size edit under the old marker, or with a marker rewritten to match the edit."""
    out = _copy(experiment, tmp_path / "exp")
    ev = out / "evals" / "hybrid" / "seed0" / "xquad-r_test"
    text = (ev / "results.json").read_text(encoding="utf-8")
    edited = text.replace('"map": 0.', '"map": 5.')  # every mAP of the trained model, same size
    assert edited != text and len(edited) == len(text)
    (ev / "results.json").write_text(edited, encoding="utf-8")
    if marker == "rewritten":
        mark_complete(ev, **{k: v for k, v in read_marker(ev).items() if k != "files"})
    said = _rerun(world, out)
    assert "evaluated 1" in said, said
    assert _report(out) == world["report"]


def test_a_rerun_with_fewer_strategies_drops_their_figures(world, experiment, tmp_path):
    out = _copy(experiment, tmp_path / "exp")
    said = _rerun(world, out, "--strategies", "hybrid,mono")
    assert "trained 1, evaluated 1, reused 3" in said, said  # a moved experiment folder keeps its evaluations
    figures = out / "report" / "figures"
    assert any("mono" in p.name for p in figures.glob("*.png"))
    assert "trained 0, evaluated 0, reused 3" in _rerun(world, out, "--strategies", "hybrid")
    left = sorted(p.name for p in figures.glob("*.png"))
    assert left and not any("mono" in name for name in left), left
    assert _report(out) == world["report"]


# ----------------------------------------------------------------------------------- §5 interrupts
INTERRUPTIBLE = r"""
import os, sys, time
from pathlib import Path
import polyret.data

flag = Path(sys.argv[1])
where = sys.argv[2]


class Finalized:
    def __del__(self):
        flag.write_text("in-finalizer")
        for _ in range(60):  # the signal lands in here; Python can only print it and go on
            time.sleep(0.05)


def slow_list():
    from polyret.paths import atomic_path
    if where == "finalizer":
        obj = Finalized()
        del obj
    with atomic_path(flag.parent / "partial.txt") as tmp:
        tmp.write_text("half")
        if where == "body":
            flag.write_text("in-body")
        for _ in range(200):  # 10 s of work after the signal: a swallowed interrupt runs through it
            time.sleep(0.05)
    (flag.parent / "finished").write_text("the run went on")
    return ["xquad-r:test"]


polyret.data.list_benchmarks = slow_list
from polyret.cli import main
sys.argv = ["polyret", "benchmarks"]
main()
"""


@pytest.mark.parametrize("sig, where, code", [(signal.SIGINT, "finalizer", 130), (signal.SIGTERM, "body", 143)])
def test_an_interrupt_always_stops_the_run(world, tmp_path, sig, where, code):
    flag = tmp_path / "flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE, str(flag), where],
        env=_env(world["root"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, (proc.returncode, err[-2000:])
    assert not (tmp_path / "finished").exists()  # stopped, did not run on
    assert err.strip().splitlines()[-1].startswith("error: ") and "run the same command again" in err
    assert not list(tmp_path.glob(".partial.txt.*")) and not (tmp_path / "partial.txt").exists()  # cleaned on the way out


# ----------------------------------------------------------------------------------- §5 messages
def test_polyret_cache_dir_naming_a_file_is_named(world, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "afile"))
    with pytest.raises(ValueError, match="POLYRET_CACHE_DIR .*afile is not a folder"):
        cache_dir()
    res = runner.invoke(
        app, ["evaluate", "--model", world["model"], "--languages", LANGS, "--output", str(tmp_path / "o")],
        env={"POLYRET_CACHE_DIR": str(tmp_path / "afile"), "POLYRET_DATA_DIR": str(world["root"] / "data")},
    )  # fmt: skip
    assert res.exit_code == 2 and "POLYRET_CACHE_DIR" in res.output, res.output[-2000:]


def test_a_yaml_error_is_one_line(world, tmp_path):
    (tmp_path / "bad.yaml").write_text("preset: smoke\nseeds: [1, 2\nlanguages: de\n")
    proc = subprocess.run(
        [sys.executable, "-m", "polyret.cli", "experiment", "--config", str(tmp_path / "bad.yaml")],
        env=_env(world["root"]), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "line " in lines[0], proc.stderr


def test_a_run_of_another_benchmark_is_told_so(world, tmp_path):
    (tmp_path / "sw.trec").write_text("mono:sw/123#0@sw Q0 123#0 1 9.5 bm25\n")  # a MIRACL Swahili run
    res = _cli(world["root"], "score", "--run", str(tmp_path / "sw.trec"), "--benchmark", BENCH)
    message = " ".join(res.output.split())
    assert res.exit_code == 2 and "does not have" in message and "another benchmark" in message, message
    assert "must be" not in message


def test_a_non_ascii_data_path_under_a_non_utf8_locale(world, tmp_path):
    data = tmp_path / "dätä"
    data.mkdir()
    write_de_en_pairs(data / "pairs.jsonl", positive="{lang} passage city {g} water")
    env = _env(world["root"], LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    args = ["train", "--model", world["model"], "--train", str(data / "pairs.jsonl"), "--languages", LANGS,
            "--max-steps", "1", "--batch-size", "4", "--output", str(tmp_path / "öut"), "--dry-run"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "polyret.cli", *args], env=env, capture_output=True, text=True, timeout=300)
    assert "surrogates" not in proc.stderr and "Traceback" not in proc.stderr  # was: "surrogates not allowed"
    assert proc.returncode == 0 and "dry run: nothing trained or written" in proc.stdout, proc.stderr[-2000:]


# ----------------------------------------------------------------------------------- §5 leftovers
KILLED_WRITER = r"""
import os, signal, sys
from polyret.paths import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("half written")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temp_files_of_killed_writers_are_removed_live_ones_kept(world, tmp_path):
    ev = _copy(world["eval_a"], tmp_path / "ev")
    (ev / "report" / "figures").mkdir(parents=True)
    for target in (ev / "results.json", ev / "report" / "figures" / "a.png", tmp_path / "p.jsonl"):
        subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], env=_env(world["root"]), check=False)
    left = sorted(tmp_path.rglob(".*.tmp"))
    assert len(left) == 3, left  # what three SIGKILLed writers left behind
    with atomic_path(ev / "live.txt") as live:  # a live writer's (this process) temp file is never touched
        live.write_text("x")
        assert sweep_dead_temps(ev) == 2
        assert live.exists()
    with output_lock(tmp_path / "p.jsonl", "polyret test", file=True):  # a mined file: its folder, not below
        pass
    assert not list(tmp_path.rglob(".*.tmp"))


def test_set_aside_copies_are_bounded_to_the_newest(tmp_path):
    for stamp in ("20260101T000000", "20260102T000000", "20260103T000000"):
        (tmp_path / "data.npy").write_text(stamp)
        assert set_aside(tmp_path / "data.npy", f".corrupt-{stamp}") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npy.corrupt-20260103T000000"]


def test_a_marker_of_a_relative_output_folder_lists_its_files_once(tmp_path, monkeypatch):
    """``polyret experiment`` writes to ``runs/...`` (relative): the files it lists are relative to the
    working directory, not to the folder (the merged marker once looked for ``runs/x/runs/x/a.png``)."""
    from polyret.paths import is_complete, mark_complete, read_marker

    monkeypatch.chdir(tmp_path)
    folder = Path("runs") / "x"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    (folder / "b.json").write_text("{}")
    mark_complete(folder, files=[folder / "a.png", "b.json", (tmp_path / folder / "b.json")])
    assert sorted(read_marker(folder)["files"]) == ["a.png", "b.json"] and is_complete(folder)
    with pytest.raises(ValueError, match="not inside"):
        mark_complete(folder, files=[tmp_path / "elsewhere.txt"])
