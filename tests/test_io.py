"""Model files: fastnn.save / fastnn.load round trips for every built-in layer in
float32 and float64, the torch-compatible safetensors layout (both directions),
metadata, loading into a given model, refusal of corrupt and foreign files (nothing is
ever unpickled), user-defined modules, atomic writes and file permissions."""

import json
import os
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import io as fio, regularizers


# -- models -------------------------------------------------------------------------------
def flat_model(dtype):
    """(N, 6) input: every layer type that works on flat features, incl. nesting."""
    dt = dtype
    return fastnn.Sequential(
        fastnn.Standardize(6, dtype=dt),
        fastnn.Dense(6, 12, regularizer=regularizers.L2(1e-3), dtype=dt),
        fastnn.BatchNorm1d(12, momentum=0.2, dtype=dt),
        fastnn.PReLU(12, init=0.1, dtype=dt),
        fastnn.LayerNorm(12, eps=1e-4, dtype=dt),
        fastnn.GroupNorm(3, 12, dtype=dt),
        fastnn.Dropout(0.3, mode="weight_scaling"),
        fastnn.Maxout(12, 8, 3, dtype=dt),
        fastnn.Dropout(0.1),
        fastnn.DropConnect(fastnn.Dense(8, 8, dtype=dt), 0.2),
        fastnn.weight_norm(fastnn.Dense(8, 8, dtype=dt)),
        fastnn.Sequential(
            fastnn.Dense(8, 8, regularizer=regularizers.L1(1e-4), dtype=dt),
            fastnn.LeakyReLU(0.2),
            fastnn.Sequential(fastnn.ELU(0.5)),
        ),
        fastnn.weight_norm(fastnn.Dense(8, 8, bias=False, dtype=dt), dim=None),
        fastnn.GELU("tanh"),
        fastnn.Softplus(beta=2.0),
        fastnn.HardTanh(-2.0, 2.0),
        fastnn.RBF(8, 5, width=2.0, dtype=dt),
        fastnn.Dense(5, 4, dtype=dt),
        fastnn.Softmax(axis=-1),
    )


def image_model(dtype):
    """(N, 3, 4, 4) input: the channel normalisations."""
    dt = dtype
    return fastnn.Sequential(
        fastnn.BatchNorm2d(3, dtype=dt),
        fastnn.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=dt),
        fastnn.GroupNorm(1, 3, dtype=dt),
        fastnn.LayerNorm((3, 4, 4), dtype=dt),
        fastnn.BatchNorm2d(3, momentum=None, affine=False, dtype=dt),
        fastnn.Sigmoid(),
    )


def seq_model(dtype):
    """(N, 3, 5) input."""
    dt = dtype
    return fastnn.Sequential(
        fastnn.InstanceNorm1d(3, dtype=dt),
        fastnn.InstanceNorm1d(3, affine=True, track_running_stats=True, momentum=0.3, dtype=dt),
        fastnn.BatchNorm1d(3, track_running_stats=False, dtype=dt),
        fastnn.Tanh(),
        fastnn.AbsReLU(),
        fastnn.Identity(),
    )


MODELS = {
    "flat": (flat_model, (32, 6)),
    "image": (image_model, (16, 3, 4, 4)),
    "seq": (seq_model, (16, 3, 5)),
}


def trained(kind, dtype, seed=0):
    """The model with non-default parameters and running statistics."""
    build, shape = MODELS[kind]
    fastnn.seed(seed)
    model = build(dtype)
    r = np.random.default_rng(seed)
    X = r.normal(size=shape).astype(dtype)
    for _name, p in model.named_parameters():  # move every parameter off its init value
        p.data[...] += r.normal(scale=0.05, size=p.data.shape).astype(dtype)
    for layer in model.modules():
        if isinstance(layer, fastnn.Standardize):
            layer.mean[...] = r.normal(size=6)
            layer.scale[...] = r.uniform(0.5, 2, size=6)
    model.train()
    for _ in range(3):  # running statistics
        model.forward(X)
    return model, X


def states_equal(a, b):
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a
    )


# -- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(MODELS))
def test_round_trip_reproduces_predictions_and_state(tmp_path, kind, dtype):
    model, X = trained(kind, dtype)
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path)
    rng_before = fastnn.rng.get_state()
    loaded = fastnn.load(path)
    assert fastnn.rng.get_state() == rng_before  # loading draws nothing
    assert type(loaded) is fastnn.Sequential and loaded.dtype == dtype
    assert states_equal(loaded.state_dict(), model.state_dict())
    assert fio.layer_spec(loaded) == fio.layer_spec(model)
    assert repr(loaded) == repr(model)
    expected = model.predict(X)
    assert expected.dtype == dtype
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.training  # a fresh model, in training mode like any new one
    # the reloaded model trains like the original: same step, same parameters
    loss = fastnn.losses.MSELoss()
    for m in (model, loaded):
        m.train()
        state = fastnn.rng.get_state()
        m.zero_grad()
        out = m.forward(X)
        loss(out, np.zeros_like(out))
        m.backward(loss.backward())
        fastnn.rng.set_state(state)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), loaded.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.grad, p2.grad, err_msg=n1)


