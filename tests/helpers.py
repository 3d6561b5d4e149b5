"""Helpers shared by several test files (imported as `helpers`: tests/ is on sys.path)."""

import numpy as np

import fastnn


def fd_check(layer, x, num_grad, fd_tol, rng, before=None):
    """Backward of `layer` (input gradient and every parameter gradient) against central
    differences of the scalar sum(R * layer(x)), R a fixed random projection; every
    parameter gradient must also be nonzero somewhere (else the check proves nothing).

    before(): called before every forward, e.g. to reseed so that Dropout draws the same
    mask each time. Returns (input gradient, {name: parameter gradient})."""

    def forward(xv):
        if before is not None:
            before()
        return layer.forward(xv)

    x = np.ascontiguousarray(x, dtype=np.float64)
    R = rng.standard_normal(forward(x).shape)

    def f(xv):
        return float(np.sum(forward(xv) * R))

    forward(x)
    layer.zero_grad()
    gx = layer.backward(R)
    grads = {name: p.grad.copy() for name, p in layer.named_parameters()}
    np.testing.assert_allclose(gx, num_grad(f, x.copy()), **fd_tol, err_msg="input grad")
    for name, p in layer.named_parameters():
        assert np.any(grads[name] != 0), f"{name}: gradient identically zero"
        np.testing.assert_allclose(
            grads[name], num_grad(lambda _: f(x), p.data), **fd_tol, err_msg=name
        )
    return gx, grads


def make_params(dtype, seed=0, shapes=()):
    """fastnn Parameters p0, p1, ... of the given shapes, N(0, 1) entries."""
    r = np.random.default_rng(seed)
    return [
        fastnn.Parameter(r.normal(size=s).astype(dtype), name=f"p{i}") for i, s in enumerate(shapes)
    ]


def grad_stream(shapes, steps, seed=1, dtype=np.float64):
    """Random gradients whose scale changes from step to step by up to 1000x (so that
    running maxima, accumulators and averages all differ from the plain moments)."""
    r = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        scale = 10.0 ** r.uniform(-2, 1)
        out.append([(scale * r.normal(size=s)).astype(dtype) for s in shapes])
    return out


def tols(dtype):
    """Tolerances of an optimizer against its reference rule in the same dtype."""
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


def run_onnx(proto, X, outputs=False):
    """onnxruntime's first output (all outputs with outputs=True) of an ONNX ModelProto
    for input X (the graph input named "input"), or several inputs as {name: array}."""
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ys = sess.run(None, X if isinstance(X, dict) else {"input": X})
    return ys if outputs else ys[0]
