"""The exercises: every registered exercise accepts its reference solution and the same
answer in other valid forms, rejects typical wrong answers with feedback that names
the mistake, never prints the expected value unless `solution()` is asked, and checks
answers robustly (fresh copies of its inputs, a function that returns None, answers of
the wrong type). The framework's generic diagnostics and the experiment kind are
tested on small examples of their own."""

import doctest
import math
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import AnswerError, Case, Exercise

ALL_KEYS = exercises.keys()
# Exercises checked against cases; an experiment (a checker) is tested by its lesson's
# own tests, as `check_reading` is below.
KEYS = [k for k in ALL_KEYS if exercises.get(k).checker is None]
FUNCTION_KEYS = [k for k in KEYS if exercises.get(k).answer_is_function]


def reference(key):
    exercise = exercises.get(key)
    return exercise.solution if exercise.answer_is_function else exercise.solution()


def printed_check(key, answer, capsys):
    exercises.check(key, answer)
    return capsys.readouterr().out


def test_check_prints_the_verdict_and_returns_nothing_for_the_notebook_to_show(capsys):
    """A cell ending with `check(...)` shows the printed verdict only, not `False`."""
    assert exercises.check("01.4", ...) is None
    assert exercises.check("01.4", 7) is None
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[01.4] Exercise: not attempted") and out[1].startswith("[01.4] Not yet:")


# What the expected value looks like when printed -------------------------------------


