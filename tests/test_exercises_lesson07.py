"""Lesson 07's own exercise tests: the wavelength exercise (07.5) in other valid forms, and
the experiment 07.6, whose checker reads the accuracies a learner measured at length 48:
it accepts any honest measurement, rejects the typical wrong ones with feedback that says
what is wrong, and never tells which accuracy to aim for. (The generic tests of every
case-based exercise are in tests/test_exercises.py.)"""

import math
import re

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson07
from course_lib.positional import LearnedPositionalEmbedding


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


def _offset_model(positions):
    """A small untrained stand-in for a lesson model: the learned one has a 12-row table."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(16, 8)(inputs)
    if positions == "learned":
        hidden = LearnedPositionalEmbedding(12)(hidden)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))


MODELS = {name: _offset_model(name) for name in lesson07.POSITION_KINDS}
MEASURED = {name: lesson07._remeasure(model) for name, model in MODELS.items()}


def test_the_stand_in_models_run_as_the_lesson_says():
    assert MEASURED["learned"] is None
    assert all(0 <= MEASURED[name] <= 1 for name in ("none", "sinusoidal", "rotary"))


@pytest.mark.parametrize(
    "accuracies",
    [
        pytest.param(MEASURED, id="as-measured"),
        pytest.param({k: (None if v is None else np.float64(v)) for k, v in MEASURED.items()}, id="numpy-floats"),
        pytest.param({" " + k.upper(): (None if v is None else round(v, 3)) for k, v in MEASURED.items()},
                     id="names-in-any-case-rounded"),
    ],
)
def test_07_6_accepts_any_honest_measurement(accuracies):
    assert exercises.evaluate("07.6", (MODELS, accuracies)) == ("correct", "your answer passes the check.")


def _shifted(name, by):
    return {**MEASURED, name: min(1.0, max(0.0, MEASURED[name] + by))}


@pytest.mark.parametrize(
    "answer, words",
    [
        pytest.param(MEASURED, ("pair", "offset_models"), id="only-the-dict"),
        pytest.param((MODELS, [0.5, 0.6, None, 0.99]), ("dict", "a list of 4 items"), id="a-list"),
        pytest.param((MODELS, {k: v for k, v in MEASURED.items() if k != "learned"}), ("missing 'learned'",),
                     id="missing-key"),
        pytest.param((MODELS, {**MEASURED, "alibi": 0.9}), ("unknown 'alibi'",), id="unknown-key"),
        pytest.param(({**MODELS, "rotary": "model"}, MEASURED), ("offset_models['rotary']", "keras model"),
                     id="not-a-model"),
        pytest.param((MODELS, {**MEASURED, "learned": 0.998}), ("cannot run", "none for it"), id="learned-ran"),
        pytest.param((MODELS, {**MEASURED, "rotary": None}), ("'rotary'", "any length"), id="rotary-not-measured"),
        pytest.param((MODELS, {**MEASURED, "rotary": 99.4}), ("percentage",), id="percent"),
        pytest.param((MODELS, {**MEASURED, "sinusoidal": -0.2}), ("between 0 and 1",), id="negative"),
        pytest.param((MODELS, {**MEASURED, "rotary": "high"}), ("should be a number", "'rotary'"), id="a-word"),
        pytest.param((MODELS, _shifted("rotary", 0.2)), ("'rotary'", "not what its model scores"), id="made-up"),
        pytest.param((MODELS, _shifted("none", -0.3)), ("'none'", "not what its model scores"), id="off-by-0.3"),
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
    # may contain are the lengths and sizes of the test set (3, 10, 11, 12, 48, 1000), 0
    # and 1 (the range), and the size of an answer in the wrong form (4 items).
    numbers = set(re.findall(r"\d+(?:\.\d+)?", printed.split(":", 1)[1]))
    assert numbers <= {"0", "1", "3", "4", "10", "11", "12", "48", "1000"}, numbers


def test_07_6_the_solution_is_printed_and_shows_how_to_measure(capsys):
    exercises.solution("07.6")
    printed = capsys.readouterr().out
    assert "accuracy_at(model, long_test)" in printed and "make_offset_task(1000, 48" in printed