def test_saved_configuration_survives(tmp_path):
    model, X = trained("flat", np.float32)
    fastnn.save(model, tmp_path / "m")
    loaded = fastnn.load(tmp_path / "m")
    assert loaded[1].regularizer.l2 == 1e-3 and loaded[1].regularizer.l1 == 0
    assert loaded[11][0].regularizer.l1 == 1e-4
    assert loaded[1].penalty() == pytest.approx(model[1].penalty(), rel=1e-12)
    assert loaded[2].momentum == 0.2 and loaded[4].eps == 1e-4
    assert loaded[6].mode == "weight_scaling" and loaded[6].p == 0.3
    assert loaded[9].p == 0.2 and isinstance(loaded[9].layer, fastnn.Dense)
    assert loaded[10]._wn_dim == 0 and loaded[12]._wn_dim is None
    assert loaded[12].bias is None
    assert loaded[13].approximate == "tanh" and loaded[18].axis == -1
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_nested_and_single_layer_models(tmp_path):
    fastnn.seed(0)
    layer = fastnn.Dense(3, 2, dtype=np.float64)
    fastnn.save(layer, tmp_path / "d")
    loaded = fastnn.load(tmp_path / "d")
    assert type(loaded) is fastnn.Dense and loaded.dtype == np.float64
    assert states_equal(loaded.state_dict(), layer.state_dict())
    empty = fastnn.Sequential(fastnn.ReLU(), fastnn.Dropout(0.5))
    fastnn.save(empty, tmp_path / "e")
    assert repr(fastnn.load(tmp_path / "e")) == repr(empty)


def test_file_layout_and_metadata(tmp_path):
    from safetensors import safe_open

    model, _ = trained("flat", np.float64)
    path = tmp_path / "m.safetensors"
    fastnn.save(model, path, metadata={"classes": ["a", "b"], "note": "é"})
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["format"] == "fastnn" and meta["format_version"] == "1"
    assert meta["dtype"] == "float64" and meta["version"] == fastnn.__version__
    assert json.loads(meta["architecture"])["type"] == "Sequential"
    assert sorted(keys) == sorted(model.state_dict())
    assert "11.0.weight" in keys and "10.weight_g" in keys and "10.weight_v" in keys
    assert "10.weight" not in keys  # weight-normed: only g and v are stored
    assert fio.read_metadata(path) == {"classes": ["a", "b"], "note": "é"}
    fastnn.save(model, path)
    assert fio.read_metadata(path) == {}


def test_save_refuses_what_is_not_a_module(tmp_path):
    with pytest.raises(TypeError):
        fastnn.save({"0.weight": np.ones(2)}, tmp_path / "x")
    assert not os.listdir(tmp_path)


# -- PyTorch interoperability -------------------------------------------------------------
def _torch_pair():
    torch = pytest.importorskip("torch")
    fastnn.seed(0)
    ours = fastnn.Sequential(
        fastnn.Linear(5, 7),
        fastnn.BatchNorm1d(7),
        fastnn.ReLU(),
        fastnn.Dropout(0.2),
        fastnn.Linear(7, 3),
    )
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(5, 7),
        torch.nn.BatchNorm1d(7),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(7, 3),
    )
    return torch, ours, theirs


def test_file_matches_torch_state_dict_and_loads_into_torch(tmp_path):
    from safetensors.numpy import load_file

    torch, ours, theirs = _torch_pair()
    X = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    ours.train()
    for _ in range(2):
        ours.forward(X)
    path = tmp_path / "m.safetensors"
    fastnn.save(ours, path)
    tensors = load_file(str(path))
    sd = theirs.state_dict()
    assert set(tensors) == set(sd)
    for k, v in sd.items():
        assert tensors[k].shape == tuple(v.shape), k
        assert str(tensors[k].dtype) == str(v.dtype).replace("torch.", ""), k
    assert int(tensors["1.num_batches_tracked"]) == 2
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    theirs.eval()
    with torch.no_grad():
        out = theirs(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, ours.predict(X), rtol=1e-5, atol=1e-6)


