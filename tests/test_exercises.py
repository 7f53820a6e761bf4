"""Every registered exercise accepts its reference solution, reports a placeholder as
not attempted, rejects a wrong answer with a specific message, and never prints the
solution unless asked."""

import pytest

from course_lib import exercises

KEYS = exercises.keys()


def reference_answer(exercise):
    return exercise.solution if exercise.answer_is_function else exercise.solution()


def test_every_lesson_with_a_notebook_has_exercises():
    from pathlib import Path

    lessons = {p.name[:2] for p in (Path(__file__).parent.parent / "notebooks").glob("*.ipynb")}
    with_exercises = {k.split(".")[0] for k in KEYS}
    assert lessons <= with_exercises, f"lessons without exercises: {sorted(lessons - with_exercises)}"


@pytest.mark.parametrize("key", KEYS)
def test_reference_solution_is_correct(key):
    exercise = exercises.get(key)
    status, message = exercises.evaluate(key, reference_answer(exercise))
    assert status == "correct", message


@pytest.mark.parametrize("key", KEYS)
def test_placeholder_is_not_attempted(key):
    status, _ = exercises.evaluate(key, ...)
    assert status == "not attempted"


@pytest.mark.parametrize("key", KEYS)
def test_wrong_answer_names_the_failing_case(key):
    exercise = exercises.get(key)
    wrong = (lambda *args, **kwargs: "wrong") if exercise.answer_is_function else "wrong"
    status, message = exercises.evaluate(key, wrong)
    assert status == "wrong"
    assert "expected" in message or "case" in message


@pytest.mark.parametrize("key", KEYS)
def test_check_prints_no_solution(key, capsys):
    exercise = exercises.get(key)
    wrong = (lambda *args, **kwargs: "wrong") if exercise.answer_is_function else "wrong"
    assert exercises.check(key, wrong) is False
    printed = capsys.readouterr().out
    assert "Solution" not in printed
    exercises.solution(key)
    assert "Solution" in capsys.readouterr().out


def test_unknown_key_lists_known_keys():
    with pytest.raises(KeyError, match="Known keys"):
        exercises.get("99.99")


def test_compare_reports_shape_and_nan():
    import numpy as np

    assert "shape" in exercises.compare(np.zeros(3), np.zeros(4))
    assert "NaN" in exercises.compare(np.zeros(2), np.array([np.nan, 0.0]))
    assert exercises.compare([0.5, 0.5], np.array([0.5, 0.5])) is None
