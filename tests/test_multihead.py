"""Tests of course_lib.multihead.MultiHeadAttention (lesson 08): the standard layer
checks, identical outputs to keras.layers.MultiHeadAttention after copying its
weights, a numpy reference, masks, the parameter count and the argument errors.

Keras's own test suite runs against the layer in tests/test_keras_mha_suite.py."""

import json

import keras
import numpy as np
import pytest

from course_lib.layers import MultiHeadAttention
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 5, 6)).astype("float32")  # (B, T, dim_q)
VALUE = RNG.normal(size=(2, 4, 7)).astype("float32")  # (B, S, dim_v)
KEY = RNG.normal(size=(2, 4, 3)).astype("float32")  # (B, S, dim_k)
ATTENTION_MASK = RNG.random((2, 5, 4)) > 0.3  # (B, T, S), True = may attend
ATTENTION_MASK[:, :, 0] = True  # every query may attend to key 0 ...
ATTENTION_MASK[0, 1] = False  # ... except query 1 of sequence 0, which may attend to nothing

CONFIGS = {
    "default": dict(num_heads=2, key_dim=3),
    "value_dim_4": dict(num_heads=2, key_dim=3, value_dim=4),
    "output_shape_8": dict(num_heads=3, key_dim=2, output_shape=8),
    "output_shape_2x3": dict(num_heads=2, key_dim=2, output_shape=(2, 3)),
    "no_bias": dict(num_heads=4, key_dim=2, use_bias=False),
}
CALLS = {
    "self": lambda: dict(query=QUERY, value=QUERY),
    "cross": lambda: dict(query=QUERY, value=VALUE),
    "cross_key": lambda: dict(query=QUERY, value=VALUE, key=KEY),
    "causal": lambda: dict(query=QUERY, value=QUERY, use_causal_mask=True),
    "attention_mask": lambda: dict(query=QUERY, value=VALUE, key=KEY, attention_mask=ATTENTION_MASK),
    "mask_and_causal": lambda: dict(query=QUERY, value=VALUE, attention_mask=ATTENTION_MASK, use_causal_mask=True),
}


def pair(config, inputs, bias_initializer="random_normal"):
    """A Keras layer and ours, built on `inputs`, ours holding Keras's weights."""
    theirs = keras.layers.MultiHeadAttention(**config, bias_initializer=bias_initializer)
    ours = MultiHeadAttention(**config)
    tensors = {k: v for k, v in inputs.items() if k in ("query", "value", "key")}
    theirs(**tensors)
    ours(**tensors)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def numpy_(x):
    return keras.ops.convert_to_numpy(x)


def allowed_rows(inputs):
    """(B, T) boolean: the queries that may attend to at least one key."""
    b, t, s = inputs["query"].shape[0], inputs["query"].shape[1], inputs["value"].shape[1]
    mask = np.ones((b, t, s), bool)
    if "attention_mask" in inputs:
        mask &= inputs["attention_mask"]
    if inputs.get("use_causal_mask"):
        mask &= np.tril(np.ones((t, s), bool))
    return mask.any(-1)


# --- the standard checks -------------------------------------------------------------


@pytest.mark.parametrize(
    "config, call_kwargs, inputs",
    [
        (dict(num_heads=2, key_dim=3), {}, {"query": QUERY, "value": QUERY}),
        (dict(num_heads=2, key_dim=3, value_dim=4, output_shape=5), {}, {"query": QUERY, "value": VALUE, "key": KEY}),
        (dict(num_heads=2, key_dim=2, use_bias=False), {"use_causal_mask": True}, {"query": QUERY, "value": QUERY}),
        (dict(num_heads=2, key_dim=2, output_shape=(2, 3)), {"return_attention_scores": True}, {"query": QUERY, "value": VALUE}),
    ],
    ids=["self_attention", "cross_attention_value_dim_output_shape", "causal_no_bias", "output_shape_2x3_with_scores"],
)
def test_standard_layer_checks(config, call_kwargs, inputs, tmp_path):
    check_layer(lambda: MultiHeadAttention(**config), inputs, call_kwargs, tmp_path=tmp_path, atol=1e-5)


# --- identical to keras.layers.MultiHeadAttention ------------------------------------


def test_same_weight_shapes_and_order_as_keras():
    theirs, ours = pair(dict(num_heads=2, key_dim=3, value_dim=4, output_shape=5), CALLS["cross_key"]())
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [tuple(w.shape) for w in ours.weights] == [
        (6, 2, 3), (2, 3), (3, 2, 3), (2, 3), (7, 2, 4), (2, 4), (2, 4, 5), (5,)
    ]


# Every call on the default config, every config on the two richest calls.
COMPARISONS = [("default", call) for call in CALLS] + [
    (config, call) for config in CONFIGS if config != "default" for call in ("cross_key", "mask_and_causal")
]


