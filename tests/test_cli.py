"""The `fastnn` command line: `train` on the embedded digits (including the default
run's accuracy), on CSV and NPZ files, `--out` files and plots, `predict`, one-line
errors with exit status 2, and `--help`. Mostly in-process through fastnn.cli.main;
a few runs go through the installed `fastnn` script and `python -m fastnn`."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cli
from fastnn.preprocessing import train_test_split

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `fastnn argv...` run in this process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors and --help exit
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def keep_threads():
    n = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(n)


def accuracy_of(out):
    m = re.search(r"^Test: loss ([0-9.]+), accuracy ([0-9.]+)$", out, re.M)
    assert m, out
    return float(m.group(2))


# -- synthetic data files -------------------------------------------------------------------
def write_class_csv(path):
    """150 samples, 3 features, a string class label column 'colour' (not last)."""
    r = np.random.default_rng(0)
    X = r.normal(size=(150, 3))
    names = np.array(["blue", "green", "red"])
    lab = names[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.4)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f1", "f2", "colour", "f3"])
        for x, c in zip(X, lab):
            w.writerow([f"{x[0]:.5f}", f"{x[1]:.5f}", c, f"{x[2]:.5f}"])
    return path, X, lab


@pytest.fixture
def class_csv(tmp_path):
    return write_class_csv(tmp_path / "colours.csv")


@pytest.fixture
def reg_csv(tmp_path):
    """120 samples, a float target 'target' in the first column."""
    r = np.random.default_rng(1)
    X = r.normal(size=(120, 3))
    y = 2 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] ** 2 + 10
    path = tmp_path / "reg.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "a", "b", "c"])
        for xi, yi in zip(X, y):
            w.writerow([f"{yi:.6f}"] + [f"{v:.6f}" for v in xi])
    return path, X, y


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# -- train on the embedded digits -------------------------------------------------------------
def test_train_quiet_prints_data_model_epochs_and_test_accuracy(capsys):
    code, out, err = run(capsys, "train", "--epochs", 3, "--quiet")
    assert code == 0, err
    assert "Data: embedded UCI handwritten digits" in out
    assert "1797 samples x 64 features" in out and "10 classes" in out
    assert "1347 train" in out and "450 test" in out
    assert "Total parameters: 85,002" in out  # 64-256-256-10
    assert "Dense(in_features=64, out_features=256" in out and "Dropout(p=0.3)" in out
    epoch_lines = [l for l in out.splitlines() if l.startswith("epoch ")]
    assert [l.split(" - ")[0] for l in epoch_lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("val_accuracy" in l for l in epoch_lines)
    assert "Trained 3 epochs" in out
    assert 0.5 < accuracy_of(out) <= 1.0
    assert "Traceback" not in err


def test_train_with_the_default_options_reaches_97_percent(capsys):
    code, out, err = run(capsys, "train", "--quiet")
    assert code == 0, err
    assert "Trained 40 epochs" in out and "adam lr=0.001, batch 64" in out
    assert accuracy_of(out) >= 0.97, out[-300:]


def test_train_is_reproducible_with_a_seed(capsys):
    outs = [
        run(capsys, "train", "--epochs", 2, "--quiet", "--seed", s, "--hidden", "32")[1]
        for s in (1, 1, 2)
    ]
    tests = [re.search(r"^Test: .*$", o, re.M).group(0) for o in outs]
    assert tests[0] == tests[1] and tests[0] != tests[2]


def test_train_out_writes_model_history_metrics_and_plots(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "run"
    code, out, err = run(
        capsys,
        "train",
        "--epochs",
        3,
        "--quiet",
        "--batch-norm",
        "--schedule",
        "cosine",
        "--out",
        out_dir,
    )
    assert code == 0, err
    files = sorted(os.listdir(out_dir))
    assert files == [
        "confusion_matrix.png",
        "history.csv",
        "learning_curves.png",
        "metrics.json",
        "model.safetensors",
    ]
    for png in ("confusion_matrix.png", "learning_curves.png"):
        data = (out_dir / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
        import matplotlib.image

        img = matplotlib.image.imread(out_dir / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    rows = read_csv(out_dir / "history.csv")
    assert rows[0][:5] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["seconds"] > 0
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy_of(out), abs=1e-4)
    # the saved model takes raw features (standardisation inside) and classifies the
    # same test split as well as reported
    model = fastnn.load(out_dir / "model.safetensors")
    assert isinstance(model[0], fastnn.Standardize)
    meta = fastnn.io.read_metadata(out_dir / "model.safetensors")
    assert meta["task"] == "classification" and meta["classes"] == [str(i) for i in range(10)]
    assert len(meta["feature_names"]) == 64
    X, y = fastnn.datasets.load_digits()
    _, X_te, _, y_te = train_test_split(X.astype(np.float64), y, test_size=0.25, stratify=y, seed=0)
    acc = np.mean(model.predict(X_te).argmax(axis=1) == y_te)
    assert acc == pytest.approx(metrics["test"]["accuracy"], abs=2.5 / len(y_te))
    assert "Wrote" in out and "learning_curves.png" in out


def test_train_out_without_matplotlib_says_how_to_get_plots(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--epochs", 1, "--quiet", "--out", out_dir)
    assert code == 0, err
    assert sorted(os.listdir(out_dir)) == ["history.csv", "metrics.json", "model.safetensors"]
    assert "pip install" in out and "matplotlib" in out
    assert "Traceback" not in out + err


# -- train on files -------------------------------------------------------------------------------
def test_train_and_predict_csv_classification_with_string_labels(capsys, tmp_path, class_csv):
    path, X, lab = class_csv
    out_dir = tmp_path / "cls"
    code, out, err = run(
        capsys,
        "train",
        "--data",
        path,
        "--target",
        "colour",
        "--epochs",
        5,
        "--hidden",
        "16",
        "--quiet",
        "--out",
        out_dir,
    )
    assert code == 0, err
    assert "150 samples x 3 features; target 'colour', classification" in out
    assert "3 classes; training counts blue:" in out
    assert 0 <= accuracy_of(out) <= 1
    meta = fastnn.io.read_metadata(out_dir / "model.safetensors")
    assert meta["classes"] == ["blue", "green", "red"]
    assert meta["feature_names"] == ["f1", "f2", "f3"]
    # predict: CSV in (the target column is ignored), class names out
    pred_path = tmp_path / "pred.csv"
    code, out, err = run(
        capsys,
        "predict",
        out_dir / "model.safetensors",
        "--data",
        path,
        "--output",
        pred_path,
        "--proba",
    )
    assert code == 0, err
    assert "Wrote 150 predictions" in err
    rows = read_csv(pred_path)
    assert rows[0] == ["prediction", "p_blue", "p_green", "p_red"]
    assert len(rows) == 151
    assert {r[0] for r in rows[1:]} <= {"blue", "green", "red"}
    probs = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    names = np.array(["blue", "green", "red"])
    assert [r[0] for r in rows[1:]] == list(names[probs.argmax(axis=1)])
    # the same predictions from Python
    model = fastnn.load(out_dir / "model.safetensors")
    assert list(names[model.predict(X).argmax(axis=1)]) == [r[0] for r in rows[1:]]
    # without --output: CSV on stdout, no probabilities
    code, out, err = run(capsys, "predict", out_dir / "model.safetensors", "--data", path)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "prediction" and len(lines) == 151


def test_train_and_predict_csv_regression(capsys, tmp_path, reg_csv):
    path, X, y = reg_csv
    out_dir = tmp_path / "reg"
    code, out, err = run(
        capsys,
        "train",
        "--data",
        path,
        "--target",
        "target",
        "--epochs",
        20,
        "--batch-size",
        8,
        "--hidden",
        "32",
        "--dropout",
        "0",
        "--lr",
        "0.01",
        "--quiet",
        "--out",
        out_dir,
    )
    assert code == 0, err
    assert "120 samples x 3 features; target 'target', regression" in out
    m = re.search(r"^Test: loss ([0-9.]+), mae ([0-9.]+) \(in target units", out, re.M)
    assert m, out
    assert float(m.group(2)) < np.std(y)  # better than predicting the mean
    assert "confusion_matrix.png" not in os.listdir(out_dir)
    pred_path = tmp_path / "pred.csv"
    code, out, err = run(
        capsys, "predict", out_dir / "model.safetensors", "--data", path, "--output", pred_path
    )
    assert code == 0, err
    rows = read_csv(pred_path)
    assert rows[0] == ["prediction"] and len(rows) == 121
    pred = np.array([float(r[0]) for r in rows[1:]])
    assert np.mean(np.abs(pred - y)) < np.mean(np.abs(y - y.mean()))


def test_train_npz_and_forced_regression(capsys, tmp_path):
    r = np.random.default_rng(2)
    X = r.normal(size=(200, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code, out, err = run(
        capsys,
        "train",
        "--data",
        tmp_path / "d.npz",
        "--epochs",
        2,
        "--hidden",
        "8",
        "--quiet",
        "--out",
        tmp_path / "c",
    )
    assert code == 0, err
    assert "200 samples x 5 features; target 'y', classification" in out
    assert "3 classes" in out and "accuracy" in out
    code, out, err = run(
        capsys,
        "train",
        "--data",
        tmp_path / "d.npz",
        "--task",
        "regression",
        "--epochs",
        2,
        "--hidden",
        "8",
        "--quiet",
    )
    assert code == 0, err
    assert "classification" not in out and "regression" in out
    assert re.search(r"^Test: loss [0-9.]+, mae [0-9.]+ \(in target units", out, re.M)
    # predict reads NPZ too
    np.savez(tmp_path / "new.npz", X=X[:7])
    code, out, err = run(
        capsys, "predict", tmp_path / "c" / "model.safetensors", "--data", tmp_path / "new.npz"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "prediction" and len(lines) == 8
    assert set(lines[1:]) <= {"0", "1", "2"}


# -- errors --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths of assorted broken inputs, and a trained model."""
    tmp_path = tmp_path_factory.mktemp("files")
    p = {}
    p["csv"] = write_class_csv(tmp_path / "colours.csv")[0]

    def text(name, content):
        p[name] = tmp_path / f"{name}.csv"
        p[name].write_text(content)

    text("nonnum", "a,b,y\n1,2,0\n3,x,1\n4,5,0\n")
    text("nan", "a,b,y\n1,2,0\n3,nan,1\n4,5,0\n")
    text("tiny", "a,y\n1,0\n2,1\n")
    text("strtarget", "a,y\n1,u\n2,v\n3,u\n4,v\n")
    np.savez(tmp_path / "wide.npz", X=np.ones((4, 7)))
    np.savez(tmp_path / "obj.npz", X=np.array([[object()]], dtype=object))
    p["wide"], p["obj"] = tmp_path / "wide.npz", tmp_path / "obj.npz"
    p["model_dir"] = tmp_path / "m"
    code = cli.main(
        [
            "train",
            "--data",
            str(p["csv"]),
            "--target",
            "colour",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--quiet",
            "--out",
            str(p["model_dir"]),
        ]
    )
    assert code == 0
    p["model"] = p["model_dir"] / "model.safetensors"
    p["file"] = tmp_path / "a_file"
    p["file"].write_text("x")
    p["missing"] = tmp_path / "missing.csv"
    return p


