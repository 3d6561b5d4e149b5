"""Checkpoints and atomic writes: a run interrupted after some epochs and resumed from
trainer.save_checkpoint in a new trainer ends bit-identical to an uninterrupted run;
checkpoints that do not fit the trainer, or are not checkpoints, are refused; and a
process killed with SIGKILL while saving never leaves a partial model file behind."""

import json
import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn
from fastnn import optim, schedules
from fastnn.losses import CrossEntropyLoss


def data(n=240, features=8, classes=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, features)).astype(np.float32)
    y = ((X[:, 0] > 0).astype(np.int64) + (X[:, 1] + X[:, 2] > 0.5)) % classes
    return X, y


def build(opt="adam", sched="cosine", seed=7, hidden=16, clip=0.5):
    """A trainer with BatchNorm, Dropout, clipping, a schedule; built from fastnn.seed."""
    fastnn.seed(seed)
    model = fastnn.Sequential(
        fastnn.Dense(8, hidden),
        fastnn.BatchNorm1d(hidden),
        fastnn.ReLU(),
        fastnn.Dropout(0.3),
        fastnn.Dense(hidden, hidden),
        fastnn.BatchNorm1d(hidden),
        fastnn.ReLU(),
        fastnn.Dropout(0.2),
        fastnn.Dense(hidden, 3),
    )
    if opt == "adam":
        o = optim.Adam(model.parameters(), lr=1e-2)
    else:
        o = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if sched == "cosine":
        s = schedules.CosineAnnealing(o, T_max=6, eta_min=1e-4)
    elif sched == "plateau":
        # threshold=0.5: only halving the validation loss counts as better, so the lr
        # is cut on most epochs - before and after the interruption
        s = schedules.ReduceOnPlateau(o, "val_loss", factor=0.5, patience=0, threshold=0.5)
    else:
        s = None
    return fastnn.Trainer(model, CrossEntropyLoss(), o, scheduler=s, clip_grad_norm=clip)


FIT = dict(batch_size=32, validation_split=0.2, shuffle=True, verbose=0)


def states_equal(a, b):
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a
    )


def history_without_times(h):
    return {k: v for k, v in h.history.items() if k != "epoch_time"}


@pytest.mark.parametrize("sched", ["cosine", "plateau"])
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, opt, sched):
    X, y = data()
    E1, E = 2, 6
    full = build(opt, sched)
    full.fit(X, y, epochs=E, **FIT)

    first = build(opt, sched)
    first.fit(X, y, epochs=E1, **FIT)
    path = tmp_path / "run.ckpt"
    first.save_checkpoint(path)
    assert os.listdir(tmp_path) == ["run.ckpt"]  # atomic: no temporary file left
    del first

    # a new trainer built the same way - even from another seed, so that nothing but
    # the checkpoint can make it match
    resumed = build(opt, sched, seed=123)
    assert not states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert resumed.load_checkpoint(path) is resumed
    assert resumed.epoch == E1 and resumed.history.epoch == [1, 2]
    resumed.fit(X, y, epochs=E, initial_epoch=resumed.epoch, **FIT)

    assert states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert resumed.epoch == E and resumed.history.epoch == list(range(1, E + 1))
    assert history_without_times(resumed.history) == history_without_times(full.history)
    assert resumed.optimizer.lr == full.optimizer.lr
    lrs = full.history["lr"]  # the lr of each epoch (the schedule steps after it)
    if sched == "plateau":  # the schedule cut the lr on both sides of the interruption
        assert lrs[E1] < lrs[E1 - 1] and lrs[-1] < lrs[E1]
    else:
        assert len(set(lrs)) == E
    # the optimizer state travelled too: one more step (same dropout masks) is the same
    xb, yb = X[:32], y[:32]
    state = fastnn.rng.get_state()
    a = resumed.train_step(xb, yb)
    fastnn.rng.set_state(state)
    assert a == full.train_step(xb, yb)
    assert states_equal(resumed.model.state_dict(), full.model.state_dict())


