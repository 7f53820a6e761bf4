"""Tests of course_lib.multihead.MultiHeadAttention (lesson 08): the standard layer
checks, identical outputs to keras.layers.MultiHeadAttention after copying its
weights (sequences, several attention axes, the gate, the sliding window), a numpy
reference, masks, the weights and the saved-file format, and the argument errors.

Keras's own test suite runs against the layer in tests/test_keras_mha_suite.py, and
property tests over random shapes in tests/test_properties_multihead.py."""

import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest

from course_lib.layers import MultiHeadAttention
from tests.helpers import assert_attention_weights, error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 5, 6)).astype("float32")  # (B, T, dim_q)
VALUE = RNG.normal(size=(2, 4, 7)).astype("float32")  # (B, S, dim_v)
KEY = RNG.normal(size=(2, 4, 3)).astype("float32")  # (B, S, dim_k)
ATTENTION_MASK = RNG.random((2, 5, 4)) > 0.3  # (B, T, S), True = may attend
ATTENTION_MASK[:, :, 0] = True  # every query may attend to key 0 ...
ATTENTION_MASK[0, 1] = False  # ... except query 1 of sequence 0, which may attend to nothing
PER_HEAD_MASK = RNG.random((2, 2, 5, 4)) > 0.3  # (B, N, T, S) for 2 heads
PER_HEAD_MASK[..., 1] = True
IMAGE = RNG.normal(size=(2, 3, 4, 5)).astype("float32")  # (B, height, width, channels)

# On JAX, Keras's fused path (jax.nn.dot_product_attention) refuses value_dim != key_dim.
KERAS_FUSED_NEEDS_EQUAL_DIMS = keras.backend.backend() == "jax"

CONFIGS = {
    "default": dict(num_heads=2, key_dim=3),
    "value_dim_4": dict(num_heads=2, key_dim=3, value_dim=4),
    "output_shape_8": dict(num_heads=3, key_dim=2, output_shape=8),
    "output_shape_2x3": dict(num_heads=2, key_dim=2, output_shape=(2, 3)),
    "no_bias": dict(num_heads=4, key_dim=2, use_bias=False),
    "gate": dict(num_heads=2, key_dim=3, value_dim=4, use_gate=True),
    "gate_no_bias": dict(num_heads=2, key_dim=3, use_gate=True, use_bias=False),
    "sliding_window_2": dict(num_heads=2, key_dim=3, sliding_window=2),
}
CALLS = {
    "self": lambda: dict(query=QUERY, value=QUERY),
    "cross": lambda: dict(query=QUERY, value=VALUE),
    "cross_key": lambda: dict(query=QUERY, value=VALUE, key=KEY),
    "causal": lambda: dict(query=QUERY, value=QUERY, use_causal_mask=True),
    "attention_mask": lambda: dict(query=QUERY, value=VALUE, key=KEY, attention_mask=ATTENTION_MASK),
    "mask_2d": lambda: dict(query=QUERY, value=VALUE, attention_mask=ATTENTION_MASK[1]),
    "per_head_mask": lambda: dict(query=QUERY, value=VALUE, attention_mask=PER_HEAD_MASK),
    "mask_and_causal": lambda: dict(query=QUERY, value=VALUE, attention_mask=ATTENTION_MASK, use_causal_mask=True),
}


def pair(config, inputs, bias_initializer="random_normal"):
    """A Keras layer and ours, built on `inputs`, ours holding Keras's weights."""
    theirs = keras.layers.MultiHeadAttention(**config, bias_initializer=bias_initializer)
    ours = MultiHeadAttention(**config)
    tensors = {k: v for k, v in inputs.items() if k in ("query", "value", "key")}
    theirs(**tensors, return_attention_scores=True)  # Keras's path that runs on JAX for any value_dim
    ours(**tensors)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def allowed(inputs, sliding_window=None):
    """(B, T, S) boolean: where a query may attend, from the masks of a rank-3 call."""
    b, t, s = inputs["query"].shape[0], inputs["query"].shape[1], inputs["value"].shape[1]
    mask = np.ones((b, 1, t, s), bool)  # (B, N=1, T, S)
    if "attention_mask" in inputs:
        given = inputs["attention_mask"]
        mask = mask & (given if given.ndim == 4 else given[..., None, :, :])
    if inputs.get("use_causal_mask"):
        mask &= np.tril(np.ones((t, s), bool))
    if sliding_window:
        rows, cols = np.arange(t)[:, None], np.arange(s)[None, :]
        mask &= np.abs(rows - cols) < sliding_window
    return mask


