"""Tests of course_lib.scoring: AdditiveAttention and LuongAttention (lesson 02)."""

import keras
import numpy as np
import pytest

from course_lib.layers import AdditiveAttention, LuongAttention
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")  # (batch_size, Tq, dim_q)
VALUE = RNG.normal(size=(2, 5, 6)).astype("float32")  # (batch_size, Tv, dim_v)
KEY4 = RNG.normal(size=(2, 5, 4)).astype("float32")  # (batch_size, Tv, dim_k = dim_q)
KEY3 = RNG.normal(size=(2, 5, 3)).astype("float32")  # (batch_size, Tv, dim_k != dim_q)
# Second sequence: the last two value positions are padding.
VALUE_MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)

VARIANTS = {
    "additive": (lambda: AdditiveAttention(8, bias_initializer="random_normal"), KEY3),
    "additive_no_bias": (lambda: AdditiveAttention(5, use_bias=False), KEY3),
    "luong_dot": (lambda: LuongAttention("dot"), KEY4),
    "luong_dot_scaled": (lambda: LuongAttention("dot", scale=0.5), KEY4),
    "luong_general": (lambda: LuongAttention("general"), KEY3),
    "luong_concat": (lambda: LuongAttention("concat", units=7), KEY3),
}


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_scores(layer, query, key):
    """The scores written directly from the formulas, with the layer's weights."""
    w = {v.path.split("/")[-1]: keras.ops.convert_to_numpy(v) for v in layer.weights}
    if isinstance(layer, AdditiveAttention):
        hidden = np.tanh((query @ w["query_kernel"] + w.get("bias", 0.0))[:, :, None] + (key @ w["key_kernel"])[:, None])
        return hidden @ w["score_vector"]
    if layer.score == "dot":
        scores = np.einsum("bqd,bkd->bqk", query, key)
    elif layer.score == "general":
        scores = np.einsum("bqd,de,bke->bqk", query, w["kernel"], key)
    else:  # concat: v^T tanh(W [q; k]) for every pair, written with the concatenation
        pairs = np.concatenate(
            [np.repeat(query[:, :, None], key.shape[1], 2), np.repeat(key[:, None], query.shape[1], 1)], axis=-1
        )  # (batch_size, Tq, Tv, dim_q + dim_k)
        scores = np.tanh(pairs @ w["kernel"]) @ w["score_vector"]
    return scores * (layer.scale or 1.0)


@pytest.mark.parametrize("name", VARIANTS)
def test_standard_layer_checks(name, tmp_path):
    make, key = VARIANTS[name]
    check_layer(make, {"query": QUERY, "value": VALUE, "key": key}, tmp_path=tmp_path, atol=1e-5)