@pytest.mark.parametrize("config, call", COMPARISONS, ids=[f"{a}-{b}" for a, b in COMPARISONS])
def test_same_outputs_and_scores_as_keras(config, call):
    inputs = CALLS[call]()
    theirs, ours = pair(CONFIGS[config], inputs)
    out_theirs, scores_theirs = theirs(**inputs, return_attention_scores=True)
    out_ours, scores_ours = ours(**inputs, return_attention_scores=True)
    # With return_attention_scores=True Keras also gives a fully masked row zero weights.
    np.testing.assert_allclose(numpy_(out_ours), numpy_(out_theirs), atol=1e-5)
    np.testing.assert_allclose(numpy_(scores_ours), numpy_(scores_theirs), atol=1e-6)
    # Keras's default (fused) path differs only on fully masked rows (see the docstring).
    rows = allowed_rows(inputs)
    np.testing.assert_allclose(numpy_(ours(**inputs))[rows], numpy_(theirs(**inputs))[rows], atol=1e-5)


def test_fully_masked_row_differs_from_keras_fused_path_as_documented():
    inputs = CALLS["attention_mask"]()
    theirs, ours = pair(CONFIGS["default"], inputs)
    ours_row = numpy_(ours(**inputs))[0, 1]
    np.testing.assert_allclose(ours_row, numpy_(ours.output_bias), atol=1e-6)  # zero weights
    fused_row = numpy_(theirs(**inputs))[0, 1]  # Keras: uniform average of the values
    assert not np.allclose(ours_row, fused_row, atol=1e-3)


def test_same_outputs_as_keras_with_embedding_masks():
    query_ids = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2]])
    value_ids = np.array([[5, 4, 0], [3, 0, 0]])
    query_embedding = keras.layers.Embedding(4, 6, mask_zero=True)
    value_embedding = keras.layers.Embedding(6, 7, mask_zero=True)
    inputs = {"query": query_embedding(query_ids), "value": value_embedding(value_ids)}
    theirs, ours = pair(CONFIGS["value_dim_4"], inputs)
    for use_causal_mask in (False, True):
        # Keras removes the masks of its inputs, so each call gets fresh tensors.
        def fresh():
            return {"query": query_embedding(query_ids), "value": value_embedding(value_ids)}

        out_ours, scores_ours = ours(**fresh(), use_causal_mask=use_causal_mask, return_attention_scores=True)
        out_theirs, scores_theirs = theirs(**fresh(), use_causal_mask=use_causal_mask, return_attention_scores=True)
        np.testing.assert_allclose(numpy_(out_ours), numpy_(out_theirs), atol=1e-5)
        np.testing.assert_allclose(numpy_(scores_ours), numpy_(scores_theirs), atol=1e-6)
        rows = query_ids != 0  # padded queries attend to nothing: Keras's fused path differs there
        np.testing.assert_allclose(
            numpy_(ours(**fresh(), use_causal_mask=use_causal_mask))[rows],
            numpy_(theirs(**fresh(), use_causal_mask=use_causal_mask))[rows],
            atol=1e-5,
        )
        # The output carries the query's mask, as Keras's does.
        np.testing.assert_array_equal(numpy_(out_ours._keras_mask), query_ids != 0)
        weights = numpy_(scores_ours)  # (B, N, T, S)
        padded_values = np.broadcast_to((value_ids == 0)[:, None, None, :], weights.shape)
        assert weights[padded_values].max() < 1e-6


def test_functional_model_with_masks_matches_keras():
    ids = keras.Input(shape=(5,), dtype="int32")
    x = keras.layers.Embedding(4, 6, mask_zero=True)(ids)
    keras_model = keras.Model(ids, keras.layers.MultiHeadAttention(2, 3)(x, x))
    our_model = keras.Model(ids, MultiHeadAttention(2, 3)(x, x))
    our_model.set_weights(keras_model.get_weights())
    data = np.array([[1, 2, 3, 0, 0], [3, 3, 1, 1, 2]])
    rows = data != 0
    np.testing.assert_allclose(numpy_(our_model(data))[rows], numpy_(keras_model(data))[rows], atol=1e-5)


def test_configs_are_interchangeable_with_keras():
    keras_layer = keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=5, dropout=0.1, use_bias=False)
    ours = MultiHeadAttention.from_config(keras_layer.get_config())
    assert (ours.num_heads, ours.key_dim, ours.value_dim, ours.dropout, ours.use_bias) == (2, 3, 4, 0.1, False)
    back = keras.layers.MultiHeadAttention.from_config(ours.get_config())
    assert set(back.get_config()) == set(ours.get_config())
    keras_layer(QUERY, VALUE)  # once built, Keras stores attention_axes=(1,) in its config
    MultiHeadAttention.from_config(keras_layer.get_config())


