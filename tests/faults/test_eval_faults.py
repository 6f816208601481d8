"""Fault injection for evaluation: SIGKILL at several points, damaged cache shards, a full disk.

The invariant: a results folder is trusted only with its completion marker (written last); anything
a crash or a fault leaves behind is either redone or set aside, and the rerun's numbers are identical
to an uninterrupted run's.

The kills run in processes forked from ONE helper subprocess that imported polyret/torch and loaded the
model once, single-threaded (OMP_NUM_THREADS=1: no OpenMP pool, so forking is safe), instead of one
~10 s import per kill point; it starts in the background while the reference run is computed.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from polyret.evaluation import evaluate
from polyret.evaluation.results import is_done
from polyret.paths import COMPLETE_MARKER

SRC = Path(__file__).resolve().parents[2] / "src"
DE = [
    "Die Stadt liegt am Fluss.",
    "Der König war alt.",
    "Die Schule hat Wasser.",
    "Das Land hat viele Menschen.",
    "Die Kirche ist groß.",
    "Der Krieg war kurz.",
    "Die Musik ist neu.",
    "Die Hauptstadt ist klein.",
    "Die Sprache ist alt.",
    "Das Jahr war gut.",
]
EN = [
    "The city is on the river.",
    "The king was old.",
    "The school has water.",
    "The country has many people.",
    "The church is large.",
    "The war was short.",
    "The music is new.",
    "The capital is small.",
    "The language is old.",
    "The year was good.",
]


def _paragraph(sentences: list[str], qid: str, question: str, gold: int) -> dict:
    context, breaks = "", []
    for s in sentences:
        if context:
            context += " "
        breaks.append([len(context), len(context) + len(s)])
        context += s
    return {
        "context": context,
        "sentences": sentences,
        "sentence_breaks": breaks,
        "qas": [{"id": qid, "question": question, "answers": [{"text": "x", "answer_start": breaks[gold][0] + 1}]}],
    }


def write_tiny_xquad(root: Path) -> Path:
    """xquad-r/{de,en}.json: 10 parallel paragraphs of 3 sentences, one question each (80 texts)."""
    (root / "xquad-r").mkdir(parents=True, exist_ok=True)
    for lang, sents, q in (("de", DE, "Wer war wann wo {i}?"), ("en", EN, "Who was where when {i}?")):
        paras = [
            _paragraph([sents[i], sents[(i + 3) % 10], sents[(i + 7) % 10]], f"q{i}", q.format(i=i), i % 3) for i in range(10)
        ]
        doc = {"data": [{"title": f"T{j}", "paragraphs": paras[5 * j : 5 * j + 5]} for j in range(2)]}
        (root / "xquad-r" / f"{lang}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return root


EVAL_KW = dict(languages=["de", "en"], batch_size=2, progress=False)  # a cache shard every 16 texts


def run_eval(model_dir, data, out, cache):
    return evaluate(model_dir, "xquad-r", data_dir=str(data), output=out, cache_dir=str(cache), **EVAL_KW)


def snapshot(out: Path) -> dict:
    """What must be identical between runs: the numbers, not the timings."""
    res = json.loads((out / "results.json").read_text())
    for key in ("timing_s", "config"):
        res.pop(key, None)
    with gzip.open(out / "per_query.csv.gz", "rt") as fh:
        per_query = fh.read()
    return {"results": res, "settings": (out / "settings.csv").read_text(), "per_query": per_query}


@pytest.fixture(scope="module")
def world(request, tmp_path_factory, tiny_model_dir):
    """The tiny data, the kill driver (started in the background, when a selected test needs it) and an
    uninterrupted reference run with its own fresh cache."""
    root = tmp_path_factory.mktemp("eval-faults")
    data = write_tiny_xquad(root / "data")
    base = root / "killed"
    base.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    driver = None
    if any("killed" in getattr(item, "fixturenames", ()) for item in request.session.items):
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, tiny_model_dir, str(data), str(base), json.dumps(EVAL_KW), *KILL_POINTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    try:
        run_eval(tiny_model_dir, data, root / "reference", root / "reference-cache")
        assert is_done(root / "reference")
        yield {
            "root": root,
            "data": data,
            "model": tiny_model_dir,
            "reference": snapshot(root / "reference"),
            "driver": driver,
            "killed": base,
        }
    finally:
        if driver is not None:
            if driver.poll() is None:
                driver.kill()  # only the helper this fixture started
            driver.communicate()


# ------------------------------------------------------------------------------------------- SIGKILL

DRIVER = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    import matplotlib.pyplot  # noqa: F401  (for the heatmap, once)
    import polyret.encode, polyret.evaluation.results, polyret.paths
    from polyret.evaluation import evaluate
    from polyret.models import load

    model_dir, data, base = sys.argv[1], sys.argv[2], sys.argv[3]
    kw = json.loads(sys.argv[4])
    model = load(model_dir)
    model.polyret_spec = model_dir  # results.json names it like the reference run does

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def inject(point):
        if point == "after-3-shards":
            put, n = polyret.encode.EmbeddingCache.put, [0]
            def killing_put(self, keys, emb):
                put(self, keys, emb)
                n[0] += 1
                if n[0] == 3:
                    die()
            polyret.encode.EmbeddingCache.put = killing_put
        elif point == "mid-shard-write":  # half a shard in its temp file, then death
            n = [0]
            def half_savez(fh, **arrays):
                n[0] += 1
                if n[0] == 2:
                    fh.write(b"PK\\x03\\x04 half a zip")
                    fh.flush()
                    die()
                np.savez.__wrapped__(fh, **arrays)
            orig = np.savez
            half_savez.__wrapped__ = orig
            np.savez = half_savez
            np.savez.__wrapped__ = orig
        elif point == "writing-per-query":  # results.json and settings.csv are in place, the rest is not
            def killing_to_csv(self, path):
                die()
            polyret.evaluation.results.PerQuery.to_csv = killing_to_csv
        elif point == "renaming-per-query":  # its temp file complete, not yet renamed
            replace = os.replace
            def killing_replace(src, dst, *a, **k):
                if str(dst).endswith("per_query.csv.gz"):
                    die()
                return replace(src, dst, *a, **k)
            os.replace = killing_replace
        elif point == "before-marker":  # every file written, the marker not
            def killing_mark(*a, **k):
                die()
            polyret.evaluation.results.mark_complete = killing_mark

    status = {}
    for point in sys.argv[5:]:
        pid = os.fork()
        if pid == 0:
            try:
                inject(point)
                evaluate(model, "xquad-r", data_dir=data, output=os.path.join(base, point, "out"),
                         cache_dir=os.path.join(base, point, "cache"), **kw)
            finally:
                os._exit(0)
        _, st = os.waitpid(pid, 0)
        status[point] = os.WTERMSIG(st) if os.WIFSIGNALED(st) else -os.WEXITSTATUS(st)
    print(json.dumps(status))
""")

