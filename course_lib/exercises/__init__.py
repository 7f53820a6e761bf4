"""Auto-checked exercises: feedback that says what is wrong, never the answer.

Each lesson has a module `lessonNN.py` in this package that registers its exercises
with `register`. A learner calls::

    from course_lib.exercises import check, hint, solution
    check("01.1", my_answer)      # what is wrong, and for which input
    hint("01.1")                  # a nudge, not the answer
    solution("01.1")              # the reference solution, only when asked

`check` returns `True` or `False` and prints one short report. An answer that is still
`...` (the placeholder in the notebooks) or a function that raises
`NotImplementedError` is reported as "not attempted yet", not as wrong.

There are three kinds of exercise:

* a function (`answer_is_function=True`): every `Case` calls the learner's function on
  fresh copies of `case.args` (numpy arrays where the question speaks of arrays) and
  compares the result with `case.expected`;
* a value (`answer_is_function=False`): the answer itself is compared with `expected`;
* an experiment (`checker=...`): the answer is a measured result, and
  `checker(answer)` returns `None` if it is right, else what is wrong. The checker may
  recompute the reference itself (deterministically and quickly), test a band that the
  lesson documents, or test that the learner's number agrees with the curve they
  measured. `as_number`, `as_array` and `first_below` help it read the answer; it may
  raise `AnswerError(message)` for an answer it cannot read. Its messages follow the
  rule of every exercise: say what is wrong, never the reference value. `solution` is
  a text or a function that shows how to measure (printed, never run, by `solution()`).

Answers are read generously: a list, tuple, numpy array or tensor where an array is
asked, a numpy scalar where a number is, a string in any case with spaces around it.
A wrong answer is described, without the expected value, by the first that applies
of: its form (type, shape; a shape is shown unless it is the answer), the exercise's
`mistakes` (pairs `(message, wrong)`: the message is shown when the answer matches
`wrong`, a typical wrong answer given as a value or as a function of the case's
inputs), its `diagnose` functions (`(received, case) -> message or None`), and
generic checks: NaN or inf, negative entries, slices that should sum to 1, a constant
factor, a transpose, the right values in the wrong places, the size of the error.

Example: an experiment in which the learner reports the source length at which exact
match first falls below 0.5, together with the curve they measured:

>>> from course_lib.exercises import Exercise, as_array, as_number, evaluate, first_below
>>> def check_reading(answer):
...     lengths, accuracy, length = answer
...     first = first_below(as_array(lengths, "lengths"), as_array(accuracy, "accuracy"), 0.5)
...     if first is None:
...         return "your curve never falls below 0.5: try longer sources"
...     if as_number(length, "the length") != first:
...         return "that is not where your curve first falls below 0.5"
>>> exercise = Exercise("03.9", "At which length ...?", checker=check_reading,
...                     solution="first_below(lengths, accuracy, 0.5)")
>>> evaluate(exercise, ([10, 20, 30, 40], [1.0, 0.8, 0.4, 0.2], 20))
('wrong', 'that is not where your curve first falls below 0.5')
>>> evaluate(exercise, ([10, 20, 30, 40], [1.0, 0.8, 0.4, 0.2], 30))
('correct', 'your answer passes the check.')

A lesson module registers it with `register(exercise)`; `check("03.9", answer)` then
prints the verdict.
"""

import copy
import importlib
import inspect
import pkgutil
import textwrap
from dataclasses import dataclass, field

import numpy as np

from course_lib.exercises.feedback import (  # noqa: F401 (public: for checkers and tests)
    AnswerError,
    as_array,
    as_number,
    compare,
    first_below,
    matches,
)
from course_lib.exercises.feedback import close, describe, kind, read, show


@dataclass(frozen=True)
class Case:
    """One test case: the arguments given to the learner's function (none for a value)
    and the expected result. The description, printed when the case fails, names the
    input and what is special about it, never the expected result."""

    description: str
    expected: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    """An exercise: its key (`"NN.k"`), the question, how an answer is checked, a hint
    and a reference solution (a function, whose source `solution()` shows, or a text).

    `cases` check a function (`answer_is_function=True`) or a value; `rtol` and `atol`
    are the tolerances (wide enough for a hand-rounded answer where the question asks
    for arithmetic by hand); `parts` names the items of a tuple answer; `mistakes` and
    `diagnose` describe typical wrong answers (see the module docstring). An
    experiment has a `checker` instead of cases."""

    key: str
    question: str
    cases: tuple = ()
    solution: object = None
    hint: str = ""
    answer_is_function: bool = True
    rtol: float = 1e-5
    atol: float = 1e-8
    parts: tuple = ()
    mistakes: tuple = ()
    diagnose: tuple = ()
    checker: object = None


_REGISTRY = {}


def register(exercise):
    """Add an `Exercise` to the registry; its key must be new."""
    if not isinstance(exercise, Exercise):
        raise TypeError(f"`exercise` must be an Exercise. Received: exercise={exercise!r}")
    if exercise.key in _REGISTRY:
        raise ValueError(f"Exercise key already registered. Received: key={exercise.key!r}")
    if bool(exercise.cases) == (exercise.checker is not None):
        raise ValueError(f"An exercise needs cases or a checker, not both. Received: key={exercise.key!r}")
    if exercise.solution is None:
        raise ValueError(f"An exercise needs a solution. Received: key={exercise.key!r}")
    _REGISTRY[exercise.key] = exercise
    return exercise


