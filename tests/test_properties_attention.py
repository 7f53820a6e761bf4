"""Property tests (hypothesis) of `masked_softmax` and `scaled_dot_product_attention`
against the float64 numpy references of `tests.helpers`, over random shapes, masks
(fully masked rows included), score ranges from -1e30 to 1e30 and float16/float32.

Whatever the case: masked weights are exactly 0, a row sums to 1 if anything is
allowed and is exactly 0 if nothing is, and nothing is NaN. Deterministic
(`derandomize=True`) so that CI is repeatable; about 60 examples per property.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras import ops

from course_lib.attention import masked_softmax, scaled_dot_product_attention
from tests.helpers import assert_attention_weights, gradients, numpy_attention, numpy_softmax, to_numpy

PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")  # one key: Keras warns

# Scores span: a centre and a spread. float16 only goes to 65504.
RANGES = {
    "float32": [(0.0, 1.0), (0.0, 50.0), (-1e4, 10.0), (-1e30, 1e28), (1e30, 1e29), (0.0, 1e30)],
    "float16": [(0.0, 1.0), (0.0, 20.0), (-3e4, 10.0), (-6e4, 3e3), (6e4, 3e3)],
}
TOLERANCE = {"float32": 1e-5, "float16": 4e-3}
# A few shapes `(batch, T, S)` with the edge cases (one key, one query): on JAX each new
# shape compiles every op again, so a handful keeps the suite fast on both backends.
SHAPES = [(1, 1, 1), (1, 1, 4), (1, 3, 1), (2, 4, 5), (2, 5, 6)]


@st.composite
def attention_case(draw):
    """Shapes `(batch, T, S)`, a dtype, a score range and a mask (or `None`), some of
    whose rows are fully masked."""
    dtype = draw(st.sampled_from(["float32", "float16"]))
    batch, t, s = draw(st.sampled_from(SHAPES))
    centre, spread = draw(st.sampled_from(RANGES[dtype]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    mask = None
    if draw(st.booleans()):
        mask = rng.random((batch, t, s)) < draw(st.sampled_from([0.3, 0.7, 1.0]))
        mask[rng.random((batch, t)) < 0.25] = False  # some queries may attend to nothing
    return dtype, (batch, t, s), centre, spread, rng, mask


def draw_scores(shape, centre, spread, dtype, rng):
    """Scores exactly representable in `dtype` (the reference reads the same numbers)."""
    scores = centre + spread * rng.uniform(-1.0, 1.0, size=shape)
    limit = np.finfo(dtype).max / 2
    return np.clip(scores, -limit, limit).astype(dtype)


@PROPERTY
@given(attention_case())
def test_masked_softmax_matches_the_reference_and_is_exact(case):
    dtype, shape, centre, spread, rng, mask = case
    scores = draw_scores(shape, centre, spread, dtype, rng)
    weights = masked_softmax(scores, mask)
    assert keras.backend.standardize_dtype(weights.dtype) == dtype
    weights = to_numpy(weights).astype("float64")
    np.testing.assert_allclose(weights, numpy_softmax(scores, mask=mask), atol=TOLERANCE[dtype])
    assert_attention_weights(weights, mask, atol=TOLERANCE[dtype] * shape[-1])


@PROPERTY
@given(attention_case(), st.sampled_from([1, 3, 8]), st.sampled_from([1, 4]))
def test_scaled_dot_product_attention_matches_the_reference(case, d, dv):
    dtype, (batch, t, s), centre, spread, rng, mask = case
    # Moderate inputs: the scores are then well conditioned in float16 too.
    query, key, value = (rng.normal(size=(batch, n, k)).astype(dtype) for n, k in ((t, d), (s, d), (s, dv)))
    output, weights = scaled_dot_product_attention(query, key, value, mask=mask)
    expected_output, expected_weights = numpy_attention(query, key, value, mask=mask)
    atol = 1e-5 if dtype == "float32" else 3e-2
    np.testing.assert_allclose(to_numpy(weights).astype("float64"), expected_weights, atol=atol)
    np.testing.assert_allclose(to_numpy(output).astype("float64"), expected_output, atol=atol * 10)
    assert_attention_weights(weights, mask, atol=atol * s)
    if mask is not None:  # a query that may attend to nothing gets a zero output
        np.testing.assert_array_equal(to_numpy(output)[~mask.any(-1)], 0.0)


@PROPERTY
@given(attention_case(), st.sampled_from([1, 4]))
def test_scaled_dot_product_attention_is_exact_for_extreme_scores(case, dv):
    # Shift every score of a query by the same huge amount (an extra feature: q' = [q, c],
    # k' = [k, 1]): the weights must stay a distribution over the allowed keys. (Where the
    # shift is far larger than the score differences, the dtype cannot keep their order.)
    dtype, (batch, t, s), centre, spread, rng, mask = case
    query = rng.normal(size=(batch, t, 3)).astype(dtype)
    key = rng.normal(size=(batch, s, 3)).astype(dtype)
    shift = np.full((batch, t, 1), centre, dtype)
    query = np.concatenate([query, shift], axis=-1)  # (batch, T, 4)
    key = np.concatenate([key, np.ones((batch, s, 1), dtype)], axis=-1)  # (batch, S, 4)
    value = rng.normal(size=(batch, s, dv)).astype(dtype)
    output, weights = scaled_dot_product_attention(query, key, value, mask=mask, scale=1.0)
    assert not np.isnan(to_numpy(output)).any()
    assert_attention_weights(weights, mask, atol=TOLERANCE[dtype] * s * 10)
    if dtype == "float32" and abs(centre) <= 1e4:  # the shift costs at most 1e-3 of precision
        _, expected_weights = numpy_attention(query, key, value, mask=mask, scale=1.0)
        np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-2)


@settings(PROPERTY, max_examples=20)
@given(attention_case())
def test_masked_softmax_gradients_are_finite(case):
    dtype, shape, centre, spread, rng, mask = case
    scores = draw_scores(shape, centre, spread, "float32", rng)
    target = rng.normal(size=shape).astype("float32")
    (gradient,) = gradients(lambda x: ops.sum(masked_softmax(x, mask) * target), scores)
    assert np.isfinite(gradient).all()
    if mask is not None:
        np.testing.assert_array_equal(gradient[~mask], 0.0)
