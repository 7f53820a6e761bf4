"""Lesson 07's own exercise tests: the wavelength exercise (07.5) in other valid forms, and
the experiment 07.6, whose checker reads the accuracies a learner measured at length 48:
it accepts any honest measurement, rejects the typical wrong ones with feedback that says
what is wrong, and never tells which accuracy to aim for. (The generic tests of every
case-based exercise are in tests/test_exercises.py.)"""

import math
import re

import numpy as np
import pytest

from course_lib import exercises


def slowest_wavelength_numpy(d, max_wavelength=10000):
    turn = np.float32(max_wavelength) ** (-2 * (d // 2 - 1) / d)  # the last pair's radians per position
    return 2 * np.pi / turn


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(slowest_wavelength_numpy, id="numpy-float32-from-the-turn"),
        pytest.param(lambda d, max_wavelength=10000: round(2 * math.pi * max_wavelength ** ((d - 2) / d), 3),
                     id="rounded-to-3-decimals"),
    ],
)
def test_07_5_accepts_the_wavelength_in_other_forms(answer):
    assert exercises.evaluate("07.5", answer) == ("correct", "all 5 cases pass.")


def test_07_5_a_wrong_wavelength_never_shows_the_expected_one(capsys):
    exercises.check("07.5", lambda d, max_wavelength=10000: 2 * math.pi * max_wavelength)
    printed = capsys.readouterr().out
    assert "does not exist" in printed
    for d in (4, 64, 512):
        expected = 2 * math.pi * 10000 ** ((d - 2) / d)
        for shown in (f"{expected:.0f}", f"{expected:.1f}", f"{expected:.2f}", f"{expected:,.0f}"):
            assert shown not in printed


# 07.6: the experiment -------------------------------------------------------------


MEASURED = {"none": 0.497, "sinusoidal": 0.61, "learned": None, "rotary": 0.994}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(MEASURED, id="as-measured"),
        pytest.param({k: (None if v is None else np.float64(v)) for k, v in MEASURED.items()}, id="numpy-floats"),
        pytest.param({"None": 0.52, " Sinusoidal": 0.55, "LEARNED": None, "Rotary ": 0.71}, id="names-in-any-case"),
        pytest.param({"none": 0.5, "sinusoidal": 0.5, "learned": None, "rotary": 0.5}, id="nothing-carries"),
        pytest.param({"none": 0.45, "sinusoidal": 1.0, "learned": None, "rotary": 0.0}, id="extremes"),
    ],
)
def test_07_6_accepts_any_honest_measurement(answer):
    assert exercises.evaluate("07.6", answer) == ("correct", "your answer passes the check.")


@pytest.mark.parametrize(
    "answer, words",
    [
        pytest.param([0.5, 0.6, None, 0.99], ("dict", "a list of 4 items"), id="a-list"),
        pytest.param({"none": 0.5, "sinusoidal": 0.6, "rotary": 0.99}, ("missing 'learned'",), id="missing-key"),
        pytest.param({**MEASURED, "alibi": 0.9}, ("unknown 'alibi'",), id="unknown-key"),
        pytest.param({**MEASURED, "learned": 0.998}, ("cannot run", "none for it"), id="learned-ran"),
        pytest.param({**MEASURED, "rotary": None}, ("'rotary'", "any length"), id="rotary-not-measured"),
        pytest.param({**MEASURED, "none": None}, ("'none'", "any length"), id="none-not-measured"),
        pytest.param({**MEASURED, "rotary": 99.4}, ("percentage",), id="percent"),
        pytest.param({**MEASURED, "sinusoidal": -0.2}, ("between 0 and 1",), id="negative"),
        pytest.param({**MEASURED, "none": 0.994, "rotary": 0.497}, ("chance", "another model"), id="swapped"),
        pytest.param({**MEASURED, "rotary": "high"}, ("should be a number", "'rotary'"), id="a-word"),
    ],
)
def test_07_6_rejects_typical_mistakes_with_specific_feedback(answer, words, capsys):
    status, message = exercises.evaluate("07.6", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message.lower() or word in message, f"{word!r} not in: {message}"
    exercises.check("07.6", answer)
    printed = capsys.readouterr().out
    # Feedback names what must hold, never an accuracy to aim for: the only numbers it
    # may contain are the lengths (11, 12, 48), 0 and 1 (the range), chance (0.5) and the
    # size of an answer in the wrong form (4 items).
    numbers = set(re.findall(r"\d+(?:\.\d+)?", printed.split(":", 1)[1]))
    assert numbers <= {"0", "1", "4", "11", "12", "48", "0.5"}, numbers


def test_07_6_the_solution_is_printed_and_shows_how_to_measure(capsys):
    exercises.solution("07.6")
    printed = capsys.readouterr().out
    assert "accuracy_at(model, long_test)" in printed and "make_offset_task(1000, 48" in printed
