"""course_lib.masks: padding, causal and combined masks, and Keras's combination rule."""

import keras
import numpy as np
import pytest

from course_lib import masks
from tests.helpers import compiled, error_case, raises_naming, to_numpy

T, S = 3, 5
QUERY_MASK = np.array([[1, 1, 0], [1, 0, 0]], bool)  # (2, T)
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)  # (2, S)
KEY_MASK = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 0]], bool)  # (2, S)
ATTENTION_MASK = np.random.default_rng(0).random((2, T, S)) > 0.3  # (2, T, S)


# --- padding masks ---------------------------------------------------------


def test_padding_mask_marks_real_tokens():
    mask = masks.padding_mask(np.array([[5, 3, 0, 0], [1, 0, 0, 0], [7, 7, 7, 7]]))
    expected = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert to_numpy(mask).dtype == bool
    np.testing.assert_array_equal(to_numpy(mask), np.array(expected, bool))


def test_padding_mask_with_other_pad_id():
    mask = masks.padding_mask(np.array([[4, 9, 9]]), pad_id=9)
    np.testing.assert_array_equal(to_numpy(mask), [[True, False, False]])


def test_padding_mask_equals_embedding_mask_zero():
    ids = np.array([[3, 1, 0, 0], [2, 0, 0, 0]])
    keras_mask = keras.layers.Embedding(10, 2, mask_zero=True).compute_mask(ids)
    np.testing.assert_array_equal(to_numpy(masks.padding_mask(ids)), to_numpy(keras_mask))


def test_padding_mask_from_lengths():
    mask = masks.padding_mask_from_lengths(np.array([2, 0, 4]), 4)
    expected = [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    np.testing.assert_array_equal(to_numpy(mask), np.array(expected, bool))


def test_padding_mask_from_lengths_agrees_with_padding_mask():
    ids = np.array([[4, 2, 8, 0, 0], [1, 0, 0, 0, 0]])
    lengths = np.array([3, 1])
    np.testing.assert_array_equal(
        to_numpy(masks.padding_mask(ids)), to_numpy(masks.padding_mask_from_lengths(lengths, 5))
    )


def test_padding_mask_from_lengths_works_in_a_compiled_function():
    build = compiled(lambda lengths: masks.padding_mask_from_lengths(lengths, 3))
    np.testing.assert_array_equal(to_numpy(build(np.array([1, 3], "int32"))), [[1, 0, 0], [1, 1, 1]])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int64"])
def test_padding_mask_from_short_integer_lengths_does_not_overflow(dtype):
    # An int8 arange of 200 positions wraps around at 127 (the old code counted 4 of 2).
    mask = to_numpy(masks.padding_mask_from_lengths(np.array([2, 120], dtype), 200))
    expected = np.arange(200)[None, :] < np.array([2, 120])[:, None]
    np.testing.assert_array_equal(mask, expected)


def test_padding_mask_refuses_a_pad_id_the_ids_cannot_hold():
    ids = np.array([[0, 1, 255]], "uint8")
    np.testing.assert_array_equal(to_numpy(masks.padding_mask(ids, pad_id=255)), [[True, True, False]])
    with raises_naming(ValueError, "pad_id"):  # 256 used to wrap around to 0 and match id 0
        masks.padding_mask(ids, pad_id=256)
    with raises_naming(ValueError, "pad_id"):
        masks.padding_mask(ids, pad_id=-1)


def test_padding_mask_takes_lists_and_numpy_pad_ids():
    mask = masks.padding_mask([[4, 9, 9]], pad_id=np.int64(9))
    np.testing.assert_array_equal(to_numpy(mask), [[True, False, False]])


# --- causal masks ----------------------------------------------------------


def test_causal_mask_square_is_lower_triangular():
    mask = to_numpy(masks.causal_mask(4))
    assert mask.dtype == bool and mask.shape == (4, 4)
    np.testing.assert_array_equal(mask, np.tril(np.ones((4, 4), bool)))


@pytest.mark.parametrize("t, s", [(2, 4), (4, 2), (3, 3), (1, 5), (0, 3)], ids=lambda v: str(v))
def test_causal_mask_matches_keras_for_any_lengths(t, s):
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    keras_mask = mha._compute_causal_mask(np.zeros((1, t, 2)), np.zeros((1, s, 2)))  # (1, T, S)
    mask = to_numpy(masks.causal_mask(t, s))
    assert mask.shape == (t, s)
    np.testing.assert_array_equal(mask, to_numpy(keras_mask)[0])
    np.testing.assert_array_equal(mask, np.tril(np.ones((t, s), bool)))


def test_causal_mask_matches_dot_product_attention_is_causal():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 3, 1, 4)).astype("float32")
    k = rng.normal(size=(1, 5, 1, 4)).astype("float32")
    v = rng.normal(size=(1, 5, 1, 4)).astype("float32")
    with_flag = keras.ops.dot_product_attention(q, k, v, is_causal=True)
    with_mask = keras.ops.dot_product_attention(q, k, v, mask=masks.causal_mask(3, 5)[None, None])
    np.testing.assert_allclose(to_numpy(with_flag), to_numpy(with_mask), atol=1e-6)