def test_chained_resumes_and_no_scheduler(tmp_path):
    X, y = data()
    full = build("sgd", None)
    full.fit(X, y, epochs=5, **FIT)
    path = tmp_path / "c.safetensors"
    t = build("sgd", None)
    t.fit(X, y, epochs=1, **FIT)
    t.save_checkpoint(path)
    for stop in (3, 4, 5):  # resume, train a little, checkpoint, resume again
        t = build("sgd", None, seed=stop)
        t.load_checkpoint(path)
        t.fit(X, y, epochs=stop, initial_epoch=t.epoch, **FIT)
        t.save_checkpoint(path)  # overwrites atomically
    assert states_equal(t.model.state_dict(), full.model.state_dict())
    assert t.history.epoch == [1, 2, 3, 4, 5]
    with pytest.warns(UserWarning, match="nothing to run: epochs=5 with initial_epoch=5"):
        t.fit(X, y, epochs=5, initial_epoch=t.epoch, **FIT)
    assert states_equal(t.model.state_dict(), full.model.state_dict())


def test_interruption_without_checkpoint_does_not_match():
    """Control for the test above: resuming without restoring the random state (only
    the weights and optimizer) gives different weights, so bit-identity is not trivial."""
    X, y = data()
    full = build()
    full.fit(X, y, epochs=4, **FIT)
    t = build()
    t.fit(X, y, epochs=2, **FIT)
    t2 = build(seed=99)
    t2.model.load_state_dict(t.model.state_dict())
    t2.optimizer.load_state_dict(t.optimizer.state_dict())
    t2.scheduler.load_state_dict(t.scheduler.state_dict())
    t2.fit(X, y, epochs=4, initial_epoch=2, **FIT)
    assert not states_equal(t2.model.state_dict(), full.model.state_dict())


def test_checkpoint_file_is_safetensors_with_json_metadata(tmp_path):
    from safetensors import safe_open

    X, y = data()
    t = build()
    t.fit(X, y, epochs=2, **FIT)
    path = tmp_path / "c.safetensors"
    t.save_checkpoint(path)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == "fastnn-checkpoint"
    assert json.loads(meta["epoch"]) == 2
    assert json.loads(meta["optimizer"])["type"] == "Adam"
    assert json.loads(meta["scheduler"])["type"] == "CosineAnnealing"
    assert json.loads(meta["history"])["epoch"] == [1, 2]
    assert {f"model.{k}" for k in t.model.state_dict()} <= keys
    assert any(k.startswith("optimizer.") for k in keys)


# -- refusals ---------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path):
    X, y = data()
    t = build("adam", "cosine")
    t.fit(X, y, epochs=1, **FIT)
    path = tmp_path / "ok.ckpt"
    t.save_checkpoint(path)
    return path


@pytest.mark.parametrize(
    "other, match",
    [
        (dict(opt="sgd"), "Adam"),
        (dict(sched="plateau"), "scheduler"),
        (dict(sched=None), "scheduler"),
        (dict(hidden=32), "does not fit"),
    ],
)
def test_mismatched_trainer_is_refused(checkpoint, other, match):
    t = build(**{"opt": "adam", "sched": "cosine", **other})
    before = t.model.state_dict()
    with pytest.raises(ValueError, match=match):
        t.load_checkpoint(checkpoint)
    assert t.epoch == 0 and len(t.history) == 0
    assert states_equal(t.model.state_dict(), before)


def test_a_scheduler_where_the_checkpoint_has_none_is_refused(tmp_path):
    X, y = data()
    t = build(sched=None)
    t.fit(X, y, epochs=1, **FIT)
    t.save_checkpoint(tmp_path / "c")
    with pytest.raises(ValueError, match="scheduler"):
        build(sched="cosine").load_checkpoint(tmp_path / "c")


def _pickle_bytes():
    import pickle

    return pickle.dumps({"w": np.ones(3)})