# --- the standard checks -------------------------------------------------------------


@pytest.mark.parametrize(
    "config, call_kwargs, inputs",
    [
        (dict(num_heads=2, key_dim=3), {}, {"query": QUERY, "value": QUERY}),
        (dict(num_heads=2, key_dim=3, value_dim=4, output_shape=5), {}, {"query": QUERY, "value": VALUE, "key": KEY}),
        (dict(num_heads=2, key_dim=2, use_bias=False), {"use_causal_mask": True}, {"query": QUERY, "value": QUERY}),
        (dict(num_heads=2, key_dim=2, output_shape=(2, 3)), {"return_attention_scores": True}, {"query": QUERY, "value": VALUE}),
        (dict(num_heads=2, key_dim=3, use_gate=True, sliding_window=2), {"use_causal_mask": True}, {"query": QUERY, "value": QUERY}),
        (dict(num_heads=2, key_dim=3, attention_axes=(1, 2)), {"return_attention_scores": True}, {"query": IMAGE, "value": IMAGE}),
    ],
    ids=["self_attention", "cross_attention_value_dim_output_shape", "causal_no_bias",
         "output_shape_2x3_with_scores", "gate_sliding_window_causal", "image_two_attention_axes"],
)
def test_standard_layer_checks(config, call_kwargs, inputs, tmp_path):
    check_layer(lambda: MultiHeadAttention(**config), inputs, call_kwargs, tmp_path=tmp_path, atol=1e-5)


# --- identical to keras.layers.MultiHeadAttention ------------------------------------


@pytest.mark.parametrize("use_gate", [False, True], ids=["plain", "gate"])
def test_same_weight_names_shapes_and_order_as_before_and_as_keras(use_gate):
    config = dict(num_heads=2, key_dim=3, value_dim=4, output_shape=5, use_gate=use_gate)
    theirs, ours = pair(config, CALLS["cross_key"]())
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    gate = [(6, 2, 4), (2, 4)] if use_gate else []
    assert [tuple(w.shape) for w in ours.weights] == [(6, 2, 3), (2, 3), (3, 2, 3), (2, 3), *gate, (7, 2, 4), (2, 4), (2, 4, 5), (5,)]
    # The names lesson 08's saved files hold (Keras's are `query/kernel`, ...).
    names = ["query", "key", *(["gate"] if use_gate else []), "value", "output"]
    assert [w.name for w in ours.weights] == [f"{n}_{kind}" for n in names for kind in ("kernel", "bias")]


def test_saved_file_format_is_unchanged(tmp_path):
    """The layer's weights are its own variables in the .keras file, as before sublayer
    names existed: `layers/<layer>/vars/0..7`, nothing under `_query_dense`."""
    q, v = keras.Input((5, 6)), keras.Input((4, 7))
    model = keras.Model([q, v], MultiHeadAttention(2, 3, value_dim=4)(q, v))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        datasets = []
        weights.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
    assert sorted(datasets) == [f"layers/multi_head_attention/vars/{i}" for i in range(8)]


# Every call on the default config, every config on the richest calls.
COMPARISONS = [("default", call) for call in CALLS] + [
    (config, call) for config in CONFIGS if config != "default" for call in ("cross_key", "mask_and_causal")
] + [("sliding_window_2", "self"), ("sliding_window_2", "causal"), ("gate", "per_head_mask")]


@pytest.mark.parametrize("config, call", COMPARISONS, ids=[f"{a}-{b}" for a, b in COMPARISONS])
def test_same_outputs_and_scores_as_keras(config, call):
    inputs = CALLS[call]()
    theirs, ours = pair(CONFIGS[config], inputs)
    out_theirs, scores_theirs = theirs(**inputs, return_attention_scores=True)
    out_ours, scores_ours = ours(**inputs, return_attention_scores=True)
    # With return_attention_scores=True Keras also gives a fully masked row zero weights.
    np.testing.assert_allclose(to_numpy(out_ours), to_numpy(out_theirs), atol=1e-5)
    np.testing.assert_allclose(to_numpy(scores_ours), to_numpy(scores_theirs), atol=1e-6)
    mask = allowed(inputs, CONFIGS[config].get("sliding_window"))
    assert_attention_weights(scores_ours, mask)
    if KERAS_FUSED_NEEDS_EQUAL_DIMS and CONFIGS[config].get("value_dim", 3) != CONFIGS[config]["key_dim"]:
        return
    # Keras's default (fused) path differs only on fully masked rows (see the docstring).
    rows = mask.any(-1).all(1)  # (B, T): rows with an allowed key in every head
    np.testing.assert_allclose(to_numpy(ours(**inputs))[rows], to_numpy(theirs(**inputs))[rows], atol=1e-5)


