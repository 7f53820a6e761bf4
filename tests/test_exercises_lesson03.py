"""Lesson 03's experiment, 03.5: the model without attention given more units, and the
source length at which its exact match first falls below 0.5. The checker tests the
learner's length against the learner's own curve: it accepts the right reading in any
valid form, names what is wrong with a typical wrong one, and never prints the length
it expected."""

import re

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import first_below

LENGTHS = np.arange(2, 41)
# A curve like those the lesson measures: perfect on short sources, falling with length.
CURVE = np.clip(1.0 - (LENGTHS - 9) / 8, 0.0, 1.0)  # exactly 0.5 at length 13, below from 14
FIRST = first_below(LENGTHS, CURVE, 0.5)


def test_the_example_curve_is_what_the_tests_assume():
    assert FIRST == 14 and CURVE[LENGTHS == 13][0] == 0.5 and CURVE[0] == 1.0


RIGHT = [
    pytest.param((160, LENGTHS, CURVE, FIRST), id="arrays"),
    pytest.param([128, LENGTHS.tolist(), CURVE.tolist(), int(FIRST)], id="lists"),
    pytest.param((np.int64(160), range(2, 41), tuple(CURVE), np.int64(FIRST)), id="numpy-ints-range-tuple"),
    pytest.param((160.0, LENGTHS, CURVE.astype(np.float32), float(FIRST)), id="floats"),
    pytest.param((160, keras.ops.convert_to_tensor(LENGTHS), keras.ops.convert_to_tensor(CURVE),
                  keras.ops.convert_to_tensor(FIRST)), id="tensors"),
    pytest.param((160, LENGTHS, CURVE, LENGTHS[np.flatnonzero(CURVE < 0.5)[0]]), id="the-hint's-reading"),
]


@pytest.mark.parametrize("answer", RIGHT)
def test_the_right_reading_passes_in_any_valid_form(answer):
    assert exercises.evaluate("03.5", answer) == ("correct", "your answer passes the check.")


def test_the_solution_is_a_valid_reading_of_any_curve():
    # The solution's reading, applied to other curves, is what the checker accepts.
    for shift in (0, 5, 20):
        curve = np.clip(1.0 - (LENGTHS - shift) / 6, 0.0, 1.0)
        length = LENGTHS[np.flatnonzero(curve < 0.5)[0]]
        assert exercises.evaluate("03.5", (160, LENGTHS, curve, length))[0] == "correct"


WRONG = [
    pytest.param((160, LENGTHS, CURVE, 13), ("exactly 0.5",), id="exactly-half-is-not-below"),
    pytest.param((160, LENGTHS, np.where(LENGTHS == 13, 0.6, CURVE), 13), ("last length", "first one below"),
                 id="last-above"),
    pytest.param((160, LENGTHS, CURVE, 10), ("still above 0.5",), id="well-above"),
    pytest.param((160, LENGTHS, CURVE, 20), ("already was at a shorter length",), id="a-later-one-below"),
    pytest.param((160, LENGTHS, CURVE, int(np.flatnonzero(LENGTHS == FIRST)[0])), ("position in the array",),
                 id="index-not-length"),
    pytest.param((160, LENGTHS, CURVE, 41), ("not one of the lengths",), id="not-tested"),
    pytest.param((160, LENGTHS, CURVE, 14.5), ("not one of the lengths",), id="between-lengths"),
    pytest.param((80, LENGTHS, CURVE, FIRST), ("more than the lesson's 80",), id="the-lesson's-units"),
    pytest.param((64, LENGTHS, CURVE, FIRST), ("more than the lesson's 80",), id="fewer-units"),
    pytest.param((160.5, LENGTHS, CURVE, FIRST), ("whole number",), id="fractional-units"),
    pytest.param((160, LENGTHS, 100 * CURVE, FIRST), ("percentages",), id="percentages"),
    pytest.param((160, LENGTHS, -CURVE, FIRST), ("between 0 and 1",), id="negative"),
    pytest.param((160, LENGTHS, np.zeros(39), 2), ("did the model train",), id="untrained"),
    pytest.param((160, LENGTHS, np.ones(39), 40), ("never falls below 0.5",), id="never-below"),
    pytest.param((160, LENGTHS, CURVE[:-1], FIRST), ("same size",), id="curve-shorter-than-lengths"),
    pytest.param((160, LENGTHS[::-1], CURVE, FIRST), ("increasing order",), id="lengths-reversed"),
    pytest.param((160, LENGTHS, np.where(LENGTHS == 30, np.nan, CURVE), FIRST), ("nan",), id="nan"),
    pytest.param((160, LENGTHS, CURVE, LENGTHS[CURVE < 0.5]), ("single number",), id="all-lengths-below"),
    pytest.param((160, LENGTHS, CURVE, "14"), ("number",), id="length-as-string"),
    pytest.param((160, LENGTHS, CURVE), ("4 items",), id="three-items"),
    pytest.param({"units": 160, "length": FIRST}, ("4 items",), id="a-dict"),
    pytest.param(FIRST, ("4 items",), id="the-length-alone"),
]


@pytest.mark.parametrize("answer, words", WRONG)
def test_a_wrong_reading_gets_specific_feedback(answer, words):
    status, message = exercises.evaluate("03.5", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message.lower(), f"{word!r} not in: {message}"


@pytest.mark.parametrize("answer, words", WRONG)
def test_feedback_never_shows_the_expected_length(answer, words, capsys):
    exercises.check("03.5", answer)
    printed = capsys.readouterr().out
    assert not re.search(rf"(?<![\w.]){FIRST}(?![\w]|\.\d)", printed), printed


def test_hint_and_question_give_no_length_away(capsys):
    exercises.hint("03.5")
    exercises.question("03.5")
    printed = capsys.readouterr().out
    assert "first length whose accuracy is below 0.5" in printed
    assert not re.search(rf"(?<![\w.]){FIRST}(?![\w]|\.\d)", printed)


def test_solution_shows_how_to_measure(capsys):
    exercises.solution("03.5")
    printed = capsys.readouterr().out
    assert "train(wide_model)" in printed and "accuracy_by_length" in printed and "< 0.5" in printed


def test_placeholder_is_not_attempted():
    assert exercises.evaluate("03.5", ...)[0] == "not attempted"