def test_causal_mask_accepts_a_scalar_tensor_length():
    length = keras.ops.convert_to_tensor(2)
    np.testing.assert_array_equal(to_numpy(masks.causal_mask(length)), [[1, 0], [1, 1]])
    np.testing.assert_array_equal(to_numpy(masks.causal_mask(np.int64(2), np.int32(3))), [[1, 0, 0], [1, 1, 0]])


# --- sliding-window masks --------------------------------------------------


@pytest.mark.parametrize("length, window", [(5, 1), (5, 2), (6, 3), (4, 4), (3, 10), (0, 2)], ids=str)
def test_sliding_window_mask_follows_its_formula(length, window):
    mask = to_numpy(masks.sliding_window_mask(length, window))
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    assert mask.dtype == bool and mask.shape == (length, length)
    np.testing.assert_array_equal(mask, (0 <= i - j) & (i - j < window))
    np.testing.assert_array_equal(mask.sum(-1), np.minimum(np.arange(length) + 1, window))


def test_sliding_window_mask_is_causal_for_a_wide_window_and_diagonal_for_one():
    np.testing.assert_array_equal(to_numpy(masks.sliding_window_mask(5, 5)), to_numpy(masks.causal_mask(5)))
    np.testing.assert_array_equal(to_numpy(masks.sliding_window_mask(5, 1)), np.eye(5, dtype=bool))


def test_sliding_window_mask_limits_what_a_query_sees():
    from course_lib.attention import scaled_dot_product_attention

    x = np.random.default_rng(2).normal(size=(1, 6, 4)).astype("float32")
    changed = x.copy()
    changed[:, 0] += 1.0  # only position 0 changes: with window 2, only outputs 0 and 1 may change
    mask = masks.sliding_window_mask(6, 2)
    before, _ = scaled_dot_product_attention(x, x, x, mask=mask)
    after, _ = scaled_dot_product_attention(changed, changed, changed, mask=mask)
    difference = np.abs(to_numpy(after) - to_numpy(before)).max(axis=(0, 2))  # (T,)
    assert (difference[:2] > 0).all()
    np.testing.assert_array_equal(difference[2:], 0.0)


# --- masks given as numbers ------------------------------------------------


@pytest.mark.parametrize(
    "mask", [[[1, 0, 1]], np.array([[1, 0, 1]], "int8"), np.array([[1.0, 0.0, 1.0]], "float32"), [[True, False, True]]],
    ids=["int list", "int8", "float32", "bool list"],
)
def test_as_bool_mask_reads_zero_one_masks_as_keras_documents(mask):
    converted = masks.as_bool_mask(mask)
    assert keras.backend.standardize_dtype(converted.dtype) == "bool"
    np.testing.assert_array_equal(to_numpy(converted), [[True, False, True]])


