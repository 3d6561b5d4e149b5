"""Data: the embedded digits, train_test_split, Standardizer (and its layer), one_hot,
reading CSV/NPZ tables with errors that name the column and line, task inference,
label encoding, and Batches (one batch materialised at a time, even from a memmap)."""

import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn.batching import Batches
from fastnn.datasets import DataError, encode_labels, infer_task, load_digits, load_table
from fastnn.preprocessing import Standardizer, one_hot, train_test_split


# -- load_digits --------------------------------------------------------------------------
def test_load_digits_shape_values_and_classes():
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.min() >= 170 and counts.sum() == 1797
    assert X.flags.c_contiguous
    # the images carry information: class means differ
    means = np.stack([X[y == k].mean(axis=0) for k in range(10)])
    assert np.linalg.matrix_rank(means) == 10


def test_load_digits_is_the_uci_test_set_scikit_learn_ships():
    sk = pytest.importorskip("sklearn.datasets")
    Xs, ys = sk.load_digits(return_X_y=True)
    X, y = load_digits(dtype=np.float64)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)


def test_load_digits_dtype_and_n_class():
    X64, y64 = load_digits(dtype=np.float64)
    assert X64.dtype == np.float64
    X, y = load_digits()
    np.testing.assert_array_equal(X64, X)
    with pytest.raises(ValueError, match="float32 or float64"):
        load_digits(dtype=np.int32)
    X3, y3 = load_digits(n_class=3)
    assert set(np.unique(y3)) == {0, 1, 2}
    assert len(y3) == int(np.sum(y < 3))
    np.testing.assert_array_equal(X3, X[y < 3])
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match="n_class"):
            load_digits(n_class=bad)


def test_load_digits_bunch():
    b = load_digits(n_class=5, return_X_y=False)
    assert b.data.shape == (len(b.target), 64) and b.data is b["data"]
    assert b.images.shape == (len(b.target), 8, 8)
    np.testing.assert_array_equal(b.images.reshape(-1, 64), b.data)
    np.testing.assert_array_equal(b.target_names, np.arange(5))
    assert len(b.feature_names) == 64 and b.feature_names[9] == "pixel_1_1"
    assert "1797" in b.DESCR and "UCI" in b.DESCR
    with pytest.raises(AttributeError):
        b.nothing  # noqa: B018 - the attribute access is the test


# -- train_test_split ---------------------------------------------------------------------
def _xy(n=100):
    X = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    return X, np.arange(n)


@pytest.mark.parametrize(
    "test_size, n_test",
    [(0.25, 25), (0.3, 30), (0.333, 34), (7, 7), (np.int64(99), 99), (0.001, 1)],
)
def test_split_sizes(test_size, n_test):
    X, y = _xy()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, seed=0)
    assert len(X_te) == len(y_te) == n_test and len(X_tr) == len(y_tr) == 100 - n_test
    # rows stay paired and every sample is used once
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)
    np.testing.assert_array_equal(X_te[:, 0], 2 * y_te)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), np.arange(100))


def test_split_without_shuffle_is_the_ordered_split():
    X, y = _xy(10)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=3, shuffle=False)
    np.testing.assert_array_equal(y_tr, np.arange(7))
    np.testing.assert_array_equal(y_te, [7, 8, 9])
    np.testing.assert_array_equal(X_te, X[7:])
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.2, shuffle=False)
    np.testing.assert_array_equal(y_te, [8, 9])
    with pytest.raises(ValueError, match="stratify"):
        train_test_split(X, y, shuffle=False, stratify=y % 2)


def test_split_shuffles_by_default():
    X, y = _xy()
    _, _, y_tr, y_te = train_test_split(X, y, seed=0)
    assert not np.array_equal(y_te, np.arange(75, 100))
    assert not np.array_equal(np.sort(y_te), np.arange(75, 100))


def test_stratified_split_keeps_class_proportions():
    r = np.random.default_rng(0)
    y = r.choice(4, size=203, p=[0.5, 0.3, 0.15, 0.05])
    X = np.arange(203.0)[:, None]
    for test_size in (0.25, 0.1, 37):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=y, seed=1)
        n_te = len(y_te)
        assert n_te == (test_size if isinstance(test_size, int) else int(np.ceil(test_size * 203)))
        for c in range(4):
            total = np.sum(y == c)
            assert abs(np.sum(y_te == c) - total * n_te / 203) < 1
            assert abs(np.sum(y_tr == c) - total * (203 - n_te) / 203) < 1
        np.testing.assert_array_equal(y[X_te[:, 0].astype(int)], y_te)
    X, y = load_digits()
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, seed=0)
    counts = np.bincount(y)
    assert np.all(np.abs(np.bincount(y_te) - counts * len(y_te) / len(y)) < 1)
    with pytest.raises(ValueError, match="single sample"):
        train_test_split(X[:11], np.r_[np.zeros(10, int), 1], stratify=np.r_[np.zeros(10), 1])


