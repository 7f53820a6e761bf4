"""Scaled dot-product attention in keras.ops: the functions
`attention.scaled_dot_product_attention` and `attention.masked_softmax`, the base layer
`ScoredAttention` and its subclass `ScaledDotProductAttention`. Runs on TensorFlow and JAX."""

import keras
import numpy as np
import pytest
from keras import ops

from course_lib import attention, masks
from course_lib.attention import ScoredAttention, masked_softmax, scaled_dot_product_attention
from course_lib.layers import AdditiveAttention, LuongAttention, ScaledDotProductAttention
from tests.helpers import (
    assert_attention_weights,
    compiled,
    error_case,
    gradients,
    numpy_attention,
    numpy_softmax,
    raises_naming,
    to_numpy,
)
from tests.layer_checks import check_layer

B, T, S, D, DV = 2, 4, 5, 8, 6
ON_TENSORFLOW = keras.backend.backend() == "tensorflow"


def random_qkv(seed=0, t=T, s=S, d=D, dv=DV, batch=(B,)):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(*batch, t, d)).astype("float32")
    key = rng.normal(size=(*batch, s, d)).astype("float32")
    value = rng.normal(size=(*batch, s, dv)).astype("float32")
    return query, key, value


def keras_fused(query, key, value, mask=None, is_causal=False):
    """`keras.ops.dot_product_attention` on our (B, T, d) layout: it wants (B, T, H, d)
    inputs and a mask broadcastable to (B, H, T, S), so add a head axis of size 1."""
    out = ops.dot_product_attention(
        query[:, :, None, :],  # (B, T, d) -> (B, T, 1, d)
        key[:, :, None, :],  # (B, S, d) -> (B, S, 1, d)
        value[:, :, None, :],  # (B, S, dv) -> (B, S, 1, dv)
        mask=None if mask is None else ops.expand_dims(mask, 1),  # (B, T, S) -> (B, 1, T, S)
        is_causal=is_causal,
    )  # (B, T, 1, dv)
    return to_numpy(out)[:, :, 0, :]  # (B, T, 1, dv) -> (B, T, dv)


PADDING = to_numpy(masks.padding_mask_from_lengths(np.array([5, 3]), S))[:, None, :]  # (B, 1, S)
RANDOM = np.random.default_rng(3).random((B, T, S)) > 0.5
RANDOM[..., 0] = True  # every query may attend to at least one key
MASKS = {
    "no mask": None,
    "padding": PADDING,
    "causal": to_numpy(masks.causal_mask(T, S))[None],
    "random": RANDOM,
}


# --- the function ----------------------------------------------------------


