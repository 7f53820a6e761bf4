"""Exercises of lesson 02, "Scoring functions".

02.1  compute Luong's general (bilinear) score `q^T W k` (function);
02.2  count the parameters of additive (Bahdanau) attention (function);
02.3  Nadaraya-Watson weights with a Gaussian kernel of a given bandwidth (function);
02.4  the Nadaraya-Watson prediction at the two limits of the bandwidth (value);
02.5  an experiment: learn the kernel width on less noisy data (checker);
02.6  the bytes of the additive score's hidden tensor and of the score matrix (value).

Expected results are computed from the formulas with numpy (`course_lib.attention.softmax`
for the weights), so that checking an answer never imports Keras.
"""

import functools

import numpy as np

from course_lib.attention import softmax
from course_lib.exercises import Case, Exercise, as_number, register

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


# 02.5 ------------------------------------------------------------------------------
# The lesson's regression data, drawn as its section 5 draws them: `sample(n, rng, noise)`.


def regression_function(x):
    """The lesson's true function, f(x) = 2 sin(x) + x^0.8."""
    return 2 * np.sin(x) + x**0.8


def sample(n, rng, noise=0.5):
    """`n` noisy samples of `regression_function` on [0, 5], sorted by x, as the lesson draws them."""
    x = np.sort(rng.uniform(0, 5, size=n))
    return x, regression_function(x) + rng.normal(0.0, noise, size=n)


def leave_one_out_error(x, y, width):
    """Mean squared error of Nadaraya-Watson at each training point, predicted from the others."""
    scores = -((x[:, None] - x[None, :]) ** 2) / (2 * width**2)  # (N, N)
    np.fill_diagonal(scores, -np.inf)  # a point never attends to itself
    return float(np.mean((softmax(scores, axis=-1) @ y - y) ** 2))


WIDTH_TOLERANCE = 0.02  # a width passes if its leave-one-out error is within 2% of the best
_WIDTHS = np.geomspace(0.01, 2.0, 600)


@functools.lru_cache(maxsize=4)
def _width_band(noise):
    """The leave-one-out errors and the smallest one over a fine grid, for data of `noise`."""
    x, y = sample(50, np.random.default_rng(0), noise=noise)
    errors = np.array([leave_one_out_error(x, y, h) for h in _WIDTHS])
    return x, y, errors.min(), _WIDTHS[errors <= (1 + WIDTH_TOLERANCE) * errors.min()]


def _check_learned_width(answer):
    width = as_number(answer, "the width")
    if not np.isfinite(width):
        return "the width is not a finite number: did the training diverge? try a smaller learning rate"
    if width <= 0:
        if width < 0 and np.isclose(np.exp(width), _width_band(0.1)[3], rtol=0.05).any():
            return "a negative number: is it the logarithm of the width? give h = exp(log_width)"
        return "a kernel width is a positive number"
    x, y, best, band = _width_band(0.1)
    if band.min() <= width <= band.max():
        return None
    if band.min() <= 1 / width <= band.max():
        return "that looks like w = 1/h, the factor inside the kernel; give the width h itself"
    lesson_band = _width_band(0.5)[3]
    if lesson_band.min() <= width <= lesson_band.max():
        return ("that is a good width for the lesson's data (noise 0.5), not for the less noisy "
                "data: draw them with `sample(50, np.random.default_rng(0), noise=0.1)`")
    excess = leave_one_out_error(x, y, width) / best - 1
    if width < band.min():
        if width < 0.03:
            return ("far too narrow: did each training point take part in its own prediction? With "
                    "itself included, the training error keeps falling as the width shrinks; leave it out")
        return (f"too narrow: its leave-one-out error is {100 * excess:.0f}% above the best width's "
                "(train longer, or with a larger learning rate?)")
    return (f"too wide: its leave-one-out error is {100 * excess:.0f}% above the best width's "
            "(did the training stop early? a larger learning rate, or more steps)")


