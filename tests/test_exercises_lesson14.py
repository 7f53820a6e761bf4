"""Lesson 14's exercises: the multiple-choice self-checks (any case and spacing passes, every
wrong letter gets its own message, the letter is never printed), the numeric ones (sensibly
rounded values pass) and the two experiments, 14.11 (the variance of q.k, measured here as a
learner would) and 14.12 (a causal mask, checked by a leak test). The generic tests in
tests/test_exercises.py cover the numeric exercises' cases and declared mistakes too."""

import re

import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson14
from course_lib.masks import causal_mask

CORRECT = ("correct", "your answer passes the check.")
CHOICES = [k for k in exercises.keys("14") if exercises.get(k).checker is not None and exercises.get(k).mistakes]
NUMBERS = [k for k in exercises.keys("14") if exercises.get(k).checker is None]


def right_letter(key):
    return exercises.get(key).solution[0]


def test_every_question_has_a_self_check():
    assert len(exercises.keys("14")) == 15
    assert len(CHOICES) == 10 and len(NUMBERS) == 3


# Multiple choice ----------------------------------------------------------------------


@pytest.mark.parametrize("key", CHOICES)
@pytest.mark.parametrize("form", [str.lower, str.upper, lambda s: f"  {s}\n", lambda s: f"{s.upper()})"],
                         ids=["lower", "upper", "spaces", "with-bracket"])
def test_right_letter_passes_in_any_form(key, form):
    assert exercises.evaluate(key, form(right_letter(key))) == CORRECT


@pytest.mark.parametrize("key", CHOICES)
def test_each_distractor_gets_its_own_message(key):
    exercise = exercises.get(key)
    wrong = {letter for _, letter in exercise.mistakes}
    assert wrong == set("abcd") - {right_letter(key)}
    messages = set()
    for message, letter in exercise.mistakes:
        for answer in (letter, letter.upper(), f" {letter} "):
            assert exercises.evaluate(key, answer) == ("wrong", message)
        messages.add(message)
    assert len(messages) == 3


@pytest.mark.parametrize("key", CHOICES)
def test_feedback_and_hint_never_give_the_letter(key, capsys):
    """The letter is never printed as an option label ("b)") or a quoted answer ("'b'")."""
    letter = right_letter(key)
    for _, wrong in exercises.get(key).mistakes:
        exercises.check(key, wrong)
    exercises.check(key, "e")
    exercises.check(key, 2)
    exercises.hint(key)
    printed = capsys.readouterr().out
    assert "Not yet" in printed and "Hint" in printed
    assert not re.search(rf"(?<![\w]){letter}\)|['\"]{letter}['\"]|answer is {letter}\b", printed), printed
    solution = exercises.get(key).solution
    options = exercises.get(key).question.splitlines()[1:]
    right_text = options["abcd".index(letter)].split(") ", 1)[1]
    assert right_text not in printed  # the right option's text is not repeated either


@pytest.mark.parametrize("answer, says", [("e", "one letter"), ("ab", "one letter"), (2, "as a string"),
                                          (None, "as a string"), (..., "not attempted")])
def test_unreadable_letters_are_named(answer, says):
    status, message = exercises.evaluate("14.1", answer)
    assert status in ("wrong", "not attempted") and says in message, message


def test_solution_shows_the_letter_only_when_asked(capsys):
    exercises.solution("14.3")
    assert "b) (T, S)" in capsys.readouterr().out


# Numbers: rounded values pass ---------------------------------------------------------


@pytest.mark.parametrize("key, answer", [("14.4", 0.49), ("14.4", 0.5), 
                                         ("14.4", np.float32(0.493)), ("14.7", 12), ("14.7", np.int64(12)),
                                         ("14.7", 12.0), ("14.13", 13.7), ("14.13", 14), ("14.13", 13.66)])
def test_rounded_numbers_pass(key, answer):
    assert exercises.evaluate(key, answer)[0] == "correct"


@pytest.mark.parametrize("key, answer", [("14.4", 0.45), ("14.4", 0.6), ("14.7", 11), ("14.7", 13),
                                         ("14.13", 13), ("14.13", 15), ("14.13", "13.7")])
def test_numbers_that_are_not_the_result_fail(key, answer):
    assert exercises.evaluate(key, answer)[0] == "wrong"