HIGH_RANK = {
    # name: (config, query shape, value shape, call arguments)
    "image_two_axes": (dict(attention_axes=(1, 2)), (2, 3, 4, 5), (2, 2, 3, 5), {}),
    "image_rows_only": (dict(attention_axes=(2,)), (2, 3, 4, 5), (2, 3, 6, 5), {}),
    "negative_axis_output_2x3": (dict(attention_axes=-2, output_shape=(2, 3)), (2, 3, 4, 5), (2, 3, 2, 5), {}),
    "rank5_default_axes": (dict(), (2, 2, 3, 4, 6), (2, 1, 2, 3, 6), {}),
    "rank5_axes_3_1": (dict(attention_axes=(3, 1)), (2, 5, 3, 4, 6), (2, 2, 3, 3, 6), {}),
    "causal_on_axis_1": (dict(attention_axes=1), (2, 4, 3, 5), (2, 4, 3, 5), {"use_causal_mask": True}),
    "gate_value_dim": (dict(attention_axes=(1, 2), use_gate=True, value_dim=4), (2, 3, 4, 5), (2, 2, 3, 5), {}),
    "mask_b_other_1_t_s": (dict(attention_axes=(2,)), (2, 3, 4, 5), (2, 3, 6, 5),
                           {"attention_mask": RNG.random((2, 3, 1, 4, 6)) > 0.4}),
    "mask_t_s": (dict(attention_axes=(2,)), (2, 3, 4, 5), (2, 3, 6, 5), {"attention_mask": RNG.random((4, 6)) > 0.4}),
    "mask_two_axes": (dict(attention_axes=(1, 2)), (2, 3, 4, 5), (2, 2, 3, 5),
                      {"attention_mask": RNG.random((2, 1, 3, 4, 2, 3)) > 0.4}),
}


@pytest.mark.parametrize("case", HIGH_RANK)
def test_same_outputs_and_scores_as_keras_over_several_axes(case):
    config, query_shape, value_shape, call_kwargs = HIGH_RANK[case]
    config = dict(num_heads=2, key_dim=3, **config)
    inputs = {"query": RNG.normal(size=query_shape).astype("float32"),
              "value": RNG.normal(size=value_shape).astype("float32")}
    theirs, ours = pair(config, inputs)
    out_theirs, scores_theirs = theirs(**inputs, **call_kwargs, return_attention_scores=True)
    out_ours, scores_ours = ours(**inputs, **call_kwargs, return_attention_scores=True)
    assert out_ours.shape == out_theirs.shape and scores_ours.shape == scores_theirs.shape
    np.testing.assert_allclose(to_numpy(out_ours), to_numpy(out_theirs), atol=1e-5)
    np.testing.assert_allclose(to_numpy(scores_ours), to_numpy(scores_theirs), atol=1e-6)
    np.testing.assert_allclose(to_numpy(ours(**inputs, **call_kwargs)), to_numpy(out_theirs), atol=1e-5)


def test_fully_masked_row_differs_from_keras_fused_path_as_documented():
    inputs = CALLS["attention_mask"]()
    theirs, ours = pair(CONFIGS["default"], inputs)
    ours_row = to_numpy(ours(**inputs))[0, 1]
    np.testing.assert_allclose(ours_row, to_numpy(ours._output_dense.bias), atol=1e-6)  # zero weights
    fused_row = to_numpy(theirs(**inputs))[0, 1]  # Keras: uniform average of the values
    assert not np.allclose(ours_row, fused_row, atol=1e-3)


