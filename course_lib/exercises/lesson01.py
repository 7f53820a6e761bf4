"""Exercises of lesson 01, "Attention in three steps".

01.1  write a numerically stable softmax (function);
01.2  compute the attention weights of one query by hand (value);
01.3  write batched attention with a scale (function);
01.4  predict which key gets the most weight (value);
01.5  experiment: the scale at which one key first takes 90% of the weight (checked by
      recomputation).

Expected results come from `course_lib.attention`, the functions the lesson builds.
"""

import numpy as np

from course_lib.attention import softmax, three_step_attention
from course_lib.exercises import Case, Exercise, as_number, register

# The classic example of the lesson.
KEYS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
VALUES = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])


# 01.1 ------------------------------------------------------------------------------


def _stable_softmax(x, axis=-1):
    x = np.asarray(x, dtype=float)
    shifted = x - np.max(x, axis=axis, keepdims=True)  # the largest entry becomes 0
    exps = np.exp(shifted)  # every argument <= 0: no overflow
    return exps / np.sum(exps, axis=axis, keepdims=True)


_MATRIX = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1000.0]])


def _softmax_case(description, scores, **kwargs):
    scores = np.array(scores, dtype=float)
    return Case(description, softmax(scores, **kwargs), args=(scores,), kwargs=kwargs)


def _shifted_by_global_max(x, axis=-1):
    exps = np.exp(x - np.max(x))
    return exps / exps.sum(axis=axis, keepdims=True)


def _naive_softmax(x, axis=-1):
    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)


def _other_axis(axis, ndim):
    return 0 if axis % ndim == ndim - 1 else -1


_SOFTMAX_CASES = (
    _softmax_case("small scores [1, 2, 3]", [1.0, 2.0, 3.0]),
    _softmax_case("equal scores [5, 5, 5, 5]", [5.0, 5.0, 5.0, 5.0]),
    _softmax_case("large scores [1000, 1001, 1002]: a naive exp overflows to inf", [1000.0, 1001.0, 1002.0]),
    _softmax_case(
        "very negative scores [-1000, -1001, -1002]: a naive exp underflows to 0/0",
        [-1000.0, -1001.0, -1002.0],
    ),
    _softmax_case("scores 1e4 apart [0, 1e4]", [0.0, 1e4]),
    _softmax_case("2-D input (2, 3), default axis=-1: each row sums to 1", _MATRIX),
    _softmax_case("2-D input (2, 3) with axis=0: each column sums to 1", _MATRIX, axis=0),
)

register(
    Exercise(
        key="01.1",
        question=(
            "Write `my_softmax(x, axis=-1)`: a softmax along `axis` that never overflows "
            "or divides 0 by 0, for scores as large as 1e4 or as negative as -1e3, and "
            "that works on 2-D input along either axis. Use numpy only."
        ),
        cases=_SOFTMAX_CASES,
        solution=_stable_softmax,
        hint=(
            "Subtract the maximum along `axis` (with `keepdims=True`) before `np.exp`: "
            "the result is unchanged, but every exponent is <= 0 and the largest term is 1."
        ),
        mistakes=(
            (
                "not numerically stable: np.exp overflows to inf for large scores (and every "
                "term underflows to 0, giving 0/0, for very negative ones); subtract the "
                "maximum along `axis` before np.exp",
                _naive_softmax,
            ),
            (
                "shifted by the maximum of the whole array: a row far below it underflows "
                "to 0/0; take the maximum along `axis`, with keepdims=True",
                _shifted_by_global_max,
            ),
            (
                "softmax along the wrong axis: the slices along `axis` must sum to 1",
                lambda x, axis=-1: softmax(x, axis=_other_axis(axis, x.ndim)),
            ),
            (
                "normalised over the whole array: sum along `axis` only (keepdims=True)",
                lambda x, axis=-1: np.exp(x - x.max()) / np.exp(x - x.max()).sum(),
            ),
        ),
        diagnose=(
            lambda received, case: (
                "not numerically stable: np.exp overflows (or underflows to 0/0) for "
                "scores this far from 0; shift by the maximum along `axis` first"
                if not np.isfinite(received).all() and np.abs(case.args[0]).max() > 700
                else None
            ),
        ),
    )
)


# 01.2 ------------------------------------------------------------------------------


def _weights_of_query():
    query = np.array([0.0, 0.5, 0.0])
    scores = KEYS @ query  # [1.0, 2.5, 4.0], scale = 1.0
    exps = np.exp(scores - scores.max())
    return exps / exps.sum()