# --- an independent reference: the formula in numpy -----------------------------------


def numpy_multihead(layer, query, value, key, mask=None):
    wq, bq, wk, bk, wv, bv, wo, bo = [numpy_(w) for w in layer.weights]
    q = np.einsum("btd,dnh->bnth", query, wq) + bq[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    k = np.einsum("bsd,dnh->bnsh", key, wk) + bk[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    v = np.einsum("bsd,dnh->bnsh", value, wv) + bv[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])  # (B, N, T, S)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = weights @ v  # (B, N, T, Hv)
    return np.einsum("bnth,nho->bto", heads, wo) + bo, weights


def test_matches_numpy_formula():
    layer = MultiHeadAttention(3, 2, value_dim=5, output_shape=4, bias_initializer="random_normal")
    mask = np.ones((2, 5, 4), bool)
    mask[:, :, 2] = False
    output, weights = layer(QUERY, VALUE, KEY, attention_mask=mask, return_attention_scores=True)
    expected_output, expected_weights = numpy_multihead(layer, QUERY, VALUE, KEY, mask)
    np.testing.assert_allclose(numpy_(output), expected_output, atol=1e-5)
    np.testing.assert_allclose(numpy_(weights), expected_weights, atol=1e-6)


# --- masks ----------------------------------------------------------------------------


def test_masked_weights_are_zero_rows_sum_to_one_and_no_nan():
    layer = MultiHeadAttention(2, 3)
    output, weights = layer(QUERY, VALUE, attention_mask=ATTENTION_MASK, return_attention_scores=True)
    weights, output = numpy_(weights), numpy_(output)
    assert weights[np.broadcast_to(~ATTENTION_MASK[:, None], weights.shape)].max() < 1e-6
    rows = allowed_rows({"query": QUERY, "value": VALUE, "attention_mask": ATTENTION_MASK})
    sums = weights.sum(-1)  # (B, N, T)
    np.testing.assert_allclose(sums.transpose(0, 2, 1)[rows], 1.0, atol=1e-6)
    assert not np.isnan(output).any() and not np.isnan(weights).any()
    np.testing.assert_array_equal(weights[0, :, 1], 0.0)  # the fully masked row


def test_causal_mask_hides_the_future():
    _, weights = MultiHeadAttention(2, 3)(QUERY, QUERY, use_causal_mask=True, return_attention_scores=True)
    future = np.triu(np.ones((5, 5), bool), k=1)
    assert numpy_(weights)[..., future].max() < 1e-6


def test_per_head_mask_of_shape_b_n_t_s():
    mask = np.ones((2, 2, 5, 4), bool)
    mask[:, 1, :, 3] = False  # head 1 never sees key 3, head 0 sees everything
    _, weights = MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=mask, return_attention_scores=True)
    weights = numpy_(weights)
    assert weights[:, 1, :, 3].max() < 1e-6 and weights[:, 0, :, 3].min() > 0


def test_explicit_query_mask_is_used():
    layer = MultiHeadAttention(2, 3, bias_initializer="ones")
    query_mask = np.array([[True, True, True, False, False]] * 2)
    output, weights = layer(QUERY, VALUE, query_mask=query_mask, return_attention_scores=True)
    np.testing.assert_array_equal(numpy_(weights)[:, :, 3:], 0.0)
    np.testing.assert_allclose(numpy_(output)[:, 3:], 1.0)  # only the output bias is left


# --- parameters, initialisation, dropout ---------------------------------------------


@pytest.mark.parametrize(
    "num_heads, key_dim, value_dim, use_bias, output_shape",
    [(8, 16, None, True, None), (2, 3, 5, True, 4), (4, 2, None, False, None)],
    ids=["8_heads_of_16", "value_dim_and_output_shape", "no_bias"],
)
def test_parameter_count_formula(num_heads, key_dim, value_dim, use_bias, output_shape):
    dq, dv, dk = 6, 7, 3
    hv = value_dim or key_dim
    out = output_shape or dq
    n, h = num_heads, key_dim
    expected = dq * n * h + dk * n * h + dv * n * hv + n * hv * out
    if use_bias:
        expected += n * h + n * h + n * hv + out
    config = dict(num_heads=n, key_dim=h, value_dim=value_dim, use_bias=use_bias, output_shape=output_shape)
    ours = MultiHeadAttention(**config)
    ours(QUERY, VALUE, KEY)
    theirs = keras.layers.MultiHeadAttention(**config)
    theirs(QUERY, VALUE, KEY)
    assert ours.count_params() == expected == theirs.count_params()


def test_each_kernel_initialised_differently():
    layer = MultiHeadAttention(2, 3, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    layer(QUERY, QUERY)
    kernels = [numpy_(layer.query_kernel), numpy_(layer.key_kernel), numpy_(layer.value_kernel)]
    assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[0], kernels[2])