@pytest.mark.parametrize("mask", list(MASKS.values()), ids=list(MASKS))
def test_function_matches_the_numpy_reference(mask):
    query, key, value = random_qkv()
    output, weights = scaled_dot_product_attention(query, key, value, mask=mask)
    expected_output, expected_weights = numpy_attention(query, key, value, mask=mask)
    np.testing.assert_allclose(to_numpy(output), expected_output, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    assert_attention_weights(weights, mask)


@pytest.mark.parametrize("mask", list(MASKS.values()), ids=list(MASKS))
def test_function_agrees_with_keras_dot_product_attention(mask):
    query, key, value = random_qkv(dv=D)  # the fused op wants dv == d on JAX
    output, _ = scaled_dot_product_attention(query, key, value, mask=mask)
    full_mask = None if mask is None else np.broadcast_to(mask, (B, T, S))
    np.testing.assert_allclose(to_numpy(output), keras_fused(query, key, value, full_mask), atol=1e-5)


def test_function_causal_mask_agrees_with_is_causal():
    query, key, value = random_qkv(dv=D)
    output, _ = scaled_dot_product_attention(query, key, value, mask=masks.causal_mask(T, S))
    np.testing.assert_allclose(to_numpy(output), keras_fused(query, key, value, is_causal=True), atol=1e-5)


def test_function_with_heads_agrees_with_keras_layout():
    query, key, value = random_qkv(batch=(B, 3), dv=D)  # (B, H, T, d)
    output, _ = scaled_dot_product_attention(query, key, value)  # (B, H, T, dv)
    reference = ops.dot_product_attention(
        np.transpose(query, (0, 2, 1, 3)),  # (B, H, T, d) -> (B, T, H, d)
        np.transpose(key, (0, 2, 1, 3)),  # (B, H, S, d) -> (B, S, H, d)
        np.transpose(value, (0, 2, 1, 3)),  # (B, H, S, dv) -> (B, S, H, dv)
    )  # (B, T, H, dv)
    reference = np.transpose(to_numpy(reference), (0, 2, 1, 3))  # (B, T, H, dv) -> (B, H, T, dv)
    np.testing.assert_allclose(to_numpy(output), reference, atol=1e-5)


def test_default_scale_is_one_over_sqrt_d():
    query, key, value = random_qkv()
    default, _ = scaled_dot_product_attention(query, key, value)
    explicit, _ = scaled_dot_product_attention(query, key, value, scale=1 / np.sqrt(D))
    _, plain = scaled_dot_product_attention(query, key, value, scale=1.0)
    np.testing.assert_allclose(to_numpy(default), to_numpy(explicit), atol=1e-6)
    np.testing.assert_allclose(to_numpy(plain), numpy_attention(query, key, value, scale=1.0)[1], atol=1e-5)


@pytest.mark.parametrize(
    "allowed_score", [-8e4, -1e9, -3e38, 1e4], ids=["-8e4", "-1e9", "-3e38", "+1e4"]
)
def test_masking_is_exact_whatever_the_scores(allowed_score):
    # The old fill values (-3e4 on TensorFlow, -1e9 on JAX) let masked keys win when
    # every allowed score was below them: [0, 0, 0] instead of [0.5, 0.5, 0].
    scores = np.array([[allowed_score, allowed_score, 0.0]], "float32")
    mask = np.array([[True, True, False]])
    np.testing.assert_array_equal(to_numpy(masked_softmax(scores, mask)), [[0.5, 0.5, 0.0]])
    # The same through the function: scores q . k with d = 1 and scale 1.
    query, key = np.ones((1, 1, 1), "float32"), scores.reshape(1, 3, 1)
    value = np.array([[[1.0], [3.0], [100.0]]], "float32")
    output, weights = scaled_dot_product_attention(query, key, value, mask=mask[None], scale=1.0)
    np.testing.assert_array_equal(to_numpy(weights), [[[0.5, 0.5, 0.0]]])
    np.testing.assert_array_equal(to_numpy(output), [[[2.0]]])


def test_masked_softmax_keeps_the_float16_dtype_and_is_exact():
    scores = np.array([[-6e4, -6e4, 0.0]], "float16")
    weights = masked_softmax(scores, np.array([[True, True, False]]))
    assert keras.backend.standardize_dtype(weights.dtype) == "float16"
    np.testing.assert_array_equal(to_numpy(weights), [[0.5, 0.5, 0.0]])


def test_masked_softmax_matches_the_reference_on_another_axis():
    scores = np.random.default_rng(4).normal(size=(3, 4)).astype("float32")
    mask = np.array([[1], [0], [1]], bool)  # (3, 1): row 1 is masked on axis 0
    weights = masked_softmax(scores, mask, axis=0)
    np.testing.assert_allclose(to_numpy(weights), numpy_softmax(scores, axis=0, mask=np.broadcast_to(mask, (3, 4))), atol=1e-6)


@pytest.mark.parametrize("name", ["padding", "causal", "random"])
def test_masked_weights_vanish_and_rows_sum_to_one(name):
    _, weights = scaled_dot_product_attention(*random_qkv(), mask=MASKS[name])
    assert_attention_weights(weights, MASKS[name])


def test_fully_masked_row_gives_zeros_without_nan_and_finite_gradients():
    mask = np.ones((B, T, S), bool)
    mask[0, 1] = False  # query 1 of sequence 0 may attend to nothing

    def loss(query, key, value):
        output, _ = scaled_dot_product_attention(query, key, value, mask=mask)
        return ops.sum(output**2)

    query, key, value = random_qkv()
    output, weights = (to_numpy(x) for x in scaled_dot_product_attention(query, key, value, mask=mask))
    np.testing.assert_array_equal(weights[0, 1], 0.0)
    np.testing.assert_array_equal(output[0, 1], 0.0)
    assert_attention_weights(weights, mask)
    for gradient in gradients(loss, query, key, value):
        assert np.isfinite(gradient).all()
        assert np.abs(gradient).max() > 0


def test_masked_softmax_gradients_are_finite_and_zero_where_masked():
    scores = np.array([[2.5, 3.0, 1e4], [2.0, 1.0, 0.0]], "float32")
    mask = np.array([[True, True, False], [False, False, False]])
    weights_of = lambda x: masked_softmax(x, mask)  # noqa: E731
    (gradient,) = gradients(lambda x: ops.sum(weights_of(x) * np.array([[1.0, 2.0, 3.0]] * 2, "float32")), scores)
    assert np.isfinite(gradient).all()
    np.testing.assert_array_equal(gradient[~mask], 0.0)
    assert np.abs(gradient[0, :2]).max() > 0


def test_causal_mask_does_not_leak_the_future():
    x, _, _ = random_qkv()  # self-attention on x: (B, T, D)
    changed = x.copy()
    position = 2
    changed[:, position + 1 :] += np.random.default_rng(9).normal(size=changed[:, position + 1 :].shape)
    mask = masks.causal_mask(T)
    before, _ = scaled_dot_product_attention(x, x, x, mask=mask)
    after, _ = scaled_dot_product_attention(changed, changed, changed, mask=mask)
    difference = np.abs(to_numpy(after) - to_numpy(before)).max(axis=(0, 2))  # (T,)
    np.testing.assert_array_equal(difference[: position + 1], 0.0)
    assert (difference[position + 1 :] > 0).all()


def test_without_mask_the_future_leaks():
    query, _, _ = random_qkv()
    changed = query.copy()
    changed[:, -1] += 1.0
    before, _ = scaled_dot_product_attention(query, query, query)
    after, _ = scaled_dot_product_attention(changed, changed, changed)
    assert np.abs(to_numpy(after) - to_numpy(before))[:, 0].max() > 0


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_inputs_are_computed_in_floating_point(dtype):
    # The scale 1/sqrt(d) used to be cast to the integer type (0): uniform weights.
    ints = np.array([[[0, 1, 2], [3, 4, 5]]])  # (1, 2, 3)
    inputs = ints.astype(dtype)
    output, weights = scaled_dot_product_attention(inputs, inputs, inputs)
    assert keras.backend.is_float_dtype(weights.dtype)
    expected_output, expected_weights = numpy_attention(*(inputs.astype("float32"),) * 3)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(to_numpy(output), expected_output, atol=1e-5)


def test_float64_inputs_get_a_float64_scale():
    query = np.random.default_rng(0).normal(size=(1, 3, 3)) * 3
    if keras.backend.standardize_dtype(ops.convert_to_tensor(query).dtype) != "float64":
        pytest.skip("this backend computes float64 inputs in float32 (JAX without x64)")
    _, weights = scaled_dot_product_attention(query, query, query)
    assert keras.backend.standardize_dtype(weights.dtype) == "float64"
    np.testing.assert_allclose(to_numpy(weights), numpy_attention(query, query, query)[1], rtol=1e-12, atol=1e-15)


def test_python_lists_are_accepted():
    query, key, value = random_qkv(t=2, s=3, d=2, dv=2, batch=(1,))
    mask = [[[True, False, True], [False, True, True]]]
    output, weights = scaled_dot_product_attention(query.tolist(), key.tolist(), value.tolist(), mask=mask)
    expected_output, expected_weights = numpy_attention(query, key, value, mask=np.array(mask))
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(to_numpy(output), expected_output, atol=1e-6)


@pytest.mark.parametrize(
    "mask, dtype", [([[1, 0, 1]], "int32"), ([[1.0, 0.0, 1.0]], "float32")], ids=["int", "float"]
)
def test_zero_one_masks_mean_what_keras_documents(mask, dtype):
    scores = np.array([[1.0, 2.0, 3.0]], "float32")
    expected = to_numpy(masked_softmax(scores, np.array(mask, bool)))
    np.testing.assert_array_equal(to_numpy(masked_softmax(scores, np.array(mask, dtype))), expected)


def test_mask_values_are_not_checked_when_unknown():
    # In a compiled function the mask's values are symbolic: cast to bool, no check.
    attend = compiled(lambda scores, mask: masked_softmax(scores, mask))
    weights = attend(np.array([[1.0, 1.0, 5.0]], "float32"), np.array([[1.0, 1.0, 0.0]], "float32"))
    np.testing.assert_allclose(to_numpy(weights), [[0.5, 0.5, 0.0]], atol=1e-7)


def attend(query_shape, key_shape, value_shape, **kwargs):
    """`scaled_dot_product_attention` on zeros of the given shapes."""
    zeros = (np.zeros(shape, "float32") for shape in (query_shape, key_shape, value_shape))
    return scaled_dot_product_attention(*zeros, **kwargs)


ZEROS = np.zeros((1, 2, 3), "float32")
FUNCTION_ERRORS = [
    error_case("mismatched d", lambda: attend((1, 2, 3), (1, 4, 5), (1, 4, 5)), ValueError, "query"),
    error_case("mismatched S", lambda: attend((1, 2, 3), (1, 4, 3), (1, 5, 3)), ValueError, "value"),
    error_case("query rank 1", lambda: attend((3,), (4, 3), (4, 3)), ValueError, "query"),
    error_case("value rank 1", lambda: attend((2, 3), (4, 3), (4,)), ValueError, "value"),
    error_case("d = 0", lambda: attend((1, 2, 0), (1, 4, 0), (1, 4, 3)), ValueError, "query"),
    error_case("query None", lambda: scaled_dot_product_attention(None, ZEROS, ZEROS), TypeError, "query"),
    error_case("key strings", lambda: scaled_dot_product_attention(ZEROS, "key", ZEROS), TypeError, "key"),
    error_case("scale string", lambda: attend((1, 2, 3), (1, 4, 3), (1, 4, 3), scale="0.5"), TypeError, "scale"),
    error_case("scale nan", lambda: attend((1, 2, 3), (1, 4, 3), (1, 4, 3), scale=float("nan")), ValueError, "scale"),
    error_case(
        "mask not broadcastable",
        lambda: attend((1, 2, 3), (1, 4, 3), (1, 4, 3), mask=np.ones((1, 2, 5), bool)), ValueError, "mask",
    ),
    error_case(
        "mask rank too high",
        lambda: attend((2, 3), (4, 3), (4, 3), mask=np.ones((1, 1, 2, 4), bool)), ValueError, "mask",
    ),
    error_case(
        "mask of 0.5", lambda: attend((1, 2, 3), (1, 4, 3), (1, 4, 3), mask=np.full((1, 2, 4), 0.5)), ValueError, "mask",
    ),
    error_case(
        "mask with NaN",
        lambda: attend((1, 1, 3), (1, 2, 3), (1, 2, 3), mask=np.array([[[np.nan, 1.0]]])), ValueError, "mask",
    ),
    error_case(
        "additive mask",
        lambda: attend((1, 1, 3), (1, 2, 3), (1, 2, 3), mask=np.array([[[0.0, -np.inf]]])), ValueError, "mask",
    ),
    error_case("mask strings", lambda: masked_softmax(np.zeros((1, 2)), [["yes", "no"]]), TypeError, "mask"),
]


@pytest.mark.parametrize("make, exception, name", FUNCTION_ERRORS)
def test_function_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_an_additive_mask_is_refused_with_the_conversion():
    additive = np.array([[0.0, -np.inf, 0.0]])
    with pytest.raises(ValueError, match=r"additive_mask == 0"):
        masked_softmax(np.zeros((1, 3)), additive)
    converted = to_numpy(masked_softmax(np.zeros((1, 3)), additive == 0))
    np.testing.assert_array_equal(converted, [[0.5, 0.0, 0.5]])


@pytest.mark.skipif(not ON_TENSORFLOW, reason="only TensorFlow traces functions with unknown dimensions")
def test_function_needs_a_scale_when_d_is_unknown():
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, None), tf.float32)

    @tf.function(input_signature=[spec, spec, spec])
    def attend_default(q, k, v):
        return scaled_dot_product_attention(q, k, v)[0]

    with raises_naming(ValueError, "query"):
        attend_default.get_concrete_function()

    @tf.function(input_signature=[spec, spec, spec])
    def attend_with_scale(q, k, v):
        return scaled_dot_product_attention(q, k, v, scale=0.5)[0]

    query, key, value = random_qkv()
    expected, _ = scaled_dot_product_attention(query, key, value, scale=0.5)
    np.testing.assert_allclose(to_numpy(attend_with_scale(query, key, value)), to_numpy(expected), atol=1e-6)


