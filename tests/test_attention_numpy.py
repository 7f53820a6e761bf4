"""Unit tests of the numpy functions of lesson 01: `course_lib.attention.softmax` and
`course_lib.attention.three_step_attention`."""

import math
import warnings

import numpy as np
import pytest

from course_lib.attention import softmax, three_step_attention
from tests.helpers import error_case, numpy_softmax, raises_naming

QUERY = np.array([1.0, 0.0, 1.0])
KEYS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
VALUES = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])


# softmax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [[1.0, 2.0, 3.0], [-5.0, 0.0, 5.0, 7.5], [0.0], [1e4, -1e4, 0.0]],
    ids=["small", "mixed-signs", "single-entry", "huge-spread"],
)
def test_softmax_is_non_negative_and_sums_to_one(x):
    weights = softmax(x)
    assert weights.shape == np.shape(x)
    assert np.all(weights >= 0)
    assert math.isclose(weights.sum(), 1.0, rel_tol=1e-12)


def test_softmax_matches_the_definition_on_small_scores():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(softmax(x), np.exp(x) / np.exp(x).sum(), rtol=1e-12)
    np.testing.assert_allclose(softmax(x), numpy_softmax(x), rtol=1e-12)


@pytest.mark.parametrize("shift", [-1000.0, -3.5, 2.0, 1e4], ids=lambda s: f"shift={s:g}")
def test_softmax_is_shift_invariant(shift):
    x = np.array([0.5, -1.0, 2.0, 0.0])
    np.testing.assert_allclose(softmax(x + shift), softmax(x), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(
    "x, expected",
    [
        ([1e4, 1e4 + 1.0, 1e4 + 2.0], "shifted"),
        ([-1e4, -1e4 - 1.0, -1e4 - 2.0], "shifted"),
        ([0.0, 1e4], [0.0, 1.0]),
    ],
    ids=["large-positive", "large-negative", "1e4-apart"],
)
def test_softmax_does_not_overflow_or_underflow(x, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning from exp or divide fails
        weights = softmax(x)
    assert np.all(np.isfinite(weights))
    if expected == "shifted":
        x = np.asarray(x)
        expected = softmax(x - x.max())
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("axis", [0, 1, -1, -2], ids=lambda a: f"axis={a}")
def test_softmax_2d_normalises_along_axis(axis):
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1000.0]])
    weights = softmax(x, axis=axis)
    assert weights.shape == x.shape
    np.testing.assert_allclose(weights.sum(axis=axis), 1.0, rtol=1e-12)
    # Each slice along `axis` is the 1-D softmax of that slice.
    expected = np.apply_along_axis(softmax, axis, x)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)


def test_softmax_default_axis_is_last():
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(softmax(x), softmax(x, axis=-1))
    np.testing.assert_allclose(softmax(x).sum(axis=-1), 1.0)


def test_softmax_accepts_integers_and_returns_floats():
    weights = softmax([1, 2, 3])
    assert np.issubdtype(weights.dtype, np.floating)
    np.testing.assert_allclose(weights, softmax([1.0, 2.0, 3.0]))


SOFTMAX_ERRORS = [
    error_case("scalar", lambda: softmax(3.0), ValueError, "x"),
    error_case("strings", lambda: softmax(["a", "b"]), TypeError, "x"),
    error_case("string-array", lambda: softmax(np.array(["a", "b"])), TypeError, "x"),
    error_case("complex", lambda: softmax([1.0 + 2j, 0.0]), TypeError, "x"),
    error_case("bool-array", lambda: softmax(np.array([True, False])), TypeError, "x"),
    error_case("empty", lambda: softmax([]), ValueError, "x"),
    error_case("axis-out-of-range", lambda: softmax([1.0, 2.0], axis=1), ValueError, "axis"),
    error_case("negative-axis-out-of-range", lambda: softmax(np.zeros((2, 3)), axis=-3), ValueError, "axis"),
    error_case("float-axis", lambda: softmax([1.0, 2.0], axis=0.5), TypeError, "axis"),
    error_case("string-axis", lambda: softmax([1.0, 2.0], axis="last"), TypeError, "axis"),
    error_case("bool-axis", lambda: softmax([1.0, 2.0], axis=True), TypeError, "axis"),
]


@pytest.mark.parametrize("make, exception, name", SOFTMAX_ERRORS)
def test_softmax_bad_input_names_the_argument(make, exception, name):
    with raises_naming(exception, name) as error:
        make()
    assert f"Received: {name}" in str(error.value)


def test_softmax_accepts_a_numpy_integer_axis():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_array_equal(softmax(x, axis=np.int64(0)), softmax(x, axis=0))


# three_step_attention ----------------------------------------------------------------


def test_classic_example_exact_weights_and_output():
    output, weights = three_step_attention(QUERY, KEYS, VALUES, scale=1.0)
    scores = np.array([4.0, 10.0, 16.0])  # [1, 0, 1] . each key
    expected_weights = np.exp(scores - 16.0) / np.exp(scores - 16.0).sum()
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-12)
    np.testing.assert_allclose(weights, [6.128982e-06, 2.472608e-03, 0.9975213], rtol=1e-6)
    np.testing.assert_allclose(output, expected_weights @ VALUES, rtol=1e-12)
    np.testing.assert_allclose(output, [0.69925454, 0.79925454, 0.89925454], rtol=1e-7)