def formats(value, elements=False):
    """The ways a message could show `value`: repr, str, lists, np.array2string at several
    precisions, rounded to 2-4 digits; with `elements`, each non-integer entry too."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, (tuple, list)) and not all(np.isscalar(v) for v in value):
        return set().union(*(formats(v, elements) for v in value))
    array = np.asarray(value)
    if array.ndim == 0:
        v = array.item()
        found = {repr(v), str(v), np.array2string(array)}
        if isinstance(v, float):
            for k in (2, 3, 4):
                found |= {f"{v:.{k}f}", f"{v:.{k}g}", str(round(v, k))}
            if v.is_integer():
                found.add(str(int(v)))
        return found
    found = {repr(value), str(value), repr(array), str(array), str(array.tolist()), str(tuple(array.tolist()))}
    for precision in range(2, 9):
        for separator in (" ", ", "):
            for suppress_small in (False, True):
                found.add(np.array2string(array, precision=precision, separator=separator, suppress_small=suppress_small))
    if array.dtype.kind == "f":
        found |= {str(np.round(array, k).tolist()) for k in (2, 3, 4)}
        if elements:
            for v in array.ravel().tolist():
                found |= set() if v.is_integer() else formats(v)
    return {" ".join(f.split()) for f in found}


def shows(text, shown):
    """Whether `text` contains `shown`; a number only as a whole token."""
    if re.fullmatch(r"-?[\d.]+(e-?\d+)?", shown):
        return re.search(rf"(?<![\w.]){re.escape(shown)}(?!\w|\.\d)", text) is not None
    return shown.lower() in text.lower()


def assert_expected_not_shown(key, printed, hint=False):
    """No expected value of exercise `key` in `printed`. For a function exercise the
    case counters and the inputs are the question, so they are removed first, and
    numbers of at most 3 characters that the question or a case description shows
    (`0`, `1.0`) are not looked for; in a hint, neither are those of a value exercise."""
    exercise = exercises.get(key)
    text = " ".join(printed.split())
    given = exercise.question
    if exercise.answer_is_function:
        text = re.sub(r"case \d+ of \d+", "", text)
        for case in exercise.cases:
            text = text.replace(exercises._show_inputs(exercise, case), "")
        given = " ".join([exercise.question] + [case.description for case in exercise.cases])
    for case in exercise.cases:
        parts = case.expected if exercise.parts else [case.expected]  # each part is an answer too
        for shown in set().union(*(formats(part, elements=not exercise.answer_is_function) for part in parts)):
            if (exercise.answer_is_function or hint) and len(shown) <= 3 and shows(given, shown):
                continue
            assert not shows(text, shown), f"{key}: the printed feedback shows {shown!r}: {printed}"


# 1. The reference, and the same answer in other valid forms ---------------------------


@pytest.mark.parametrize("key", KEYS)
def test_reference_solution_is_correct(key):
    status, message = exercises.evaluate(key, reference(key))
    assert status == "correct", message


def softmax_with_array_methods(x, axis=-1):
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


def softmax_in_place(x, axis=-1):
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


def attention_using_shape_returning_list(queries, keys, values, scale):
    scores = (queries @ keys.T * scale).reshape(queries.shape[0], keys.shape[0])
    weights = softmax_with_array_methods(scores)
    return [weights @ values, weights]


def nadaraya_watson_with_the_hint(x_query, x_train, bandwidth):
    return softmax_with_array_methods(-((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2))


def general_scores_as_tensor(query, keys, kernel):
    return keras.ops.matmul(keras.ops.convert_to_tensor(keys), keras.ops.matmul(query, kernel))


def target_pair_as_lists(token_ids, length):
    target_in, target_out = [1] + list(token_ids), list(token_ids) + [2]
    return target_in + [0] * (length - len(target_in)), target_out + [0] * (length - len(target_out))


ALTERNATIVES = [
    pytest.param("01.1", softmax_with_array_methods, id="01.1-x.max-keepdims"),
    pytest.param("01.1", softmax_in_place, id="01.1-in-place"),
    pytest.param("01.2", [0.039, 0.175, 0.786], id="01.2-rounded-3-digits"),
    pytest.param("01.2", (0.04, 0.18, 0.79), id="01.2-rounded-2-digits-tuple"),
    pytest.param("01.2", keras.ops.convert_to_tensor([0.0391, 0.1753, 0.7856]), id="01.2-tensor"),
    pytest.param("01.3", attention_using_shape_returning_list, id="01.3-queries.shape-list"),
    pytest.param("01.4", np.int64(0), id="01.4-numpy-int"),
    pytest.param("01.4", 0.0, id="01.4-whole-float"),
    pytest.param("02.1", general_scores_as_tensor, id="02.1-tensor"),
    pytest.param("02.2", lambda q, k, u, use_bias=True: float((q + k + 1 + use_bias) * u), id="02.2-float"),
    pytest.param("02.3", nadaraya_watson_with_the_hint, id="02.3-x_query[:,None]"),
    pytest.param("02.4", [4, 3.5], id="02.4-list"),
    pytest.param("02.4", np.array([4.0, 3.5]), id="02.4-array"),
    pytest.param("03.1", lambda i, length: np.int64(length - 1 - i), id="03.1-numpy-int"),
    pytest.param("03.3", np.float64(2 / 4), id="03.3-numpy-float"),
    pytest.param("03.4", [np.int64(64), 2624.0], id="03.4-list-mixed"),
    pytest.param("04.1", target_pair_as_lists, id="04.1-lists"),
    pytest.param("04.4", 0.717, id="04.4-rounded-3-digits"),
    pytest.param("04.4", 0.72, id="04.4-rounded-2-digits"),
    pytest.param("04.4", np.float32(math.exp(-1 / 3)), id="04.4-float32"),
    pytest.param("05.1", lambda t, s: np.tril(np.ones((t, s), int)), id="05.1-ints-0-1"),
    pytest.param("05.1", lambda t, s: keras.ops.convert_to_tensor(np.tril(np.ones((t, s), bool))), id="05.1-tensor"),
    pytest.param("05.3", lambda d_k, std=1.0, scaled=False: np.float32(std**4 * (1 if scaled else d_k)), id="05.3-f32"),
    pytest.param("07.1", lambda pos, j, d, max_wavelength=10000: np.float64(
        (np.sin if j % 2 == 0 else np.cos)(pos / max_wavelength ** (2 * (j // 2) / d))), id="07.1-numpy-float"),
    pytest.param("07.2", lambda v, a: [v[0] * math.cos(a) - v[1] * math.sin(a),
                                       v[0] * math.sin(a) + v[1] * math.cos(a)], id="07.2-list"),
    pytest.param("07.3", (2, 0, 3, 1), id="07.3-tuple"),
    pytest.param("07.3", np.array([2, 0, 3, 1]), id="07.3-array"),
    pytest.param("07.4", "Learned", id="07.4-capitalised"),
    pytest.param("07.4", "  LEARNED\n", id="07.4-upper-case-spaces"),
    pytest.param("07.4", np.str_("learned"), id="07.4-np.str_"),
    pytest.param("08.2", lambda x, n: np.stack(np.split(x, n, axis=-1), axis=1), id="08.2-split-stack"),
    pytest.param("08.3", lambda x: np.concatenate(list(np.moveaxis(x, 1, 0)), axis=-1), id="08.3-concatenate"),
    pytest.param("08.4", [2, 4, 10, 7], id="08.4-list"),
    pytest.param("08.4", tuple(np.int64(n) for n in (2, 4, 10, 7)), id="08.4-numpy-ints"),
]


@pytest.mark.parametrize("key, answer", ALTERNATIVES)
def test_right_answer_in_another_valid_form_is_correct(key, answer):
    status, message = exercises.evaluate(key, answer)
    assert status == "correct", message


# 2. Typical wrong answers get specific feedback and never the expected value -----------


def naive_softmax(x, axis=-1):
    return np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True)


def softmax_ignoring_axis(x, axis=-1):
    return softmax_with_array_methods(x, axis=-1)


def softmax_shifted_by_global_max(x, axis=-1):
    exps = np.exp(x - x.max())
    return exps / exps.sum(axis=axis, keepdims=True)


def attention(queries, keys, values, scale, axis=-1, stable=True):
    scores = queries @ keys.T * scale
    weights = softmax_with_array_methods(scores, axis) if stable else naive_softmax(scores, axis)
    return weights @ values, weights


def nadaraya_watson(x_query, x_train, bandwidth, denominator=None, power=2, axis=-1, stable=True):
    distances = np.abs(x_query[:, None] - x_train[None, :]) ** power
    scores = -distances / (2 * bandwidth**2 if denominator is None else denominator(bandwidth))
    return softmax_with_array_methods(scores, axis) if stable else naive_softmax(scores, axis)


def clipped_precision(hypothesis, reference, n, clip=True, use_n=True, guard=True):
    n = n if use_n else 1
    grams = [tuple(hypothesis[i : i + n]) for i in range(len(hypothesis) - n + 1)]
    reference_grams = [tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)]
    if not grams and guard:
        return 0.0
    if clip:
        credited = sum(min(grams.count(g), reference_grams.count(g)) for g in set(grams))
    else:
        credited = sum(g in reference_grams for g in grams)
    return credited / len(grams)


def buggy_causal_self_attention(x):  # lesson 05's cell with the `raise` deleted, not fixed
    from course_lib.attention import scaled_dot_product_attention

    t = x.shape[1]
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)
    return scaled_dot_product_attention(x, x, x, mask=mask)[0]


def self_attention_without_mask(x):
    from course_lib.attention import scaled_dot_product_attention

    return scaled_dot_product_attention(x, x, x)[0]


def sinusoidal(pos, j, d, max_wavelength=10000, pair=True, swap=False):
    angle = pos / max_wavelength ** (2 * (j // 2) / d if pair else j / d)
    return math.sin(angle) if (j % 2 == 0) != swap else math.cos(angle)


def rotate(vector, angle, sign=1):
    x, y = vector
    return np.array([x * math.cos(angle) + sign * y * math.sin(angle), -sign * x * math.sin(angle) + y * math.cos(angle)])


def mha_count(dim, num_heads, key_dim, value_dim=None, output_dim=None, use_bias=True, biases=True):
    value_dim, output_dim = value_dim or key_dim, output_dim or dim
    use_bias = use_bias and biases
    projections = dim * num_heads * (2 * key_dim + value_dim) + num_heads * value_dim * output_dim
    return projections + (num_heads * (2 * key_dim + value_dim) + output_dim if use_bias else 0)


WRONG = [
    pytest.param("01.1", naive_softmax, ("overflow",), id="01.1-naive-exp"),
    pytest.param("01.1", softmax_ignoring_axis, ("wrong axis",), id="01.1-ignores-axis"),
    pytest.param("01.1", softmax_shifted_by_global_max, ("whole array", "axis"), id="01.1-global-max"),
    pytest.param("01.1", lambda x, axis=-1: np.exp(x - x.max(axis=axis, keepdims=True)), ("sum to 1",),
                 id="01.1-not-normalised"),
    pytest.param("01.2", [1.0, 2.5, 4.0], ("scores",), id="01.2-scores"),
    pytest.param("01.2", [0.11, 0.26, 0.63], ("sqrt(3)",), id="01.2-scaled"),
    pytest.param("01.2", [0.62, 0.72, 0.82], ("output",), id="01.2-output"),
    pytest.param("01.2", [0.33, 0.33, 0.33], ("equal",), id="01.2-uniform"),
    pytest.param("01.2", [0.0498, 0.2231, 1.0], ("sum to 1",), id="01.2-not-normalised"),
    pytest.param("01.2", [0.039, 0.175], ("2 entries", "expected 3"), id="01.2-two-weights"),
    pytest.param("01.2", "0.039, 0.175, 0.786", ("string",), id="01.2-string"),
    pytest.param("01.3", lambda q, k, v, scale: attention(q, k, v, 1.0), ("forgot the scale",), id="01.3-no-scale"),
    pytest.param("01.3", lambda q, k, v, scale: attention(q, k, v, q.shape[-1] ** -0.5), ("sqrt(d)",),
                 id="01.3-keras-scale"),
    pytest.param("01.3", lambda q, k, v, scale: attention(q, k, v, scale, axis=0), ("wrong axis",),
                 id="01.3-softmax-over-queries"),
    pytest.param("01.3", lambda q, k, v, scale: attention(q, k, v, scale, stable=False), ("overflow",),
                 id="01.3-naive-exp"),
    pytest.param("01.3", lambda q, k, v, scale: attention(q, k, v, scale)[::-1], ("swapped",), id="01.3-swapped"),
    pytest.param("01.3", lambda q, k, v, scale: tuple(a.T for a in attention(q, k, v, scale)), ("order of the axes",),
                 id="01.3-transposed"),
    pytest.param("01.4", 2, ("dot products",), id="01.4-key-2"),
    pytest.param("01.4", 3, ("not the index",), id="01.4-out-of-range"),
    pytest.param("01.4", False, ("bool",), id="01.4-False"),
    pytest.param("01.4", "0", ("string",), id="01.4-string-0"),
    pytest.param("01.4", 1e-9, ("whole number",), id="01.4-1e-9"),
    pytest.param("02.1", lambda q, k, W: k @ (W @ q), ("transposed", "query @ w"), id="02.1-k-W-q"),
    pytest.param("02.1", lambda q, k, W: k @ q, ("w is not used",), id="02.1-no-W"),
    pytest.param("02.2", lambda q, k, u, use_bias=True: (q + k) * u + use_bias * u, ("vector v",), id="02.2-no-v"),
    pytest.param("02.2", lambda q, k, u, use_bias=True: (q + k + 2) * u, ("use_bias=false",), id="02.2-bias-always"),
    pytest.param("02.2", lambda q, k, u, use_bias=True: (q + 1 + use_bias) * u, ("kernel",), id="02.2-no-W_k"),
    pytest.param("02.3", lambda a, b, h: nadaraya_watson(a, b, h, denominator=lambda h: h**2), ("2 h^2",),
                 id="02.3-no-2"),
    pytest.param("02.3", lambda a, b, h: nadaraya_watson(a, b, h, denominator=lambda h: 2 * h), ("squared",),
                 id="02.3-h-not-squared"),
    pytest.param("02.3", lambda a, b, h: nadaraya_watson(a, b, h, power=1), ("squares the distance",),
                 id="02.3-abs-distance"),
    pytest.param("02.3", lambda a, b, h: nadaraya_watson(a, b, h, axis=0), ("each row",), id="02.3-over-queries"),
    pytest.param("02.3", lambda a, b, h: nadaraya_watson(a, b, h, stable=False), ("underflow",), id="02.3-naive"),
    pytest.param("02.4", (2.0, 1.5), ("targets y",), id="02.4-averaged-x"),
    pytest.param("02.4", (4.84, 3.5), ("2.2**2",), id="02.4-true-function"),
    pytest.param("02.4", (4.0, 14.0), ("sum",), id="02.4-sum"),
    pytest.param("02.4", (3.5, 4.0), ("order",), id="02.4-swapped"),
    pytest.param("02.4", (9.0, 3.5), ("nearest",), id="02.4-wrong-point"),
    pytest.param("03.1", lambda i, length: i, ("backwards",), id="03.1-copy"),
    pytest.param("03.1", lambda i, length: length - i, ("off by one",), id="03.1-off-by-one"),
    pytest.param("03.2", lambda i, u: 3 * (i * u + u * u + u), ("two", "reset_after"), id="03.2-one-bias"),
    pytest.param("03.2", lambda i, u: 4 * (i * u + u * u + u), ("lstm",), id="03.2-lstm"),
    pytest.param("03.2", lambda i, u: 3 * (i * u + 2 * u), ("recurrent kernel",), id="03.2-no-recurrent"),
    pytest.param("03.3", 0.25, ("after its end",), id="03.3-after-end-counted"),
    pytest.param("03.3", 0.75, ("before its end",), id="03.3-extra-token-missed"),
    pytest.param("03.3", 50, ("percentage",), id="03.3-percent"),
    pytest.param("03.3", 2, ("fraction",), id="03.3-count"),
    pytest.param("03.4", (64, 40 * 64), ("initial state",), id="03.4-no-state"),
    pytest.param("03.4", (1, 41), ("numbers, not vectors",), id="03.4-vectors"),
    pytest.param("03.4", (64 * 41, 64 * 41), ("only the encoder's final state",), id="03.4-a-reads-all"),
    pytest.param("04.1", lambda t, n: target_pair_as_lists(t, n)[::-1], ("swapped",), id="04.1-swapped"),
    pytest.param("04.1", lambda t, n: ([0] * (n - len(t) - 1) + [1] + t, [0] * (n - len(t) - 1) + t + [2]),
                 ("on the right",), id="04.1-left-padded"),
    pytest.param("04.1", lambda t, n: ([1] + t + [0] * (n - len(t) - 1), t + [0] * (n - len(t))),
                 ("target_out", "wrong"), id="04.1-no-END"),
    pytest.param("04.2", lambda h, r, n: clipped_precision(h, r, n, clip=False), ("no clipping",), id="04.2-unclipped"),
    pytest.param("04.2", lambda h, r, n: clipped_precision(h, r, n, use_n=False), ("whatever `n`",),
                 id="04.2-unigrams-only"),
    pytest.param("04.2", lambda h, r, n: clipped_precision(h, r, n, guard=False), ("zerodivisionerror",),
                 id="04.2-no-zero-guard"),
    pytest.param("04.3", lambda ids, t: np.repeat((ids == 0)[:, None, :], t, axis=1), ("inverted",), id="04.3-inverted"),
    pytest.param("04.3", lambda ids, t: np.repeat((ids > 3)[:, None, :], t, axis=1), ("oov",), id="04.3-oov-as-pad"),
    pytest.param("04.3", lambda ids, t: ids != 0, ("shape", "expected shape"), id="04.3-no-query-axis"),
    pytest.param("04.4", math.exp(1 - 9 / 12), ("never above 1",), id="04.4-ratio-inverted"),
    pytest.param("04.4", 1.0, ("shorter",), id="04.4-no-penalty"),
    pytest.param("04.4", 0.75, ("c / r",), id="04.4-ratio"),
    pytest.param("04.4", -0.333, ("exponential",), id="04.4-no-exp"),
    pytest.param("04.4", 0.7, ("1% to 10%",), id="04.4-rounded-too-far"),
    pytest.param("05.1", lambda t, s: np.triu(np.ones((t, s), bool), k=1), ("inverted", "blocked"), id="05.1-pytorch"),
    pytest.param("05.1", lambda t, s: np.tril(np.ones((t, s), bool), k=-1), ("itself",), id="05.1-no-diagonal"),
    pytest.param("05.1", lambda t, s: np.tril(np.ones((t, s), bool), k=s - t), ("top left",), id="05.1-bottom-right"),
    pytest.param("05.1", lambda t, s: np.ones((t, s), bool), ("nothing is masked",), id="05.1-all-true"),
    pytest.param("05.2", lambda ids, pad_id=0: np.tril(np.ones((len(ids), ids.shape[1], ids.shape[1]), bool)),
                 ("padding is not masked",), id="05.2-causal-only"),
    pytest.param("05.2", lambda ids, pad_id=0: (ids != pad_id)[:, None, :] & np.tril(np.ones((ids.shape[1],) * 2, bool)),
                 ("padded query",), id="05.2-keys-only"),
    pytest.param("05.2", lambda ids, pad_id=0: (ids != pad_id)[:, :, None] & (ids != pad_id)[:, None, :],
                 ("causal",), id="05.2-no-causal"),
    pytest.param("05.2", lambda ids, pad_id=0: (ids != 0)[:, :, None] & (ids != 0)[:, None, :]
                 & np.tril(np.ones((ids.shape[1],) * 2, bool)), ("pad_id",), id="05.2-pad-id-ignored"),
    pytest.param("05.3", lambda d_k, std=1.0, scaled=False: d_k * std**2 / (d_k if scaled else 1), ("std**2",),
                 id="05.3-std-squared"),
    pytest.param("05.3", lambda d_k, std=1.0, scaled=False: d_k * std**4 / (math.sqrt(d_k) if scaled else 1),
                 ("not by sqrt(d_k)",), id="05.3-divided-by-sqrt"),
    pytest.param("05.3", lambda d_k, std=1.0, scaled=False: std**4, ("add up",), id="05.3-one-product"),
    pytest.param("05.4", buggy_causal_self_attention, ("blocked",), id="05.4-unfixed"),
    pytest.param("05.4", self_attention_without_mask, ("mask is missing",), id="05.4-no-mask"),
    pytest.param("07.1", lambda p, j, d, max_wavelength=10000: sinusoidal(p, j, d, max_wavelength, swap=True),
                 ("sine",), id="07.1-sin-cos-swapped"),
    pytest.param("07.1", lambda p, j, d, max_wavelength=10000: sinusoidal(p, j, d, max_wavelength, pair=False),
                 ("share one frequency",), id="07.1-no-pairs"),
    pytest.param("07.1", lambda p, j, d, max_wavelength=10000: sinusoidal(p, j, d), ("max_wavelength",),
                 id="07.1-fixed-wavelength"),
    pytest.param("07.2", lambda v, a: rotate(v, a), ("clockwise",), id="07.2-clockwise"),
    pytest.param("07.2", lambda v, a: rotate(v, a, sign=-1)[::-1], ("swapped",), id="07.2-components-swapped"),
    pytest.param("07.2", lambda v, a: rotate(v, a, sign=-1)[:, None], ("shape (2, 1)",), id="07.2-column"),
    pytest.param("07.3", [1, 3, 0, 2], ("where each token went",), id="07.3-inverse"),
    pytest.param("07.3", [0, 1, 2, 3], ("move with their tokens",), id="07.3-identity"),
    pytest.param("07.3", [2, 0, 2, 1], ("exactly once",), id="07.3-repeated"),
    pytest.param("07.4", "rotary", ("any length",), id="07.4-rotary"),
    pytest.param("07.4", "none", ("length",), id="07.4-none"),
    pytest.param("07.4", "absolute", ("scheme names",), id="07.4-not-a-choice"),
    pytest.param("07.4", np.zeros((7, 7)), ("string",), id="07.4-array"),
    pytest.param("08.1", lambda *a, **k: mha_count(*a, **k, biases=False), ("forgot the biases",), id="08.1-no-bias"),
    pytest.param("08.1", lambda d, n, k, value_dim=None, output_dim=None, use_bias=True: mha_count(
        d, n, k, None, output_dim, use_bias), ("value_dim",), id="08.1-value-dim-ignored"),
    pytest.param("08.1", lambda d, n, k, value_dim=None, output_dim=None, use_bias=True: mha_count(
        d, n, k, value_dim, output_dim, use_bias) + (n - 1) * (output_dim or d) * use_bias, ("output bias",),
        id="08.1-output-bias-per-head"),
    pytest.param("08.2", lambda x, n: x.reshape(x.shape[0], n, x.shape[1], -1), ("mixes positions",),
                 id="08.2-straight-reshape"),
    pytest.param("08.2", lambda x, n: x.reshape(x.shape[0], x.shape[1], n, -1), ("order of the axes",),
                 id="08.2-no-transpose"),
    pytest.param("08.3", lambda x: x.reshape(x.shape[0], x.shape[2], -1), ("transpose",), id="08.3-no-transpose"),
    pytest.param("08.4", (2, 4, 7, 10), ("wrong order",), id="08.4-T-S-swapped"),
    pytest.param("08.4", (2, 10, 4, 7), ("heads axis",), id="08.4-heads-second"),
    pytest.param("08.4", (2, 4, 10, 8), ("key_dim",), id="08.4-key-dim"),
    pytest.param("08.4", (4, 10, 7), ("3 entries", "expected 4"), id="08.4-no-batch"),
]


@pytest.mark.parametrize("key, answer, words", WRONG)
def test_typical_wrong_answer_gets_specific_feedback(key, answer, words, capsys):
    status, message = exercises.evaluate(key, answer)
    assert status == "wrong", message
    for word in words:
        assert word in message.lower(), f"{word!r} not in: {message}"
    assert_expected_not_shown(key, printed_check(key, answer, capsys))


def mistake_answers():
    """Every (message, wrong) pair the exercises declare, given as the learner's answer."""
    for key in KEYS:
        for number, (message, wrong) in enumerate(exercises.get(key).mistakes):
            yield pytest.param(key, message, wrong, id=f"{key}-mistake-{number}")