register(
    Exercise(
        key="01.2",
        question=(
            "With plain dot-product scores (`scale=1.0`), what are the attention weights "
            "of the query [0, 0.5, 0] over the classic keys [[1, 2, 3], [4, 5, 6], "
            "[7, 8, 9]]? Give an array of 3 weights; compute the scores and the softmax "
            "yourself, without `three_step_attention`; two or three decimals are enough."
        ),
        cases=(
            Case(
                "weights of the query [0, 0.5, 0] over the classic keys, scale=1.0",
                three_step_attention([0.0, 0.5, 0.0], KEYS, VALUES, scale=1.0)[1],
            ),
        ),
        solution=_weights_of_query,
        hint="The scores are the dot products [1, 2.5, 4]; now apply the softmax.",
        answer_is_function=False,
        rtol=0.0,
        atol=5e-3,  # an answer rounded by hand to two decimals passes
        mistakes=(
            ("these are the scores: the weights are their softmax", KEYS @ [0.0, 0.5, 0.0]),
            (
                "scale=1.0 here: the scores are not divided by sqrt(3)",
                softmax(KEYS @ [0.0, 0.5, 0.0] / np.sqrt(3.0)),
            ),
            (
                "that is the output (the weighted average of the values), not the weights",
                three_step_attention([0.0, 0.5, 0.0], KEYS, VALUES, scale=1.0)[0],
            ),
            ("equal weights would need equal scores, and these scores differ", np.full(3, 1 / 3)),
            (
                "those are the weights of the classic query [1, 0, 1]; this query is different",
                softmax(KEYS @ [1.0, 0.0, 1.0]),
            ),
        ),
    )
)


# 01.3 ------------------------------------------------------------------------------


def _batched_attention(queries, keys, values, scale):
    queries, keys, values = (np.asarray(a, dtype=float) for a in (queries, keys, values))
    scores = queries @ keys.T * scale  # (T, S)
    scores = scores - scores.max(axis=-1, keepdims=True)  # stable softmax, row by row
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)  # (T, S)
    return weights @ values, weights  # (T, dv), (T, S)


def _attention_case(description, queries, keys, values, scale):
    queries = np.array(queries, dtype=float)
    expected = three_step_attention(queries, keys, values, scale=scale)
    return Case(description, expected, args=(queries, keys, values, scale))


def _softmax_over_queries(queries, keys, values, scale):
    weights = softmax(queries @ keys.T * scale, axis=0)  # (T, S), columns sum to 1
    return weights @ values, weights


def _naive_attention(queries, keys, values, scale):
    weights = np.exp(queries @ keys.T * scale)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ values, weights


def _global_shift_attention(queries, keys, values, scale):
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = _shifted_by_global_max(queries @ keys.T * scale)
    return weights @ values, weights


_RNG = np.random.default_rng(1)
_Q, _K, _V = _RNG.normal(size=(4, 8)), _RNG.normal(size=(5, 8)), _RNG.normal(size=(5, 2))

register(
    Exercise(
        key="01.3",
        question=(
            "Write `my_attention(queries, keys, values, scale)` for many queries at once: "
            "`queries` (T, d), `keys` (S, d), `values` (S, dv); the scores are multiplied "
            "by `scale`. Return `(output, weights)` of shapes (T, dv) and (T, S), with no "
            "Python loop over the queries."
        ),
        cases=(
            _attention_case("one query [[1, 0, 1]], classic example, scale=1.0", [[1.0, 0.0, 1.0]], KEYS, VALUES, 1.0),
            _attention_case(
                "two queries [[1, 0, 1], [-1, 0, 0]] at once, scale=1.0: each row of weights sums to 1",
                [[1.0, 0.0, 1.0], [-1.0, 0.0, 0.0]], KEYS, VALUES, 1.0,
            ),
            _attention_case("classic example with scale=1/sqrt(3)", [[1.0, 0.0, 1.0]], KEYS, VALUES, 3 ** -0.5),
            _attention_case(
                "query [[100, 0, 100]], scale=1.0: scores [400, 1000, 1600] overflow a naive exp",
                [[100.0, 0.0, 100.0]], KEYS, VALUES, 1.0,
            ),
            _attention_case(
                "two queries [[100, 0, 100], [-100, 0, 0]], scale=1.0: rows of scores [400 .. 1600] "
                "and [-100 .. -700], far apart",
                [[100.0, 0.0, 100.0], [-100.0, 0.0, 0.0]], KEYS, VALUES, 1.0,
            ),
            _attention_case(
                "negative scale -1.0: the smallest dot product gets the most weight",
                [[1.0, 0.0, 1.0]], KEYS, VALUES, -1.0,
            ),
            _attention_case(
                "4 random queries, 5 keys of width 8, values of width 2 (dv != d), scale=1/sqrt(8)",
                _Q, _K, _V, 8 ** -0.5,
            ),
        ),
        solution=_batched_attention,
        hint=(
            "`queries @ keys.T` gives all (T, S) scores at once; take the softmax of each "
            "row (axis=-1, shift by the row's maximum), then `weights @ values`."
        ),
        parts=("output", "weights"),
        mistakes=(
            (
                "forgot the scale: the scores are multiplied by `scale`",
                lambda q, k, v, scale: three_step_attention(q, k, v, scale=1.0),
            ),
            (
                "divided the scores by `scale`: they are multiplied by it",
                lambda q, k, v, scale: three_step_attention(q, k, v, scale=1 / scale),
            ),
            (
                "used 1/sqrt(d) instead of the `scale` argument",
                lambda q, k, v, scale: three_step_attention(q, k, v, scale=None),
            ),
            (
                "softmax along the wrong axis: each row of weights (one query) must sum to 1 over the keys",
                _softmax_over_queries,
            ),
            (
                "not numerically stable: np.exp overflows to inf for scores this large; "
                "subtract each row's maximum score before np.exp",
                _naive_attention,
            ),
            (
                "shifted every score by the largest score of the whole matrix: a row far below it "
                "underflows to 0/0; shift each row by its own maximum (axis=-1, keepdims=True)",
                lambda q, k, v, scale: _global_shift_attention(q, k, v, scale),
            ),
            (
                "output and weights are swapped: return (output, weights)",
                lambda q, k, v, scale: three_step_attention(q, k, v, scale=scale)[::-1],
            ),
        ),
    )
)