def test_numeric_answers_are_the_lessons_results():
    """The expected values are what lessons 08, 10 and 13 printed (read from their outputs)."""
    from pathlib import Path
    import json

    def outputs(number):
        path = next((Path(__file__).parent.parent / "notebooks").glob(f"{number}_*.ipynb"))
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code"
                         for o in c.get("outputs", []))

    assert "= 0.493  0.435  0.493" in outputs("08")
    assert "GRU: first k below 1/1000 of k = 0: 12" in outputs("10")
    assert "13.7 times less peak memory" in outputs("13")
    assert lesson14._one_head_r2() == 0.493 and lesson14._gru_below_thousandth() == 12
    assert lesson14._chunked_memory_ratio() == 13.7


# 14.11: the variance of q.k -----------------------------------------------------------


def measured_variances(pairs=20_000, seed=0):
    rng = np.random.default_rng(seed)
    unscaled, scaled = [], []
    for d_k in lesson14.DIMS_1411:
        q, k = rng.normal(size=(2, pairs, d_k))
        dots = (q * k).sum(axis=1)
        unscaled.append(dots.var())
        scaled.append((dots / np.sqrt(d_k)).var())
    return np.array(unscaled), np.array(scaled)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_14_11_a_measurement_passes(seed):
    unscaled, scaled = measured_variances(seed=seed)
    assert exercises.evaluate("14.11", (unscaled, scaled)) == CORRECT
    assert exercises.evaluate("14.11", (list(unscaled), tuple(scaled))) == CORRECT
    assert exercises.evaluate("14.11", np.stack([unscaled, scaled])) == CORRECT


UNSCALED, SCALED = measured_variances()
DIMS = np.array(lesson14.DIMS_1411)


@pytest.mark.parametrize("answer, says", [
    pytest.param((UNSCALED, UNSCALED), "the same", id="scaled-forgotten"),
    pytest.param((SCALED, SCALED), "the same", id="both-scaled"),
    pytest.param((SCALED, SCALED / DIMS), "do not grow", id="unscaled-divided-too"),
    pytest.param((np.sqrt(UNSCALED), SCALED), "standard deviation", id="std-not-variance"),
    pytest.param((UNSCALED, SCALED / DIMS), "not by d_k", id="divided-by-d_k"),
    pytest.param((UNSCALED, UNSCALED / np.sqrt(DIMS)), "still grow", id="variance-divided-by-sqrt"),
    pytest.param((UNSCALED * 1.5, SCALED), "d_k = 16", id="unscaled-off"),
    pytest.param((UNSCALED, SCALED * [1, 1, 1.5]), "d_k = 256", id="scaled-off"),
    pytest.param((UNSCALED, -SCALED), "negative", id="negative"),
    pytest.param((UNSCALED[:2], SCALED[:2]), "3 numbers", id="two-dims"),
    pytest.param(UNSCALED, "give a pair", id="one-list"),
])
def test_14_11_names_the_mistake(answer, says):
    status, message = exercises.evaluate("14.11", answer)
    assert status == "wrong" and says in message, message


# 14.12: a causal mask, by a leak test ---------------------------------------------------

T = lesson14.T_1412
PAST = np.tril(np.ones((T, T), bool))


@pytest.mark.parametrize("answer", [PAST, PAST.astype(int).tolist(), causal_mask(T), PAST * 1.0],
                         ids=["bool", "int-list", "course_lib", "float"])
def test_14_12_a_causal_mask_passes(answer):
    assert exercises.evaluate("14.12", answer) == CORRECT


@pytest.mark.parametrize("answer, says", [
    pytest.param(~PAST, "inverted", id="true-means-blocked"),
    pytest.param(PAST.T, "inverted", id="upper-triangle"),
    pytest.param(np.ones((T, T), bool), "leak test failed: changing token 1 changed the output at position 0",
                 id="no-mask"),
    pytest.param(np.triu(np.ones((T, T), bool), -1), "leak test failed", id="one-future-token"),
    pytest.param(np.eye(T, dtype=bool), "only itself", id="diagonal-only"),
    pytest.param(np.tril(np.ones((T, T), bool), -1), "attend to nothing", id="no-diagonal"),
    pytest.param(PAST & ~(np.arange(T)[:, None] - np.arange(T) == 3), "query 3 may not attend to key 0",
                 id="a-hole-in-the-past"),
    pytest.param(np.ones((T - 1, T - 1), bool), "shape", id="wrong-size"),
    pytest.param(np.full((T, T), 2), "True/False", id="not-boolean"),
    pytest.param("tril", "numbers", id="a-string"),
])
def test_14_12_names_the_mistake(answer, says):
    status, message = exercises.evaluate("14.12", answer)
    assert status == "wrong" and says in message, message
    assert str(PAST.astype(int).tolist()) not in message and "True, True" not in message