@pytest.mark.parametrize("key, message, wrong", mistake_answers())
def test_every_declared_mistake_is_recognised(key, message, wrong, capsys):
    status, feedback = exercises.evaluate(key, wrong)
    assert status == "wrong" and feedback.endswith(message), feedback
    assert_expected_not_shown(key, printed_check(key, wrong, capsys))


def perturbed(value):
    """A wrong answer near `value`: scaled and shifted, negated, or one more."""
    if isinstance(value, str):
        return value + "s"
    if isinstance(value, (tuple, list)) and not all(np.isscalar(v) for v in value):
        return tuple(perturbed(v) for v in value)
    array = np.asarray(value)
    if array.dtype.kind == "b":
        return ~array
    if array.dtype.kind in "iu":
        return array + 1
    return array * 1.5 + 0.01


def generic_wrong_answers():
    for key in KEYS:
        exercise = exercises.get(key)
        if exercise.answer_is_function:
            yield pytest.param(key, lambda *a, **k: "wrong", id=f"{key}-a-string")
            yield pytest.param(key, lambda *a, **k: 0.0, id=f"{key}-zero")
            yield pytest.param(key, lambda *a, f=exercise.solution, **k: perturbed(f(*a, **k)), id=f"{key}-perturbed")
        else:
            yield pytest.param(key, "wrong", id=f"{key}-a-string")
            yield pytest.param(key, perturbed(exercise.solution()), id=f"{key}-perturbed")


