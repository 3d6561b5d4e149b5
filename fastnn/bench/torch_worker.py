"""The PyTorch side of `fastnn bench`, in a process of its own.

PyTorch brings its own OpenMP runtime and thread pool. In the benchmark's process, its
idle threads compete with fastnn's and NumPy's for the cores (on 2 cores this halved
both at batch 128), so the anchors would be measured against a handicapped field. This
worker holds torch instead: the benchmark sends it one JSON command per line on stdin
and reads one JSON answer per line on stdout, and interleaves its timings with the
in-process ones as before.

Commands: {"cmd": "info"}; {"cmd": "setup", "kind": "train"|"predict", "batch": b,
"threads": t, "fused": bool} (builds the case on the benchmark's data the first time,
selects it after); {"cmd":
"calibrate", "warmup": seconds} (the best single call); {"cmd": "time", "n": calls}
(seconds for n calls, after one settling call); {"cmd": "quit"}.
"""

import json
import sys


def _case(torch, data, kind, batch, fused):
    from fastnn.bench.harness import Case
    from fastnn.bench.workloads import torch_predict, torch_train_step

    if kind.startswith("cnn_"):
        from fastnn.bench.cnn import torch_cnn_case

        return torch_cnn_case(torch, kind[4:], batch)
    Xt, yt = data
    if kind == "train":
        return Case(kind, torch_train_step(torch, Xt, yt, batch, fused=fused), batch)
    return Case(kind, torch_predict(torch, Xt, batch), batch)


def serve(info, set_threads, make_case):
    """Answer the protocol's commands on stdin/stdout: `info()` gives the info reply,
    `set_threads(n)` runs on each setup, and make_case(msg) builds the Case of a setup
    message (once per distinct message, reused after; a ValueError is sent back as the
    setup's error)."""
    cases, case = {}, None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            break
        if cmd == "info":
            out = info()
        elif cmd == "setup":
            set_threads(msg["threads"])
            key = json.dumps(msg, sort_keys=True)
            try:
                if key not in cases:
                    cases[key] = make_case(msg)
                case = cases[key]
                out = {"ok": True}
            except ValueError as e:
                out = {"error": str(e)}
        elif cmd == "calibrate":
            out = {"best": case.calibrate(msg["warmup"])}
        elif cmd == "time":
            out = {"seconds": case.timed(msg["n"])}
        else:
            out = {"error": f"unknown command {cmd!r}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def main():
    """Serve benchmark requests for PyTorch in this process (stdin/stdout), one case at a
    time."""
    import torch

    from fastnn.bench.workloads import make_data

    X, y = make_data()
    data = torch.from_numpy(X), torch.from_numpy(y)
    serve(
        lambda: {
            "torch": torch.__version__,
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "mkl": bool(torch.backends.mkl.is_available()),
            "interop_threads": torch.get_num_interop_threads(),
        },
        torch.set_num_threads,
        lambda msg: _case(torch, data, msg["kind"], msg["batch"], msg.get("fused", False)),
    )


if __name__ == "__main__":
    main()
