"""Damaged and crafted files: model files declaring huge layers, deep nesting, tensors of
the wrong type or with NaN, lying headers; corrupt NPZ data sets; `fastnn predict` on
all of them (one line on stderr, exit status 2); temporaries of interrupted or killed
saves."""

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import io as fio
from fastnn.cli import main as cli_main
from fastnn.datasets import DataError, load_table

DENSE = {"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1, np.float32)}


def _raw(tensors, architecture=None, **meta):
    base = {
        "format": "fastnn",
        "format_version": "1",
        "version": "0",
        "dtype": "float32",
        "architecture": architecture
        or {"type": "Dense", "config": {"in_features": 2, "out_features": 1}},
        "user": {},
    }
    base.update(meta)
    return fio.encode(tensors, base)


def _deep_file(depth):
    """A model file whose architecture nests `depth` Sequentials (JSON built as text:
    json.dumps itself cannot go that deep)."""
    arch = (
        '{"type": "Sequential", "config": {"layers": [' * depth
        + '{"type": "ReLU", "config": {}}'
        + "]}}" * depth
    )
    meta = {
        "format": "fastnn",
        "format_version": "1",
        "dtype": "float32",
        "architecture": arch,
        "user": "{}",
    }
    return _header_bytes({"__metadata__": meta})


def _header_bytes(header):
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw


CRAFTED = {
    # 1.7 kB of file declaring 400M parameters: refused before they are allocated.
    "huge-declared-layer": lambda: _raw(
        DENSE, {"type": "Dense", "config": {"in_features": 20000, "out_features": 20000}}
    ),
    "absurd-declared-layer": lambda: _raw(
        DENSE, {"type": "Dense", "config": {"in_features": 2**40, "out_features": 2**40}}
    ),
    "3000-deep": lambda: _deep_file(3000),
    "100-deep": lambda: _deep_file(100),
    "complex-tensor": lambda: _raw(
        {"weight": np.ones((1, 2), np.complex64), "bias": np.zeros(1, np.float32)}
    ),
    "int-weights": lambda: _raw(
        {"weight": np.ones((1, 2), np.int64), "bias": np.zeros(1, np.float32)}
    ),
    "nan-weights": lambda: _raw(
        {"weight": np.array([[1, np.nan]], np.float32), "bias": np.zeros(1, np.float32)}
    ),
    "inf-bias": lambda: _raw(
        {"weight": np.ones((1, 2), np.float32), "bias": np.array([np.inf], np.float32)}
    ),
    "lying-shape": lambda: (
        _header_bytes(
            {"weight": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 8]}}
        )
        + b"\0" * 8
    ),
    "negative-shape": lambda: (
        _header_bytes({"weight": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})
        + b"\0" * 8
    ),
    "offsets-past-end": lambda: (
        _header_bytes({"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2**62]}})
        + b"\0" * 8
    ),
    "header-not-object": lambda: _header_bytes([1, 2, 3]),
    "deep-json-header": lambda: _header_bytes({})[:8] + b"[" * 100000,
    "metadata-not-strings": lambda: _header_bytes({"__metadata__": {"format": 3}}),
    "user-metadata-not-a-dict": lambda: _raw(DENSE, user=[1, 2]),
    "complex-dtype-declared": lambda: _raw(DENSE, dtype="complex64"),
}


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_crafted_model_files_give_one_clear_value_error(tmp_path, kind):
    path = tmp_path / "crafted.safetensors"
    data = CRAFTED[kind]()
    if kind == "deep-json-header":  # fix the declared header length
        data = (len(data) - 8).to_bytes(8, "little") + data[8:]
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            fastnn.load(path)
            fio.read_metadata(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 20 << 20, f"{peak} bytes allocated before refusing a {len(data)}-byte file"


def test_messages_say_what_is_wrong(tmp_path):
    cases = {
        "complex-tensor": "C64",
        "int-weights": "int64",
        "nan-weights": "'weight'",
        "huge-declared-layer": r"\(20000, 20000\) goes beyond the \d+ values allowed "
        "by the 3",
        "3000-deep": "too deeply",
        "100-deep": "deeper than",
        "lying-shape": "does not fit",
    }
    for kind, phrase in cases.items():
        path = tmp_path / f"{kind}.safetensors"
        path.write_bytes(CRAFTED[kind]())
        with pytest.raises(ValueError, match=phrase):
            fastnn.load(path)


def test_nan_weights_are_refused_also_when_loading_into_a_model(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(CRAFTED["nan-weights"]())
    with pytest.raises(ValueError, match="NaN or infinite"):
        fastnn.load(path, model=fastnn.Dense(2, 1))


def test_a_legitimate_file_still_loads_its_int64_counters(tmp_path):
    model = fastnn.Sequential(fastnn.Dense(3, 4), fastnn.BatchNorm1d(4))
    model.train()
    model.forward(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32))
    fastnn.save(model, tmp_path / "m")
    back = fastnn.load(tmp_path / "m")
    assert int(back[1].num_batches_tracked) == 1
    np.testing.assert_array_equal(back[0].weight.data, model[0].weight.data)


def test_loading_draws_no_initial_weights():
    """A rebuilt model gets its weights from the file: building it skips the
    initialisers (and so leaves fastnn's random stream alone)."""
    with fastnn.init.skipped():
        w = np.full((3, 3), 7.0)
        fastnn.init.xavier_uniform_(w)
    assert (w == 7.0).all()
    layer = fastnn.init.skip_init(fastnn.Dense, 3, 2)
    assert layer.weight.shape == (2, 3)


# -- data files ---------------------------------------------------------------------------
def _corrupt_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.ones((4, 2)), y=np.arange(4))
    data = bytearray(good.read_bytes())
    out = {}
    out["not-a-zip"] = b"PK\x03\x04 definitely not a zip archive"
    out["truncated"] = bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[60:90] = b"\xff" * 30  # inside the first member's data
    out["bit-flips"] = bytes(flipped)
    paths = {}
    for k, v in out.items():
        paths[k] = tmp_path / f"{k}.npz"
        paths[k].write_bytes(v)
    np.savez(tmp_path / "objects.npz", X=np.array([{"a": 1}], dtype=object), y=np.ones(1))
    paths["objects"] = tmp_path / "objects.npz"
    return paths


def test_corrupt_npz_data_give_a_data_error(tmp_path):
    for _kind, path in _corrupt_npz(tmp_path).items():
        with pytest.raises(DataError, match="not a readable NPZ"):
            load_table(path)


# -- the command line ---------------------------------------------------------------------
def _run_cli(capsys, *argv):
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "kind",
    [
        "huge-declared-layer",
        "3000-deep",
        "complex-tensor",
        "int-weights",
        "nan-weights",
        "lying-shape",
        "user-metadata-not-a-dict",
    ],
)
def test_predict_on_crafted_model_files_is_one_line(capsys, tmp_path, kind):
    model = tmp_path / "m.safetensors"
    model.write_bytes(CRAFTED[kind]())
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    code, out, err = _run_cli(capsys, "predict", model, "--data", data)
    assert code == 2 and "Traceback" not in err
    assert len(err.splitlines()) == 1 and "error" in err