@pytest.mark.parametrize("key, answer", generic_wrong_answers())
def test_no_wrong_answer_is_shown_the_expected_value(key, answer, capsys):
    printed = printed_check(key, answer, capsys)
    assert "Not yet" in printed
    assert_expected_not_shown(key, printed)


@pytest.mark.parametrize("key", KEYS)
def test_leak_detector_finds_the_old_feedback(key):
    """The feedback printed before these tests: "expected <value>, received <answer>"."""
    case = exercises.get(key).cases[0]
    for value in case.expected if isinstance(case.expected, tuple) and len(case.expected) == 2 else [case.expected]:
        for old in (repr(value), np.array2string(np.asarray(value), precision=4, suppress_small=True)):
            with pytest.raises(AssertionError, match="shows"):
                assert_expected_not_shown(key, f"[{key}] Not yet: case 1 of 2 ({case.description}): expected {old}")


@pytest.mark.parametrize("key", KEYS)
def test_hint_does_not_give_the_value_away(key, capsys):
    exercises.hint(key)
    printed = capsys.readouterr().out
    assert "Hint" in printed
    if not exercises.get(key).answer_is_function:
        assert_expected_not_shown(key, printed, hint=True)


@pytest.mark.parametrize("key", KEYS)
def test_solution_prints_the_answer(key, capsys):
    exercise = exercises.get(key)
    exercises.solution(key)
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.startswith(f"[{key}] Solution:") and "def " in printed
    if not exercise.answer_is_function:
        assert any(shown in printed for shown in formats(exercise.solution())), printed


