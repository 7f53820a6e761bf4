"""Lesson 04's experiment, 04.5: the course's vocabulary learned with another size, and its
pieces per German test word. The checker recomputes the number for the learner's size: it
accepts the right measurement in any valid form, names what is wrong with typical wrong
ones, and never prints the number it expected."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises.lesson04 import _pieces_per_word

SIZE = 2000


@pytest.fixture(scope="module")
def measured():
    return {"german": _pieces_per_word(SIZE), "english": _pieces_per_word(SIZE, "english"),
            "lesson": _pieces_per_word(6000)}


def test_the_measurement_behaves_as_the_exercise_says(measured):
    # a smaller vocabulary has shorter pieces: more of them per word
    assert measured["german"] > measured["lesson"] > 1.0
    assert measured["german"] != pytest.approx(measured["english"], abs=0.02)


def _forms(value):
    return [
        pytest.param((SIZE, value), id="tuple"),
        pytest.param([np.int64(SIZE), np.float32(value)], id="numpy-list"),
        pytest.param((float(SIZE), keras.ops.convert_to_tensor(value)), id="tensor"),
        pytest.param((SIZE, round(value, 3)), id="rounded-by-hand"),
    ]


@pytest.mark.parametrize("form", range(4))
def test_the_right_measurement_passes_in_any_valid_form(measured, form):
    answer = _forms(measured["german"])[form].values[0]
    assert exercises.evaluate("04.5", answer) == ("correct", "your answer passes the check.")


def test_the_solution_measures_what_the_checker_accepts():
    from course_lib.datasets import load_de_en_pairs

    _, _, (_, de_test) = load_de_en_pairs()
    namespace = {"de_test": de_test}
    exec(exercises.get("04.5").solution, namespace)  # the text `solution()` prints
    assert exercises.evaluate("04.5", namespace["answer"])[0] == "correct"


@pytest.mark.parametrize(
    "make, words",
    [
        pytest.param(lambda m: (SIZE, m["english"]), ("English side",), id="english"),
        pytest.param(lambda m: (SIZE, m["lesson"]), ("lesson's vocabulary",), id="the-lesson's-size"),
        pytest.param(lambda m: (SIZE, 1 / m["german"]), ("fewer pieces than words",), id="inverted"),
        pytest.param(lambda m: (6000, m["lesson"]), ("change it",), id="unchanged-size"),
        pytest.param(lambda m: (100, m["german"]), ("whole number from 500",), id="size-out-of-range"),
        pytest.param(lambda m: (SIZE, m["german"] + 0.2), ("recomputed", "more"), id="off"),
        pytest.param(lambda m: m["german"], ("pair",), id="one-number"),
        pytest.param(lambda m: (SIZE, "1.5"), ("should be a number",), id="a-string"),
    ],
)
def test_wrong_measurements_get_specific_feedback_without_the_value(measured, make, words, capsys):
    answer = make(measured)
    assert exercises.check("04.5", answer) is False
    out = capsys.readouterr().out
    for word in words:
        assert word in out, out
    value = measured["german"]
    for shown in {f"{value:.{k}f}" for k in (2, 3, 4)} | {str(round(value, 2))}:
        assert shown not in out, (shown, out)