@pytest.mark.parametrize("name", ["additive", "luong_dot", "luong_concat"])
def test_standard_layer_checks_without_key(name, tmp_path):
    make, _ = VARIANTS[name]
    query = QUERY if name != "additive" else QUERY[..., :3]
    value = VALUE[..., : query.shape[-1]] if name == "luong_dot" else VALUE
    check_layer(make, {"query": query, "value": value}, tmp_path=tmp_path, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_matches_the_numpy_formula_and_masks_padding(name):
    make, key = VARIANTS[name]
    layer = make()
    output, weights = layer(QUERY, VALUE, key=key, value_mask=VALUE_MASK, return_attention_scores=True)
    output, weights = np.asarray(output), np.asarray(weights)
    assert output.shape == (2, 3, 6) and weights.shape == (2, 3, 5)

    scores = numpy_scores(layer, QUERY.astype("float64"), key.astype("float64"))
    expected = np.zeros_like(scores)
    expected[0] = softmax(scores[0])
    expected[1, :, :3] = softmax(scores[1, :, :3])
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    np.testing.assert_allclose(output, expected @ VALUE, atol=1e-5)
    assert np.all(weights[1, :, 3:] == 0.0), "padded positions must get weight exactly 0"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
def test_fully_masked_row_and_padded_query_give_zeros(name):
    make, key = VARIANTS[name]
    value_mask = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    query_mask = np.array([[1, 1, 1], [1, 0, 1]], dtype=bool)
    output, weights = make()(
        QUERY, VALUE, key=key, query_mask=query_mask, value_mask=value_mask, return_attention_scores=True
    )
    output, weights = np.asarray(output), np.asarray(weights)
    assert not np.isnan(output).any() and not np.isnan(weights).any()
    assert np.all(weights[0] == 0.0) and np.all(output[0] == 0.0), "nothing to attend to -> zeros"
    assert np.all(weights[1, 1] == 0.0) and np.all(output[1, 1] == 0.0), "padded query -> zeros"
    np.testing.assert_allclose(weights[1, [0, 2]].sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ["additive", "luong_general"])
def test_embedding_mask_propagates_through_a_model(name):
    make, _ = VARIANTS[name]
    source = keras.Input((5,), dtype="int32", name="source")
    target = keras.Input((3,), dtype="int32", name="target")
    value = keras.layers.Embedding(10, 6, mask_zero=True)(source)
    query = keras.layers.Embedding(10, 4, mask_zero=True)(target)
    output, weights = make()(query, value, return_attention_scores=True)
    # A masked average over the target positions: uses the output mask (the query's).
    pooled = keras.layers.GlobalAveragePooling1D()(output)
    model = keras.Model([source, target], [output, weights, pooled])

    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    targets = np.array([[1, 2, 0], [3, 4, 5]])
    output, weights, pooled = (np.asarray(x) for x in model([tokens, targets]))
    assert np.all(weights[0, :2, 3:] == 0.0), "padded source positions must get weight 0"
    assert np.all(weights[0, 2] == 0.0) and np.all(output[0, 2] == 0.0), "padded target position"
    np.testing.assert_allclose(weights[0, :2].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pooled[0], output[0, :2].mean(0), atol=1e-6)


def test_output_keeps_the_query_mask_eagerly():
    query = keras.layers.Embedding(10, 4, mask_zero=True)(np.array([[1, 2, 0]]))
    value = keras.layers.Embedding(10, 4, mask_zero=True)(np.array([[3, 0, 0, 0, 0]]))
    output, weights = LuongAttention()(query, value, return_attention_scores=True)
    np.testing.assert_array_equal(np.asarray(output._keras_mask), [[True, True, False]])
    np.testing.assert_allclose(np.asarray(weights)[0, :2], [[1, 0, 0, 0, 0]] * 2)


def test_dot_score_equals_keras_attention():
    ours = LuongAttention("dot")
    theirs = keras.layers.Attention()
    query_mask = np.array([[1, 1, 1], [1, 1, 0]], dtype=bool)
    expected = theirs([QUERY, VALUE, KEY4], mask=[query_mask, VALUE_MASK])
    received = ours(QUERY, VALUE, key=KEY4, query_mask=query_mask, value_mask=VALUE_MASK)
    np.testing.assert_allclose(np.asarray(received), np.asarray(expected), atol=1e-6)


def test_additive_equals_keras_additive_attention_with_identity_projections():
    # Keras scores sum(scale * tanh(q + k)): ours with W_q = W_k = I, b = 0, v = scale.
    theirs = keras.layers.AdditiveAttention()
    expected = theirs([QUERY, VALUE, KEY4], mask=[None, VALUE_MASK])
    ours = AdditiveAttention(4)
    ours(QUERY, VALUE, key=KEY4)  # build
    ours.set_weights([np.eye(4), np.eye(4), np.zeros(4), theirs.get_weights()[0]])
    received = ours(QUERY, VALUE, key=KEY4, value_mask=VALUE_MASK)
    np.testing.assert_allclose(np.asarray(received), np.asarray(expected), atol=1e-6)


def test_concat_score_is_additive_attention_without_bias():
    concat = LuongAttention("concat", units=7)
    additive = AdditiveAttention(7, use_bias=False)
    expected = concat(QUERY, VALUE, key=KEY3)
    additive(QUERY, VALUE, key=KEY3)  # build
    kernel, score_vector = concat.get_weights()
    additive.set_weights([kernel[:4], kernel[4:], score_vector])
    np.testing.assert_allclose(np.asarray(additive(QUERY, VALUE, key=KEY3)), np.asarray(expected), atol=1e-6)


@pytest.mark.parametrize(
    "make, count",
    [
        (lambda: AdditiveAttention(8), (4 + 3 + 1) * 8 + 8),
        (lambda: AdditiveAttention(8, use_bias=False), (4 + 3 + 1) * 8),
        (lambda: LuongAttention("dot"), 0),
        (lambda: LuongAttention("general"), 4 * 3),
        (lambda: LuongAttention("concat", units=8), (4 + 3 + 1) * 8),
    ],
    ids=["additive", "additive_no_bias", "dot", "general", "concat"],
)
def test_parameter_count_formula(make, count):
    layer = make()
    key = KEY4 if getattr(layer, "score", None) == "dot" else KEY3
    layer(QUERY, VALUE, key=key)
    assert layer.count_params() == count


def test_symbolic_shapes_with_and_without_weights():
    query, value = keras.Input((None, 4)), keras.Input((7, 6))
    layer = AdditiveAttention(3)
    output, weights = layer(query, value, return_attention_scores=True)
    assert output.shape == (None, None, 6) and weights.shape == (None, None, 7)
    assert layer(query, value).shape == (None, None, 6)
    assert layer.compute_output_shape((2, 1, 4), (2, 7, 6)) == (2, 1, 6)


def test_dropout_only_in_training():
    layer = LuongAttention("general", dropout=0.5, seed=1)
    plain = np.asarray(layer(QUERY, VALUE, key=KEY3))
    again = np.asarray(layer(QUERY, VALUE, key=KEY3, training=False))
    dropped = np.asarray(layer(QUERY, VALUE, key=KEY3, training=True))
    np.testing.assert_allclose(plain, again)
    assert not np.allclose(plain, dropped)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: AdditiveAttention(0), "units=0"),
        (lambda: AdditiveAttention(2.5), "units=2.5"),
        (lambda: AdditiveAttention(True), "units=True"),
        (lambda: AdditiveAttention(4, dropout=1.0), "dropout=1.0"),
        (lambda: AdditiveAttention(4, dropout=-0.1), "dropout=-0.1"),
        (lambda: AdditiveAttention(4, use_bias="yes"), "use_bias='yes'"),
        (lambda: LuongAttention("cosine"), "score='cosine'"),
        (lambda: LuongAttention("concat"), "units=None"),
        (lambda: LuongAttention("concat", units=-3), "units=-3"),
        (lambda: LuongAttention("dot", units=4), "units=4"),
        (lambda: LuongAttention("dot", scale=0), "scale=0"),
        (lambda: LuongAttention("dot", seed="a", dropout=0.1), "seed='a'"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_bad_constructor_arguments_name_the_argument(make, argument):
    with pytest.raises((ValueError, TypeError), match=argument.replace("(", r"\(")):
        make()


@pytest.mark.parametrize(
    "layer, inputs, message",
    [
        (LuongAttention("dot"), (QUERY, VALUE, KEY3), "score='dot'.*query with shape"),
        (AdditiveAttention(4), (QUERY[0], VALUE, None), "query` must have shape"),
        (AdditiveAttention(4), (QUERY, VALUE[0], None), "value` must have shape"),
        (AdditiveAttention(4), (QUERY, VALUE, KEY3[:, :4]), "same length Tv"),
    ],
    ids=["dot_widths", "query_rank", "value_rank", "key_value_lengths"],
)
def test_bad_inputs_name_the_argument(layer, inputs, message):
    query, value, key = inputs
    with pytest.raises(ValueError, match=message):
        layer(query, value, key=key)


def test_width_change_after_build_is_reported():
    layer = LuongAttention("general")
    layer(QUERY, VALUE, key=KEY3)
    with pytest.raises(ValueError, match="was built for query width 4"):
        layer(QUERY[..., :2], VALUE, key=KEY3)


def test_key_mask_is_combined_with_value_mask():
    key_mask = np.array([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=bool)
    _, weights = LuongAttention("general")(
        QUERY, VALUE, key=KEY3, value_mask=VALUE_MASK, key_mask=key_mask, return_attention_scores=True
    )
    weights = np.asarray(weights)
    assert np.all(weights[0, :, 0] == 0.0) and np.all(weights[1, :, 3:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