def test_load_into_a_given_model_also_from_a_torch_file(tmp_path):
    pytest.importorskip("torch")
    import safetensors.torch

    torch, ours, theirs = _torch_pair()
    X = np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)
    theirs.train()
    theirs(torch.from_numpy(X))  # running statistics
    theirs.eval()
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(theirs.state_dict(), str(path))
    with pytest.raises(ValueError, match="model="):  # no architecture in a torch file
        fastnn.load(path)
    result = fastnn.load(path, model=ours)
    assert result is ours
    with torch.no_grad():
        expected = theirs(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ours.predict(X), expected, rtol=1e-5, atol=1e-6)
    assert int(ours[1].num_batches_tracked) == 1
    # a fastnn file into a model built separately
    fastnn.save(ours, tmp_path / "ours")
    fastnn.seed(5)
    other = fastnn.Sequential(
        fastnn.Linear(5, 7),
        fastnn.BatchNorm1d(7),
        fastnn.ReLU(),
        fastnn.Dropout(0.2),
        fastnn.Linear(7, 3),
    )
    fastnn.load(tmp_path / "ours", model=other)
    assert states_equal(other.state_dict(), ours.state_dict())


def test_load_into_a_model_that_does_not_fit(tmp_path):
    model, _ = trained("flat", np.float32)
    fastnn.save(model, tmp_path / "m")
    fastnn.seed(0)
    wrong = fastnn.Sequential(fastnn.Dense(6, 12), fastnn.ReLU())
    before = wrong.state_dict()
    with pytest.raises(ValueError, match="m: tensors do not fit"):
        fastnn.load(tmp_path / "m", model=wrong)
    assert states_equal(wrong.state_dict(), before)
    fastnn.save(fastnn.Sequential(fastnn.Dense(6, 13)), tmp_path / "s")
    with pytest.raises(ValueError, match="shape"):
        fastnn.load(tmp_path / "s", model=fastnn.Sequential(fastnn.Dense(6, 12)))


# -- corrupt and foreign files ------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path):
    model, _ = trained("flat", np.float32)
    path = tmp_path / "good.safetensors"
    fastnn.save(model, path)
    return path


def _raw(tensors, **meta):
    base = {
        "format": "fastnn",
        "format_version": "1",
        "version": "0",
        "dtype": "float32",
        "architecture": {"type": "Dense", "config": {"in_features": 2, "out_features": 1}},
        "user": {},
    }
    base.update(meta)
    return fio.encode(tensors, base)


