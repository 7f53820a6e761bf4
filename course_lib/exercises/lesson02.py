"""Exercises of lesson 02, "Scoring functions".

02.1  compute Luong's general (bilinear) score `q^T W k` (function);
02.2  count the parameters of additive (Bahdanau) attention (function);
02.3  Nadaraya-Watson weights with a Gaussian kernel of a given bandwidth (function);
02.4  the Nadaraya-Watson prediction at the two limits of the bandwidth (value).

Expected results are computed from the formulas with numpy (`course_lib.attention.softmax`
for the weights), so that checking an answer never imports Keras.
"""

import numpy as np

from course_lib.attention import softmax
from course_lib.exercises import Case, Exercise, register

# The classic example of lesson 01.
QUERY = np.array([1.0, 0.0, 1.0])
KEYS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


# 02.1 ------------------------------------------------------------------------------


def _general_scores(query, keys, kernel):
    query, keys, kernel = (np.asarray(a, dtype=float) for a in (query, keys, kernel))
    # q^T W k_j for every key j: transform the query once, then one dot product per key.
    return keys @ (query @ kernel)  # (S,)


def _general_case(description, query, keys, kernel):
    query, keys, kernel = (np.array(a, dtype=float) for a in (query, keys, kernel))
    expected = np.einsum("i,ij,sj->s", query, kernel, keys)
    return Case(description, expected, args=(query, keys, kernel))


_RNG = np.random.default_rng(2)

register(
    Exercise(
        key="02.1",
        question=(
            "Write `my_general_scores(query, keys, W)`: Luong's general score "
            "`score_j = query^T W key_j` for one query of shape (d_q,), keys of shape "
            "(S, d_k) and W of shape (d_q, d_k). Return the S scores, without a Python "
            "loop over the keys."
        ),
        cases=(
            _general_case(
                "W = identity on the classic example: the general score becomes the dot score",
                QUERY, KEYS, np.eye(3),
            ),
            _general_case(
                "W = diag(1, 0, 0): only the first coordinates are compared",
                QUERY, KEYS, np.diag([1.0, 0.0, 0.0]),
            ),
            _general_case(
                "a non-symmetric W: q^T W k differs from k^T W q",
                QUERY, KEYS, np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
            ),
            _general_case(
                "query of width 2, keys of width 3, W of shape (2, 3): widths may differ",
                [1.0, -1.0], KEYS, np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]),
            ),
            _general_case(
                "random query (4,), 6 keys of width 5, W (4, 5)",
                _RNG.normal(size=4), _RNG.normal(size=(6, 5)), _RNG.normal(size=(4, 5)),
            ),
        ),
        solution=_general_scores,
        hint=(
            "`query @ W` has shape (d_k,): it is the query moved into the key space. "
            "Its dot product with every key is one matrix-vector product with `keys`."
        ),
        mistakes=(
            (
                "computed key^T W query, which is W transposed: W multiplies the query from "
                "the left, `query @ W`",
                lambda query, keys, kernel: keys @ (kernel @ query),
            ),
            (
                "W is not used: the general score is query^T W key, not query . key",
                lambda query, keys, kernel: keys @ query,
            ),
        ),
    )
)


# 02.2 ------------------------------------------------------------------------------


def _additive_param_count(query_dim, key_dim, units, use_bias=True):
    # W_q (query_dim, units) + W_k (key_dim, units) + v (units,) [+ b (units,)]
    return (query_dim + key_dim + 1) * units + (units if use_bias else 0)


def _count_case(description, query_dim, key_dim, units, use_bias):
    expected = query_dim * units + key_dim * units + units + (units if use_bias else 0)
    return Case(description, expected, args=(query_dim, key_dim, units), kwargs={"use_bias": use_bias})