def _load_lessons():
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{module.name}")


def keys(lesson=None):
    """The registered exercise keys, optionally only those of `lesson` (e.g. `"01"`)."""
    _load_lessons()
    return sorted(k for k in _REGISTRY if lesson is None or k.split(".")[0] == lesson)


def get(key):
    """The `Exercise` registered under `key` (an `Exercise` is returned as it is)."""
    if isinstance(key, Exercise):
        return key
    _load_lessons()
    if key not in _REGISTRY:
        raise KeyError(f"No exercise with key {key!r}. Known keys: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


# Checking an answer ---------------------------------------------------------------------


def _show_inputs(exercise, case):
    try:
        names = list(inspect.signature(exercise.solution).parameters)
    except (TypeError, ValueError):
        names = []
    shown = [f"{names[i]}={show(a)}" if i < len(names) else show(a) for i, a in enumerate(case.args)]
    return ", ".join(shown + [f"{k}={show(v)}" for k, v in case.kwargs.items()])


def _problem(exercise, case, received):
    """What is wrong with `received` for `case`, or None."""
    what = "your function's result" if exercise.answer_is_function else "the answer"
    if received is None:
        return ("your function returned None: probably a missing `return`" if exercise.answer_is_function
                else "the answer is None: give a value (a function without `return` gives None)")
    try:
        value = read(case.expected, received, what, exercise.parts)
    except AnswerError as problem:
        return str(problem)
    if close(case.expected, value, exercise.rtol, exercise.atol):
        return None
    for message, wrong in exercise.mistakes:
        try:
            if callable(wrong):
                wrong = wrong(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
            if close(wrong, value, exercise.rtol, exercise.atol):
                return message
        except Exception:  # a mistake that cannot be made on this case's inputs
            continue
    for diagnose in exercise.diagnose:
        message = diagnose(value, case)
        if message:
            return message
    return describe(case.expected, value, exercise.rtol, exercise.atol, what, exercise.parts)


def _run_checker(exercise, answer):
    try:
        problem = exercise.checker(answer)
    except AnswerError as error:
        problem = str(error)
    except Exception as error:  # an answer in a form the checker cannot unpack
        problem = f"the answer could not be read ({type(error).__name__}: {error}); see the question for its form"
    return ("wrong", problem) if problem else ("correct", "your answer passes the check.")


def evaluate(key, answer):
    """Check `answer` against exercise `key` (or an `Exercise`) without printing.

    Returns `(status, message)` with status `"correct"`, `"wrong"` or `"not attempted"`."""
    exercise = get(key)
    if answer is Ellipsis:
        return "not attempted", "not attempted yet: replace `...` with your answer."
    with np.errstate(all="ignore"):
        if exercise.checker is not None:
            return _run_checker(exercise, answer)
        if exercise.answer_is_function and not callable(answer):
            return "wrong", f"this exercise expects a function, not {kind(answer)}"
        if not exercise.answer_is_function and callable(answer):
            return "wrong", "this exercise expects a value, not a function: give the value itself"
        for number, case in enumerate(exercise.cases, start=1):
            where = f"case {number} of {len(exercise.cases)} ({case.description})"
            received = answer
            if exercise.answer_is_function:
                where += f", input {_show_inputs(exercise, case)}"
                try:
                    received = answer(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
                except NotImplementedError:
                    return "not attempted", "not attempted yet: the function raises NotImplementedError."
                except Exception as error:  # the learner's code failed: say how
                    return "wrong", f"{where}: your function raised {type(error).__name__}: {error}"
            problem = _problem(exercise, case, received)
            if problem and len(exercise.cases) == 1 and not exercise.answer_is_function:
                return "wrong", problem  # one value, one case: the case adds nothing
            if problem:
                return "wrong", f"{where}: {problem}"
    if not exercise.answer_is_function:
        return "correct", "that is right."
    return "correct", f"all {len(exercise.cases)} cases pass."


def check(key, answer):
    """Check a learner's `answer` to exercise `key` and print the verdict.

    Returns `None`, so that a notebook cell ending with `check(...)` shows the verdict
    only; `evaluate(key, answer)` gives it as `(status, message)` to code.
    """
    status, message = evaluate(key, answer)
    mark = {"correct": "Correct", "wrong": "Not yet", "not attempted": "Exercise"}[status]
    print(f"[{key}] {mark}: {message}")


def hint(key):
    """Print the hint of exercise `key` (never the solution)."""
    exercise = get(key)
    print(f"[{key}] Hint: {exercise.hint or 'no hint for this one; re-read the lesson above.'}")


def solution(key):
    """Print the reference solution of exercise `key`. Only call it when you want it."""
    exercise = get(key)
    if not callable(exercise.solution):
        text = str(exercise.solution)
    else:
        text = textwrap.dedent(inspect.getsource(exercise.solution))
        if not exercise.answer_is_function and exercise.checker is None:
            text += f"\nAnswer: {show(exercise.solution(), limit=None)}"
    print(f"[{key}] Solution:\n{text}")


def question(key):
    """Print the question of exercise `key`."""
    print(f"[{key}] {get(key).question}")