def test_same_outputs_as_keras_with_embedding_masks():
    query_ids = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2]])
    value_ids = np.array([[5, 4, 0], [3, 0, 0]])
    query_embedding = keras.layers.Embedding(4, 6, mask_zero=True)
    value_embedding = keras.layers.Embedding(6, 7, mask_zero=True)

    def fresh():  # Keras removes the masks of its inputs, so each call gets fresh tensors
        return {"query": query_embedding(query_ids), "value": value_embedding(value_ids)}

    theirs, ours = pair(CONFIGS["default"], fresh())
    for use_causal_mask in (False, True):
        out_ours, scores_ours = ours(**fresh(), use_causal_mask=use_causal_mask, return_attention_scores=True)
        out_theirs, scores_theirs = theirs(**fresh(), use_causal_mask=use_causal_mask, return_attention_scores=True)
        np.testing.assert_allclose(to_numpy(out_ours), to_numpy(out_theirs), atol=1e-5)
        np.testing.assert_allclose(to_numpy(scores_ours), to_numpy(scores_theirs), atol=1e-6)
        rows = query_ids != 0  # padded queries attend to nothing: Keras's fused path differs there
        np.testing.assert_allclose(
            to_numpy(ours(**fresh(), use_causal_mask=use_causal_mask))[rows],
            to_numpy(theirs(**fresh(), use_causal_mask=use_causal_mask))[rows],
            atol=1e-5,
        )
        # The output carries the query's mask, as Keras's does.
        np.testing.assert_array_equal(to_numpy(out_ours._keras_mask), query_ids != 0)
        weights = to_numpy(scores_ours)  # (B, N, T, S)
        padded_values = np.broadcast_to((value_ids == 0)[:, None, None, :], weights.shape)
        assert weights[padded_values].max() == 0.0


def test_functional_model_with_masks_matches_keras():
    ids = keras.Input(shape=(5,), dtype="int32")
    x = keras.layers.Embedding(4, 6, mask_zero=True)(ids)
    keras_model = keras.Model(ids, keras.layers.MultiHeadAttention(2, 3)(x, x))
    our_model = keras.Model(ids, MultiHeadAttention(2, 3)(x, x))
    our_model.set_weights(keras_model.get_weights())
    data = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2]])
    rows = data != 0
    np.testing.assert_allclose(to_numpy(our_model(data))[rows], to_numpy(keras_model(data))[rows], atol=1e-5)


def test_activity_regularizer_adds_the_losses_keras_adds():
    inputs = CALLS["cross_key"]()
    config = dict(num_heads=2, key_dim=3, use_gate=True, activity_regularizer="l2")
    theirs, ours = pair(config, inputs)
    theirs(**inputs)
    ours(**inputs)
    assert len(ours.losses) == len(theirs.losses) == 5  # query, key, gate, value, output
    np.testing.assert_allclose(sorted(to_numpy(ours.losses)), sorted(to_numpy(theirs.losses)), rtol=1e-5)


@pytest.mark.parametrize(
    "config, inputs",
    [(dict(value_dim=4, output_shape=5, dropout=0.1, use_bias=False), (QUERY, VALUE)),
     (dict(use_gate=True, sliding_window=3, seed=7), (QUERY, QUERY)),
     (dict(attention_axes=(1, 2), use_gate=True), (IMAGE, IMAGE))],
    ids=["core", "gate_window", "two_axes"],
)
def test_configs_are_interchangeable_with_keras(config, inputs):
    keras_layer = keras.layers.MultiHeadAttention(2, 3, **config)
    ours = MultiHeadAttention.from_config(keras_layer.get_config())
    assert {k: v for k, v in ours.get_config().items() if k != "name"} == {
        k: v for k, v in keras_layer.get_config().items() if k != "name"
    }
    back = keras.layers.MultiHeadAttention.from_config(ours.get_config())
    assert back.get_config() == ours.get_config()
    keras_layer(*inputs)  # once built, Keras stores the attention axes it uses
    rebuilt = MultiHeadAttention.from_config(keras_layer.get_config())
    rebuilt(*inputs)
    rebuilt.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(to_numpy(rebuilt(*inputs)), to_numpy(keras_layer(*inputs)), atol=1e-5)


# --- an independent reference: the formula in numpy -----------------------------------