def test_function_compiles_on_every_backend():
    query, key, value = random_qkv()
    attend_compiled = compiled(lambda q, k, v, m: scaled_dot_product_attention(q, k, v, mask=m)[0])
    expected, _ = numpy_attention(query, key, value, mask=RANDOM)
    np.testing.assert_allclose(to_numpy(attend_compiled(query, key, value, RANDOM)), expected, atol=1e-5)


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
    make_layer = lambda: ScaledDotProductAttention(dropout=dropout, seed=3)  # noqa: E731
    outputs = check_layer(make_layer, inputs, call_kwargs, tmp_path=tmp_path)
    mask = masks.compute_attention_mask(
        inputs["query"], inputs["value"], attention_mask=inputs.get("attention_mask"),
        use_causal_mask=call_kwargs.get("use_causal_mask", False),
    )
    key = inputs.get("key", inputs["value"])
    expected, weights = numpy_attention(inputs["query"], key, inputs["value"], mask=None if mask is None else to_numpy(mask))
    output = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)
    if call_kwargs.get("return_attention_scores"):
        np.testing.assert_allclose(to_numpy(outputs[1]), weights, atol=1e-6)


def test_layer_agrees_with_keras_dot_product_attention():
    query, key, value = random_qkv(dv=D)
    output = ScaledDotProductAttention()(query, value, key=key, attention_mask=RANDOM)
    np.testing.assert_allclose(to_numpy(output), keras_fused(query, key, value, RANDOM), atol=1e-5)


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
    np.testing.assert_allclose(to_numpy(output), to_numpy(expected), atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights), to_numpy(expected_weights), atol=1e-6)
    np.testing.assert_array_equal(to_numpy(output)[1, 2:], 0.0)  # padded queries attend to nothing
    np.testing.assert_array_equal(to_numpy(weights)[0, :, 3], 0.0)  # nobody attends to padding
    np.testing.assert_array_equal(to_numpy(output._keras_mask), to_numpy(mask))  # query's mask kept


