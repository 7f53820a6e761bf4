"""Lesson 02's exercises beyond the generic tests of tests/test_exercises.py: the
experiment 02.5 (learn the kernel width on less noisy data), checked by recomputing the
leave-one-out error of the learner's width, and 02.6 (bytes of the additive score's
hidden tensor), checked exactly. Each accepts the reference in any valid form, rejects
typical wrong answers with feedback that names the mistake, and never prints the
expected value."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.attention import softmax
from course_lib.exercises import lesson02

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_scoring_functions.ipynb"


def printed(key, answer, capsys):
    exercises.check(key, answer)
    return capsys.readouterr().out


def shown_numbers(value):
    """The ways a message could print `value`."""
    return {f"{value:.{k}f}" for k in (2, 3, 4)} | {f"{value:.{k}g}" for k in (2, 3, 4)} | {repr(value), str(value)}


# The data of 02.5 are the lesson's ----------------------------------------------------


def notebook_sample():
    """`f` and `sample` as the notebook defines them (the cell that defines `sample`)."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "def sample(" in "".join(c["source"]))
    namespace = {"np": np, "softmax": softmax}
    exec(compile(source, "notebook-cell", "exec"), namespace)
    return namespace["f"], namespace["sample"]


def test_the_checker_draws_the_data_as_the_lesson_does():
    f, sample = notebook_sample()
    grid = np.linspace(0, 5, 11)
    np.testing.assert_allclose(lesson02.regression_function(grid), f(grid))
    for noise in (0.1, 0.5):
        ours = lesson02.sample(50, np.random.default_rng(0), noise=noise)
        theirs = sample(50, np.random.default_rng(0), noise=noise)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])


def test_leave_one_out_error_leaves_each_point_out():
    x, y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 3.0, 6.0])
    # A tiny width: each point is predicted by its nearest other point(s).
    predictions = np.array([3.0, 3.0, 3.0])  # x=1 sees 0 and 2 equally: (0 + 6) / 2
    assert lesson02.leave_one_out_error(x, y, 1e-3) == pytest.approx(np.mean((predictions - y) ** 2))


# 02.5: the experiment ---------------------------------------------------------------------


def best_width(noise):
    x, y = lesson02.sample(50, np.random.default_rng(0), noise=noise)
    widths = np.geomspace(0.02, 2.0, 200)
    return float(widths[np.argmin([lesson02.leave_one_out_error(x, y, h) for h in widths])])


BEST = best_width(0.1)


def learned_by_gradient_descent(noise=0.1, steps=300, rate=0.05):
    """The width found by gradient descent on log h with a numerical gradient (no Keras)."""
    x, y = lesson02.sample(50, np.random.default_rng(0), noise=noise)
    log_h, eps = 0.0, 1e-4
    for _ in range(steps):
        slope = (lesson02.leave_one_out_error(x, y, np.exp(log_h + eps))
                 - lesson02.leave_one_out_error(x, y, np.exp(log_h - eps))) / (2 * eps)
        log_h -= rate * np.sign(slope) * min(1.0, abs(slope) * 20)
    return float(np.exp(log_h))


@pytest.mark.parametrize(
    "answer",
    [BEST, np.float32(BEST), np.array(BEST), keras.ops.convert_to_tensor(BEST), round(BEST, 2)],
    ids=["grid-best", "float32", "0-d-array", "tensor", "rounded-2-digits"],
)
def test_the_reference_width_passes_in_any_form(answer):
    assert exercises.evaluate("02.5", answer) == ("correct", "your answer passes the check.")


def test_a_width_found_by_gradient_descent_passes():
    width = learned_by_gradient_descent()
    assert exercises.evaluate("02.5", width)[0] == "correct"


def test_less_noise_needs_a_narrower_kernel():
    # What the exercise lets the learner find: the lesson's noise-0.5 width is wider.
    assert BEST < 0.7 * best_width(0.5)