# 3. Robust checking ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ALL_KEYS)
def test_placeholder_is_not_attempted_as_the_notebooks_show(key, capsys):
    exercises.check(key, ...)
    assert capsys.readouterr().out == f"[{key}] Exercise: not attempted yet: replace `...` with your answer.\n"


@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_unwritten_function_is_not_attempted_as_the_notebooks_show(key, capsys):
    def unwritten(*args, **kwargs):
        raise NotImplementedError

    exercises.check(key, unwritten)
    assert capsys.readouterr().out == f"[{key}] Exercise: not attempted yet: the function raises NotImplementedError.\n"


def vandal(*args, **kwargs):
    """Overwrites every array and list it is given, returns nothing."""
    for arg in list(args) + list(kwargs.values()):
        if isinstance(arg, np.ndarray) and arg.flags.writeable:
            arg[...] = 0
        elif isinstance(arg, list):
            arg.clear()


@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_function_that_changes_its_inputs_cannot_corrupt_the_cases(key):
    status, message = exercises.evaluate(key, vandal)
    assert status == "wrong" and "returned None" in message and "`return`" in message
    status, message = exercises.evaluate(key, reference(key))
    assert status == "correct", message


def test_in_place_softmax_is_correct_every_time():
    for _ in range(2):
        assert exercises.evaluate("01.1", softmax_in_place)[0] == "correct"
    assert exercises.evaluate("01.1", reference("01.1"))[0] == "correct"