def test_predict_on_corrupt_npz_is_one_line(capsys, tmp_path):
    fastnn.seed(0)
    model = tmp_path / "m.safetensors"
    fastnn.save(fastnn.Sequential(fastnn.Dense(2, 1)), model)
    for kind, path in _corrupt_npz(tmp_path).items():
        code, out, err = _run_cli(capsys, "predict", model, "--data", path)
        assert code == 2 and len(err.splitlines()) == 1, (kind, err)
        assert "not a readable NPZ" in err


# -- temporaries of failed, interrupted and killed saves -------------------------------------
def test_an_interrupted_save_removes_its_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fastnn.save(fastnn.Dense(3, 2), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_save_removes_temporaries_of_killed_saves(tmp_path):
    dead = tmp_path / f".fastnn-{_dead_pid()}-abc123.tmp"
    dead.write_bytes(b"x" * 1000)
    live = tmp_path / f".fastnn-{os.getppid()}-def456.tmp"  # a live writer's: kept
    live.write_bytes(b"x")
    other = tmp_path / ".fastnn-notes.tmp"  # not one of ours
    other.write_bytes(b"x")
    fastnn.save(fastnn.Dense(3, 2), tmp_path / "m.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "m.safetensors"])


def test_sigkilled_saves_leave_nothing_after_the_next_save(tmp_path):
    script = (
        "import fastnn, sys\nm = fastnn.Dense(1000, 1000)\nprint('ready', flush=True)\n"
        "while True:\n    fastnn.save(m, sys.argv[1])\n"
    )
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "m")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # not the source tree, which python -c would import
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    fastnn.save(fastnn.Dense(3, 2), tmp_path / "other")
    # "m" exists when a save finished before a kill; no temporary is left either way
    assert sorted(os.listdir(tmp_path)) in (["m", "other"], ["other"])