register(
    Exercise(
        key="02.5",
        question=(
            "Change the experiment of section 6: draw the 50 training points with less noise, "
            "`x_train, y_train = sample(50, np.random.default_rng(0), noise=0.1)`, learn the "
            "kernel width h on them by gradient descent with leave-one-out (as section 6 does), "
            "and give the learned width h (a number). Is it narrower or wider than the width "
            "learned on the lesson's data (noise 0.5)? It passes if its leave-one-out error is "
            f"within {WIDTH_TOLERANCE:.0%} of the smallest one."
        ),
        checker=_check_learned_width,
        solution=(
            "x2, y2 = sample(50, np.random.default_rng(0), noise=0.1)\n"
            "width, path, train_error = learn_width(x2, y2, leave_one_out=True)\n"
            "width  # narrower than on the noise-0.5 data: less noise, less averaging needed\n"
            "# the same, read off a grid without training:\n"
            "# widths[np.argmin([leave_one_out_error(x2, y2, h) for h in widths])]"
        ),
        hint=(
            "Reuse `learn_width` of section 6 on the new data. If the width has not settled "
            "after the steps you ran (print its path), run more steps or raise the learning rate."
        ),
    )
)


# 02.6 ------------------------------------------------------------------------------

_SHAPES = {"batch_size": 64, "T": 30, "S": 40, "units": 256}


def _hidden_bytes():
    # AdditiveAttention's hidden tensor tanh(q' + k') is (B, T, S, units), the dot
    # product's score matrix (B, T, S); float32 is 4 bytes per number.
    b, t, s, u = _SHAPES.values()
    return (b * t * s * u * 4, b * t * s * 4)


def _bytes_diagnosis(received, case):
    hidden, scores = received
    expected_hidden, expected_scores = case.expected
    b, t, s, u = _SHAPES.values()
    for value, expected, name in ((hidden, expected_hidden, "the hidden tensor"),
                                  (scores, expected_scores, "the score matrix")):
        if value == expected:
            continue
        if value * 4 == expected:
            return f"{name}: that is the number of entries; each float32 entry takes 4 bytes"
        if value == 2 * expected:
            return f"{name}: that is float64 (8 bytes per number, numpy's default); the layers compute in float32"
        if value * b == expected:
            return f"{name}: the batch axis is missing; every sentence of the batch has its own"
        if value * s == expected * t or value * t == expected * s:
            return f"{name}: T and S differ here ({t} queries, {s} keys): one entry per (query, key) pair"
        if value * 1e6 == expected or abs(value * 2**20 - expected) < 2**20:
            return f"{name}: give bytes, not megabytes"
        if name == "the hidden tensor" and value * u == expected:
            return f"{name}: it holds `units` numbers per (query, key) pair, not one"
    return None


register(
    Exercise(
        key="02.6",
        question=(
            "Measure it with keras.ops: build the additive score's hidden tensor "
            "`tanh(W_q q + W_k k)` for a batch of B = 64 sentences, T = 30 decoder states "
            "(queries) of width 32, S = 40 encoder states (keys) of width 32, units = 256, "
            "in float32, and the dot-product score matrix `Q K^T` of the same batch. Give "
            "the pair `(hidden_bytes, score_bytes)`: the size of each in bytes "
            "(`keras.ops.convert_to_numpy(t).nbytes`)."
        ),
        cases=(Case("(bytes of the hidden tensor, bytes of the score matrix)", _hidden_bytes()),),
        solution=_hidden_bytes,
        hint=(
            "Write the shapes first: the hidden tensor has one entry per (sentence, query, key, "
            "unit), the score matrix one per (sentence, query, key); a float32 takes 4 bytes."
        ),
        answer_is_function=False,
        parts=("the hidden tensor's bytes", "the score matrix's bytes"),
        diagnose=(_bytes_diagnosis,),
    )
)