def test_value_none_is_not_called_nan():
    status, message = exercises.evaluate("01.2", None)
    assert status == "wrong" and "None" in message and "NaN" not in message


def test_a_value_where_a_function_is_expected_and_the_other_way_round():
    status, message = exercises.evaluate("01.1", np.zeros(3))
    assert status == "wrong" and "expects a function" in message
    status, message = exercises.evaluate("01.2", reference("01.3"))
    assert status == "wrong" and "expects a value" in message
    status, message = exercises.evaluate("01.2", ["a", "b", "c"])
    assert status == "wrong" and "should be numbers, not a list of 3 items" in message


def test_failing_case_shows_its_input():
    status, message = exercises.evaluate("01.1", naive_softmax)
    assert status == "wrong" and "x=[1000., 1001., 1002.]" in message


def test_learner_function_that_raises_names_the_error():
    status, message = exercises.evaluate("01.1", lambda x, axis=-1: x.nonexistent())
    assert status == "wrong" and "AttributeError" in message and "case 1 of 7" in message


def test_unknown_key_lists_known_keys():
    with pytest.raises(KeyError, match="Known keys"):
        exercises.get("99.99")


def test_every_lesson_with_a_notebook_has_exercises():
    lessons = {p.name[:2] for p in (Path(__file__).parent.parent / "notebooks").glob("*.ipynb")}
    with_exercises = {k.split(".")[0] for k in ALL_KEYS}
    assert lessons <= with_exercises, f"lessons without exercises: {sorted(lessons - with_exercises)}"