# 01.4 ------------------------------------------------------------------------------


def _key_with_most_weight():
    # Scores of [1, 0, -2] are k[0] - 2 * k[2] for each key: [-5, -8, -11].
    # The softmax is increasing, so the largest score, -5, wins: key 0.
    return 0


register(
    Exercise(
        key="01.4",
        question=(
            "Without computing the softmax: for the query [1, 0, -2] and the classic keys "
            "[[1, 2, 3], [4, 5, 6], [7, 8, 9]] (scale=1.0), which key (0, 1 or 2) gets the "
            "most weight? Give its index."
        ),
        cases=(
            Case(
                "index of the key with the largest weight for the query [1, 0, -2] "
                "(all three scores are negative)",
                int(np.argmax(three_step_attention([1.0, 0.0, -2.0], KEYS, VALUES, scale=1.0)[1])),
            ),
        ),
        solution=_key_with_most_weight,
        hint=(
            "The softmax keeps the order of the scores: find the largest dot product "
            "(all three are negative; the largest is the closest to 0)."
        ),
        answer_is_function=False,
        mistakes=(
            (
                "key 2 has the largest entries, but the query's -2 falls on its largest "
                "entry: compute the three dot products q.k_j",
                2,
            ),
            ("key 1's score is not the largest: compute the three dot products q.k_j", 1),
        ),
        diagnose=(
            lambda received, case: (
                None if received in (0, 1, 2) else "that is not the index of one of the three keys"
            ),
        ),
    )
)


# 01.5 ------------------------------------------------------------------------------

CLASSIC_QUERY = np.array([1.0, 0.0, 1.0])
THRESHOLD = 0.9  # the largest weight to exceed
RESOLUTION = 0.005  # how close to the crossing the answer must be


def _largest_weight(scale):
    """The largest attention weight of the classic query at `scale` (numpy, exact)."""
    return float(np.max(three_step_attention(CLASSIC_QUERY, KEYS, VALUES, scale=scale)[1]))


_SOLUTION_01_5 = """\
# A sweep 1e-4 apart; the largest weight only grows with the scale, so the first
# scale above 0.9 is the crossing (bisection finds it too, in fewer steps).
scales = np.linspace(0.0, 1.0, 10001)
largest = np.array([three_step_attention(query, keys, values, scale=c)[1].max() for c in scales])
answer = float(scales[np.argmax(largest > 0.9)])
check("01.5", answer)"""


def _check_scale(answer):
    scale = as_number(answer, "the scale")
    if not np.isfinite(scale):
        return "the scale should be a finite number"
    if scale < 0:
        return ("the scale should be positive: a negative scale favours the smallest score "
                "instead, and the question asks for the first positive scale")
    if scale == 0:
        return "at scale 0 the three weights are equal: the crossing is at a positive scale"
    if _largest_weight(scale + RESOLUTION) <= THRESHOLD:
        return ("at that scale the largest weight is still below 0.9 (recomputed): the crossing "
                "is at a larger scale")
    if _largest_weight(scale - RESOLUTION) > THRESHOLD:
        if _largest_weight(scale / 2) > THRESHOLD:
            return ("the largest weight already exceeds 0.9 at half that scale (recomputed): "
                    "look at smaller scales")
        return ("the largest weight already exceeds 0.9 a little below that scale (recomputed): "
                f"find the first scale where it does, to within {RESOLUTION}")
    return None


register(
    Exercise(
        key="01.5",
        question=(
            "Experiment: the largest weight of the classic query [1, 0, 1] over the classic "
            "keys grows with the scale, from 1/3 at scale 0 to 0.9975 at scale 1. Find the "
            f"smallest positive scale at which it exceeds 0.9, to within {RESOLUTION}, by "
            "sweeping the scale more finely than the lesson (or by bisection) with "
            "`three_step_attention(query, keys, values, scale=c)`; give the scale as a number."
        ),
        checker=_check_scale,
        solution=_SOLUTION_01_5,
        hint=(
            "Evaluate the largest weight on a fine grid, e.g. `np.linspace(0.3, 0.5, 201)`, "
            "and take the first scale whose largest weight is above 0.9; or bisect: the "
            "largest weight only grows with the scale."
        ),
    )
)
