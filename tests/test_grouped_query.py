"""course_lib.grouped_query.GroupedQueryAttention: the standard layer checks; the outputs
and weights of keras.layers.GroupQueryAttention after set_weights (masks, causal, sliding
window, gate, key of another width); grouping equals repeating the key/value heads;
v = u is the course's MultiHeadAttention; errors name the argument."""

import keras
import numpy as np
import pytest

from course_lib.grouped_query import GroupedQueryAttention
from course_lib.multihead import MultiHeadAttention
from tests.helpers import error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
B, T, S, DIM = 2, 5, 6, 8
Q = RNG.normal(size=(B, T, DIM)).astype("float32")
V = RNG.normal(size=(B, S, DIM)).astype("float32")
KEY = RNG.normal(size=(B, S, 3)).astype("float32")
MASK = RNG.random((B, T, S)) > 0.3
MASK[0, 1] = False  # a query that may attend to nothing (Keras and we differ there: not compared)
COMPARED = MASK.copy()
COMPARED[0, 1, 0] = True

CONFIGS = {
    "gqa_4_2": dict(head_dim=4, num_query_heads=4, num_key_value_heads=2),
    "mqa_4_1": dict(head_dim=4, num_query_heads=4, num_key_value_heads=1),
    "mha_2_2": dict(head_dim=3, num_query_heads=2, num_key_value_heads=2),
    "gate_no_bias": dict(head_dim=2, num_query_heads=6, num_key_value_heads=3, use_gate=True, use_bias=False),
    "window": dict(head_dim=4, num_query_heads=4, num_key_value_heads=2, sliding_window=2),
}
CALLS = {
    "plain": {},
    "causal": dict(use_causal_mask=True),
    "mask": dict(attention_mask=COMPARED),
    "mask_and_causal": dict(attention_mask=COMPARED, use_causal_mask=True),
    "key": dict(key=KEY),
    "padding": dict(value_mask=np.arange(S)[None] < np.array([[6], [4]])),
}


def pair(config):
    ours, theirs = GroupedQueryAttention(**config), keras.layers.GroupQueryAttention(**config)
    ours(Q, V, key=KEY), theirs(Q, V, key=KEY)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_same_weights_in_the_same_order_and_shapes(config):
    ours, theirs = pair(config)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_outputs_and_scores_equal_keras(config, call):
    ours, theirs = pair(config)
    call = dict(call)
    key = call.pop("key", KEY)
    ours_out, ours_scores = ours(Q, V, key=key, return_attention_scores=True, **call)
    theirs_out, theirs_scores = theirs(Q, V, key=key, return_attention_scores=True, **call)
    np.testing.assert_allclose(to_numpy(ours_out), to_numpy(theirs_out), atol=1e-5)
    np.testing.assert_allclose(to_numpy(ours_scores), to_numpy(theirs_scores), atol=1e-5)
    np.testing.assert_allclose(to_numpy(ours(Q, V, key=key, **call)), to_numpy(theirs(Q, V, key=key, **call)),
                               atol=1e-5)  # Keras's fused path, without scores


def test_grouping_equals_repeating_the_key_value_heads():
    layer = GroupedQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=2)
    layer(Q, V)
    q = to_numpy(layer._query_dense(Q))  # (B, T, 6, H)
    k, v = to_numpy(layer._key_dense(V)), to_numpy(layer._value_dense(V))  # (B, S, 2, H)
    grouped, weights = layer._compute_attention(q, k, v, attention_mask=MASK)
    repeated, repeated_weights = layer._compute_attention(q, np.repeat(k, 3, axis=2), np.repeat(v, 3, axis=2),
                                                          attention_mask=MASK)
    np.testing.assert_allclose(to_numpy(grouped), to_numpy(repeated), atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights), to_numpy(repeated_weights), atol=1e-6)
    assert np.all(to_numpy(weights)[0, :, 1] == 0)  # the query with nothing to attend to: zero weights


def test_as_many_key_value_heads_as_query_heads_is_multi_head_attention():
    ours = GroupedQueryAttention(head_dim=4, num_query_heads=2, num_key_value_heads=2)
    mha = MultiHeadAttention(num_heads=2, key_dim=4)
    ours(Q, V), mha(Q, V)
    mha.set_weights(ours.get_weights())
    np.testing.assert_allclose(to_numpy(ours(Q, V, attention_mask=MASK)), to_numpy(mha(Q, V, attention_mask=MASK)),
                               atol=1e-6)


def test_dropout_acts_only_in_training():
    layer = GroupedQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2, dropout=0.5, seed=1)
    inference = to_numpy(layer(Q, V))
    np.testing.assert_allclose(inference, to_numpy(layer(Q, V, training=False)))
    assert not np.allclose(to_numpy(layer(Q, V, training=True)), inference)


@pytest.mark.parametrize("call", [{}, dict(use_causal_mask=True)], ids=["plain", "causal"])
def test_layer_checks(call, tmp_path):
    config = dict(head_dim=4, num_query_heads=4, num_key_value_heads=2, sliding_window=3)
    check_layer(lambda: GroupedQueryAttention(**config), {"query": Q, "value": V}, call, tmp_path=tmp_path,
                atol=1e-5)


def test_config_is_keras_s():
    config = GroupedQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2).get_config()
    theirs = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2).get_config()
    assert set(theirs) <= set(config)
    assert GroupedQueryAttention.from_config(theirs).num_key_value_heads == 2


ERRORS = [
    error_case("not a divisor", lambda: GroupedQueryAttention(4, 4, 3), ValueError, "num_key_value_heads"),
    error_case("heads 0", lambda: GroupedQueryAttention(4, 0, 1), ValueError, "num_query_heads"),
    error_case("head_dim 1.5", lambda: GroupedQueryAttention(1.5, 4, 2), TypeError, "head_dim"),
    error_case("window 0", lambda: GroupedQueryAttention(4, 4, 2, sliding_window=0), ValueError, "sliding_window"),
    error_case("dropout 2", lambda: GroupedQueryAttention(4, 4, 2, dropout=2.0), ValueError, "dropout"),
    error_case("rank 4", lambda: GroupedQueryAttention(4, 4, 2)(Q[:, None], V[:, None]), ValueError, "query"),
    error_case("additive mask", lambda: GroupedQueryAttention(4, 4, 2)(Q, V, attention_mask=np.where(MASK, 0.0, -1e9)),
               ValueError, "attention_mask"),
]


@pytest.mark.parametrize("make, exception, name", ERRORS)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