# 4. The generic diagnostics of the framework -------------------------------------------

ROWS = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])  # each row sums to 1
SQUARE = np.array([[1.0, 2.0], [3.0, 4.0]])

GENERIC = [
    pytest.param(ROWS, np.where(ROWS > 0.4, np.nan, ROWS), "NaN", id="nan"),
    pytest.param(ROWS, np.where(ROWS > 0.4, np.inf, ROWS), "inf", id="inf"),
    pytest.param(ROWS, ROWS - 0.25, "negative", id="negative"),
    pytest.param(ROWS, ROWS / ROWS.sum(axis=0), "wrong axis", id="sums-along-the-wrong-axis"),
    pytest.param(ROWS, ROWS + 0.1, "sum to 1", id="rows-do-not-sum-to-1"),
    pytest.param(np.array([1.0, -2.0, 3.0]), np.array([2.5, -5.0, 7.5]), "constant factor", id="factor"),
    pytest.param(np.array([1.0, -2.0, 3.0]), np.array([-1.0, 2.0, -3.0]), "wrong sign", id="sign"),
    pytest.param(SQUARE, SQUARE.T, "transposed", id="transposed"),
    pytest.param(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0]), "wrong places", id="reordered"),
    pytest.param(ROWS, ROWS.T, "expected shape (2, 3)", id="shape"),
    pytest.param(np.zeros((2, 3, 4)), np.zeros((2, 4, 3)), "order of the axes", id="axes-order"),
    pytest.param(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.01]), "less than 1%", id="small-error"),
    pytest.param(np.array([True, False]), np.array([True, True]), "1 entries true that should be false", id="mask"),
    pytest.param(5, 5.5, "whole number", id="not-whole"),
    pytest.param("learned", 3, "string", id="not-a-string"),
    pytest.param(0.5, "0.5", "number", id="number-as-string"),
]