register(
    Exercise(
        key="02.2",
        question=(
            "Write `my_additive_param_count(query_dim, key_dim, units, use_bias=True)`: "
            "the number of trainable parameters of additive attention "
            "`v^T tanh(W_q q + W_k k + b)` (what `AdditiveAttention(units, use_bias)"
            ".count_params()` reports once built on queries of width query_dim and keys "
            "of width key_dim)."
        ),
        cases=(
            _count_case("the lesson's example: widths 3 and 3, units=4, no bias", 3, 3, 4, False),
            _count_case("widths 3 and 3, units=4, with the bias b", 3, 3, 4, True),
            _count_case("different widths 256 (decoder state) and 512 (encoder states), units=128", 256, 512, 128, True),
            _count_case("the smallest layer: widths 1 and 1, units=1, no bias", 1, 1, 1, False),
        ),
        solution=_additive_param_count,
        hint=(
            "List the weights and their shapes: W_q (query_dim, units), W_k (key_dim, "
            "units), v (units,), and b (units,) only when use_bias is True."
        ),
        mistakes=(
            (
                "one vector of `units` entries is missing: the vector v, or the bias b "
                "that use_bias=True adds",
                lambda q, k, units, use_bias=True: (q + k + 1) * units if use_bias else -1,
            ),
            (
                "forgot the vector v (units,) that turns tanh(...) into one score",
                lambda q, k, units, use_bias=True: (q + k) * units + (units if use_bias else 0),
            ),
            (
                "counted the bias b although use_bias=False",
                lambda q, k, units, use_bias=True: (q + k + 2) * units,
            ),
            (
                "forgot a kernel: the queries (W_q) and the keys (W_k) have one each",
                lambda q, k, units, use_bias=True: (max(q, k) + 1) * units + (units if use_bias else 0),
            ),
            (
                "one bias b of `units` in all, not one per kernel",
                lambda q, k, units, use_bias=True: (q + k + 1) * units + (2 * units if use_bias else 0),
            ),
        ),
    )
)


# 02.3 ------------------------------------------------------------------------------


def _nadaraya_watson_weights(x_query, x_train, bandwidth):
    x_query = np.asarray(x_query, dtype=float)[:, None]  # (T, 1)
    x_train = np.asarray(x_train, dtype=float)[None, :]  # (1, N)
    scores = -((x_query - x_train) ** 2) / (2 * bandwidth**2)  # (T, N)
    scores = scores - scores.max(axis=1, keepdims=True)  # stable softmax, row by row
    weights = np.exp(scores)
    return weights / weights.sum(axis=1, keepdims=True)  # (T, N)


def _nw_case(description, x_query, x_train, bandwidth):
    x_query, x_train = np.array(x_query, dtype=float), np.array(x_train, dtype=float)
    expected = softmax(-(np.subtract.outer(x_query, x_train) ** 2) / (2 * bandwidth**2), axis=-1)
    return Case(description, expected, args=(x_query, x_train, bandwidth))


def _nw_mistake(scores_of_distance, axis=-1, stable=True):
    """A wrong Nadaraya-Watson: other scores of the distance, another axis, or a naive exp."""

    def weights(x_query, x_train, bandwidth):
        scores = scores_of_distance(np.subtract.outer(x_query, x_train), bandwidth)  # (T, N)
        if stable:
            return softmax(scores, axis=axis)
        return np.exp(scores) / np.exp(scores).sum(axis=axis, keepdims=True)

    return weights