DENSE = {"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1, np.float32)}

BAD_FILES = {
    "empty": lambda good: b"",
    "truncated-8": lambda good: good[:8],
    "truncated-header": lambda good: good[:100],
    "truncated-data": lambda good: good[:-10],
    "extra-bytes": lambda good: good + b"\0" * 7,
    "random": lambda good: np.random.default_rng(0).bytes(4096),
    "huge-header-length": lambda good: (1 << 60).to_bytes(8, "little") + b"{}",
    "pickle": lambda good: pickle.dumps({"0.weight": np.ones((2, 2))}),
    "text": lambda good: b"0.weight,0.bias\n1,2\n",
    "no-fastnn-metadata": lambda good: fio.encode(DENSE, {}),
    "other-format": lambda good: fio.encode(DENSE, {"format": "pt"}),
    "future-version": lambda good: _raw(DENSE, format_version="2"),
    "unknown-layer": lambda good: _raw(DENSE, architecture={"type": "os.system", "config": {}}),
    "bad-config": lambda good: _raw(
        DENSE, architecture={"type": "Dense", "config": {"features": 2}}
    ),
    "bad-value": lambda good: _raw(
        DENSE, architecture={"type": "Dense", "config": {"in_features": -2, "out_features": 1}}
    ),
    "architecture-not-a-dict": lambda good: _raw(DENSE, architecture=[1, 2]),
    "architecture-not-json": lambda good: fio.encode(
        DENSE, {"format": "fastnn", "format_version": "1", "architecture": "{oops"}
    ),
    "bad-dtype": lambda good: _raw(DENSE, dtype="int8"),
    "garbage-dtype": lambda good: _raw(DENSE, dtype="floaty"),
    "missing-tensor": lambda good: _raw({"weight": DENSE["weight"]}),
    "wrong-shape": lambda good: _raw({**DENSE, "bias": np.zeros(3, np.float32)}),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_corrupt_or_foreign_files_raise_a_clear_value_error(tmp_path, good_file, kind):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(BAD_FILES[kind](good_file.read_bytes()))
    with pytest.raises(ValueError) as info:
        fastnn.load(path)
    assert str(path) in str(info.value)  # the message names the file
    if kind == "no-fastnn-metadata":
        assert "model=" in str(info.value)


def test_torch_pt_file_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match="model.pt"):
        fastnn.load(path)
    with pytest.raises(ValueError):
        fastnn.load(path, model=fastnn.Dense(3, 2))
    with pytest.raises(ValueError):
        fio.read_metadata(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "nope.safetensors")


class _Evil:
    """Unpickling this creates the sentinel file (what a malicious model would do)."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_nothing_is_ever_unpickled(tmp_path):
    sentinel = tmp_path / "pwned"
    payloads = {
        "evil.pkl": pickle.dumps(_Evil(sentinel)),
        "evil.safetensors": pickle.dumps({"0.weight": _Evil(sentinel)}, protocol=2),
    }
    pickle.loads(payloads["evil.pkl"]).close()  # the payload does work when unpickled...
    assert sentinel.exists()
    sentinel.unlink()
    try:
        import torch

        torch.save({"w": _Evil(sentinel)}, tmp_path / "evil.pt")
        payloads["evil.pt"] = (tmp_path / "evil.pt").read_bytes()
    except ImportError:
        pass
    from fastnn.losses import CrossEntropyLoss

    for name, payload in payloads.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ValueError):
            fastnn.load(path)
        with pytest.raises(ValueError):
            fastnn.load(path, model=fastnn.Sequential(fastnn.Dense(2, 2)))
        with pytest.raises(ValueError):
            fio.read_metadata(path)
        model = fastnn.Sequential(fastnn.Dense(2, 2))
        trainer = fastnn.Trainer(
            model, CrossEntropyLoss(), fastnn.optim.SGD(model.parameters(), lr=0.1)
        )
        with pytest.raises(ValueError):
            trainer.load_checkpoint(path)
        assert not sentinel.exists(), name  # ...but fastnn never unpickles


# -- user-defined modules -----------------------------------------------------------------
class TwoTowers(fastnn.Module):
    """A user module: two Dense layers whose outputs are added."""

    def __init__(self):
        super().__init__()
        self.a = fastnn.Dense(4, 3)
        self.b = fastnn.Dense(4, 3)

    def forward(self, x):
        return self.a.forward(x) + self.b.forward(x)

    def backward(self, g):
        return self.a.backward(g) + self.b.backward(g)


def test_user_defined_module_saves_without_architecture(tmp_path):
    fastnn.seed(0)
    mine = TwoTowers()
    model = fastnn.Sequential(mine, fastnn.ReLU())
    path = tmp_path / "user.safetensors"
    fastnn.save(model, path, metadata={"who": "me"})
    with pytest.raises(ValueError) as info:
        fastnn.load(path)
    msg = str(info.value)
    assert "user-defined" in msg and "model=" in msg and str(path) in msg
    fastnn.seed(1)
    fresh = fastnn.Sequential(TwoTowers(), fastnn.ReLU())
    fastnn.load(path, model=fresh)
    assert states_equal(fresh.state_dict(), model.state_dict())
    assert list(fresh.state_dict()) == ["0.a.weight", "0.a.bias", "0.b.weight", "0.b.bias"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    assert fio.read_metadata(path) == {"who": "me"}


def test_user_subclass_of_a_builtin_is_not_mistaken_for_it(tmp_path):
    class MyDense(fastnn.Dense):
        def forward(self, x):
            return 2 * super().forward(x)

    fastnn.save(fastnn.Sequential(MyDense(2, 2)), tmp_path / "m")
    with pytest.raises(ValueError, match="model="):
        fastnn.load(tmp_path / "m")


# -- atomic writes, permissions -------------------------------------------------------------
def test_save_replaces_atomically_and_cleans_up_after_a_failure(tmp_path, monkeypatch):
    fastnn.seed(0)
    a = fastnn.Sequential(fastnn.Dense(3, 2))
    b = fastnn.Sequential(fastnn.Dense(3, 2))
    path = tmp_path / "m.safetensors"
    fastnn.save(a, path)
    fastnn.save(b, path)  # over an existing file
    assert os.listdir(tmp_path) == ["m.safetensors"]
    assert states_equal(fastnn.load(path).state_dict(), b.state_dict())

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fastnn.save(a, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.safetensors"]  # the temporary file is gone
    assert states_equal(fastnn.load(path).state_dict(), b.state_dict())  # old content
    with pytest.raises(TypeError):  # metadata that is not JSON: nothing is written
        fastnn.save(a, path, metadata={"x": object()})
    assert os.listdir(tmp_path) == ["m.safetensors"]
    assert states_equal(fastnn.load(path).state_dict(), b.state_dict())


def test_saved_files_get_ordinary_permissions(tmp_path):
    """Not mkstemp's 0600: a new file is 0666 minus the umask (as open() makes it), and
    a replaced file keeps its mode."""
    mask = os.umask(0o027)
    try:
        m = fastnn.Sequential(fastnn.Dense(2, 2))
        path = tmp_path / "m.safetensors"
        fastnn.save(m, path)
        assert os.stat(path).st_mode & 0o777 == 0o640
        os.chmod(path, 0o604)
        fastnn.save(m, path)
        assert os.stat(path).st_mode & 0o777 == 0o604
    finally:
        os.umask(mask)