@pytest.mark.parametrize(
    "mask", [np.array([[0.5, 1.0]]), np.array([[np.nan, 1.0]]), np.array([[0.0, -np.inf]]), np.array([[2, 0]])],
    ids=["0.5", "NaN", "additive", "2"],
)
def test_as_bool_mask_refuses_other_numbers_and_says_how_to_convert(mask):
    with raises_naming(ValueError, "value_mask") as error:
        masks.as_bool_mask(mask, "value_mask")
    assert "additive_mask == 0" in str(error.value)


def test_as_bool_mask_casts_masks_whose_values_are_unknown():
    cast = compiled(lambda mask: masks.as_bool_mask(mask))
    np.testing.assert_array_equal(to_numpy(cast(np.array([[1.0, 0.0]], "float32"))), [[True, False]])
    assert masks.as_bool_mask(None) is None


def test_compute_attention_mask_refuses_float_masks_that_are_not_zero_one():
    with raises_naming(ValueError, "attention_mask"):
        mask_of(attention_mask=np.where(ATTENTION_MASK, 0.0, -np.inf))
    np.testing.assert_array_equal(
        to_numpy(mask_of(attention_mask=ATTENTION_MASK.astype("float32"))), to_numpy(mask_of(attention_mask=ATTENTION_MASK))
    )


def test_compute_attention_mask_takes_python_lists():
    query, value = np.zeros((2, T, 4)).tolist(), np.zeros((2, S, 4)).tolist()
    mask = masks.compute_attention_mask(query, value, query_mask=QUERY_MASK.tolist(), value_mask=VALUE_MASK.tolist())
    expected = QUERY_MASK[:, :, None] & VALUE_MASK[:, None, :]
    np.testing.assert_array_equal(to_numpy(mask), expected)


# --- combination -----------------------------------------------------------


def test_combine_masks_is_logical_and_with_broadcasting():
    rows = np.array([[True], [False]])  # (2, 1)
    cols = np.array([[True, False, True]])  # (1, 3)
    combined = to_numpy(masks.combine_masks(rows, None, cols))
    np.testing.assert_array_equal(combined, [[True, False, True], [False, False, False]])


def test_combine_masks_of_nothing_is_none():
    assert masks.combine_masks() is None
    assert masks.combine_masks(None, None) is None


def test_combine_masks_casts_integers_to_bool():
    combined = masks.combine_masks(np.array([1, 0, 1]), np.array([1, 1, 0]))
    np.testing.assert_array_equal(to_numpy(combined), [True, False, False])