def test_default_scale_is_one_over_sqrt_d():
    default_output, default_weights = three_step_attention(QUERY, KEYS, VALUES)
    output, weights = three_step_attention(QUERY, KEYS, VALUES, scale=1 / math.sqrt(3))
    np.testing.assert_allclose(default_weights, weights, rtol=1e-12)
    np.testing.assert_allclose(default_output, output, rtol=1e-12)
    # and it is not the plain dot product
    assert not np.allclose(default_weights, three_step_attention(QUERY, KEYS, VALUES, scale=1.0)[1])


def test_scale_multiplies_the_scores():
    _, weights = three_step_attention(QUERY, KEYS, VALUES, scale=0.25)
    np.testing.assert_allclose(weights, softmax(0.25 * (KEYS @ QUERY)), rtol=1e-12)


def test_zero_query_gives_uniform_weights_and_mean_value():
    output, weights = three_step_attention(np.zeros(3), KEYS, VALUES, scale=1.0)
    np.testing.assert_allclose(weights, np.full(3, 1 / 3))
    np.testing.assert_allclose(output, VALUES.mean(axis=0))


def test_batched_equals_stacked_single_queries():
    rng = np.random.default_rng(0)
    queries, keys, values = rng.normal(size=(5, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    output, weights = three_step_attention(queries, keys, values)
    singles = [three_step_attention(q, keys, values) for q in queries]
    np.testing.assert_allclose(output, np.stack([o for o, _ in singles]), rtol=1e-12)
    np.testing.assert_allclose(weights, np.stack([w for _, w in singles]), rtol=1e-12)


@pytest.mark.parametrize(
    "query_shape, s, d, dv",
    [((3,), 4, 3, 2), ((1, 3), 4, 3, 2), ((7, 5), 2, 5, 6), ((2, 8), 1, 8, 8)],
    ids=["one-query", "one-row-batch", "many-queries", "single-key"],
)
def test_shapes_and_rows_sum_to_one(query_shape, s, d, dv):
    rng = np.random.default_rng(1)
    output, weights = three_step_attention(
        rng.normal(size=query_shape), rng.normal(size=(s, d)), rng.normal(size=(s, dv))
    )
    assert output.shape == query_shape[:-1] + (dv,)
    assert weights.shape == query_shape[:-1] + (s,)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-12)


def test_large_scores_stay_finite():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output, weights = three_step_attention(1000 * QUERY, KEYS, VALUES, scale=1.0)
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights, [0.0, 0.0, 1.0], atol=1e-300)
    np.testing.assert_allclose(output, VALUES[2])


def test_accepts_lists_and_integers():
    output, weights = three_step_attention([1, 0, 1], KEYS.astype(int).tolist(), VALUES.tolist(), scale=1)
    np.testing.assert_allclose(weights, three_step_attention(QUERY, KEYS, VALUES, scale=1.0)[1])
    assert output.shape == (3,)


def attend(**kwargs):
    """`three_step_attention` on the classic example, with some arguments replaced."""
    arguments = {"query": QUERY, "keys": KEYS, "values": VALUES, "scale": 1.0, **kwargs}
    return three_step_attention(**arguments)


THREE_STEP_ERRORS = [
    error_case("query-3d", lambda: attend(query=np.zeros((1, 1, 3))), ValueError, "query"),
    error_case("query-scalar", lambda: attend(query=1.0), ValueError, "query"),
    error_case("keys-1d", lambda: attend(keys=np.zeros(3)), ValueError, "keys"),
    error_case("values-1d", lambda: attend(values=np.zeros(3)), ValueError, "values"),
    error_case("mismatched-d", lambda: attend(query=np.zeros(4)), ValueError, "query"),
    error_case("mismatched-S", lambda: attend(values=np.zeros((2, 3))), ValueError, "values"),
    error_case("no-keys", lambda: attend(keys=np.zeros((0, 3)), values=np.zeros((0, 3))), ValueError, "keys"),
    error_case("no-queries", lambda: attend(query=np.zeros((0, 3))), ValueError, "query"),
    error_case("d=0", lambda: attend(query=np.zeros((2, 0)), keys=np.zeros((3, 0)), scale=None), ValueError, "query"),
    error_case("query-none", lambda: attend(query=None), TypeError, "query"),
    error_case("query-strings", lambda: attend(query=["a", "b", "c"]), TypeError, "query"),
    error_case("ragged-keys", lambda: attend(keys=[[1, 2, 3], [4, 5]]), TypeError, "keys"),
    error_case("values-strings", lambda: attend(values=np.array([["x"] * 3] * 3)), TypeError, "values"),
    error_case("scale-string", lambda: attend(scale="big"), TypeError, "scale"),
    error_case("scale-bool", lambda: attend(scale=True), TypeError, "scale"),
    error_case("scale-list", lambda: attend(scale=[1.0]), TypeError, "scale"),
    error_case("scale-nan", lambda: attend(scale=float("nan")), ValueError, "scale"),
    error_case("scale-inf", lambda: attend(scale=float("inf")), ValueError, "scale"),
]


@pytest.mark.parametrize("make, exception, name", THREE_STEP_ERRORS)
def test_bad_input_names_the_argument(make, exception, name):
    with raises_naming(exception, name) as error:
        make()
    assert "Received: " in str(error.value) and "`x`" not in str(error.value)


def test_numpy_scale_is_accepted():
    np.testing.assert_array_equal(attend(scale=np.float32(0.5))[1], attend(scale=0.5)[1])