KILL_POINTS = ["after-3-shards", "mid-shard-write", "writing-per-query", "renaming-per-query", "before-marker"]


@pytest.fixture(scope="module")
def killed(world):
    """(folder of the killed runs, point -> the signal that ended its process)."""
    stdout, stderr = world["driver"].communicate(timeout=300)
    assert world["driver"].returncode == 0, stderr[-3000:]
    return world["killed"], json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_leaves_an_untrusted_folder_and_the_rerun_matches_an_uninterrupted_run(world, killed, point, caplog):
    base, status = killed
    assert status[point] == signal.SIGKILL, status  # it really died there, not after finishing
    out, cache = base / point / "out", base / point / "cache"
    assert not is_done(out) and not (out / COMPLETE_MARKER).exists()
    shards_before = sorted(cache.rglob("shard-*.npz"))
    if point == "after-3-shards":
        assert len(shards_before) == 3 and not (out / "results.json").exists()
    if point in ("writing-per-query", "renaming-per-query", "before-marker"):
        assert (out / "results.json").exists()  # a results.json alone must not count as done

    with caplog.at_level("WARNING"):
        run_eval(world["model"], world["data"], out, cache)
    assert is_done(out)
    assert snapshot(out) == world["reference"]
    assert not [r for r in caplog.records if "cache shard ignored" in r.getMessage()]  # nothing half-written was read
    assert set(shards_before) <= set(cache.rglob("shard-*.npz"))  # finished shards were kept and reused
    listed = json.loads((out / COMPLETE_MARKER).read_text())["files"]
    assert "per_query.csv.gz" in listed and not [n for n in listed if n.startswith(".")]


def test_report_skips_a_folder_without_marker_with_a_warning(world, tmp_path):
    import shutil

    from polyret.report import load_entries

    evals = tmp_path / "evals"
    shutil.copytree(world["root"] / "reference", evals / "base" / "xquad-r")
    shutil.copytree(world["root"] / "reference", evals / "mono" / "seed0" / "xquad-r")
    (evals / "mono" / "seed0" / "xquad-r" / COMPLETE_MARKER).unlink()  # an older polyret's, or a crash's
    with pytest.warns(UserWarning, match=r"mono/seed0/xquad-r: evaluation not complete"):
        entries = load_entries(tmp_path)
    assert [(e.system, e.seed) for e in entries] == [("base", None)]