def numpy_multihead(layer, query, value, key, mask=None):
    wq, bq, wk, bk, wg, bg, wv, bv, wo, bo = [to_numpy(w).astype(np.float64) for w in layer.weights]
    q = np.einsum("btd,dnh->bnth", query, wq) + bq[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    k = np.einsum("bsd,dnh->bnsh", key, wk) + bk[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    v = np.einsum("bsd,dnh->bnsh", value, wv) + bv[None, :, None, :]  # (N, Hv) -> (1, N, 1, Hv)
    gate = 1 / (1 + np.exp(-(np.einsum("btd,dnh->bnth", query, wg) + bg[None, :, None, :])))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])  # (B, N, T, S)
    scores = np.where(mask[:, None], scores, -np.inf)  # (B, T, S) -> (B, 1, T, S)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = (weights @ v) * gate  # (B, N, T, Hv)
    return np.einsum("bnth,nho->bto", heads, wo) + bo, weights


def test_matches_numpy_formula_with_gate():
    layer = MultiHeadAttention(3, 2, value_dim=5, output_shape=4, use_gate=True, bias_initializer="random_normal")
    mask = np.ones((2, 5, 4), bool)
    mask[:, :, 2] = False
    output, weights = layer(QUERY, VALUE, KEY, attention_mask=mask, return_attention_scores=True)
    expected_output, expected_weights = numpy_multihead(layer, QUERY, VALUE, KEY, mask)
    np.testing.assert_allclose(to_numpy(output), expected_output, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)


def test_attention_over_two_axes_is_attention_over_the_flattened_positions():
    layer = MultiHeadAttention(2, 3, attention_axes=(1, 2))
    output, scores = layer(IMAGE, IMAGE, use_causal_mask=True, return_attention_scores=True)
    flat = IMAGE.reshape(2, 12, 5)  # (B, H, W, C) -> (B, H * W, C): positions row by row
    flat_layer = MultiHeadAttention(2, 3)
    flat_layer(flat, flat)
    flat_layer.set_weights(layer.get_weights())
    flat_output, flat_scores = flat_layer(flat, flat, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(output), to_numpy(flat_output).reshape(IMAGE.shape), atol=1e-6)
    np.testing.assert_allclose(to_numpy(scores), to_numpy(flat_scores).reshape(2, 2, 3, 4, 3, 4), atol=1e-6)


def test_masks_of_rank_4_inputs_apply_position_by_position():
    ids = np.array([[[1, 2, 0], [3, 0, 0]], [[1, 1, 1], [2, 2, 0]]])  # (B, H, W), 0 = padding
    embed = keras.layers.Embedding(4, 5, mask_zero=True)
    layer = MultiHeadAttention(2, 3, attention_axes=(1, 2))
    output, scores = layer(embed(ids), embed(ids), return_attention_scores=True)
    real = ids != 0
    # (B, 1, H, W, 1, 1) & (B, 1, 1, 1, H, W): Keras's layout of the scores
    mask = real[:, None, :, :, None, None] & real[:, None, None, None, :, :]
    _, expected = layer(embed(ids), embed(ids), attention_mask=mask, return_attention_scores=True)
    np.testing.assert_array_equal(to_numpy(scores), to_numpy(expected))
    assert_attention_weights(to_numpy(scores).reshape(2, 2, 6, 6), mask.reshape(2, 1, 6, 6))
    np.testing.assert_array_equal(to_numpy(output._keras_mask), real)


# --- masks ----------------------------------------------------------------------------


def test_masked_weights_are_zero_rows_sum_to_one_and_no_nan():
    output, weights = MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=ATTENTION_MASK, return_attention_scores=True)
    assert_attention_weights(weights, ATTENTION_MASK[:, None])
    assert not np.isnan(to_numpy(output)).any()
    np.testing.assert_array_equal(to_numpy(weights)[0, :, 1], 0.0)  # the fully masked row


def test_causal_mask_and_sliding_window():
    layer = MultiHeadAttention(2, 3, sliding_window=2)
    _, causal = layer(QUERY, QUERY, use_causal_mask=True, return_attention_scores=True)
    i, j = np.arange(5)[:, None], np.arange(5)[None, :]
    assert_attention_weights(causal, (j <= i) & (i - j < 2))  # itself and the one before
    _, band = layer(QUERY, QUERY, return_attention_scores=True)
    assert_attention_weights(band, np.abs(i - j) < 2)  # Keras's window is symmetric


def test_per_head_mask_of_shape_b_n_t_s():
    mask = np.ones((2, 2, 5, 4), bool)
    mask[:, 1, :, 3] = False  # head 1 never sees key 3, head 0 sees everything
    _, weights = MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=mask, return_attention_scores=True)
    weights = to_numpy(weights)
    assert weights[:, 1, :, 3].max() == 0.0 and weights[:, 0, :, 3].min() > 0