register(
    Exercise(
        key="02.3",
        question=(
            "Write `my_nadaraya_watson_weights(x_query, x_train, bandwidth)`: for query "
            "points `x_query` (T,) and training points `x_train` (N,), the (T, N) weights "
            "of Nadaraya-Watson regression with the Gaussian kernel "
            "`K(u) = exp(-u^2 / (2 h^2))`, h = bandwidth: `w_ij = K(x_i - x_j) / sum_j "
            "K(x_i - x_j)`. Each row sums to 1, even for a query far from every training point."
        ),
        cases=(
            _nw_case("one query 0.5 halfway between training points [0, 1], bandwidth 1", [0.5], [0.0, 1.0], 1.0),
            _nw_case("queries [0, 1, 2] and training points [0, 1, 2, 3], bandwidth 0.5", [0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0], 0.5),
            _nw_case("a wide bandwidth 100", [0.0, 4.0], [0.0, 1.0, 2.0, 3.0], 100.0),
            _nw_case(
                "query 10 far from training points [0, 1] with bandwidth 0.1: a naive "
                "exp underflows to 0/0",
                [10.0], [0.0, 1.0], 0.1,
            ),
        ),
        solution=_nadaraya_watson_weights,
        hint=(
            "The weights are a softmax over the training points of the scores "
            "`-(x_query - x_train)^2 / (2 h^2)`: build the (T, N) matrix of differences "
            "with broadcasting (`x_query[:, None] - x_train[None, :]`), then shift each "
            "row by its maximum before `np.exp`."
        ),
        mistakes=(
            (
                "the Gaussian kernel divides by 2 h^2, not by h^2",
                _nw_mistake(lambda u, h: -(u**2) / h**2),
            ),
            ("divide by 2 h^2: the bandwidth is squared", _nw_mistake(lambda u, h: -(u**2) / (2 * h))),
            (
                "the kernel squares the distance, (x_i - x_j)^2",
                _nw_mistake(lambda u, h: -np.abs(u) / (2 * h**2)),
            ),
            (
                "the exponent must be negative: nearer training points get larger weights",
                _nw_mistake(lambda u, h: u**2 / (2 * h**2)),
            ),
            (
                "normalised over the queries: each row (one query) must sum to 1 over the training points",
                _nw_mistake(lambda u, h: -(u**2) / (2 * h**2), axis=0),
            ),
            (
                "not numerically stable: every exp underflows to 0 for a query this far, "
                "giving 0/0; shift each row by its maximum score before np.exp",
                _nw_mistake(lambda u, h: -(u**2) / (2 * h**2), stable=False),
            ),
        ),
    )
)


# 02.4 ------------------------------------------------------------------------------


def _bandwidth_limits():
    # x_train = [0, 1, 2, 3], y_train = [0, 1, 4, 9], query x = 2.2.
    # h -> 0: all the weight goes to the nearest training point, x = 2: y = 4.
    # h -> infinity: every weight is 1/4: the mean of y_train, 14 / 4 = 3.5.
    return (4.0, 3.5)


def _limits_diagnosis(received, case):
    tiny, huge = received
    expected_tiny, expected_huge = case.expected
    if np.isclose(tiny, expected_huge, atol=1e-3) and np.isclose(huge, expected_tiny, atol=1e-3):
        return "check the order of the pair: the tiny-bandwidth prediction comes first"
    if np.isclose(tiny, 2.0) or np.isclose(huge, 1.5):
        return "the prediction averages the targets y, not the training points x"
    if np.isclose(tiny, 2.2**2) or np.isclose(huge, 2.2**2):
        return "2.2**2 is the function the targets come from; the prediction can only average the targets y"
    if np.isclose(huge, 14.0):
        return "the huge-bandwidth prediction is a sum of the targets, not an average: the weights sum to 1"
    if not np.isclose(tiny, expected_tiny, atol=1e-3) and any(np.isclose(tiny, [0.0, 1.0, 9.0])):
        return "a tiny bandwidth gives all the weight to the training point nearest to x = 2.2"
    return None


register(
    Exercise(
        key="02.4",
        question=(
            "Nadaraya-Watson regression on training points x = [0, 1, 2, 3] with targets "
            "y = [0, 1, 4, 9], predicted at the query x = 2.2. Without computing any "
            "kernel: what is the prediction when the bandwidth tends to 0, and when it "
            "tends to infinity? Give the pair `(tiny_bandwidth_prediction, "
            "huge_bandwidth_prediction)`."
        ),
        cases=(
            Case(
                "(prediction as the bandwidth -> 0, prediction as the bandwidth -> infinity) "
                "at x = 2.2",
                (
                    float(_nadaraya_watson_weights([2.2], [0.0, 1.0, 2.0, 3.0], 1e-3)[0] @ [0.0, 1.0, 4.0, 9.0]),
                    float(_nadaraya_watson_weights([2.2], [0.0, 1.0, 2.0, 3.0], 1e4)[0] @ [0.0, 1.0, 4.0, 9.0]),
                ),
            ),
        ),
        solution=_bandwidth_limits,
        hint=(
            "A tiny bandwidth makes the softmax a hard maximum (which training point is "
            "closest?); a huge one makes every score almost equal (what is a uniform "
            "average of y?)."
        ),
        answer_is_function=False,
        rtol=1e-4,
        atol=1e-3,
        parts=("the tiny-bandwidth prediction", "the huge-bandwidth prediction"),
        diagnose=(_limits_diagnosis,),
    )
)