ERRORS = {
    "missing-data-file": ["train", "--data", "{missing}"],
    "non-numeric-column": ["train", "--data", "{nonnum}"],
    "unknown-optimizer": ["train", "--optimizer", "foo"],
    "unknown-activation": ["train", "--activation", "swish"],
    "target-absent": ["train", "--data", "{csv}", "--target", "price"],
    "nan-in-data": ["train", "--data", "{nan}"],
    "dropout-1.5": ["train", "--dropout", "1.5"],
    "dropout-text": ["train", "--dropout", "half"],
    "epochs-0": ["train", "--epochs", "0"],
    "hidden-bad": ["train", "--hidden", "64,x"],
    "lr-negative": ["train", "--lr", "-0.1"],
    "test-split-0": ["train", "--test-split", "0"],
    "val-split-1": ["train", "--val-split", "1"],
    "target-without-data": ["train", "--target", "y"],
    "tiny-data": ["train", "--data", "{tiny}", "--epochs", "1"],
    "regression-on-names": ["train", "--data", "{strtarget}", "--task", "regression"],
    "plateau-without-validation": ["train", "--schedule", "plateau", "--val-split", "0"],
    "out-is-a-file": ["train", "--epochs", "1", "--out", "{file}"],
    "unknown-option": ["train", "--epoch", "3", "--bogus"],
    "unknown-command": ["fit"],
    "predict-missing-model": ["predict", "{missing}", "--data", "{csv}"],
    "predict-not-a-model": ["predict", "{csv}", "--data", "{csv}"],
    "predict-missing-data": ["predict", "{model}", "--data", "{missing}"],
    "predict-no-data-option": ["predict", "{model}"],
    "predict-wrong-columns": ["predict", "{model}", "--data", "{nonnum}"],
    "predict-wrong-width": ["predict", "{model}", "--data", "{wide}"],
    "predict-object-npz": ["predict", "{model}", "--data", "{obj}"],
    "predict-output-dir-missing": [
        "predict",
        "{model}",
        "--data",
        "{csv}",
        "--output",
        "{missing}/x/out.csv",
    ],
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line_on_stderr_with_status_2(capsys, files, case):
    argv = [a.format(**files) for a in ERRORS[case]]
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn"), err
    assert "error" in lines[0]
    assert "Traceback" not in out + err


def test_error_messages_say_what_is_wrong(capsys, files):
    _, _, err = run(capsys, "train", "--data", files["nonnum"])
    assert "column 'b'" in err and "line 3" in err
    _, _, err = run(capsys, "train", "--data", files["nan"])
    assert "NaN" in err and "column 'b'" in err
    _, _, err = run(capsys, "train", "--data", files["csv"], "--target", "price")
    assert "'price'" in err and "colour" in err
    _, _, err = run(capsys, "train", "--optimizer", "foo")
    assert "foo" in err and "adam" in err
    _, _, err = run(capsys, "train", "--dropout", "1.5")
    assert "--dropout" in err and "1.5" in err


# -- subprocesses ---------------------------------------------------------------------------------
def _env():
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _run(args, tmp_path):
    """Run a command from tmp_path: `python -m` puts the working directory first on the
    import path, and the repository's source tree (without its compiled kernels) must
    not shadow the installed fastnn."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env=_env(), cwd=tmp_path
    )


def test_console_script_and_python_m(tmp_path, class_csv):
    exe = shutil.which("fastnn")
    if exe is None:
        pytest.skip("the fastnn console script is not on PATH")
    r = _run(
        [exe, "train", "--epochs", "2", "--quiet", "--hidden", "32", "--out", str(tmp_path / "m")],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "epoch 2/2" in r.stdout and accuracy_of(r.stdout) > 0.3
    np.savez(tmp_path / "x.npz", X=fastnn.datasets.load_digits()[0][:5])
    r = _run(
        [
            sys.executable,
            "-m",
            "fastnn",
            "predict",
            str(tmp_path / "m" / "model.safetensors"),
            "--data",
            str(tmp_path / "x.npz"),
            "--proba",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(r.stdout.splitlines()))
    assert rows[0][:2] == ["prediction", "p_0"] and len(rows) == 6 and len(rows[1]) == 11


def test_errors_in_a_real_process(tmp_path):
    r = _run(
        [sys.executable, "-m", "fastnn", "train", "--data", str(tmp_path / "nope.csv")], tmp_path
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"fastnn train: error: no such file: {tmp_path / 'nope.csv'}"]
    assert r.stdout == ""
    r = _run([sys.executable, "-m", "fastnn"], tmp_path)
    assert r.returncode == 2 and "train" in r.stderr


# -- help -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command, shown",
    [
        (
            "train",
            [
                "--epochs",
                "(default: 40)",
                "(default: 64)",
                "(default: adam)",
                "(default: relu)",
                "(default: 0.001)",
                "(default: 0.3)",
                "(default: 0.25)",
                "--data",
                "--target",
                "--out",
                "--batch-norm",
            ],
        ),
        ("predict", ["MODEL", "--data", "--output", "--proba", "(default: False)"]),
        ("bench", ["--quick", "--threads", "default"]),
    ],
)
def test_help_of_every_subcommand(capsys, command, shown):
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: fastnn {command}")
    out = " ".join(out.split())  # undo the line wrapping
    for text in shown:
        assert text in out, text
    assert "(default: None)" not in out


def test_top_level_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("train", "predict", "bench"):
        assert command in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"fastnn {fastnn.__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--min-time", "0"], "--min-time > 0"),
        (["--batches", "0"], "expected positive integers"),
    ],
)
def test_bench_rejects_empty_measurements(capsys, args, message):
    code, out, err = run(capsys, "bench", "--quick", "--no-json", *args)
    assert code == 2 and message in err and out == ""