def test_experiment_redoes_an_evaluation_without_marker(world, tmp_path, monkeypatch):
    """The experiment loop trusts the marker, not results.json: a folder without one is evaluated again."""
    import shutil

    import polyret.training.trainer as train_mod
    from polyret.experiment import PRESETS, run_experiment

    def fake_train(cfg):  # training is not under test: the "trained" model is the tiny model
        final = Path(cfg.output_dir) / "model"
        shutil.copytree(world["model"], final)
        (final / "polyret_train.json").write_text("{}")

    monkeypatch.setattr(train_mod, "train", fake_train)
    cfg = PRESETS["smoke"].replace(
        model=world["model"],
        output=str(tmp_path / "exp"),
        strategies=("mono",),
        benchmarks=("xquad-r",),
        data_dir=str(world["data"]),
    )
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    first = run_experiment(cfg, progress=False)
    assert sorted(first["done"]["evaluated"]) == ["base xquad-r", "mono seed 0 xquad-r"]
    mono = tmp_path / "exp" / "evals" / "mono" / "seed0" / "xquad-r"
    (mono / COMPLETE_MARKER).unlink()
    again = run_experiment(cfg, progress=False)
    assert again["done"]["evaluated"] == ["mono seed 0 xquad-r"] and is_done(mono)


# ------------------------------------------------------------------------------------ damaged cache


def _distinct_rows(shard: Path) -> bool:
    with np.load(shard) as z:
        emb = z["emb"]
    return bool(len(emb) > 1 and (emb != emb[0]).any())


def _damage(kind: str, shard: Path) -> None:
    with np.load(shard) as z:
        keys, emb, checksum = z["keys"], z["emb"].copy(), str(z["checksum"])

    def save(emb, checksum):
        with open(shard, "wb") as fh:
            np.savez(fh, keys=keys, emb=emb.astype(np.float32), checksum=np.asarray(checksum))

    from polyret.encode import shard_checksum

    owner = shard.parent.name
    if kind == "swapped rows":  # two rows that differ (the tiny model maps some texts to one vector)
        other = next(j for j in range(1, len(emb)) if not np.array_equal(emb[j], emb[0]))
        emb[[0, other]] = emb[[other, 0]]
        save(emb, checksum)
    elif kind == "other dim":
        small = emb[:, :8] / np.linalg.norm(emb[:, :8], axis=1, keepdims=True)
        save(small, shard_checksum(owner, keys, small.astype(np.float32)))
    elif kind == "nan row":
        emb[2] = np.nan
        save(emb, shard_checksum(owner, keys, emb))
    elif kind == "truncated":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif kind == "bad checksum":
        save(emb, "f" * 64)


@pytest.mark.parametrize("kind", ["swapped rows", "other dim", "nan row", "truncated", "bad checksum"])
def test_damaged_cache_shard_is_detected_warned_set_aside_and_re_encoded(world, tmp_path, caplog, kind):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(world["root"] / "reference-cache", cache)
    shards = sorted(cache.rglob("shard-*.npz"))
    assert len(shards) >= 4
    victim = shards[1]
    if kind == "swapped rows":  # a shard with two different rows (which shard holds which texts depends on
        # the cache's key order; the tiny model maps some texts, e.g. all-unknown ones, to one vector)
        victim = next(s for s in shards[1:] if _distinct_rows(s))
    _damage(kind, victim)
    with caplog.at_level("WARNING", logger="polyret.encode"):
        run_eval(world["model"], world["data"], tmp_path / "out", cache)
    named = [r.getMessage() for r in caplog.records if victim.name in r.getMessage()]
    assert named and "encoded again" in named[0], [r.getMessage() for r in caplog.records]
    assert not victim.exists() and victim.with_name(victim.name + ".corrupt").exists()
    assert snapshot(tmp_path / "out") == world["reference"]


# --------------------------------------------------------------------------------------- full disk


@pytest.mark.parametrize("victim", ["shard-", "results.json", "per_query.csv.gz", "heatmap_map.png", COMPLETE_MARKER])
def test_full_disk_is_a_clear_error_and_leaves_nothing_trusted(world, tmp_path, monkeypatch, victim):
    import shutil
    from contextlib import contextmanager

    import polyret.paths

    original = polyret.paths.atomic_path

    @contextmanager
    def full_disk(target):
        with original(target) as tmp:
            yield tmp  # the writer fills the temp file ...
            if Path(target).name.startswith(victim):  # ... and its last write/close fails, naming no file
                raise OSError(errno.ENOSPC, "No space left on device")

    for mod in ("polyret.paths", "polyret.evaluation.perquery", "polyret.plotting", "polyret.encode"):
        monkeypatch.setattr(f"{mod}.atomic_path", full_disk)
    out, cache = tmp_path / "out", tmp_path / "cache"
    if victim != "shard-":
        shutil.copytree(world["root"] / "reference-cache", cache)  # encoding done: the results hit the full disk
    with pytest.raises(OSError) as err:
        run_eval(world["model"], world["data"], out, cache)
    where = cache if victim == "shard-" else out
    assert err.value.errno == errno.ENOSPC and victim in str(err.value) and str(where) in str(err.value)
    assert not is_done(out) and not (out / COMPLETE_MARKER).exists()
    assert not list(out.glob(".*.tmp")) and not list(cache.rglob(".*.tmp"))  # no temp file left behind
    monkeypatch.undo()
    run_eval(world["model"], world["data"], out, cache)  # space again: it recovers
    assert is_done(out) and snapshot(out) == world["reference"]