def test_compute_attention_mask_rule_on_a_small_case():
    query_mask = np.array([[True, True, False]])  # (1, T)
    value_mask = np.array([[True, True, True, False, False]])  # (1, S)
    mask = masks.compute_attention_mask(
        np.zeros((1, T, 2)), np.zeros((1, S, 2)),
        query_mask=query_mask, value_mask=value_mask, use_causal_mask=True,
    )
    expected = [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(to_numpy(mask), np.array([expected], bool))


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
    np.testing.assert_array_equal(to_numpy(mask), to_numpy(expected))


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
    nonzero = to_numpy(weights) != 0
    np.testing.assert_array_equal(nonzero, np.broadcast_to(to_numpy(mask)[:, None], nonzero.shape))


# --- errors name the argument ---------------------------------------------


def mask_of(**sources):
    """`compute_attention_mask` for a batch of 2 with T queries and S values."""
    return masks.compute_attention_mask(np.zeros((2, T, 2)), np.zeros((2, S, 2)), **sources)


ERRORS = [
    error_case("token_ids rank 1", lambda: masks.padding_mask(np.array([1, 2, 0])), ValueError, "token_ids"),
    error_case("token_ids rank 3", lambda: masks.padding_mask(np.zeros((1, 2, 3))), ValueError, "token_ids"),
    error_case("token_ids None", lambda: masks.padding_mask(None), TypeError, "token_ids"),
    error_case("pad_id float", lambda: masks.padding_mask(np.zeros((1, 2)), pad_id=0.5), TypeError, "pad_id"),
    error_case("negative length", lambda: masks.padding_mask_from_lengths([2, -1], 3), ValueError, "lengths"),
    error_case("length too long", lambda: masks.padding_mask_from_lengths([4], 3), ValueError, "lengths"),
    error_case("lengths rank 2", lambda: masks.padding_mask_from_lengths([[1]], 3), ValueError, "lengths"),
    error_case("lengths float", lambda: masks.padding_mask_from_lengths([1.5], 3), TypeError, "lengths"),
    error_case("negative max_length", lambda: masks.padding_mask_from_lengths([1], -2), ValueError, "max_length"),
    error_case("float max_length", lambda: masks.padding_mask_from_lengths([1], 2.5), TypeError, "max_length"),
    error_case("negative query_length", lambda: masks.causal_mask(-1), ValueError, "query_length"),
    error_case("float query_length", lambda: masks.causal_mask(2.5), TypeError, "query_length"),
    error_case("bool key_length", lambda: masks.causal_mask(2, True), TypeError, "key_length"),
    error_case("negative key_length", lambda: masks.causal_mask(2, -3), ValueError, "key_length"),
    error_case("float tensor length", lambda: masks.causal_mask(keras.ops.convert_to_tensor(2.0)), TypeError,
               "query_length"),
    error_case("window 0", lambda: masks.sliding_window_mask(4, 0), ValueError, "window"),
    error_case("window 1.5", lambda: masks.sliding_window_mask(4, 1.5), TypeError, "window"),
    error_case("sliding length -1", lambda: masks.sliding_window_mask(-1, 2), ValueError, "length"),
    error_case("unbroadcastable", lambda: masks.combine_masks(np.ones((2, 3), bool), np.ones((2, 4), bool)),
               ValueError, "masks[1]"),
    error_case("combined 0.5", lambda: masks.combine_masks(np.ones(2, bool), np.full(2, 0.5)), ValueError, "masks[1]"),
    error_case("query_mask rank 3", lambda: mask_of(query_mask=np.ones((2, T, 1), bool)), ValueError, "query_mask"),
    error_case("value_mask (S,)", lambda: mask_of(value_mask=np.ones(S, bool)), ValueError, "value_mask"),
    error_case("value_mask length", lambda: mask_of(value_mask=np.ones((2, S + 1), bool)), ValueError, "value_mask"),
    error_case("key_mask length", lambda: mask_of(key_mask=np.ones((2, T), bool)), ValueError, "key_mask"),
    error_case("attention_mask rank 4", lambda: mask_of(attention_mask=np.ones((2, 1, T, S), bool)), ValueError,
               "attention_mask"),
    error_case("attention_mask S", lambda: mask_of(attention_mask=np.ones((2, T, S + 1), bool)), ValueError,
               "attention_mask"),
    error_case("use_causal_mask string", lambda: mask_of(use_causal_mask="yes"), TypeError, "use_causal_mask"),
    error_case(
        "causal mask of a symbolic input of unknown length",
        lambda: masks.compute_attention_mask(keras.Input((None, 2)), keras.Input((None, 2)), use_causal_mask=True),
        ValueError, "query",
    ),
    error_case("query rank 1", lambda: masks.compute_attention_mask(np.zeros(3), np.zeros((2, S, 2))), ValueError,
               "query"),
    error_case("query None", lambda: masks.compute_attention_mask(None, np.zeros((2, S, 2))), TypeError, "query"),
]


@pytest.mark.parametrize("make, exception, name", ERRORS)
def test_bad_input_raises_naming_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