def test_split_seed_is_reproducible_and_independent_of_fastnn_seed():
    X, y = _xy()
    fastnn.seed(1)
    a = train_test_split(X, y, seed=5)
    state = fastnn.rng.get_state()
    fastnn.seed(2)
    b = train_test_split(X, y, seed=5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = train_test_split(X, y, seed=6)
    assert not np.array_equal(a[3], c[3])
    fastnn.seed(1)
    train_test_split(X, y, seed=5, stratify=y % 3)
    assert fastnn.rng.get_state() == state  # an explicit seed draws nothing from fastnn


def test_split_without_seed_follows_fastnn_seed():
    X, y = _xy()
    fastnn.seed(3)
    a = train_test_split(X, y)
    fastnn.seed(3)
    b = train_test_split(X, y)
    fastnn.seed(4)
    c = train_test_split(X, y)
    np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(a[3], c[3])
    assert not np.array_equal(a[3], train_test_split(X, y)[3])  # the generator moved on


@pytest.mark.parametrize(
    "test_size, exc",
    [
        (0.0, ValueError),
        (1.0, ValueError),
        (-0.1, ValueError),
        (0, ValueError),
        (100, ValueError),
        (101, ValueError),
        (True, TypeError),
        ("0.2", TypeError),
        (None, TypeError),
    ],
)
def test_split_rejects_bad_test_size(test_size, exc):
    X, y = _xy()
    with pytest.raises(exc, match="test_size"):
        train_test_split(X, y, test_size=test_size)


def test_split_rejects_length_mismatch():
    X, y = _xy()
    with pytest.raises(ValueError, match="100.*99"):
        train_test_split(X, y[:-1])
    with pytest.raises(ValueError):
        train_test_split(X, y, stratify=y[:50])


# -- Standardizer -------------------------------------------------------------------------
def test_standardizer_fits_on_train_and_reuses_the_statistics():
    r = np.random.default_rng(0)
    X_tr = r.normal(loc=[1, -2, 5], scale=[1, 3, 0.5], size=(200, 3))
    X_te = r.normal(loc=[4, 0, 0], scale=[2, 1, 1], size=(50, 3))
    s = Standardizer().fit(X_tr)
    np.testing.assert_allclose(s.mean_, X_tr.mean(axis=0))
    np.testing.assert_allclose(s.scale_, X_tr.std(axis=0))
    Z_tr = s.transform(X_tr)
    assert Z_tr.dtype == np.float32
    np.testing.assert_allclose(Z_tr.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(Z_tr.std(axis=0), 1, rtol=1e-5)
    Z_te = s.transform(X_te, dtype=np.float64)
    np.testing.assert_allclose(Z_te, (X_te - X_tr.mean(0)) / X_tr.std(0), rtol=1e-12)
    assert Z_te[:, 0].mean() > 2  # the test data keeps its shift (mean 4 vs 1): no refit
    np.testing.assert_allclose(s.fit_transform(X_tr, np.float64), Z_tr, rtol=1e-6)
    np.testing.assert_allclose(s.inverse_transform(Z_te), X_te, rtol=1e-12)


def test_standardizer_zero_variance_feature():
    X = np.c_[np.arange(10.0), np.full(10, 3.0)]
    s = Standardizer().fit(X)
    Z = s.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, 1], 0)
    assert s.scale_[1] == 1.0
    np.testing.assert_array_equal(s.transform(np.array([[0.0, 4.0]]))[:, 1], [1.0])
    np.testing.assert_allclose(s.inverse_transform(Z), X, atol=1e-5)


