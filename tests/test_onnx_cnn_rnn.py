"""fastnn.onnx.export of the convolution, pooling, recurrent, embedding and attention
layers, alone and in CNN / RNN models and graphs: onnx.checker passes and onnxruntime
reproduces model.predict for batch 1, 7 and 450 (float32); layers or settings without
an ONNX form raise ExportError naming the layer."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastnn  # noqa: E402
import fastnn.onnx  # noqa: E402
from fastnn import layers as L  # noqa: E402
from helpers import run_onnx  # noqa: E402

BATCHES = (1, 7, 450)


def trained(model, X, steps=2):
    """A few training steps on random targets, so that running statistics and weights
    are not their initial values (nothing to do for a model without parameters)."""
    if not model.parameters():
        return model
    rng = np.random.default_rng(3)
    out = model.predict(X[:2])
    trainer = fastnn.Trainer(
        model, fastnn.losses.MSELoss(), fastnn.optim.Adam(model.parameters(), lr=1e-2)
    )
    y = rng.normal(size=(len(X),) + out.shape[1:]).astype(np.float32)
    trainer.fit(X, y, epochs=steps, batch_size=16, verbose=0)
    return model


def sample(shape, rng, ids=None):
    """A batch of inputs: normal floats, or integer token ids below `ids` (as floats)."""
    if ids is not None:
        return rng.integers(0, ids, shape).astype(np.float32)
    return rng.normal(0.5, 1.5, shape).astype(np.float32)


def assert_exports(model, shape, rng, ids=None, train=True):
    """Export model for input (None,) + shape; onnx.checker and onnxruntime agree with
    predict to float32 round-off at every batch size. Returns the ModelProto."""
    if train:
        trained(model, sample((48,) + shape, rng, ids))
    proto = fastnn.onnx.export(model, input_shape=(None,) + shape)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in BATCHES:
        X = sample((batch,) + shape, rng, ids)
        ref = model.predict(X)
        got = run_onnx(proto, X)
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))
    return proto


def ops(proto):
    return [n.op_type for n in proto.graph.node]


# (layer factory, input shape without the batch axis)
LAYERS = {
    "conv2d": (lambda: L.Conv2d(3, 6, 3), (3, 9, 10)),
    "conv2d_stride_pad": (lambda: L.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2)), (3, 9, 8)),
    "conv2d_dilation_nobias": (lambda: L.Conv2d(3, 4, 3, dilation=(2, 1), bias=False), (3, 9, 8)),
    "conv2d_groups": (lambda: L.Conv2d(4, 6, 3, groups=2, padding=1), (4, 7, 7)),
    "conv2d_depthwise": (lambda: L.Conv2d(4, 4, 3, groups=4), (4, 7, 7)),
    "conv2d_same_even": (lambda: L.Conv2d(3, 5, 4, padding="same"), (3, 8, 7)),
    "conv2d_same_dilated": (lambda: L.Conv2d(3, 5, 3, padding="same", dilation=2), (3, 8, 7)),
    "conv2d_valid": (lambda: L.Conv2d(3, 5, 3, padding="valid"), (3, 8, 7)),
    "conv1d": (lambda: L.Conv1d(3, 5, 3, stride=2, padding=1), (3, 15)),
    "conv1d_same_groups": (lambda: L.Conv1d(4, 6, 4, padding="same", groups=2), (4, 11)),
    "conv1d_dilation": (lambda: L.Conv1d(3, 5, 3, dilation=3, bias=False), (3, 15)),
    "maxpool2d": (lambda: L.MaxPool2d(2), (3, 9, 10)),
    "maxpool2d_pad_stride": (lambda: L.MaxPool2d(3, stride=2, padding=1), (3, 9, 10)),
    "maxpool2d_dilation_ceil": (
        lambda: L.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
        (3, 10, 11),
    ),
    "maxpool1d": (lambda: L.MaxPool1d(3, stride=2, padding=1), (3, 14)),
    "maxpool1d_ceil": (lambda: L.MaxPool1d(2, ceil_mode=True), (3, 15)),
    "avgpool2d": (lambda: L.AvgPool2d(2), (3, 9, 10)),
    "avgpool2d_pad": (lambda: L.AvgPool2d(3, stride=2, padding=1), (3, 9, 10)),
    "avgpool2d_pad_exclude": (
        lambda: L.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        (3, 9, 10),
    ),
    "avgpool2d_ceil": (lambda: L.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (3, 10, 11)),
    "avgpool2d_ceil_exclude": (
        lambda: L.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        (3, 9, 11),
    ),
    "avgpool2d_divisor": (
        lambda: L.AvgPool2d(3, stride=2, padding=1, divisor_override=4),
        (3, 9, 10),
    ),
    "avgpool1d": (lambda: L.AvgPool1d(3, stride=2, padding=1), (3, 14)),
    "avgpool1d_ceil_exclude": (
        lambda: L.AvgPool1d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (3, 14),
    ),
    "adaptive2d_global": (lambda: L.AdaptiveAvgPool2d(1), (3, 9, 10)),
    "adaptive2d_divides": (lambda: L.AdaptiveAvgPool2d((3, 5)), (3, 9, 10)),
    "adaptive2d_none": (lambda: L.AdaptiveAvgPool2d((None, 2)), (3, 9, 10)),
    "adaptive1d_global": (lambda: L.AdaptiveAvgPool1d(1), (3, 14)),
    "adaptive1d_divides": (lambda: L.AdaptiveAvgPool1d(7), (3, 14)),
    "flatten": (lambda: L.Flatten(), (3, 4, 5)),
    "flatten_inner": (lambda: L.Flatten(2), (3, 4, 5)),
    "flatten_middle": (lambda: L.Flatten(1, 2), (3, 4, 5)),
    "batchnorm2d": (lambda: L.BatchNorm2d(3), (3, 6, 5)),
    "batchnorm2d_no_affine": (lambda: L.BatchNorm2d(3, affine=False), (3, 6, 5)),
    "syncbatchnorm": (lambda: L.SyncBatchNorm(3), (3, 6, 5)),
    "batchrenorm1d": (lambda: L.BatchRenorm1d(5), (5,)),
    "embedding": (lambda: L.Embedding(11, 4), (6,)),
    "embedding_padding": (lambda: L.Embedding(11, 4, padding_idx=0), (3, 2)),
    "attention_pooling": (lambda: L.AttentionPooling(5), (7, 5)),
}
for _cls in (L.RNN, L.LSTM, L.GRU):
    for _layers in (1, 2):
        for _bi in (False, True):
            for _seq in (False, True):
                LAYERS[
                    f"{_cls.__name__}_l{_layers}{'_bi' if _bi else ''}{'_seq' if _seq else ''}"
                ] = (
                    lambda c=_cls, n=_layers, b=_bi, s=_seq: c(
                        5, 6, num_layers=n, batch_first=True, bidirectional=b, return_sequences=s
                    ),
                    (7, 5),
                )
LAYERS["RNN_relu_nobias"] = (
    lambda: L.RNN(5, 6, nonlinearity="relu", bias=False, batch_first=True),
    (7, 5),
)
LAYERS["LSTM_nobias"] = (lambda: L.LSTM(5, 6, bias=False, batch_first=True), (7, 5))
LAYERS["GRU_dropout"] = (lambda: L.GRU(5, 6, num_layers=2, dropout=0.3, batch_first=True), (7, 5))


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_exports(rng, name):
    fastnn.seed(0)
    make, shape = LAYERS[name]
    layer = make()
    ids = layer.num_embeddings if isinstance(layer, L.Embedding) else None
    assert_exports(fastnn.Sequential(layer), shape, rng, ids)


def test_time_major_recurrent_layer(rng):
    """batch_first=False: the graph's first axis is time, as the layer's."""
    fastnn.seed(0)
    model = fastnn.Sequential(L.LSTM(5, 6, num_layers=2, bidirectional=True))
    proto = fastnn.onnx.export(model, input_shape=(None, 4, 5))
    X = sample((9, 4, 5), rng)
    np.testing.assert_allclose(run_onnx(proto, X), model.forward(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        L.Dropout1d(0.5),
        L.Dropout2d(0.5),
        L.DropBlock2d(0.3, 3),
        L.StochasticDepth(0.5),
        L.Cutout(3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_image_regularisers_are_the_identity(rng, layer):
    shape = (3, 8) if isinstance(layer, L.Dropout1d) else (3, 8, 8)
    conv = L.Conv1d(3, 3, 1) if len(shape) == 2 else L.Conv2d(3, 3, 1)
    proto = assert_exports(fastnn.Sequential(conv, layer), shape, rng)
    assert ops(proto) == ["Conv", "Identity"]  # the layer added no node


def test_recurrent_gate_order_is_onnx(rng):
    """The exported LSTM/GRU weights are torch's gate blocks reordered: a permuted
    gate order would still pass with symmetric weights, so here each block differs."""
    fastnn.seed(0)
    H = 4
    for cls, order in ((L.LSTM, [0, 3, 1, 2]), (L.GRU, [1, 0, 2])):
        layer = cls(3, H, batch_first=True)
        proto = fastnn.onnx.export(fastnn.Sequential(layer), input_shape=(None, 5, 3))
        W = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
        w = next(v for k, v in W.items() if k.endswith("W"))
        blocks = [layer.weight_ih_l0.data[g * H : (g + 1) * H] for g in order]
        np.testing.assert_array_equal(w[0], np.concatenate(blocks))


def test_float64_models_export_as_double():
    """onnxruntime's CPU provider has no double Conv or LSTM kernels; the graph itself
    is valid ONNX with DOUBLE tensors."""
    model = fastnn.Sequential(
        L.Conv2d(1, 2, 3), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Dense(8, 2)
    ).astype(np.float64)
    proto = fastnn.onnx.export(model, input_shape=(None, 1, 6, 6))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


# ---------------------------------------------------------------------------- models


def lenet():
    return fastnn.Sequential(
        L.Conv2d(1, 6, 5, padding=2),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Conv2d(6, 16, 5),
        L.BatchNorm2d(16),
        L.ReLU(),
        L.AvgPool2d(2),
        L.Dropout2d(0.2),
        L.Flatten(),
        L.Dense(16 * 2 * 2, 32),
        L.ReLU(),
        L.Dropout(0.3),
        L.Dense(32, 10),
    )


def resnet_block():
    """A ResNet basic block whose shortcut is a strided 1x1 projection, then a global
    average pool and a linear head: a graph model with Add."""
    x = fastnn.Input((4, 12, 12))
    h = L.ReLU()(L.BatchNorm2d(8)(L.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)(x)))
    h = L.BatchNorm2d(8)(L.Conv2d(8, 8, 3, padding=1, bias=False)(h))
    shortcut = L.BatchNorm2d(8)(L.Conv2d(4, 8, 1, stride=2, bias=False)(x))
    h = L.ReLU()(L.Add()([h, shortcut]))
    h = L.StochasticDepth(0.2)(h)
    return fastnn.Model(x, L.Dense(8, 3)(L.Flatten()(L.AdaptiveAvgPool2d(1)(h))))


def inception_like():
    """Parallel convolutions joined by Concatenate on the channel axis and gated by
    Multiply, with a Residual of convolutions inside a Sequential."""
    x = fastnn.Input((3, 8, 8))
    a = L.Conv2d(3, 4, 1)(x)
    b = L.Conv2d(3, 4, 3, padding="same")(x)
    h = L.Concatenate(axis=1)([a, b])
    gate = L.Sigmoid()(L.Conv2d(3, 8, 1)(x))
    h = L.Multiply()([h, gate])
    h = fastnn.Sequential(
        L.Residual(L.Conv2d(8, 8, 3, padding=1), L.BatchNorm2d(8), L.ReLU()),
        L.MaxPool2d(2),
        L.Flatten(),
    )(h)
    return fastnn.Model(x, L.Dense(8 * 4 * 4, 2)(h))


def rnn_classifier(cls, bidirectional):
    return fastnn.Sequential(
        cls(
            5,
            8,
            num_layers=2,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=0.2,
            return_sequences=False,
        ),
        L.Dense(16 if bidirectional else 8, 3),
        L.Softmax(),
    )


def embedding_model():
    return fastnn.Sequential(
        L.Embedding(30, 8, padding_idx=0),
        L.LSTM(8, 6, batch_first=True, bidirectional=True),
        L.AttentionPooling(12),
        L.Dense(12, 2),
    )


def conv1d_text():
    return fastnn.Sequential(
        L.Embedding(30, 6),
        L.Conv1d(10, 8, 3, padding=1),  # (N, T=10, 6) read as 10 channels of length 6
        L.ReLU(),
        L.AdaptiveAvgPool1d(1),
        L.Flatten(),
        L.Dense(8, 2),
    )


MODELS = {
    "lenet": (lenet, (1, 16, 16), None),
    "resnet_block": (resnet_block, None, None),
    "inception_like": (inception_like, None, None),
    "lstm_uni": (lambda: rnn_classifier(L.LSTM, False), (9, 5), None),
    "lstm_bi": (lambda: rnn_classifier(L.LSTM, True), (9, 5), None),
    "gru_uni": (lambda: rnn_classifier(L.GRU, False), (9, 5), None),
    "gru_bi": (lambda: rnn_classifier(L.GRU, True), (9, 5), None),
    "embedding_lstm_attention": (embedding_model, (10,), 30),
    "embedding_conv1d": (conv1d_text, (10,), 30),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_models_export(rng, name):
    fastnn.seed(1)
    make, shape, ids = MODELS[name]
    model = make()
    if shape is None:  # a fastnn.Model: its Input gives the shape
        shape = model.inputs[0].shape[1:]
        trained(model, sample((48,) + shape, rng))
        proto = fastnn.onnx.export(model)
        onnx.checker.check_model(proto, full_check=True)
        for batch in BATCHES:
            X = sample((batch,) + shape, rng)
            ref = model.predict(X)
            got = run_onnx(proto, {proto.graph.input[0].name: X})
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    else:
        assert_exports(model, shape, rng, ids)
    assert model.training  # export leaves the model's mode alone


def test_lengths_and_masks_in_a_graph(rng):
    """Variable-length sequences: the lengths input becomes sequence_lens of every
    recurrent node and masks AttentionPooling; steps past a sequence's length change
    nothing."""
    fastnn.seed(2)
    x, lengths = fastnn.Input((8, 5), name="x"), fastnn.Input((1,), name="lengths")
    h = L.GRU(5, 6, num_layers=2, bidirectional=True, batch_first=True)([x, lengths])
    h = L.AttentionPooling(12)([h, lengths])
    last = L.LSTM(5, 4, bidirectional=True, batch_first=True, return_sequences=False)([x, lengths])
    mask = fastnn.Input((8,), name="mask")
    pooled = L.AttentionPooling(5)([x, mask])
    out = L.Dense(12 + 8 + 5, 2)(L.Concatenate()([h, last, pooled]))
    model = fastnn.Model([x, lengths, mask], out)
    proto = fastnn.onnx.export(model)
    assert ops(proto).count("GRU") == 2 and ops(proto).count("LSTM") == 1
    for batch in BATCHES:
        X = sample((batch, 8, 5), rng)
        n = rng.integers(1, 9, (batch, 1)).astype(np.float32)
        m = (rng.random((batch, 8)) < 0.6).astype(np.float32)
        m[:, 0] = 1  # every sequence keeps a step
        ref = model.predict([X, n, m])
        got = run_onnx(proto, {"x": X, "lengths": n, "mask": m})
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        X[:, -1] += 100.0  # the last step: past the length of every sequence shorter than 8
        moved = np.abs(run_onnx(proto, {"x": X, "lengths": n, "mask": m}) - got).max(axis=1)
        unseen = (n[:, 0] < 8) & (m[:, -1] == 0)
        assert (moved[unseen] == 0).all()
        assert (moved[n[:, 0] == 8] > 0).all()


# ---------------------------------------------------------------------------- errors


def test_adaptive_pool_with_unequal_cells_is_refused():
    model = fastnn.Sequential(L.Conv2d(1, 2, 1), L.AdaptiveAvgPool2d(4))
    with pytest.raises(fastnn.onnx.ExportError, match=r"AdaptiveAvgPool2d\(output_size=\(4, 4\)\)"):
        fastnn.onnx.export(model, input_shape=(None, 1, 10, 10))
    fastnn.onnx.export(model, input_shape=(None, 1, 12, 8))  # 4 divides both: fine


def test_padding_modes_other_than_zeros_are_refused():
    """The export writes ONNX Conv, which pads with zeros only; a reflect-padded layer
    must not be exported as zero padding."""
    conv = L.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(fastnn.onnx.ExportError, match=r"Conv2d\(1, 2.*padding_mode='reflect'"):
        fastnn.onnx.export(fastnn.Sequential(conv), input_shape=(None, 1, 5, 5))


def test_initial_states_are_refused():
    """A recurrent layer given [x, lengths, h0]: the states' batch axis is axis 1."""
    layer = L.GRU(3, 4, batch_first=True)
    graph = fastnn.onnx.GraphBuilder(np.float32, [(5, 3), (1,), (1, 4)], 17)
    with pytest.raises(fastnn.onnx.ExportError, match=r"GRU\(3, 4\).*initial states"):
        fastnn.onnx.convert(layer, graph, ["x", "lengths", "h0"])


def test_image_models_need_an_input_shape():
    with pytest.raises(fastnn.onnx.ExportError, match=r"Conv2d.*\(None, C, H, W\)"):
        fastnn.onnx.export(lenet())
    with pytest.raises(fastnn.onnx.ExportError, match="Embedding"):
        fastnn.onnx.export(embedding_model())
    with pytest.raises(fastnn.onnx.ExportError, match="starting with LSTM"):
        fastnn.onnx.export(fastnn.Sequential(L.Dropout(0.1), rnn_classifier(L.LSTM, False)))
    # layers before the first one that names its input size: that size is the input's
    mlp = fastnn.Sequential(L.Dropout(0.1), L.ReLU(), L.Dense(5, 2))
    assert fastnn.onnx.export(mlp).graph.input[0].type.tensor_type.shape.dim[1].dim_value == 5