def test_explicit_query_mask_is_used():
    layer = MultiHeadAttention(2, 3, bias_initializer="ones")
    query_mask = np.array([[True, True, True, False, False]] * 2)
    output, weights = layer(QUERY, VALUE, query_mask=query_mask, return_attention_scores=True)
    np.testing.assert_array_equal(to_numpy(weights)[:, :, 3:], 0.0)
    np.testing.assert_allclose(to_numpy(output)[:, 3:], 1.0)  # only the output bias is left


def test_masks_given_as_python_lists():
    layer = MultiHeadAttention(2, 3)
    expected = to_numpy(layer(QUERY, VALUE, attention_mask=ATTENTION_MASK, query_mask=ATTENTION_MASK[:, :, 0]))
    got = layer(QUERY, VALUE, attention_mask=ATTENTION_MASK.tolist(), query_mask=ATTENTION_MASK[:, :, 0].tolist())
    np.testing.assert_array_equal(to_numpy(got), expected)
    ones_and_zeros = ATTENTION_MASK.astype(int).tolist()  # Keras documents 1 = attend, 0 = not
    np.testing.assert_array_equal(to_numpy(layer(QUERY, VALUE, attention_mask=ones_and_zeros)),
                                  to_numpy(layer(QUERY, VALUE, attention_mask=ATTENTION_MASK)))


@pytest.mark.parametrize("flag, causal", [(True, True), (np.bool_(True), True), (1, True), (0, False)],
                         ids=["True", "numpy_bool", "one", "zero"])
def test_use_causal_mask_accepts_bools_and_keras_0_1(flag, causal):
    layer = MultiHeadAttention(2, 3)
    _, weights = layer(QUERY, QUERY, use_causal_mask=flag, return_attention_scores=True)
    future = np.triu(np.ones((5, 5), bool), k=1)
    assert bool(to_numpy(weights)[..., future].max() == 0.0) == causal


# --- parameters, initialisation, dropout ---------------------------------------------


@pytest.mark.parametrize(
    "num_heads, key_dim, value_dim, use_bias, output_shape, use_gate",
    [(8, 16, None, True, None, False), (2, 3, 5, True, 4, False), (4, 2, None, False, None, False), (2, 3, 5, True, 4, True)],
    ids=["8_heads_of_16", "value_dim_and_output_shape", "no_bias", "gate"],
)
def test_parameter_count_formula(num_heads, key_dim, value_dim, use_bias, output_shape, use_gate):
    dq, dv, dk = 6, 7, 3
    hv = value_dim or key_dim
    out = output_shape or dq
    n, h = num_heads, key_dim
    expected = dq * n * h + dk * n * h + dv * n * hv + n * hv * out + use_gate * dq * n * hv
    if use_bias:
        expected += n * h + n * h + n * hv + out + use_gate * n * hv
    config = dict(num_heads=n, key_dim=h, value_dim=value_dim, use_bias=use_bias, output_shape=output_shape, use_gate=use_gate)
    ours = MultiHeadAttention(**config)
    ours(QUERY, VALUE, KEY)
    theirs = keras.layers.MultiHeadAttention(**config)
    theirs(QUERY, VALUE, KEY, return_attention_scores=True)
    assert ours.count_params() == expected == theirs.count_params()


def test_each_kernel_initialised_differently():
    layer = MultiHeadAttention(2, 3, use_gate=True, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    layer(QUERY, QUERY)
    kernels = [to_numpy(d.kernel) for d in (layer._query_dense, layer._key_dense, layer._value_dense, layer._gate_dense)]
    assert all(not np.allclose(kernels[0], other) for other in kernels[1:])


def test_constraints_and_regularizers_reach_every_weight():
    layer = MultiHeadAttention(
        2, 3, use_gate=True, kernel_constraint="non_neg", bias_constraint="non_neg",
        kernel_regularizer="l2", bias_regularizer="l1",
    )
    layer(QUERY, QUERY)
    assert all(isinstance(w.constraint, keras.constraints.NonNeg) for w in layer.weights)
    assert len(layer.losses) == 10
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(config)
    assert revived.get_config() == layer.get_config()


def test_dropout_only_in_training_and_scores_before_dropout():
    layer = MultiHeadAttention(2, 3, dropout=0.5, seed=1)
    inference = to_numpy(layer(QUERY, VALUE, training=False))
    np.testing.assert_allclose(to_numpy(layer(QUERY, VALUE)), inference, atol=1e-6)
    training, weights = layer(QUERY, VALUE, training=True, return_attention_scores=True)
    assert not np.allclose(to_numpy(training), inference, atol=1e-3)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-5)  # not dropped