def test_layer_propagates_the_mask_in_a_model():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, D, mask_zero=True)(tokens)
    x = ScaledDotProductAttention()(x, x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # uses the mask: averages real tokens only
    model = keras.Model(tokens, pooled)
    ids = np.array([[3, 1, 0, 0], [3, 1, 5, 0]])
    short = model(np.array([[3, 1]]))
    np.testing.assert_allclose(to_numpy(model(ids))[0], to_numpy(short)[0], atol=1e-6)


def test_layer_fully_masked_query_gives_zeros_and_finite_gradients():
    query, key, value = random_qkv()
    mask = np.ones((B, T, S), bool)
    mask[1, 0] = False
    layer = ScaledDotProductAttention()
    output = to_numpy(layer(query, value, key=key, attention_mask=mask))
    np.testing.assert_array_equal(output[1, 0], 0.0)
    (gradient,) = gradients(lambda q: ops.sum(layer(q, value, key=key, attention_mask=mask)), query)
    assert np.isfinite(gradient).all()


def test_layer_masking_is_exact_whatever_the_scores():
    query = np.ones((1, 1, 1), "float32")
    key = np.array([[[-8e4], [-8e4], [0.0]]], "float32")  # scores -8e4, -8e4, 0 (d = 1)
    value = np.array([[[1.0], [3.0], [100.0]]], "float32")
    output, weights = ScaledDotProductAttention()(
        query, value, key=key, attention_mask=np.array([[[True, True, False]]]), return_attention_scores=True
    )
    np.testing.assert_array_equal(to_numpy(weights), [[[0.5, 0.5, 0.0]]])
    np.testing.assert_array_equal(to_numpy(output), [[[2.0]]])


def test_layer_dropout_only_in_training():
    query, key, value = random_qkv()
    layer = ScaledDotProductAttention(dropout=0.5)
    inference = layer(query, value, key=key, training=False)
    expected, _ = numpy_attention(query, key, value)
    np.testing.assert_allclose(to_numpy(inference), expected, atol=1e-5)
    training, weights = layer(query, value, key=key, training=True, return_attention_scores=True)
    assert np.abs(to_numpy(training) - expected).max() > 1e-3
    assert_attention_weights(weights)  # the weights before dropout


def test_layer_dropout_seed_makes_training_repeatable():
    query, key, value = random_qkv()

    def trained_output(seed):
        return to_numpy(ScaledDotProductAttention(dropout=0.5, seed=seed)(query, value, key=key, training=True))

    np.testing.assert_array_equal(trained_output(7), trained_output(7))
    assert not np.allclose(trained_output(7), trained_output(8))


def test_layer_integer_inputs_are_computed_in_floating_point():
    ints = np.array([[[0, 1, 2], [3, 4, 5]]], "int32")
    output, weights = ScaledDotProductAttention()(ints, ints, return_attention_scores=True)
    expected_output, expected_weights = numpy_attention(ints, ints, ints)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    np.testing.assert_allclose(to_numpy(output), expected_output, atol=1e-5)


def test_layer_takes_masks_as_lists_and_zero_one_floats():
    query, key, value = random_qkv()
    layer = ScaledDotProductAttention()
    expected = to_numpy(layer(query, value, key=key, attention_mask=RANDOM))
    as_list = to_numpy(layer(query, value, key=key, attention_mask=RANDOM.tolist()))
    as_float = to_numpy(layer(query, value, key=key, attention_mask=RANDOM.astype("float32")))
    np.testing.assert_array_equal(as_list, expected)
    np.testing.assert_array_equal(as_float, expected)


def test_layer_output_shapes():
    layer = ScaledDotProductAttention()
    assert layer.compute_output_shape((None, 4, 8), (None, 6, 3), (None, 6, 8)) == (None, 4, 3)
    q, v, k = keras.Input((4, 8)), keras.Input((6, 3)), keras.Input((6, 8))
    output, weights = layer(q, v, key=k, return_attention_scores=True)
    assert output.shape == (None, 4, 3) and weights.shape == (None, 4, 6)
    assert ScaledDotProductAttention()(q, keras.Input((6, 8))).shape == (None, 4, 8)


def test_layer_has_no_weights_and_is_registered():
    layer = ScaledDotProductAttention(dropout=0.1, seed=2, name="sdpa")
    layer(*random_qkv(d=D, dv=D)[:2])
    assert layer.weights == []
    assert layer.get_config()["dropout"] == 0.1 and layer.get_config()["seed"] == 2
    registered = keras.saving.get_registered_object("course_lib>ScaledDotProductAttention")
    assert registered is ScaledDotProductAttention


def test_layer_loads_a_config_saved_before_it_had_a_seed():
    old = {  # ScaledDotProductAttention(dropout=0.3).get_config() before `seed` existed
        "name": "scaled_dot_product_attention", "trainable": True, "dropout": 0.3,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
    }
    layer = ScaledDotProductAttention.from_config(old)
    assert layer.dropout == 0.3 and layer.seed is None
    assert {**old, "seed": None} == layer.get_config()


def attend_with_layer(query_shape, value_shape, key_shape=None, **kwargs):
    """`ScaledDotProductAttention()` on zeros of the given shapes; `kwargs` go to the call."""
    key = None if key_shape is None else np.zeros(key_shape, "float32")
    return ScaledDotProductAttention()(np.zeros(query_shape, "float32"), np.zeros(value_shape, "float32"), key=key, **kwargs)


LAYER_ERRORS = [
    error_case("dropout 1", lambda: ScaledDotProductAttention(dropout=1.0), ValueError, "dropout"),
    error_case("dropout negative", lambda: ScaledDotProductAttention(dropout=-0.1), ValueError, "dropout"),
    error_case("dropout string", lambda: ScaledDotProductAttention(dropout="0.1"), TypeError, "dropout"),
    error_case("seed float", lambda: ScaledDotProductAttention(dropout=0.1, seed=1.5), TypeError, "seed"),
    error_case("query rank 2", lambda: attend_with_layer((2, 3), (2, 4, 3)), ValueError, "query"),
    error_case("value rank 4", lambda: attend_with_layer((2, 3, 4), (2, 1, 3, 4)), ValueError, "value"),
    error_case("query None", lambda: ScaledDotProductAttention()(None, np.zeros((1, 2, 3))), TypeError, "query"),
    error_case("mismatched d", lambda: attend_with_layer((2, 3, 4), (2, 5, 6)), ValueError, "key"),
    error_case("d = 0", lambda: attend_with_layer((2, 3, 0), (2, 5, 0)), ValueError, "query"),
    error_case("mismatched Tv", lambda: attend_with_layer((2, 3, 4), (2, 5, 4), key_shape=(2, 6, 4)), ValueError, "value"),
    error_case("batch 2 against 3", lambda: attend_with_layer((2, 3, 4), (3, 5, 4)), ValueError, "query"),
    error_case("batch 2 against 1", lambda: attend_with_layer((2, 3, 4), (1, 5, 4)), ValueError, "query"),
    error_case(
        "key batch 1", lambda: attend_with_layer((2, 3, 4), (2, 5, 4), key_shape=(1, 5, 4)), ValueError, "key",
    ),
    error_case(
        "value_mask length",
        lambda: attend_with_layer((2, 3, 4), (2, 5, 4), value_mask=np.ones((2, 3), bool)), ValueError, "value_mask",
    ),
    error_case(
        "value_mask (S,)",
        lambda: attend_with_layer((2, 3, 4), (2, 5, 4), value_mask=np.ones(5, bool)), ValueError, "value_mask",
    ),
    error_case(
        "attention_mask shape",
        lambda: attend_with_layer((2, 3, 4), (2, 5, 4), attention_mask=np.ones((2, 3, 4), bool)),
        ValueError, "attention_mask",
    ),
    error_case(
        "attention_mask of 0.5",
        lambda: attend_with_layer((2, 3, 4), (2, 5, 4), attention_mask=np.full((2, 3, 5), 0.5)),
        ValueError, "attention_mask",
    ),
    error_case(
        "use_causal_mask string",
        lambda: attend_with_layer((2, 3, 4), (2, 3, 4), use_causal_mask="False"), TypeError, "use_causal_mask",
    ),
]


@pytest.mark.parametrize("make, exception, name", LAYER_ERRORS)
def test_layer_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_layer_keeps_the_widths_it_was_built_for():
    layer = ScaledDotProductAttention()
    layer(np.zeros((1, 2, 4), "float32"), np.zeros((1, 3, 4), "float32"))
    with pytest.raises(ValueError, match="was built for query width 4"):
        layer(np.zeros((1, 2, 6), "float32"), np.zeros((1, 3, 6), "float32"))


def test_layer_causal_in_a_compiled_model_of_unknown_length():
    # Inside a compiled predict the lengths may be dynamic; a causal prefix of a sequence
    # must give the same outputs as the whole sequence on its first positions.
    x = keras.Input((None, D))
    model = keras.Model(x, ScaledDotProductAttention()(x, x, use_causal_mask=True))
    sequence = random_qkv()[0]  # (B, T, D)
    whole = model.predict(sequence, verbose=0)
    prefix = model.predict(sequence[:, :2], verbose=0)
    np.testing.assert_allclose(whole[:, :2], prefix, atol=1e-6)


# --- the base layer: one contract for every single-head layer --------------


@keras.saving.register_keras_serializable(package="course_lib_tests")
class LocationAttention(ScoredAttention):
    """Luong's location score: `scores = query @ W`, `W` of shape (dim, Tv); the
    keys' contents play no part (what lesson 06 builds)."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def build_score(self, query_shape, key_shape):
        self.kernel = self.add_weight(name="kernel", shape=(query_shape[-1], self.length))

    def compute_scores(self, query, key):
        return ops.matmul(query, self.kernel)  # (batch_size, Tq, dim) @ (dim, Tv) -> (batch_size, Tq, Tv)

    def get_config(self):
        return {**super().get_config(), "length": self.length}


def test_a_subclass_that_writes_only_its_score_gets_everything_else(tmp_path):
    query, key, value = random_qkv()
    inputs = {"query": query, "value": value, "key": key, "attention_mask": RANDOM}
    outputs = check_layer(
        lambda: LocationAttention(S, dropout=0.2, seed=1), inputs, dict(return_attention_scores=True), tmp_path=tmp_path
    )
    weights = to_numpy(outputs[1])
    assert_attention_weights(weights, RANDOM)
    layer = LocationAttention(S)
    output, weights = layer(query, value, key=key, attention_mask=RANDOM, return_attention_scores=True)
    scores = query @ to_numpy(layer.kernel)
    np.testing.assert_allclose(to_numpy(weights), numpy_softmax(scores, mask=RANDOM), atol=1e-6)
    np.testing.assert_allclose(to_numpy(output), numpy_softmax(scores, mask=RANDOM) @ value, atol=1e-5)
    # The keys' contents play no part in this score.
    other_keys = layer(query, value, key=key * 0 + 5, attention_mask=RANDOM)
    np.testing.assert_allclose(to_numpy(other_keys), to_numpy(output), atol=1e-6)


def test_a_subclass_without_a_score_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="compute_scores"):
        ScoredAttention()(*random_qkv()[:2])


@pytest.mark.parametrize(
    "layer_class", [ScaledDotProductAttention, AdditiveAttention, LuongAttention], ids=lambda c: c.__name__
)
def test_every_single_head_layer_is_a_scored_attention(layer_class):
    assert issubclass(layer_class, ScoredAttention)
    assert layer_class.call is ScoredAttention.call  # one mask path, one dropout
    assert layer_class.compute_output_spec is ScoredAttention.compute_output_spec


def test_the_old_bridges_are_gone():
    assert not hasattr(attention, "attention_output_spec")
    assert not hasattr(attention, "_large_negative")
    from course_lib import scoring

    assert not hasattr(scoring, "_ScoredAttention")


def test_one_key_gives_weight_one_without_a_warning(recwarn):
    """A decoder's first step has one key: weight 1 (0 if masked), and no Keras warning."""
    from course_lib.attention import masked_softmax

    scores = np.array([[[3.0]], [[-2.0]]], dtype="float32")  # (2, 1, 1)
    weights = masked_softmax(scores, np.array([[[True]], [[False]]]))
    np.testing.assert_array_equal(to_numpy(weights), [[[1.0]], [[0.0]]])
    np.testing.assert_array_equal(to_numpy(masked_softmax(scores)), np.ones((2, 1, 1)))
    assert not [w for w in recwarn if "axis of size 1" in str(w.message)]
