"""Scaled dot-product attention in keras.ops: the function
`attention.scaled_dot_product_attention` and the layer `ScaledDotProductAttention`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_lib import masks
from course_lib.attention import scaled_dot_product_attention
from course_lib.layers import ScaledDotProductAttention
from tests.layer_checks import check_layer

B, T, S, D, DV = 2, 4, 5, 8, 6


def as_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_qkv(seed=0, t=T, s=S, d=D, dv=DV, batch=(B,)):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(*batch, t, d)).astype("float32")
    key = rng.normal(size=(*batch, s, d)).astype("float32")
    value = rng.normal(size=(*batch, s, dv)).astype("float32")
    return query, key, value


def keras_reference(query, key, value, mask=None, is_causal=False):
    """`keras.ops.dot_product_attention` on our (B, T, d) layout: it wants (B, T, H, d)
    inputs and a mask broadcastable to (B, H, T, S), so add a head axis of size 1."""
    out = keras.ops.dot_product_attention(
        query[:, :, None, :],  # (B, T, 1, d)
        key[:, :, None, :],  # (B, S, 1, d)
        value[:, :, None, :],  # (B, S, 1, dv)
        mask=None if mask is None else keras.ops.expand_dims(mask, 1),  # (B, 1, T, S)
        is_causal=is_causal,
    )  # (B, T, 1, dv)
    return as_numpy(out)[:, :, 0, :]


PADDING = masks.padding_mask_from_lengths(np.array([5, 3]), S)[:, None, :]  # (B, 1, S)
RANDOM = np.random.default_rng(3).random((B, T, S)) > 0.5
RANDOM[..., 0] = True  # every query may attend to at least one key
MASKS = {
    "no mask": None,
    "padding": PADDING,
    "causal": masks.causal_mask(T, S)[None],
    "random": RANDOM,
}


# --- the function ----------------------------------------------------------


@pytest.mark.parametrize("mask", list(MASKS.values()), ids=list(MASKS))
def test_function_agrees_with_keras_dot_product_attention(mask):
    query, key, value = random_qkv()
    output, _ = scaled_dot_product_attention(query, key, value, mask=mask)
    full_mask = None if mask is None else np.broadcast_to(mask, (B, T, S))
    reference = keras_reference(query, key, value, full_mask)
    np.testing.assert_allclose(as_numpy(output), reference, atol=1e-5)


def test_function_causal_mask_agrees_with_is_causal():
    query, key, value = random_qkv()
    output, _ = scaled_dot_product_attention(query, key, value, mask=masks.causal_mask(T, S))
    reference = keras_reference(query, key, value, is_causal=True)
    np.testing.assert_allclose(as_numpy(output), reference, atol=1e-5)


def test_function_with_heads_agrees_with_keras_layout():
    query, key, value = random_qkv(batch=(B, 3))  # (B, H, T, d)
    output, _ = scaled_dot_product_attention(query, key, value)  # (B, H, T, dv)
    reference = keras.ops.dot_product_attention(
        np.transpose(query, (0, 2, 1, 3)),  # (B, T, H, d)
        np.transpose(key, (0, 2, 1, 3)),  # (B, S, H, d)
        np.transpose(value, (0, 2, 1, 3)),  # (B, S, H, dv)
    )  # (B, T, H, dv)
    reference = np.transpose(as_numpy(reference), (0, 2, 1, 3))  # (B, H, T, dv)
    np.testing.assert_allclose(as_numpy(output), reference, atol=1e-5)


def test_default_scale_is_one_over_sqrt_d():
    query, key, value = random_qkv()
    default, _ = scaled_dot_product_attention(query, key, value)
    explicit, _ = scaled_dot_product_attention(query, key, value, scale=1 / np.sqrt(D))
    plain, weights = scaled_dot_product_attention(query, key, value, scale=1.0)
    np.testing.assert_allclose(as_numpy(default), as_numpy(explicit), atol=1e-6)
    scores = query @ np.swapaxes(key, -1, -2)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(as_numpy(weights), expected / expected.sum(-1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("name", ["padding", "causal", "random"])
def test_masked_weights_vanish_and_rows_sum_to_one(name):
    mask = MASKS[name]
    query, key, value = random_qkv()
    _, weights = scaled_dot_product_attention(query, key, value, mask=mask)
    weights = as_numpy(weights)
    forbidden = ~np.broadcast_to(as_numpy(mask), weights.shape)
    assert np.abs(weights[forbidden]).max() < 1e-6
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_fully_masked_row_gives_zeros_without_nan_and_finite_gradients():
    query, key, value = random_qkv()
    mask = np.ones((B, T, S), bool)
    mask[0, 1] = False  # query 1 of sequence 0 may attend to nothing
    query, key, value = (tf.constant(x) for x in (query, key, value))
    with tf.GradientTape() as tape:
        tape.watch([query, key, value])
        output, weights = scaled_dot_product_attention(query, key, value, mask=mask)
        loss = tf.reduce_sum(output**2)
    gradients = tape.gradient(loss, [query, key, value])
    assert not np.isnan(as_numpy(output)).any()
    np.testing.assert_array_equal(as_numpy(weights)[0, 1], 0.0)
    np.testing.assert_array_equal(as_numpy(output)[0, 1], 0.0)
    for gradient in gradients:
        assert np.isfinite(as_numpy(gradient)).all()
    np.testing.assert_allclose(as_numpy(weights)[0, 0].sum(), 1.0, atol=1e-6)


def test_causal_mask_does_not_leak_the_future():
    x, _, _ = random_qkv()  # self-attention on x: (B, T, D)
    changed = x.copy()
    position = 2
    changed[:, position + 1 :] += np.random.default_rng(9).normal(size=changed[:, position + 1 :].shape)
    mask = masks.causal_mask(T)
    before, _ = scaled_dot_product_attention(x, x, x, mask=mask)
    after, _ = scaled_dot_product_attention(changed, changed, changed, mask=mask)
    difference = np.abs(as_numpy(after) - as_numpy(before)).max(axis=(0, 2))  # (T,)
    np.testing.assert_array_equal(difference[: position + 1], 0.0)
    assert (difference[position + 1 :] > 0).all()


def test_without_mask_the_future_leaks():
    query, _, _ = random_qkv()
    changed = query.copy()
    changed[:, -1] += 1.0
    before, _ = scaled_dot_product_attention(query, query, query)
    after, _ = scaled_dot_product_attention(changed, changed, changed)
    assert np.abs(as_numpy(after) - as_numpy(before))[:, 0].max() > 0


def attend(query_shape, key_shape, value_shape, **kwargs):
    """`scaled_dot_product_attention` on zeros of the given shapes."""
    zeros = (np.zeros(shape, "float32") for shape in (query_shape, key_shape, value_shape))
    return scaled_dot_product_attention(*zeros, **kwargs)


FUNCTION_ERRORS = {
    "mismatched d": (lambda: attend((1, 2, 3), (1, 4, 5), (1, 4, 5)), "query"),
    "mismatched S": (lambda: attend((1, 2, 3), (1, 4, 3), (1, 5, 3)), "value"),
    "query rank 1": (lambda: attend((3,), (4, 3), (4, 3)), "query"),
    "value rank 1": (lambda: attend((2, 3), (4, 3), (4,)), "value"),
    "mask not broadcastable": (lambda: attend((1, 2, 3), (1, 4, 3), (1, 4, 3), mask=np.ones((1, 2, 5), bool)), "mask"),
    "mask rank too high": (lambda: attend((2, 3), (4, 3), (4, 3), mask=np.ones((1, 1, 2, 4), bool)), "mask"),
}


@pytest.mark.parametrize("make, name", list(FUNCTION_ERRORS.values()), ids=list(FUNCTION_ERRORS))
def test_function_errors_name_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_function_needs_a_scale_when_d_is_unknown():
    spec = tf.TensorSpec((None, None, None), tf.float32)

    @tf.function(input_signature=[spec, spec, spec])
    def attend(q, k, v):
        return scaled_dot_product_attention(q, k, v)[0]

    with pytest.raises(ValueError, match="`query`"):
        attend.get_concrete_function()

    @tf.function(input_signature=[spec, spec, spec])
    def attend_with_scale(q, k, v):
        return scaled_dot_product_attention(q, k, v, scale=0.5)[0]

    query, key, value = random_qkv()
    expected, _ = scaled_dot_product_attention(query, key, value, scale=0.5)
    received = attend_with_scale(query, key, value).numpy()
    np.testing.assert_allclose(received, as_numpy(expected), atol=1e-6)


# --- the layer -------------------------------------------------------------

LAYER_CASES = {  # inputs by argument name, call arguments, dropout
    "self-attention": (dict(query="x", value="x"), {}, 0.0),
    "cross-attention with key": (dict(query="q", value="v", key="k"), {}, 0.0),
    "causal": (dict(query="x", value="x"), dict(use_causal_mask=True), 0.0),
    "attention_mask input": (dict(query="q", value="v", key="k", attention_mask="m"), {}, 0.0),
    "return_attention_scores": (dict(query="q", value="v", key="k"), dict(return_attention_scores=True), 0.0),
    "dropout in inference": (dict(query="q", value="v", key="k"), {}, 0.3),
}


def layer_inputs(names):
    query, key, value = random_qkv(d=D, dv=D)
    arrays = {"x": query, "q": query, "k": key, "v": value, "m": RANDOM}
    return {argument: arrays[name] for argument, name in names.items()}


@pytest.mark.parametrize("names, call_kwargs, dropout", list(LAYER_CASES.values()), ids=list(LAYER_CASES))
def test_layer_passes_the_standard_checks(names, call_kwargs, dropout, tmp_path):
    inputs = layer_inputs(names)
    make_layer = lambda: ScaledDotProductAttention(dropout=dropout)  # noqa: E731
    outputs = check_layer(make_layer, inputs, call_kwargs, tmp_path=tmp_path)
    mask = masks.compute_attention_mask(
        inputs["query"], inputs["value"], attention_mask=inputs.get("attention_mask"),
        use_causal_mask=call_kwargs.get("use_causal_mask", False),
    )
    key = inputs.get("key", inputs["value"])
    expected, weights = scaled_dot_product_attention(inputs["query"], key, inputs["value"], mask=mask)
    output = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    np.testing.assert_allclose(as_numpy(output), as_numpy(expected), atol=1e-6)
    if call_kwargs.get("return_attention_scores"):
        np.testing.assert_allclose(as_numpy(outputs[1]), as_numpy(weights), atol=1e-6)


def test_layer_agrees_with_keras_dot_product_attention():
    query, key, value = random_qkv()
    output = ScaledDotProductAttention()(query, value, key=key, attention_mask=RANDOM)
    np.testing.assert_allclose(as_numpy(output), keras_reference(query, key, value, RANDOM), atol=1e-5)


def test_layer_uses_keras_masks_like_multi_head_attention():
    ids = np.array([[3, 1, 4, 0], [2, 7, 0, 0]])
    embedded = keras.layers.Embedding(10, D, mask_zero=True)(ids)
    layer = ScaledDotProductAttention()
    output, weights = layer(embedded, embedded, use_causal_mask=True, return_attention_scores=True)
    mask = masks.padding_mask(ids)
    combined = masks.compute_attention_mask(
        embedded, embedded, query_mask=mask, value_mask=mask, use_causal_mask=True
    )
    expected, expected_weights = scaled_dot_product_attention(embedded, embedded, embedded, mask=combined)
    np.testing.assert_allclose(as_numpy(output), as_numpy(expected), atol=1e-6)
    np.testing.assert_allclose(as_numpy(weights), as_numpy(expected_weights), atol=1e-6)
    np.testing.assert_array_equal(as_numpy(output)[1, 2:], 0.0)  # padded queries attend to nothing
    np.testing.assert_array_equal(as_numpy(weights)[0, :, 3], 0.0)  # nobody attends to padding
    np.testing.assert_array_equal(as_numpy(output._keras_mask), as_numpy(mask))  # query's mask kept


def test_layer_propagates_the_mask_in_a_model():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, D, mask_zero=True)(tokens)
    x = ScaledDotProductAttention()(x, x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # uses the mask: averages real tokens only
    model = keras.Model(tokens, pooled)
    ids = np.array([[3, 1, 0, 0], [3, 1, 5, 0]])
    short = model(np.array([[3, 1]]))
    np.testing.assert_allclose(as_numpy(model(ids))[0], as_numpy(short)[0], atol=1e-6)


def test_layer_fully_masked_query_gives_zeros_and_finite_gradients():
    query, key, value = (tf.constant(x) for x in random_qkv())
    mask = np.ones((B, T, S), bool)
    mask[1, 0] = False
    layer = ScaledDotProductAttention()
    with tf.GradientTape() as tape:
        tape.watch(query)
        output = layer(query, value, key=key, attention_mask=mask)
        loss = tf.reduce_sum(output)
    np.testing.assert_array_equal(as_numpy(output)[1, 0], 0.0)
    assert np.isfinite(as_numpy(tape.gradient(loss, query))).all()


def test_layer_dropout_only_in_training():
    query, key, value = random_qkv()
    layer = ScaledDotProductAttention(dropout=0.5)
    inference = layer(query, value, key=key, training=False)
    expected, _ = scaled_dot_product_attention(query, key, value)
    np.testing.assert_allclose(as_numpy(inference), as_numpy(expected), atol=1e-6)
    keras.utils.set_random_seed(0)
    training, weights = layer(query, value, key=key, training=True, return_attention_scores=True)
    assert np.abs(as_numpy(training) - as_numpy(expected)).max() > 1e-3
    np.testing.assert_allclose(as_numpy(weights).sum(-1), 1.0, atol=1e-5)  # weights before dropout


def test_layer_output_shapes():
    layer = ScaledDotProductAttention()
    assert layer.compute_output_shape((None, 4, 8), (None, 6, 3), (None, 6, 8)) == (None, 4, 3)
    q, v, k = keras.Input((4, 8)), keras.Input((6, 3)), keras.Input((6, 8))
    output, weights = layer(q, v, key=k, return_attention_scores=True)
    assert output.shape == (None, 4, 3) and weights.shape == (None, 4, 6)
    assert ScaledDotProductAttention()(q, keras.Input((6, 8))).shape == (None, 4, 8)


def test_layer_has_no_weights_and_is_registered():
    layer = ScaledDotProductAttention(dropout=0.1, name="sdpa")
    layer(*random_qkv(d=D, dv=D)[:2])
    assert layer.weights == []
    assert layer.get_config()["dropout"] == 0.1
    registered = keras.saving.get_registered_object("course_lib>ScaledDotProductAttention")
    assert registered is ScaledDotProductAttention


def attend_with_layer(query_shape, value_shape, key_shape=None, **kwargs):
    """`ScaledDotProductAttention()` on zeros of the given shapes; `kwargs` go to the call."""
    key = None if key_shape is None else np.zeros(key_shape, "float32")
    return ScaledDotProductAttention()(np.zeros(query_shape, "float32"), np.zeros(value_shape, "float32"), key=key, **kwargs)


LAYER_ERRORS = {
    "dropout 1": (lambda: ScaledDotProductAttention(dropout=1.0), "dropout"),
    "dropout negative": (lambda: ScaledDotProductAttention(dropout=-0.1), "dropout"),
    "dropout string": (lambda: ScaledDotProductAttention(dropout="0.1"), "dropout"),
    "query rank 2": (lambda: attend_with_layer((2, 3), (2, 4, 3)), "query"),
    "value rank 4": (lambda: attend_with_layer((2, 3, 4), (2, 1, 3, 4)), "value"),
    "mismatched d": (lambda: attend_with_layer((2, 3, 4), (2, 5, 6)), "key"),
    "mismatched Tv": (lambda: attend_with_layer((2, 3, 4), (2, 5, 4), key_shape=(2, 6, 4)), "value"),
    "value_mask length": (lambda: attend_with_layer((2, 3, 4), (2, 5, 4), value_mask=np.ones((2, 3), bool)), "value_mask"),
    "attention_mask shape": (
        lambda: attend_with_layer((2, 3, 4), (2, 5, 4), attention_mask=np.ones((2, 3, 4), bool)), "attention_mask"
    ),
}


@pytest.mark.parametrize("make, name", list(LAYER_ERRORS.values()), ids=list(LAYER_ERRORS))
def test_layer_errors_name_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_layer_causal_in_a_compiled_model_of_unknown_length():
    # Inside a tf.function (predict) the lengths are dynamic; a causal prefix of a sequence
    # must give the same outputs as the whole sequence on its first positions.
    x = keras.Input((None, D))
    model = keras.Model(x, ScaledDotProductAttention()(x, x, use_causal_mask=True))
    sequence = random_qkv()[0]  # (B, T, D)
    whole = model.predict(sequence, verbose=0)
    prefix = model.predict(sequence[:, :2], verbose=0)
    np.testing.assert_allclose(whole[:, :2], prefix, atol=1e-6)
