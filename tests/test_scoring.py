"""Tests of course_lib.scoring: AdditiveAttention and LuongAttention (lesson 02)."""

import keras
import numpy as np
import pytest

from course_lib.layers import AdditiveAttention, LuongAttention
from tests.helpers import assert_attention_weights, error_case, numpy_softmax, raises_naming, to_numpy
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


def numpy_scores(layer, query, key):
    """The scores written directly from the formulas, with the layer's weights."""
    w = {v.path.split("/")[-1]: to_numpy(v) for v in layer.weights}
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
    output, weights = to_numpy(layer(QUERY, VALUE, key=key, value_mask=VALUE_MASK, return_attention_scores=True))
    assert output.shape == (2, 3, 6) and weights.shape == (2, 3, 5)

    scores = numpy_scores(layer, QUERY.astype("float64"), key.astype("float64"))
    expected = numpy_softmax(scores, mask=VALUE_MASK[:, None, :])
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    np.testing.assert_allclose(output, expected @ VALUE, atol=1e-5)
    assert_attention_weights(weights, VALUE_MASK[:, None, :], atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
def test_causal_and_attention_masks_follow_the_one_mask_rule(name):
    make, key = VARIANTS[name]
    layer = make()
    attention_mask = np.random.default_rng(5).random((2, 3, 5)) > 0.4  # (batch_size, Tq, Tv)
    output, weights = to_numpy(layer(
        QUERY, VALUE, key=key, value_mask=VALUE_MASK, attention_mask=attention_mask,
        use_causal_mask=True, return_attention_scores=True,
    ))
    allowed = VALUE_MASK[:, None, :] & attention_mask & np.tril(np.ones((3, 5), bool))
    expected = numpy_softmax(numpy_scores(layer, QUERY.astype("float64"), key.astype("float64")), mask=allowed)
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    np.testing.assert_allclose(output, expected @ VALUE, atol=1e-5)
    assert_attention_weights(weights, allowed, atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
def test_fully_masked_row_and_padded_query_give_zeros(name):
    make, key = VARIANTS[name]
    value_mask = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    query_mask = np.array([[1, 1, 1], [1, 0, 1]], dtype=bool)
    output, weights = to_numpy(make()(
        QUERY, VALUE, key=key, query_mask=query_mask, value_mask=value_mask, return_attention_scores=True
    ))
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
    output, weights, pooled = to_numpy(model([tokens, targets]))
    assert np.all(weights[0, :2, 3:] == 0.0), "padded source positions must get weight 0"
    assert np.all(weights[0, 2] == 0.0) and np.all(output[0, 2] == 0.0), "padded target position"
    np.testing.assert_allclose(weights[0, :2].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pooled[0], output[0, :2].mean(0), atol=1e-6)


def test_output_keeps_the_query_mask_eagerly():
    query = keras.layers.Embedding(10, 4, mask_zero=True)(np.array([[1, 2, 0]]))
    value = keras.layers.Embedding(10, 4, mask_zero=True)(np.array([[3, 0, 0, 0, 0]]))
    output, weights = LuongAttention()(query, value, return_attention_scores=True)
    np.testing.assert_array_equal(to_numpy(output._keras_mask), [[True, True, False]])
    np.testing.assert_allclose(to_numpy(weights)[0, :2], [[1, 0, 0, 0, 0]] * 2)


def test_dot_score_equals_keras_attention():
    ours = LuongAttention("dot")
    theirs = keras.layers.Attention()
    query_mask = np.array([[1, 1, 1], [1, 1, 0]], dtype=bool)
    expected = theirs([QUERY, VALUE, KEY4], mask=[query_mask, VALUE_MASK])
    received = ours(QUERY, VALUE, key=KEY4, query_mask=query_mask, value_mask=VALUE_MASK)
    np.testing.assert_allclose(to_numpy(received), to_numpy(expected), atol=1e-6)


def test_causal_dot_score_equals_keras_attention():
    x = QUERY
    expected = keras.layers.Attention()([x, x], use_causal_mask=True)
    received = LuongAttention("dot")(x, x, use_causal_mask=True)
    np.testing.assert_allclose(to_numpy(received), to_numpy(expected), atol=1e-6)


def test_additive_equals_keras_additive_attention_with_identity_projections():
    # Keras scores sum(scale * tanh(q + k)): ours with W_q = W_k = I, b = 0, v = scale.
    theirs = keras.layers.AdditiveAttention()
    expected = theirs([QUERY, VALUE, KEY4], mask=[None, VALUE_MASK])
    ours = AdditiveAttention(4)
    ours(QUERY, VALUE, key=KEY4)  # build
    ours.set_weights([np.eye(4), np.eye(4), np.zeros(4), theirs.get_weights()[0]])
    received = ours(QUERY, VALUE, key=KEY4, value_mask=VALUE_MASK)
    np.testing.assert_allclose(to_numpy(received), to_numpy(expected), atol=1e-6)


def test_concat_score_is_additive_attention_without_bias():
    concat = LuongAttention("concat", units=7)
    additive = AdditiveAttention(7, use_bias=False)
    expected = concat(QUERY, VALUE, key=KEY3)
    additive(QUERY, VALUE, key=KEY3)  # build
    kernel, score_vector = concat.get_weights()
    additive.set_weights([kernel[:4], kernel[4:], score_vector])
    np.testing.assert_allclose(to_numpy(additive(QUERY, VALUE, key=KEY3)), to_numpy(expected), atol=1e-6)


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
    plain = to_numpy(layer(QUERY, VALUE, key=KEY3))
    again = to_numpy(layer(QUERY, VALUE, key=KEY3, training=False))
    dropped = to_numpy(layer(QUERY, VALUE, key=KEY3, training=True))
    np.testing.assert_allclose(plain, again)
    assert not np.allclose(plain, dropped)


def test_dropout_seed_makes_training_repeatable():
    def trained_output(seed):
        layer = AdditiveAttention(4, dropout=0.5, seed=seed, kernel_initializer="ones")
        return to_numpy(layer(QUERY, VALUE, key=KEY3, training=True))

    np.testing.assert_array_equal(trained_output(3), trained_output(3))
    assert not np.allclose(trained_output(3), trained_output(4))


@pytest.mark.parametrize("name", ["luong_dot", "luong_general", "additive"])
def test_integer_inputs_are_computed_in_floating_point(name):
    make, _ = VARIANTS[name]
    ints = np.array([[[0, 1, 2, 1], [3, 1, 0, 2]]], "int32")  # (1, Tq=2, 4)
    layer = make()
    received = to_numpy(layer(ints, ints, key=ints if name != "additive" else ints[..., :3]))
    expected = to_numpy(layer(ints.astype("float32"), ints.astype("float32"),
                              key=(ints if name != "additive" else ints[..., :3]).astype("float32")))
    np.testing.assert_allclose(received, expected, atol=1e-6)


def test_layers_load_configs_saved_before_the_one_base():
    initializer = {"module": "keras.initializers", "class_name": "GlorotUniform",
                   "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    old_additive = {"name": "additive_attention", "trainable": True, "dtype": dtype, "dropout": 0.2, "seed": 3,
                    "units": 6, "use_bias": True, "kernel_initializer": initializer,
                    "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                         "registered_name": None}}
    old_luong = {"name": "luong_attention", "trainable": True, "dtype": dtype, "dropout": 0.0, "seed": None,
                 "score": "dot", "units": None, "scale": 0.5, "kernel_initializer": initializer}
    for layer_class, config in ((AdditiveAttention, old_additive), (LuongAttention, old_luong)):
        assert layer_class.from_config(config).get_config() == config


CONSTRUCTOR_ERRORS = [
    error_case("units=0", lambda: AdditiveAttention(0), ValueError, "units"),
    error_case("units=2.5", lambda: AdditiveAttention(2.5), TypeError, "units"),
    error_case("units=True", lambda: AdditiveAttention(True), TypeError, "units"),
    error_case("dropout=1.0", lambda: AdditiveAttention(4, dropout=1.0), ValueError, "dropout"),
    error_case("dropout=-0.1", lambda: AdditiveAttention(4, dropout=-0.1), ValueError, "dropout"),
    error_case("use_bias='yes'", lambda: AdditiveAttention(4, use_bias="yes"), TypeError, "use_bias"),
    error_case("score='cosine'", lambda: LuongAttention("cosine"), ValueError, "score"),
    error_case("concat units=None", lambda: LuongAttention("concat"), ValueError, "units"),
    error_case("concat units=-3", lambda: LuongAttention("concat", units=-3), ValueError, "units"),
    error_case("dot units=4", lambda: LuongAttention("dot", units=4), ValueError, "units"),
    error_case("scale=0", lambda: LuongAttention("dot", scale=0), ValueError, "scale"),
    error_case("scale='big'", lambda: LuongAttention("dot", scale="big"), TypeError, "scale"),
    error_case("seed='a'", lambda: LuongAttention("dot", seed="a", dropout=0.1), TypeError, "seed"),
]


@pytest.mark.parametrize("make, exception, name", CONSTRUCTOR_ERRORS)
def test_bad_constructor_arguments_name_the_argument(make, exception, name):
    with raises_naming(exception, name) as error:
        make()
    assert f"Received: {name}=" in str(error.value)


def test_numpy_scalars_are_accepted():
    layer = LuongAttention("concat", units=np.int64(3), scale=np.float32(0.5), dropout=np.float64(0.1), seed=np.int32(2))
    assert (layer.units, layer.scale, layer.dropout, layer.seed) == (3, 0.5, 0.1, 2)


def call_with(layer, query=QUERY, value=VALUE, key=None, **kwargs):
    return layer(query, value, key=key, **kwargs)


INPUT_ERRORS = [
    error_case("dot widths", lambda: call_with(LuongAttention("dot"), key=KEY3), ValueError, "query"),
    error_case("query rank", lambda: call_with(AdditiveAttention(4), query=QUERY[0]), ValueError, "query"),
    error_case("value rank", lambda: call_with(AdditiveAttention(4), value=VALUE[0]), ValueError, "value"),
    error_case("key-value lengths", lambda: call_with(AdditiveAttention(4), key=KEY3[:, :4]), ValueError, "key"),
    error_case("batch 2 against 3", lambda: call_with(AdditiveAttention(4), value=np.zeros((3, 5, 6), "float32")),
               ValueError, "value"),
    error_case("batch 2 against 1", lambda: call_with(LuongAttention("general"), value=VALUE[:1]), ValueError, "value"),
    error_case("value_mask (Tv,)", lambda: call_with(AdditiveAttention(4), value_mask=VALUE_MASK[0]),
               ValueError, "value_mask"),
    error_case("value_mask of 0.5", lambda: call_with(LuongAttention("general"), key=KEY3, value_mask=VALUE_MASK * 0.5),
               ValueError, "value_mask"),
    error_case("attention_mask shape", lambda: call_with(AdditiveAttention(4), attention_mask=np.ones((2, 3, 4), bool)),
               ValueError, "attention_mask"),
]


@pytest.mark.parametrize("make, exception, name", INPUT_ERRORS)
def test_bad_inputs_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_dot_width_error_reads_as_in_lesson_02():
    # Lesson 02 prints this message; its stored output must not change.
    with pytest.raises(ValueError) as error:
        LuongAttention("dot")(np.zeros((2, 4, 8), "float32"), np.zeros((2, 5, 6), "float32"))
    assert (
        "score='dot' needs `query` and `key` of the same width (last dimension); use score='general' or "
        "'concat' otherwise. Received: query with shape (2, 4, 8) and key with shape (2, 5, 6)"
    ) in str(error.value)


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
    assert_attention_weights(weights, (VALUE_MASK & key_mask)[:, None, :], atol=1e-6)