@pytest.mark.parametrize(
    "config, query_shape, value_shape, scores_shape",
    [({}, (5, 6), (4, 7), (None, 3, 5, 4)),
     ({"attention_axes": (1, 2)}, (4, 6, 3), (2, 3, 3), (None, 3, 4, 6, 2, 3)),
     ({"attention_axes": 2}, (4, 6, 3), (4, 2, 3), (None, 4, 3, 6, 2))],
    ids=["cross_attention", "two_axes", "second_axis"],
)
def test_symbolic_scores_shape(config, query_shape, value_shape, scores_shape):
    q, v = keras.Input(query_shape), keras.Input(value_shape)
    output, scores = MultiHeadAttention(3, 2, **config)(q, v, return_attention_scores=True)
    assert tuple(output.shape) == (None, *query_shape) and tuple(scores.shape) == scores_shape


def test_numpy_integers_are_accepted_and_stored_as_python_ints():
    layer = MultiHeadAttention(np.int64(2), np.int32(3), value_dim=np.int64(4), output_shape=np.int64(5),
                               attention_axes=np.int64(1), sliding_window=np.int64(2), dropout=np.float32(0.25))
    assert layer(QUERY, VALUE).shape == (2, 5, 5)
    config = layer.get_config()
    assert json.loads(json.dumps(config))["num_heads"] == 2
    assert [type(config[k]) for k in ("num_heads", "key_dim", "value_dim", "sliding_window")] == [int] * 4


# --- errors name the argument ---------------------------------------------------------


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("num_heads=0", lambda: MultiHeadAttention(0, 2), ValueError, "num_heads"),
        error_case("num_heads=-1", lambda: MultiHeadAttention(-1, 2), ValueError, "num_heads"),
        error_case("num_heads=1.5", lambda: MultiHeadAttention(1.5, 2), TypeError, "num_heads"),
        error_case("num_heads=True", lambda: MultiHeadAttention(True, 2), TypeError, "num_heads"),
        error_case("key_dim=0", lambda: MultiHeadAttention(2, 0), ValueError, "key_dim"),
        error_case("key_dim='3'", lambda: MultiHeadAttention(2, "3"), TypeError, "key_dim"),
        error_case("value_dim=-3", lambda: MultiHeadAttention(2, 2, value_dim=-3), ValueError, "value_dim"),
        error_case("dropout=1.0", lambda: MultiHeadAttention(2, 2, dropout=1.0), ValueError, "dropout"),
        error_case("dropout='0.1'", lambda: MultiHeadAttention(2, 2, dropout="0.1"), TypeError, "dropout"),
        error_case("use_bias='no'", lambda: MultiHeadAttention(2, 2, use_bias="no"), TypeError, "use_bias"),
        error_case("output_shape=8.0", lambda: MultiHeadAttention(2, 2, output_shape=8.0), TypeError, "output_shape"),
        error_case("output_shape=(4,-1)", lambda: MultiHeadAttention(2, 2, output_shape=(4, -1)), ValueError, "output_shape"),
        error_case("attention_axes='1'", lambda: MultiHeadAttention(2, 2, attention_axes="1"), TypeError, "attention_axes"),
        error_case("attention_axes=(1.0,)", lambda: MultiHeadAttention(2, 2, attention_axes=(1.0,)), TypeError, "attention_axes"),
        error_case("sliding_window=0", lambda: MultiHeadAttention(2, 2, sliding_window=0), ValueError, "sliding_window"),
        error_case("sliding_window=2.5", lambda: MultiHeadAttention(2, 2, sliding_window=2.5), TypeError, "sliding_window"),
        error_case("use_gate='yes'", lambda: MultiHeadAttention(2, 2, use_gate="yes"), TypeError, "use_gate"),
        error_case("flash_attention='yes'", lambda: MultiHeadAttention(2, 2, flash_attention="yes"), TypeError, "flash_attention"),
        error_case("flash_attention_with_dropout", lambda: MultiHeadAttention(2, 2, flash_attention=True, dropout=0.1), ValueError, "dropout"),
        error_case("seed=-1", lambda: MultiHeadAttention(2, 2, seed=-1), ValueError, "seed"),
        # Call arguments.
        error_case("use_causal_mask='False'", lambda: MultiHeadAttention(2, 3)(QUERY, QUERY, use_causal_mask="False"),
                   TypeError, "use_causal_mask"),
        error_case("return_attention_scores='yes'", lambda: MultiHeadAttention(2, 3)(QUERY, QUERY, return_attention_scores="yes"),
                   TypeError, "return_attention_scores"),
        error_case("attention_axes=(0,)", lambda: MultiHeadAttention(2, 3, attention_axes=0)(IMAGE, IMAGE), ValueError, "attention_axes"),
        error_case("attention_axes=(3,)", lambda: MultiHeadAttention(2, 3, attention_axes=3)(IMAGE, IMAGE), ValueError, "attention_axes"),
        error_case("attention_axes=(1,1)", lambda: MultiHeadAttention(2, 3, attention_axes=(1, -3))(IMAGE, IMAGE), ValueError, "attention_axes"),
        error_case("attention_mask_of_0.5", lambda: MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=np.full((2, 5, 4), 0.5)),
                   ValueError, "attention_mask"),
        error_case("additive_attention_mask", lambda: MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=np.where(ATTENTION_MASK, 0.0, -np.inf)),
                   ValueError, "attention_mask"),
        error_case("ragged_query_mask", lambda: MultiHeadAttention(2, 3)(QUERY, VALUE, query_mask=[[True] * 5, [True] * 4]),
                   TypeError, "query_mask"),
        error_case("attention_mask_wrong_shape", lambda: MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=np.ones((2, 5, 3), bool)),
                   ValueError, "attention_mask"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name) as info:
        make()
    assert str(info.value).count("Received") == 1