WRONG = [
    pytest.param(best_width(0.5), ("noise 0.5",), id="the-lesson's-data"),
    pytest.param(1 / BEST, ("w = 1/h",), id="w-instead-of-h"),
    pytest.param(np.log(BEST), ("logarithm",), id="log-width"),
    pytest.param(0.02, ("its own prediction", "leave it out"), id="itself-included"),
    pytest.param(0.06, ("too narrow",), id="too-narrow"),
    pytest.param(0.6, ("too wide",), id="too-wide"),
    pytest.param(float("nan"), ("diverge",), id="nan"),
    pytest.param(-1.0, ("positive",), id="negative"),
    pytest.param("0.1", ("number", "string"), id="string"),
    pytest.param([0.1, 0.2], ("single number",), id="list"),
]


@pytest.mark.parametrize("answer, words", WRONG)
def test_typical_wrong_widths_get_specific_feedback_without_the_answer(answer, words, capsys):
    status, message = exercises.evaluate("02.5", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    text = printed("02.5", answer, capsys)
    for shown in shown_numbers(BEST):
        assert shown not in text, f"the feedback shows the best width ({shown}): {text}"


def test_the_band_is_narrow_enough_to_tell_the_two_noise_levels_apart():
    band = lesson02._width_band(0.1)[3]
    lesson_band = lesson02._width_band(0.5)[3]
    assert band.min() < BEST < band.max()
    assert band.max() < np.median(lesson_band)


def test_hint_and_question_do_not_give_the_width_away(capsys):
    exercises.hint("02.5")
    exercises.question("02.5")
    text = capsys.readouterr().out
    for shown in shown_numbers(BEST):
        assert shown not in text


# 02.6: bytes of the hidden tensor --------------------------------------------------------


def measured_bytes():
    """The answer measured as the question asks, with keras.ops."""
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(64, 30, 32)).astype("float32")  # (B, T, d_q)
    keys = rng.normal(size=(64, 40, 32)).astype("float32")  # (B, S, d_k)
    w_q, w_k = (rng.normal(size=(32, 256)).astype("float32") for _ in range(2))
    hidden = keras.ops.tanh(
        keras.ops.expand_dims(keras.ops.matmul(queries, w_q), -2)  # (B, T, 1, U)
        + keras.ops.expand_dims(keras.ops.matmul(keys, w_k), -3)  # (B, 1, S, U)
    )  # (B, T, S, U)
    scores = keras.ops.matmul(queries, keras.ops.swapaxes(keys, -1, -2))  # (B, T, S)
    return keras.ops.convert_to_numpy(hidden).nbytes, keras.ops.convert_to_numpy(scores).nbytes


def test_the_measured_bytes_are_the_reference():
    assert exercises.evaluate("02.6", measured_bytes()) == ("correct", "that is right.")


@pytest.mark.parametrize(
    "answer",
    [lambda a: list(a), lambda a: tuple(np.int64(v) for v in a), lambda a: np.array(a), lambda a: tuple(float(v) for v in a)],
    ids=["list", "numpy-ints", "array", "whole-floats"],
)
def test_the_bytes_pass_in_any_form(answer):
    assert exercises.evaluate("02.6", answer(measured_bytes()))[0] == "correct"


B, T, S, U = 64, 30, 40, 256
BYTES_WRONG = [
    pytest.param((B * T * S * U, B * T * S * 4), ("number of entries", "4 bytes"), id="entries-not-bytes"),
    pytest.param((B * T * S * U * 8, B * T * S * 4), ("float64",), id="float64"),
    pytest.param((T * S * U * 4, B * T * S * 4), ("batch axis",), id="no-batch"),
    pytest.param((B * T * T * U * 4, B * T * S * 4), ("T and S differ",), id="T-times-T"),
    pytest.param((B * T * S * 4, B * T * S * 4), ("`units` numbers per",), id="no-units"),
    pytest.param((B * T * S * U * 4, B * T * S), ("score matrix", "number of entries"), id="scores-entries"),
    pytest.param((B * T * S * U * 4 / 1e6, B * T * S * 4 / 1e6), ("whole number",), id="megabytes"),
    pytest.param(B * T * S * U * 4, ("tuple of 2 items",), id="only-one-number"),
]


@pytest.mark.parametrize("answer, words", BYTES_WRONG)
def test_typical_wrong_byte_counts_get_specific_feedback_without_the_answer(answer, words, capsys):
    status, message = exercises.evaluate("02.6", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    text = printed("02.6", answer, capsys)
    for value in measured_bytes():
        assert str(value) not in text and f"{value:,}" not in text, text
