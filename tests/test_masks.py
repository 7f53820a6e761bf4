"""course_lib.masks: padding, causal and combined masks, and Keras's combination rule."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_lib import masks

T, S = 3, 5
QUERY_MASK = np.array([[1, 1, 0], [1, 0, 0]], bool)  # (2, T)
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)  # (2, S)
KEY_MASK = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 0]], bool)  # (2, S)
ATTENTION_MASK = np.random.default_rng(0).random((2, T, S)) > 0.3  # (2, T, S)


def as_numpy(x):
    return keras.ops.convert_to_numpy(x)


# --- padding masks ---------------------------------------------------------


def test_padding_mask_marks_real_tokens():
    mask = masks.padding_mask(np.array([[5, 3, 0, 0], [1, 0, 0, 0], [7, 7, 7, 7]]))
    expected = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert as_numpy(mask).dtype == bool
    np.testing.assert_array_equal(as_numpy(mask), np.array(expected, bool))


def test_padding_mask_with_other_pad_id():
    mask = masks.padding_mask(np.array([[4, 9, 9]]), pad_id=9)
    np.testing.assert_array_equal(as_numpy(mask), [[True, False, False]])


def test_padding_mask_equals_embedding_mask_zero():
    ids = np.array([[3, 1, 0, 0], [2, 0, 0, 0]])
    keras_mask = keras.layers.Embedding(10, 2, mask_zero=True).compute_mask(ids)
    np.testing.assert_array_equal(as_numpy(masks.padding_mask(ids)), as_numpy(keras_mask))


def test_padding_mask_from_lengths():
    mask = masks.padding_mask_from_lengths(np.array([2, 0, 4]), 4)
    expected = [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    np.testing.assert_array_equal(as_numpy(mask), np.array(expected, bool))


def test_padding_mask_from_lengths_agrees_with_padding_mask():
    ids = np.array([[4, 2, 8, 0, 0], [1, 0, 0, 0, 0]])
    lengths = np.array([3, 1])
    np.testing.assert_array_equal(
        as_numpy(masks.padding_mask(ids)), as_numpy(masks.padding_mask_from_lengths(lengths, 5))
    )


def test_padding_mask_from_lengths_works_in_a_graph():
    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32)])
    def build(lengths):
        return masks.padding_mask_from_lengths(lengths, 3)

    np.testing.assert_array_equal(build(tf.constant([1, 3])).numpy(), [[1, 0, 0], [1, 1, 1]])


# --- causal masks ----------------------------------------------------------


def test_causal_mask_square_is_lower_triangular():
    mask = as_numpy(masks.causal_mask(4))
    assert mask.dtype == bool and mask.shape == (4, 4)
    np.testing.assert_array_equal(mask, np.tril(np.ones((4, 4), bool)))


@pytest.mark.parametrize("t, s", [(2, 4), (4, 2), (3, 3), (1, 5), (0, 3)], ids=lambda v: str(v))
def test_causal_mask_matches_keras_for_any_lengths(t, s):
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    keras_mask = mha._compute_causal_mask(np.zeros((1, t, 2)), np.zeros((1, s, 2)))  # (1, T, S)
    mask = as_numpy(masks.causal_mask(t, s))
    assert mask.shape == (t, s)
    np.testing.assert_array_equal(mask, as_numpy(keras_mask)[0])
    np.testing.assert_array_equal(mask, np.tril(np.ones((t, s), bool)))


def test_causal_mask_matches_dot_product_attention_is_causal():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 3, 1, 4)).astype("float32")
    k = rng.normal(size=(1, 5, 1, 4)).astype("float32")
    v = rng.normal(size=(1, 5, 1, 4)).astype("float32")
    with_flag = keras.ops.dot_product_attention(q, k, v, is_causal=True)
    with_mask = keras.ops.dot_product_attention(q, k, v, mask=masks.causal_mask(3, 5)[None, None])
    np.testing.assert_allclose(as_numpy(with_flag), as_numpy(with_mask), atol=1e-6)


def test_causal_mask_accepts_a_scalar_tensor_length():
    np.testing.assert_array_equal(as_numpy(masks.causal_mask(tf.constant(2))), [[1, 0], [1, 1]])


# --- combination -----------------------------------------------------------


def test_combine_masks_is_logical_and_with_broadcasting():
    rows = np.array([[True], [False]])  # (2, 1)
    cols = np.array([[True, False, True]])  # (1, 3)
    combined = as_numpy(masks.combine_masks(rows, None, cols))
    np.testing.assert_array_equal(combined, [[True, False, True], [False, False, False]])


def test_combine_masks_of_nothing_is_none():
    assert masks.combine_masks() is None
    assert masks.combine_masks(None, None) is None


def test_combine_masks_casts_integers_to_bool():
    combined = masks.combine_masks(np.array([1, 0, 1]), np.array([1, 1, 0]))
    np.testing.assert_array_equal(as_numpy(combined), [True, False, False])


def test_compute_attention_mask_rule_on_a_small_case():
    query_mask = np.array([[True, True, False]])  # (1, T)
    value_mask = np.array([[True, True, True, False, False]])  # (1, S)
    mask = masks.compute_attention_mask(
        np.zeros((1, T, 2)), np.zeros((1, S, 2)),
        query_mask=query_mask, value_mask=value_mask, use_causal_mask=True,
    )
    expected = [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(as_numpy(mask), np.array([expected], bool))


def test_compute_attention_mask_without_any_mask_is_none():
    assert masks.compute_attention_mask(np.zeros((1, T, 2)), np.zeros((1, S, 2))) is None


COMBINATIONS = {
    "query": dict(query_mask=QUERY_MASK),
    "value": dict(value_mask=VALUE_MASK),
    "key": dict(key_mask=KEY_MASK),
    "causal": dict(use_causal_mask=True),
    "explicit": dict(attention_mask=ATTENTION_MASK),
    "query+value": dict(query_mask=QUERY_MASK, value_mask=VALUE_MASK),
    "value+causal": dict(value_mask=VALUE_MASK, use_causal_mask=True),
    "all": dict(query_mask=QUERY_MASK, value_mask=VALUE_MASK, key_mask=KEY_MASK,
                attention_mask=ATTENTION_MASK, use_causal_mask=True),
}


@pytest.mark.parametrize("sources", list(COMBINATIONS.values()), ids=list(COMBINATIONS))
def test_compute_attention_mask_equals_keras_multi_head_attention(sources):
    query, value = np.zeros((2, T, 4), "float32"), np.zeros((2, S, 4), "float32")
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    expected = mha._compute_attention_mask(query, value, **sources)
    mask = masks.compute_attention_mask(query, value, **sources)
    assert tuple(mask.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(as_numpy(mask), as_numpy(expected))


def test_keras_attention_weights_vanish_exactly_where_our_mask_is_false():
    # The public route: Keras fills the masks from an Embedding with mask_zero=True.
    ids = np.array([[3, 1, 4, 0], [2, 7, 0, 0]])
    embed = keras.layers.Embedding(10, 4, mask_zero=True)
    x = embed(ids)
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)
    _, weights = mha(x, x, use_causal_mask=True, return_attention_scores=True)  # (B, H, T, S)
    mask = masks.compute_attention_mask(
        x, x, query_mask=masks.padding_mask(ids), value_mask=masks.padding_mask(ids),
        use_causal_mask=True,
    )  # (B, T, S)
    nonzero = as_numpy(weights) != 0
    np.testing.assert_array_equal(nonzero, np.broadcast_to(as_numpy(mask)[:, None], nonzero.shape))


# --- errors name the argument ---------------------------------------------


def mask_of(**sources):
    """`compute_attention_mask` for a batch of 2 with T queries and S values."""
    return masks.compute_attention_mask(np.zeros((2, T, 2)), np.zeros((2, S, 2)), **sources)


ERRORS = {
    "token_ids rank 1": (lambda: masks.padding_mask(np.array([1, 2, 0])), ValueError, "token_ids"),
    "token_ids rank 3": (lambda: masks.padding_mask(np.zeros((1, 2, 3))), ValueError, "token_ids"),
    "pad_id float": (lambda: masks.padding_mask(np.zeros((1, 2)), pad_id=0.5), TypeError, "pad_id"),
    "negative length": (lambda: masks.padding_mask_from_lengths([2, -1], 3), ValueError, "lengths"),
    "length too long": (lambda: masks.padding_mask_from_lengths([4], 3), ValueError, "lengths"),
    "lengths rank 2": (lambda: masks.padding_mask_from_lengths([[1]], 3), ValueError, "lengths"),
    "lengths float": (lambda: masks.padding_mask_from_lengths([1.5], 3), TypeError, "lengths"),
    "negative max_length": (lambda: masks.padding_mask_from_lengths([1], -2), ValueError, "max_length"),
    "negative query_length": (lambda: masks.causal_mask(-1), ValueError, "query_length"),
    "float query_length": (lambda: masks.causal_mask(2.5), TypeError, "query_length"),
    "bool key_length": (lambda: masks.causal_mask(2, True), TypeError, "key_length"),
    "negative key_length": (lambda: masks.causal_mask(2, -3), ValueError, "key_length"),
    "unbroadcastable": (lambda: masks.combine_masks(np.ones((2, 3), bool), np.ones((2, 4), bool)),
                        ValueError, "masks[1]"),
    "query_mask rank 3": (lambda: mask_of(query_mask=np.ones((2, T, 1), bool)), ValueError, "query_mask"),
    "value_mask length": (lambda: mask_of(value_mask=np.ones((2, S + 1), bool)), ValueError, "value_mask"),
    "key_mask length": (lambda: mask_of(key_mask=np.ones((2, T), bool)), ValueError, "key_mask"),
    "attention_mask rank 4": (lambda: mask_of(attention_mask=np.ones((2, 1, T, S), bool)), ValueError, "attention_mask"),
    "attention_mask S": (lambda: mask_of(attention_mask=np.ones((2, T, S + 1), bool)), ValueError, "attention_mask"),
    "use_causal_mask string": (lambda: mask_of(use_causal_mask="yes"), TypeError, "use_causal_mask"),
    "causal mask of a symbolic input of unknown length": (
        lambda: masks.compute_attention_mask(keras.Input((None, 2)), keras.Input((None, 2)), use_causal_mask=True),
        ValueError, "query"),
    "query rank 1": (lambda: masks.compute_attention_mask(np.zeros(3), np.zeros((2, S, 2))), ValueError, "query"),
}


@pytest.mark.parametrize("make, error, name", list(ERRORS.values()), ids=list(ERRORS))
def test_bad_input_raises_naming_the_argument(make, error, name):
    with pytest.raises(error, match=re.escape(f"`{name}`")):
        make()
