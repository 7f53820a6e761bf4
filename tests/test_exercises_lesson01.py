"""Lesson 01's experiment exercise 01.5 (the scale at which the classic query's largest
weight first exceeds 0.9): the checker recomputes the weights at the learner's scale,
accepts the crossing in any numeric form and to within its resolution, rejects typical
wrong answers with feedback that says what is wrong, and never shows the crossing."""

import math

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.attention import three_step_attention
from course_lib.exercises import lesson01

QUERY = np.array([1.0, 0.0, 1.0])


def crossing():
    """The scale c with 1 / (1 + e^(-6c) + e^(-12c)) = 0.9, in closed form: the classic
    scores 4, 10, 16 are 6 apart, so with x = e^(-6c), x^2 + x - 1/9 = 0."""
    x = (-1 + math.sqrt(1 + 4 / 9)) / 2
    return -math.log(x) / 6


def test_the_closed_form_is_the_crossing():
    below = three_step_attention(QUERY, lesson01.KEYS, lesson01.VALUES, scale=crossing() - 1e-6)[1].max()
    above = three_step_attention(QUERY, lesson01.KEYS, lesson01.VALUES, scale=crossing() + 1e-6)[1].max()
    assert below < 0.9 < above


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(crossing(), id="exact"),
        pytest.param(round(crossing(), 3), id="3-decimals"),
        pytest.param(round(crossing(), 2), id="2-decimals"),
        pytest.param(crossing() + 0.9 * lesson01.RESOLUTION, id="just-within-above"),
        pytest.param(crossing() - 0.9 * lesson01.RESOLUTION, id="just-within-below"),
        pytest.param(np.float32(crossing()), id="float32"),
        pytest.param(np.array(crossing()), id="0-d-array"),
        pytest.param(keras.ops.convert_to_tensor(crossing()), id="tensor"),
    ],
)
def test_the_crossing_in_any_numeric_form_passes(answer):
    assert exercises.evaluate("01.5", answer) == ("correct", "your answer passes the check.")


def test_the_printed_solution_runs_and_passes(capsys):
    exercises.solution("01.5")
    text = capsys.readouterr().out.split("Solution:\n", 1)[1]
    namespace = {"np": np, "three_step_attention": three_step_attention, "query": QUERY,
                 "keys": lesson01.KEYS, "values": lesson01.VALUES, "check": exercises.check}
    exec(text, namespace)
    assert "Correct" in capsys.readouterr().out
    assert abs(namespace["answer"] - crossing()) < 1e-3


WRONG = [
    pytest.param(0.2, ("still below 0.9", "larger scale"), id="too-small"),
    pytest.param(crossing() - 2 * lesson01.RESOLUTION, ("still below 0.9",), id="just-too-small"),
    pytest.param(crossing() + 2 * lesson01.RESOLUTION, ("a little below", "first scale"), id="just-too-large"),
    pytest.param(0.6, ("a little below",), id="too-large"),
    pytest.param(1 / crossing(), ("half that scale", "smaller scales"), id="inverse-of-the-scale"),
    pytest.param(0.9, ("half that scale",), id="the-weight-not-the-scale"),
    pytest.param(-crossing(), ("positive", "smallest score"), id="negative"),
    pytest.param(0.0, ("equal",), id="zero"),
    pytest.param(float("nan"), ("finite",), id="nan"),
    pytest.param("0.38", ("number, not a string",), id="string"),
    pytest.param([0.38, 0.39], ("single number",), id="list"),
    pytest.param(None, ("number, not none",), id="none"),
]


@pytest.mark.parametrize("answer, words", WRONG)
def test_a_wrong_scale_says_what_is_wrong_without_the_crossing(answer, words, capsys):
    status, message = exercises.evaluate("01.5", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message.lower(), f"{word!r} not in: {message}"
    exercises.check("01.5", answer)
    printed = capsys.readouterr().out
    for shown in (f"{crossing():.2f}", f"{crossing():.3f}", f"{crossing():.4f}", repr(crossing())):
        assert shown not in printed, printed


def test_hint_and_question_do_not_give_the_crossing_away(capsys):
    exercises.hint("01.5")
    exercises.question("01.5")
    printed = capsys.readouterr().out
    assert "Hint" in printed and "0.9" in printed
    for shown in (f"{crossing():.2f}", f"{crossing():.3f}"):
        assert shown not in printed, printed


def test_01_3_a_shift_by_the_whole_matrix_maximum_is_caught_by_name():
    def global_shift(queries, keys, values, scale):
        scores = np.asarray(queries) @ np.asarray(keys).T * scale
        exps = np.exp(scores - scores.max())
        weights = exps / exps.sum(axis=-1, keepdims=True)
        return weights @ np.asarray(values), weights

    with np.errstate(invalid="ignore", divide="ignore"):
        status, text = exercises.evaluate("01.3", global_shift)
    assert status != "correct"
    assert "its own maximum" in text and "[400 .. 1600]" in text
