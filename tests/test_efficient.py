"""course_lib.efficient: chunked attention (the online softmax) equals plain attention,
for every chunk size, with padding, causal and sliding-window masks and rows with nothing
to attend to; the measuring helpers report what they should."""

import keras
import numpy as np
import pytest

from course_lib import masks
from course_lib.attention import scaled_dot_product_attention
from course_lib.efficient import (chunked_attention, kv_cache_bytes, median_seconds, peak_memory,
                                  recompute_next_token_logits)
from tests.helpers import error_case, numpy_attention, raises_naming, to_numpy

RNG = np.random.default_rng(0)
B, T, S, D, DV = 2, 7, 11, 4, 3
Q = RNG.normal(size=(B, T, D)).astype("float32")
K = RNG.normal(size=(B, S, D)).astype("float32")
V = RNG.normal(size=(B, S, DV)).astype("float32")
PADDING = np.arange(S)[None, None, :] < np.array([S, 5])[:, None, None]  # (B, 1, S)
NOTHING = np.ones((B, T, S), bool)
NOTHING[0, 2] = NOTHING[1, 0] = False  # two queries that may attend to nothing

MASKS = {
    "none": None,
    "padding": PADDING,
    "causal": to_numpy(masks.causal_mask(T, S)),
    "padding_and_causal": PADDING & to_numpy(masks.causal_mask(T, S)),
    "rows_with_nothing": NOTHING,
    "as_0_1": PADDING.astype("int32"),
}


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 10, 11, 128])
@pytest.mark.parametrize("mask", list(MASKS.values()), ids=list(MASKS))
def test_chunked_attention_equals_plain_attention(mask, chunk_size):
    plain, _ = scaled_dot_product_attention(Q, K, V, mask=mask)
    chunked = to_numpy(chunked_attention(Q, K, V, mask=mask, chunk_size=chunk_size))
    assert not np.isnan(chunked).any()
    np.testing.assert_allclose(chunked, to_numpy(plain), atol=1e-5)
    np.testing.assert_allclose(chunked, numpy_attention(Q, K, V, mask=mask)[0], atol=1e-5)


def test_a_query_with_nothing_to_attend_to_gets_zeros():
    out = to_numpy(chunked_attention(Q, K, V, mask=NOTHING, chunk_size=3))
    assert np.all(out[0, 2] == 0) and np.all(out[1, 0] == 0)
    assert np.all(np.abs(out[0, 3]) > 0)


def test_sliding_window_and_large_scores():
    x = 30 * RNG.normal(size=(1, 2, 16, D)).astype("float32")  # scores far beyond exp's range
    window = masks.sliding_window_mask(16, 4)
    plain, _ = scaled_dot_product_attention(x, x, x, mask=window)
    np.testing.assert_allclose(to_numpy(chunked_attention(x, x, x, mask=window, chunk_size=5)), to_numpy(plain),
                               atol=1e-4)


def test_a_later_block_with_a_larger_maximum_rescales_the_earlier_ones():
    key = np.zeros((1, 6, 1), "float32")
    key[0, 5] = 10.0  # the largest score comes in the last block
    query, value = np.ones((1, 1, 1), "float32"), np.arange(6, dtype="float32").reshape(1, 6, 1)
    expected, _ = numpy_attention(query, key, value)
    np.testing.assert_allclose(to_numpy(chunked_attention(query, key, value, chunk_size=2)), expected, atol=1e-5)


def test_integer_inputs_are_computed_in_floatx():
    out = chunked_attention([[[1, 0]]], [[[1, 0], [0, 1]]], [[[1], [3]]], chunk_size=1)
    assert keras.backend.standardize_dtype(out.dtype) == keras.config.floatx()


def test_kv_cache_bytes():
    assert kv_cache_bytes(2, 256, 8, 16) == 2 * 2 * 256 * 8 * 16 * 4
    assert kv_cache_bytes(1, 10, 2, 4, batch_size=3, dtype="float16") == 3 * 2 * 10 * 2 * 4 * 2
    cache = np.zeros((3, 2, 10, 2, 4), "float16")  # one layer's cache (B, 2, L, N, H)
    assert kv_cache_bytes(1, 10, 2, 4, batch_size=3, dtype="float16") == cache.nbytes


def test_median_seconds_runs_the_function_warmup_plus_repeats_times():
    calls = []
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2) >= 0
    assert len(calls) == 5


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's allocator statistics")
def test_peak_memory_returns_the_result_or_says_why_it_cannot():
    import tensorflow as tf

    try:
        result, peak = peak_memory(lambda: tf.ones((256, 256)))
    except RuntimeError as error:  # the default CPU allocator keeps no statistics
        assert "TF_CPU_ALLOCATOR_USE_BFC" in str(error)
        return
    assert result.shape == (256, 256) and peak >= 256 * 256 * 4


def test_recomputing_logits_are_those_of_the_model():
    from course_lib.transformer_model import build_transformer

    model = build_transformer(12, 12, sequence_length=8, num_layers=1, width=8, num_heads=2, dropout=0.0)
    source, prefix = np.array([[3, 4, 5]]), np.array([[1, 7, 8]])
    logits = recompute_next_token_logits(model)(source, prefix)
    np.testing.assert_allclose(to_numpy(logits), to_numpy(model([source, prefix]))[:, -1], atol=1e-6)


ERRORS = [
    error_case("chunk_size 0", lambda: chunked_attention(Q, K, V, chunk_size=0), ValueError, "chunk_size"),
    error_case("chunk_size 1.5", lambda: chunked_attention(Q, K, V, chunk_size=1.5), TypeError, "chunk_size"),
    error_case("key width", lambda: chunked_attention(Q, K[..., :2], V), ValueError, "key"),
    error_case("value length", lambda: chunked_attention(Q, K, V[:, :3]), ValueError, "value"),
    error_case("rank 1", lambda: chunked_attention(Q[0, 0], K, V), ValueError, "query"),
    error_case("additive mask", lambda: chunked_attention(Q, K, V, mask=np.where(PADDING, 0.0, -np.inf)),
               ValueError, "mask"),
    error_case("model", lambda: recompute_next_token_logits(lambda s, p: p), TypeError, "model"),
]


@pytest.mark.parametrize("make, exception, name", ERRORS)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