@pytest.mark.parametrize("expected, received, words", GENERIC)
def test_generic_diagnostics_say_what_is_wrong_without_the_answer(expected, received, words):
    problem = exercises.compare(expected, received)
    assert problem is not None and words.lower() in problem.lower(), problem
    for shown in formats(expected):
        if len(shown) > 3:
            assert not shows(problem, shown), problem


@pytest.mark.parametrize(
    "received",
    [[0.5, 0.25], (0.5, 0.25), np.array([0.5, 0.25]), keras.ops.convert_to_tensor([0.5, 0.25])],
    ids=["list", "tuple", "array", "tensor"],
)
def test_compare_accepts_any_array_like(received):
    assert exercises.compare(np.array([0.5, 0.25]), received) is None
    assert exercises.matches(np.array([0.5, 0.25]), received)


def test_compare_strings_ignore_case_and_spaces():
    assert exercises.compare("learned", np.str_(" Learned ")) is None
    assert exercises.compare("learned", "rotary") is not None


# 5. Experiments: a checker of the learner's measured result ---------------------------


def check_reading(answer):
    lengths, accuracy, length = answer
    first = exercises.first_below(exercises.as_array(lengths, "lengths"), exercises.as_array(accuracy, "accuracy"), 0.5)
    if first is None:
        return "your curve never falls below 0.5: try longer sources"
    if exercises.as_number(length, "the length") != first:
        return "that is not where your curve first falls below 0.5"
    return None


EXPERIMENT = Exercise("99.1", "At which length ...?", checker=check_reading, solution="read the curve")
CURVE = ([10, 20, 30, 40], [1.0, 0.8, 0.4, 0.2])


@pytest.mark.parametrize(
    "answer, status, words",
    [
        pytest.param((*CURVE, 30), "correct", "passes", id="consistent"),
        pytest.param((*CURVE, np.int64(30)), "correct", "passes", id="numpy-int"),
        pytest.param((*CURVE, 20), "wrong", "not where your curve", id="inconsistent"),
        pytest.param((CURVE[0], [1.0, 0.9, 0.8, 0.7], 40), "wrong", "never falls", id="never-below"),
        pytest.param((*CURVE, "30"), "wrong", "the length should be a number, not a string", id="answer-error"),
        pytest.param(30, "wrong", "could not be read", id="not-a-tuple"),
        pytest.param(..., "not attempted", "not attempted yet", id="placeholder"),
    ],
)
def test_experiment_checker(answer, status, words):
    got_status, message = exercises.evaluate(EXPERIMENT, answer)
    assert (got_status, words in message) == (status, True), message


def test_checker_may_raise_answer_error():
    def checker(answer):
        raise AnswerError("measure the gradient at d_k = 256 too")

    experiment = Exercise("99.2", "?", checker=checker, solution="...")
    assert exercises.evaluate(experiment, 1.0) == ("wrong", "measure the gradient at d_k = 256 too")


def test_first_below():
    assert exercises.first_below([1, 2, 4, 8], [0.5, 0.2, 0.01, 0.001], 1e-2) == 8
    assert exercises.first_below([1, 2], [0.5, 0.2], 1e-2) is None


@pytest.mark.parametrize(
    "exercise",
    [
        Exercise("99.3", "?", solution="...", checker=check_reading, cases=(Case("c", 1),)),
        Exercise("99.4", "?", solution="..."),
        Exercise("99.5", "?", cases=(Case("c", 1),)),
    ],
    ids=["cases-and-checker", "neither", "no-solution"],
)
def test_register_rejects_an_incomplete_exercise(exercise):
    with pytest.raises(ValueError, match="Received: key="):
        exercises.register(exercise)


def test_package_docstring_example_runs():
    results = doctest.testmod(exercises, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0