def _torch_bytes(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "m.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), p)
    return p.read_bytes()


@pytest.mark.parametrize(
    "kind", ["truncated", "truncated-header", "random", "empty", "pickle", "torch", "model-file"]
)
def test_corrupt_or_foreign_files_are_refused(checkpoint, tmp_path, kind):
    good = checkpoint.read_bytes()
    bad = tmp_path / "bad.ckpt"
    if kind == "truncated":
        bad.write_bytes(good[: len(good) - 100])
    elif kind == "truncated-header":
        bad.write_bytes(good[:50])
    elif kind == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "pickle":
        bad.write_bytes(_pickle_bytes())
    elif kind == "torch":
        bad.write_bytes(_torch_bytes(tmp_path))
    else:
        fastnn.save(build().model, bad)
    t = build()
    before = t.model.state_dict()
    with pytest.raises(ValueError) as info:
        t.load_checkpoint(bad)
    assert "bad.ckpt" in str(info.value)
    if kind == "model-file":
        assert "not a fastnn checkpoint" in str(info.value)
    assert states_equal(t.model.state_dict(), before) and t.epoch == 0


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        build().load_checkpoint(tmp_path / "nope.ckpt")


# -- SIGKILL during writes --------------------------------------------------------------
KILL_SERVER = textwrap.dedent(r"""
    import os, sys
    import numpy as np
    import fastnn
    from fastnn.callbacks import ModelCheckpoint

    target, refdir = sys.argv[1], sys.argv[2]

    def model(seed):
        fastnn.seed(seed)
        m = fastnn.Sequential(fastnn.Dense(256, 512), fastnn.BatchNorm1d(512), fastnn.ReLU(),
                              fastnn.Dropout(0.1), fastnn.Dense(512, 256))
        m.forward(np.ones((4, 256), np.float32))  # non-trivial running statistics
        return m

    a, b = model(1), model(2)
    fastnn.save(a, os.path.join(refdir, "a.safetensors"))
    fastnn.save(b, os.path.join(refdir, "b.safetensors"))

    class Holder:
        model = b

    ckpt = ModelCheckpoint(target)
    print("refs", flush=True)
    for line in sys.stdin:  # one worker per request; the parent SIGKILLs it
        pid = os.fork()
        if pid == 0:
            fastnn.save(a, target)
            print("ready", os.getpid(), flush=True)
            i = 0
            while True:  # alternate: fastnn.save of a, ModelCheckpoint of b
                if i % 2:
                    fastnn.save(a, target, metadata={"i": i})
                else:
                    ckpt.on_epoch_end(Holder, i, {})
                i += 1
        _, status = os.waitpid(pid, 0)
        print("reaped", os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
""")


def test_sigkill_while_saving_never_leaves_a_partial_file(tmp_path):
    """A worker process saves two different models in turn to one path (fastnn.save and
    ModelCheckpoint), and is SIGKILLed at random moments. Afterwards the path always
    holds one of the two models in full; at most the killed write's own temporary file
    is left beside it. (The worker is forked from a server process that imported fastnn
    once, to keep the ~20 rounds fast.)"""
    import signal

    out = tmp_path / "out"
    refs = tmp_path / "refs"
    out.mkdir()
    refs.mkdir()
    target = out / "model.safetensors"
    # From tmp_path: `python -c` puts the working directory first on the import path,
    # and the repository's source tree (without compiled kernels) must not shadow fastnn.
    server = subprocess.Popen(
        [sys.executable, "-c", KILL_SERVER, str(target), str(refs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert server.stdout.readline().strip() == "refs"
        a = fastnn.load(refs / "a.safetensors").state_dict()
        b = fastnn.load(refs / "b.safetensors").state_dict()
        assert not states_equal(a, b)
        r = random.Random(20240611)
        seen, leftovers = set(), 0
        for _ in range(20):
            server.stdin.write("go\n")
            server.stdin.flush()
            word, pid = server.stdout.readline().split()
            assert word == "ready"
            time.sleep(r.uniform(0.0, 0.06))
            os.kill(int(pid), signal.SIGKILL)
            assert server.stdout.readline().split() == ["reaped", str(int(signal.SIGKILL))]
            names = set(os.listdir(out))
            tmp = {n for n in names if n.startswith(".fastnn-") and n.endswith(".tmp")}
            assert names - tmp == {"model.safetensors"}, names
            assert len(tmp) <= 1, names
            state = fastnn.load(target).state_dict()  # must always load...
            if states_equal(state, a):  # ...and be one of the two models, exactly
                seen.add("a")
            else:
                assert states_equal(state, b)
                seen.add("b")
            for n in tmp:  # the killed write's leftover is not the target; clear it
                leftovers += 1
                os.unlink(out / n)
        assert seen == {"a", "b"}
        print(f"{leftovers} of 20 kills interrupted a write")
    finally:
        server.kill()
        server.wait()