def test_standardizer_refuses_other_feature_counts_and_unfitted_use():
    s = Standardizer()
    with pytest.raises(RuntimeError, match="fit"):
        s.transform(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        s.as_layer()
    s.fit(np.random.default_rng(0).normal(size=(10, 3)))
    for bad in (np.ones((4, 2)), np.ones((4, 4)), np.ones(3)):
        with pytest.raises(ValueError, match="3 features"):
            s.transform(bad)
    with pytest.raises(ValueError, match="3 features"):
        s.inverse_transform(np.ones((2, 5)))
    with pytest.raises(ValueError):
        Standardizer().fit(np.ones((0, 3)))
    with pytest.raises(TypeError):
        Standardizer().fit(np.array([["a", "b"]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardizer_as_layer_matches_transform_inside_a_model(tmp_path, dtype):
    r = np.random.default_rng(1)
    X_tr = r.normal(loc=3, scale=[1, 10, 0.1, 2], size=(100, 4))
    X_te = r.normal(loc=3, scale=[1, 10, 0.1, 2], size=(20, 4))
    X_tr[:, 3] = 7.0  # a constant feature
    s = Standardizer().fit(X_tr)
    fastnn.seed(0)
    body = fastnn.Sequential(
        fastnn.Dense(4, 5, dtype=dtype), fastnn.Tanh(), fastnn.Dense(5, 2, dtype=dtype)
    )
    layer = s.as_layer(dtype=dtype)
    assert isinstance(layer, fastnn.Standardize) and layer.mean.dtype == dtype
    full = fastnn.Sequential(layer, *body.layers)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(full.predict(X_te), body.predict(s.transform(X_te, dtype)), **tol)
    np.testing.assert_allclose(layer.forward(X_te), s.transform(X_te, np.float64), **tol)
    # the statistics are buffers: saved with the model, never trained
    assert not any("mean" in n or "scale" in n for n, _ in full.named_parameters())
    fastnn.save(full, tmp_path / "m")
    np.testing.assert_array_equal(fastnn.load(tmp_path / "m").predict(X_te), full.predict(X_te))


# -- one_hot ------------------------------------------------------------------------------
def test_one_hot():
    y = np.array([2, 0, 1, 2])
    out = one_hot(y)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, np.eye(3)[y])
    out = one_hot(y.astype(np.int32), num_classes=5, dtype=np.float64)
    assert out.shape == (4, 5) and out.dtype == np.float64
    np.testing.assert_array_equal(out.argmax(axis=1), y)
    assert one_hot(np.array([], np.int64), num_classes=2).shape == (0, 2)
    for bad in (np.array([0.0, 1.0]), np.array([[0, 1]]), np.array(["a"])):
        with pytest.raises((ValueError, TypeError)):
            one_hot(bad)
    with pytest.raises(ValueError, match="range"):
        one_hot(np.array([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match="range"):
        one_hot(np.array([-1, 1]))


# -- load_table: CSV ------------------------------------------------------------------------
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_header_default_last_column_and_numbers(tmp_path, csv_reader):
    path = write(tmp_path, "d.csv", "a,b,price\n1,2,3.5\n4, 5 ,6\n-7.5,1e3,0\n")
    X, y, names, target = load_table(path)
    np.testing.assert_array_equal(X, [[1, 2], [4, 5], [-7.5, 1000]])
    assert X.dtype == np.float64
    np.testing.assert_array_equal(y, [3.5, 6, 0])
    assert y.dtype == np.float64 and names == ["a", "b"] and target == "price"


def test_csv_target_by_name_and_string_labels(tmp_path, csv_reader):
    path = write(tmp_path, "d.csv", 'x1,species,x2\n1,setosa,2\n3,"virginica",4\n5,setosa,6\n')
    X, y, names, target = load_table(path, target="species")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    assert names == ["x1", "x2"] and target == "species"
    assert y.dtype.kind == "U" and list(y) == ["setosa", "virginica", "setosa"]
    assert infer_task(y) == "classification"
    labels, classes = encode_labels(y)
    np.testing.assert_array_equal(labels, [0, 1, 0])
    assert list(classes) == ["setosa", "virginica"]


def test_csv_quoted_fields_blank_lines_and_byte_order_mark(tmp_path, csv_reader):
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbfa,b,label\n1,2,"x, y"\n\n3,4,z\n\n')
    X, y, names, target = load_table(path)
    assert names == ["a", "b"] and target == "label"  # not '\ufeffa'
    assert list(y) == ["x, y", "z"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfa,b,c\r\n1,2,3\r\n4,5,6\r\n")
    X, y, names, target = load_table(bom, target="a")  # the first column, by name
    assert target == "a" and names == ["b", "c"]
    np.testing.assert_array_equal(y, [1, 4])


BAD_CSV = {
    "non-numeric": ("a,b,y\n1,2,0\n3,x,1\n", None, ["'b'", "line 3", "not numeric"]),
    "empty-cell": ("a,b,y\n1,2,0\n3,,1\n", None, ["'b'", "line 3", "empty"]),
    "empty-target": ("a,b,y\n1,2,0\n3,4,\n", None, ["'y'", "line 3", "empty"]),
    "nan": ("a,b,y\n1,2,0\n3,4,1\nnan,1,0\n", None, ["'a'", "line 4", "NaN"]),
    "inf": ("a,b,y\n1,2,0\n3,-inf,1\n", None, ["'b'", "line 3", "infinite"]),
    "nan-target": ("a,y\n1,0.5\n2,nan\n", None, ["'y'", "line 3", "NaN"]),
    "ragged": ("a,b,y\n1,2,0\n3,4\n", None, ["line 3", "2 fields", "header has 3"]),
    "too-long": ("a,b,y\n1,2,0,9\n", None, ["line 2", "4 fields"]),
    "blank-lines-count": ("a,b,y\n\n1,2,0\n\n3,,1\n", None, ["'b'", "line 5"]),
    "unknown-target": ("a,b,y\n1,2,0\n", "price", ["'price'", "not found", "a, b, y"]),
    "header-only": ("a,b,y\n", None, ["header"]),
    "one-column": ("y\n1\n2\n", None, ["feature column"]),
}


@pytest.fixture(params=["pandas", "csv-module"])
def csv_reader(request, monkeypatch):
    """Runs a test with pandas (when installed) and with the csv-module reader alone."""
    if request.param == "pandas":
        pytest.importorskip("pandas")
    else:
        import builtins

        real_import = builtins.__import__

        def no_pandas(name, *args, **kwargs):
            if name == "pandas" or name.startswith("pandas."):
                raise ImportError("no pandas here")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_pandas)
    return request.param


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_csv_errors_name_the_column_and_line(tmp_path, case, csv_reader):
    text, target, fragments = BAD_CSV[case]
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as info:
        load_table(path, target=target)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, msg
    assert isinstance(info.value, ValueError)


def test_missing_unsupported_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unsupported"):
        load_table(write(tmp_path, "d.xlsx", "a,b\n1,2\n"))
    binary = tmp_path / "bin.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="bin.csv"):
        load_table(binary)


# -- load_table: NPZ ------------------------------------------------------------------------
def test_npz_with_x_and_y(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", X=X, y=y, extra=np.ones(2))
    X2, y2, names, target = load_table(tmp_path / "d.npz", target="ignored")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert names == ["x0", "x1", "x2"] and target == "y"


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        (dict(X=np.ones((3, 2))), "'X' and 'y'"),
        (dict(y=np.ones(3)), "'X' and 'y'"),
        (dict(features=np.ones((3, 2)), labels=np.ones(3)), "['features', 'labels']"),
        (dict(X=np.ones(3), y=np.ones(3)), "2-D"),
        (dict(X=np.ones((3, 2)), y=np.ones(4)), "3 samples but y has 4"),
        (dict(X=np.array([["a", "b"]]), y=np.ones(1)), "numeric"),
        (dict(X=np.array([[1.0, np.nan], [0, 0]]), y=np.ones(2)), "'x1', row 0"),
        (dict(X=np.array([[object()]], dtype=object), y=np.ones(1)), "not a readable"),
    ],
)
def test_npz_errors(tmp_path, arrays, fragment):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as info:
        load_table(tmp_path / "d.npz")
    assert fragment in str(info.value), str(info.value)


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="d.npz"):
        load_table(path)


# -- infer_task, encode_labels --------------------------------------------------------------
def test_infer_task():
    r = np.random.default_rng(0)
    assert infer_task(np.array(["a", "b", "a"])) == "classification"
    assert infer_task(r.integers(0, 3, 100)) == "classification"
    assert infer_task(r.integers(0, 3, 100).astype(float)) == "classification"
    assert infer_task(np.array([0.0, 1.0] * 20)) == "classification"
    assert infer_task(r.normal(size=100)) == "regression"
    assert infer_task(r.integers(0, 1000, 300)) == "regression"  # many distinct integers
    assert infer_task(np.array([0.5, 1.5] * 20)) == "regression"  # not integral
    X, y = load_digits()
    assert infer_task(y) == "classification"


def test_encode_labels():
    labels, classes = encode_labels(np.array([7, 3, 7, 9]))
    np.testing.assert_array_equal(labels, [1, 0, 1, 2])
    np.testing.assert_array_equal(classes, [3, 7, 9])
    assert labels.dtype == np.int64
    y = np.array(["dog", "cat", "emu", "cat"])
    labels, classes = encode_labels(y)
    np.testing.assert_array_equal(classes[labels], y)
    assert list(classes) == ["cat", "dog", "emu"]


# -- Batches --------------------------------------------------------------------------------
def _memmap(tmp_path, n, f, fortran=False, dtype=np.float64):
    mm = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=dtype, shape=(n, f), fortran_order=fortran
    )
    r = np.random.default_rng(0)
    for start in range(0, n, 5000):
        stop = min(n, start + 5000)
        mm[start:stop] = r.normal(size=(stop - start, f))
    mm.flush()
    del mm
    return np.load(tmp_path / "X.npy", mmap_mode="r")


@pytest.mark.parametrize("layout", ["C", "F", "C-float32"])
def test_batches_gather_one_batch_at_a_time_from_a_memmap(tmp_path, layout):
    n, f, b = 20_000, 64, 256
    X = _memmap(
        tmp_path,
        n,
        f,
        fortran=layout == "F",
        dtype=np.float32 if layout == "C-float32" else np.float64,
    )
    assert isinstance(X, np.memmap) and X.nbytes >= 5_000_000
    y = np.arange(n)
    batches = Batches(X, y, b, np.dtype(np.float32), np.dtype(np.int64))
    assert len(batches) == -(-n // b)
    order = np.random.default_rng(1).permutation(n)
    # correctness on a sample of batches
    seen = 0
    for i, (xb, yb, _) in enumerate(batches.epoch(order)):
        idx = order[i * b : (i + 1) * b]
        if i % 17 == 0 or len(idx) < b:
            np.testing.assert_array_equal(yb, idx)
            np.testing.assert_array_equal(xb, X[idx].astype(np.float32))
        assert xb.dtype == np.float32 and xb.flags.c_contiguous
        seen += len(yb)
    assert seen == n and len(yb) == n % b
    # memory: a full epoch allocates at most a few batches, never a copy of X
    tracemalloc.start()
    try:
        for _batch in batches.epoch(order):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_batch = b * f * 8
    assert peak < 4 * one_batch, f"{peak} bytes for batches of {one_batch}"
    assert peak < X.nbytes / 20


def test_batches_reuse_their_buffers_and_drop_last():
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20)
    batches = Batches(X, y, 8, np.dtype(np.float64), np.dtype(np.int64))
    got = [(xb, yb.copy()) for xb, yb, _ in batches.epoch(np.arange(20))]
    assert [len(yb) for _, yb in got] == [8, 8, 4]
    assert np.shares_memory(got[0][0], got[1][0])  # one reused buffer
    dropping = Batches(X, y, 8, np.dtype(np.float64), np.dtype(np.int64), drop_last=True)
    assert len(dropping) == 2
    assert [len(yb) for _, yb, _ in dropping.epoch(np.arange(20))] == [8, 8]


def test_csv_integer_target_stays_integer(tmp_path, csv_reader):
    path = write(tmp_path, "d.csv", "a,b,digit\n1.5,2,3\n4,5,0\n")
    X, y, _, _ = load_table(path)
    assert y.dtype == np.int64 and list(y) == [3, 0]
    assert X.dtype == np.float64


def test_parquet_table(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6], "kind": ["x", "y", "x"]})
    frame.to_parquet(tmp_path / "d.parquet")
    X, y, names, target = load_table(tmp_path / "d.parquet")
    np.testing.assert_array_equal(X, [[1, 4], [2, 5], [3, 6]])
    assert list(y) == ["x", "y", "x"] and names == ["a", "b"] and target == "kind"
    frame.drop(columns="kind").to_parquet(tmp_path / "n.parquet")
    X, y, names, target = load_table(tmp_path / "n.parquet", target="b")
    assert y.dtype == np.int64 and list(y) == [4, 5, 6] and names == ["a"]
    with pytest.raises(DataError, match="column 'kind' is not numeric"):
        load_table(tmp_path / "d.parquet", target="b")
    frame.assign(a=[1.0, np.nan, 3.0]).to_parquet(tmp_path / "bad.parquet")
    assert isinstance(y, np.ndarray)
    with pytest.raises(DataError, match="'a', row 1"):
        load_table(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_table(tmp_path / "junk.parquet")


def test_parquet_without_pandas_says_what_to_install(tmp_path, csv_reader):
    if csv_reader == "pandas":
        pytest.skip("the message is for installations without pandas")
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"fastnn\[tables\]"):
        load_table(tmp_path / "d.parquet")


def test_csv_readers_agree(tmp_path, rng):
    """pandas and the csv module give the same table (values, dtypes, names)."""
    pytest.importorskip("pandas")
    from fastnn.datasets import tables

    X = rng.normal(size=(50, 4)).round(6)
    y = rng.integers(0, 3, 50)
    path = tmp_path / "d.csv"
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    fast = load_table(path)
    slow = tables._read_csv_python(str(path), None)
    for a, b in zip(fast, slow):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