def test_constraints_and_regularizers_reach_every_weight():
    layer = MultiHeadAttention(
        2, 3, kernel_constraint="non_neg", bias_constraint="non_neg",
        kernel_regularizer="l2", bias_regularizer="l1",
    )
    layer(QUERY, QUERY)
    assert all(isinstance(w.constraint, keras.constraints.NonNeg) for w in layer.weights)
    assert len(layer.losses) == 8
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(config)
    assert revived.get_config() == layer.get_config()


def test_dropout_only_in_training_and_scores_before_dropout():
    layer = MultiHeadAttention(2, 3, dropout=0.5, seed=1)
    inference = numpy_(layer(QUERY, VALUE, training=False))
    np.testing.assert_allclose(numpy_(layer(QUERY, VALUE)), inference, atol=1e-6)
    training, weights = layer(QUERY, VALUE, training=True, return_attention_scores=True)
    assert not np.allclose(numpy_(training), inference, atol=1e-3)
    np.testing.assert_allclose(numpy_(weights).sum(-1), 1.0, atol=1e-5)  # not dropped


def test_symbolic_scores_shape_for_cross_attention():
    q, v = keras.Input((5, 6)), keras.Input((4, 7))
    output, scores = MultiHeadAttention(3, 2)(q, v, return_attention_scores=True)
    assert tuple(output.shape) == (None, 5, 6) and tuple(scores.shape) == (None, 3, 5, 4)


# --- errors name the argument ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_heads=0, key_dim=2), "num_heads=0"),
        (dict(num_heads=-1, key_dim=2), "num_heads=-1"),
        (dict(num_heads=1.5, key_dim=2), "num_heads=1.5"),
        (dict(num_heads=2, key_dim=0), "key_dim=0"),
        (dict(num_heads=2, key_dim=2, value_dim=-3), "value_dim=-3"),
        (dict(num_heads=2, key_dim=2, dropout=1.0), "dropout=1.0"),
        (dict(num_heads=2, key_dim=2, dropout=-0.1), "dropout=-0.1"),
        (dict(num_heads=2, key_dim=2, output_shape=8.0), "Invalid `output_shape`"),
        (dict(num_heads=2, key_dim=2, output_shape=(4, -1)), "output_shape=-1"),
        (dict(num_heads=2, key_dim=2, attention_axes=(1, 2)), "attention_axes=\\(1, 2\\)"),
        (dict(num_heads=2, key_dim=2, flash_attention=True), "flash_attention=True"),
        (dict(num_heads=2, key_dim=2, sliding_window=3), "sliding_window=3"),
        (dict(num_heads=2, key_dim=2, use_gate=True), "use_gate=True"),
        (dict(num_heads=2, key_dim=2, activity_regularizer="l2"), "activity_regularizer='l2'"),
    ],
    ids=lambda x: "-".join(f"{k}={v}" for k, v in x.items()) if isinstance(x, dict) else None,
)
def test_constructor_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_call_errors_name_the_argument():
    layer = MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="same batch size.*query with shape \\(2, 5, 6\\)"):
        layer(QUERY, VALUE[:1])
    layer(QUERY, VALUE)
    with pytest.raises(ValueError, match="last dimension of `query` must be 6.*\\(2, 5, 4\\)"):
        layer(QUERY[..., :4], VALUE)
    with pytest.raises(ValueError, match="`value` and `key`.*must be equal"):
        MultiHeadAttention(2, 3)(QUERY, VALUE, KEY[:, :3])
    with pytest.raises(ValueError, match="`query` must have shape \\(batch_size, length, dim\\)"):
        MultiHeadAttention(2, 3)(QUERY[:, :, None], VALUE)
    with pytest.raises(ValueError, match="`attention_mask` must have shape"):
        MultiHeadAttention(2, 3)(QUERY, VALUE, attention_mask=np.ones((2, 5, 3), bool))


def test_causal_mask_in_a_compiled_model_of_unknown_length():
    ids = keras.Input(shape=(None,), dtype="int32")  # length unknown until the data comes
    x = keras.layers.Embedding(10, 6, mask_zero=True)(ids)
    model = keras.Model(ids, MultiHeadAttention(2, 3)(x, x, use_causal_mask=True))
    data = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, np.zeros((2, 4, 6)), verbose=0)
    eager = numpy_(model(data))
    np.testing.assert_allclose(model.predict(data, verbose=0), eager, atol=1e-6)
    # Position 0 sees only itself: changing later tokens leaves its output unchanged.
    changed = numpy_(model(np.array([[1, 9, 9, 9], [4, 9, 9, 0]])))
    np.testing.assert_allclose(changed[:, 0], eager[:, 0], atol=1e-6)
