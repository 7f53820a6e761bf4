"""Auto-checked exercises: specific feedback, no solution unless asked.

Each lesson has a module `lessonNN.py` in this package that registers its exercises
with `register`. A learner calls::

    from course_lib.exercises import check, hint, solution
    check("01.1", my_answer)      # feedback: which case failed, expected vs received
    hint("01.1")                  # a nudge, not the answer
    solution("01.1")              # only when asked

`check` returns `True` or `False` and prints one short report. An answer that is still
`...` (the placeholder in the notebooks) or a function that raises
`NotImplementedError` is reported as "not attempted yet", not as wrong.
"""

import importlib
import inspect
import pkgutil
import textwrap
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Case:
    """One test case: the arguments given to the learner's function (or `None` when
    the answer is a value) and the expected result."""

    description: str
    expected: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    """An exercise: its key (`"NN.k"`), the question, the cases that check an answer,
    a hint and a reference solution, always a function whose source is shown on request.

    With `answer_is_function=True` the learner writes a function; each case calls it
    with `case.args` and compares the result with `case.expected`. With
    `answer_is_function=False` the learner gives a value, compared with every case's
    `expected` (usually one case), and `solution()` returns that value."""

    key: str
    question: str
    cases: tuple
    solution: object
    hint: str = ""
    answer_is_function: bool = True
    rtol: float = 1e-5
    atol: float = 1e-8


_REGISTRY = {}


def register(exercise):
    """Add an `Exercise` to the registry; its key must be new."""
    if not isinstance(exercise, Exercise):
        raise TypeError(f"`exercise` must be an Exercise. Received: exercise={exercise!r}")
    if exercise.key in _REGISTRY:
        raise ValueError(f"Exercise key already registered. Received: key={exercise.key!r}")
    if not exercise.cases:
        raise ValueError(f"An exercise needs at least one case. Received: key={exercise.key!r}")
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
    """The `Exercise` registered under `key`, or a `KeyError` listing the known keys."""
    _load_lessons()
    if key not in _REGISTRY:
        raise KeyError(
            f"No exercise with key {key!r}. Known keys: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[key]


def _short(x, limit=120):
    if isinstance(x, np.ndarray) or np.isscalar(x) and not isinstance(x, str):
        text = np.array2string(np.asarray(x), precision=4, suppress_small=True, threshold=20)
    else:
        text = repr(x)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare(expected, received, rtol=1e-5, atol=1e-8):
    """`None` if `received` matches `expected`, else one sentence saying how it differs."""
    if isinstance(expected, (bool, str, type(None))):
        if received == expected and type(received) is type(expected):
            return None
        return f"expected {expected!r}, received {received!r}"
    if isinstance(expected, (tuple, list)) and not all(np.isscalar(e) for e in expected):
        if not isinstance(received, (tuple, list)) or len(received) != len(expected):
            return f"expected a tuple of {len(expected)} items, received {_short(received)}"
        for i, (e, r) in enumerate(zip(expected, received)):
            problem = compare(e, r, rtol, atol)
            if problem:
                return f"item {i}: {problem}"
        return None
    expected = np.asarray(expected, dtype=float)
    try:
        received_array = np.asarray(received, dtype=float)
    except (TypeError, ValueError):
        return f"expected a number or array, received {_short(received)}"
    if received_array.shape != expected.shape:
        return (
            f"expected shape {expected.shape}, received shape {received_array.shape} "
            f"({_short(received)})"
        )
    if np.isnan(received_array).any() and not np.isnan(expected).any():
        return f"the answer contains NaN: {_short(received_array)}"
    if not np.allclose(received_array, expected, rtol=rtol, atol=atol, equal_nan=True):
        return f"expected {_short(expected)}, received {_short(received_array)}"
    return None


def _not_attempted(answer):
    return answer is Ellipsis or answer is None


def evaluate(key, answer):
    """Check `answer` against exercise `key` without printing.

    Returns `(status, message)` with status `"correct"`, `"wrong"` or
    `"not attempted"`."""
    exercise = get(key)
    if _not_attempted(answer):
        return "not attempted", "not attempted yet: replace `...` with your answer."
    if exercise.answer_is_function and not callable(answer):
        return "wrong", f"this exercise expects a function, received {_short(answer)}"
    for number, case in enumerate(exercise.cases, start=1):
        where = f"case {number} of {len(exercise.cases)} ({case.description})"
        if exercise.answer_is_function:
            try:
                received = answer(*case.args, **case.kwargs)
            except NotImplementedError:
                return "not attempted", "not attempted yet: the function raises NotImplementedError."
            except Exception as error:  # the learner's code failed: say how
                return "wrong", f"{where}: your function raised {type(error).__name__}: {error}"
        else:
            received = answer
        problem = compare(case.expected, received, exercise.rtol, exercise.atol)
        if problem:
            return "wrong", f"{where}: {problem}"
    return "correct", f"all {len(exercise.cases)} case(s) pass."


def check(key, answer):
    """Check a learner's `answer` to exercise `key`; print the verdict, return a bool."""
    status, message = evaluate(key, answer)
    mark = {"correct": "Correct", "wrong": "Not yet", "not attempted": "Exercise"}[status]
    print(f"[{key}] {mark}: {message}")
    return status == "correct"


def hint(key):
    """Print the hint of exercise `key` (never the solution)."""
    exercise = get(key)
    print(f"[{key}] Hint: {exercise.hint or 'no hint for this one; re-read the lesson above.'}")


def solution(key):
    """Print the reference solution of exercise `key`. Only call it when you want it."""
    exercise = get(key)
    if callable(exercise.solution):
        text = textwrap.dedent(inspect.getsource(exercise.solution))
    else:
        text = str(exercise.solution)
    print(f"[{key}] Solution:\n{text}")


def question(key):
    """Print the question of exercise `key`."""
    print(f"[{key}] {get(key).question}")