def test_flash_attention_errors_and_backend_behaviour_as_keras():
    layer = MultiHeadAttention(2, 3, flash_attention=True)
    with pytest.raises(ValueError, match="Returning attention scores is not supported"):
        layer(QUERY, QUERY, return_attention_scores=True)
    keras_layer = keras.layers.MultiHeadAttention(2, 3, flash_attention=True)
    outcomes = []
    for candidate in (layer, keras_layer):
        try:
            outcomes.append(tuple(candidate(QUERY, QUERY).shape))
        except Exception as error:  # the backend may have no fused kernel here (TensorFlow, CPU)
            outcomes.append(type(error))
    assert outcomes[0] == outcomes[1]


def test_shape_errors():
    layer = MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="same batch size.*query with shape \\(2, 5, 6\\)"):
        layer(QUERY, VALUE[:1])
    layer(QUERY, VALUE)
    with pytest.raises(ValueError, match="last dimension of `query` must be 6.*\\(2, 5, 4\\)"):
        layer(QUERY[..., :4], VALUE)
    with pytest.raises(ValueError, match="`value` and `key`.*must be equal"):
        MultiHeadAttention(2, 3)(QUERY, VALUE, KEY[:, :3])
    with pytest.raises(ValueError, match="`query` and `value` must have the same rank"):
        MultiHeadAttention(2, 3)(QUERY[:, :, None], VALUE)
    with pytest.raises(ValueError, match="same size on axis 1, which is not an attention axis"):
        MultiHeadAttention(2, 3, attention_axes=2)(IMAGE, IMAGE[:, :2])


def test_causal_mask_in_a_compiled_model_of_unknown_length():
    ids = keras.Input(shape=(None,), dtype="int32")  # length unknown until the data comes
    x = keras.layers.Embedding(10, 6, mask_zero=True)(ids)
    model = keras.Model(ids, MultiHeadAttention(2, 3)(x, x, use_causal_mask=True))
    data = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, np.zeros((2, 4, 6)), verbose=0)
    eager = to_numpy(model(data))
    np.testing.assert_allclose(model.predict(data, verbose=0), eager, atol=1e-6)
    # Position 0 sees only itself: changing later tokens leaves its output unchanged.
    changed = to_numpy(model(np.array([[1, 9, 9, 9], [4, 9, 9, 0]])))
    np.testing.assert_allclose(changed[:, 0], eager[:, 0], atol=1e-6)
