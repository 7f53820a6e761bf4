"""Exercises of lesson 07, "Self-attention and positions".

07.1  the sinusoidal encoding at position `pos`, feature `j` (function);
07.2  rotate a 2-D vector by an angle, the building block of rotary positions (function);
07.3  predict the output of self-attention without positions on permuted tokens (value);
07.4  which position scheme cannot read a sequence longer than its training length (value);
07.5  the wavelength of the slowest pair of the sinusoidal encoding (function);
07.6  an experiment: the offset-task models of the lesson run on sequences four times
      their training length (the measured accuracies, checked against what must hold).

Expected values are written from the closed formulas with numpy (the same formulas
as `course_lib.positional`, whose tests check it against them).
"""

import math

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_number, register
from course_lib.exercises.feedback import kind

# 07.1 ------------------------------------------------------------------------------


def _sinusoidal_value(pos, j, d, max_wavelength=10000):
    angle = pos / max_wavelength ** (2 * (j // 2) / d)  # features 2i and 2i+1 share an angle
    return math.sin(angle) if j % 2 == 0 else math.cos(angle)


def _sinusoidal_mistake(exponent=lambda j, d: 2 * (j // 2) / d, swap=False, multiply=False, wavelength=None):
    """A wrong sinusoidal value: another exponent, sine and cosine swapped, the position
    multiplied instead of divided, or a fixed max_wavelength."""

    def value(pos, j, d, max_wavelength=10000):
        base = (wavelength or max_wavelength) ** exponent(j, d)
        angle = pos * base if multiply else pos / base
        return math.sin(angle) if (j % 2 == 0) != swap else math.cos(angle)

    return value


register(
    Exercise(
        key="07.1",
        question=(
            "Write `sinusoidal_value(pos, j, d, max_wavelength=10000)`: feature `j` of "
            "the sinusoidal encoding of position `pos` for width `d` (a Python float)."
        ),
        cases=(
            Case("position 0, feature 0 (a sine)", 0.0, args=(0, 0, 8)),
            Case("position 0, feature 1 (a cosine)", 1.0, args=(0, 1, 8)),
            Case("position 1, feature 0: the fastest sine", math.sin(1.0), args=(1, 0, 8)),
            Case(
                "position 3, feature 2 (pair i=1, a sine), d=8",
                math.sin(3 / 10000 ** (2 / 8)),
                args=(3, 2, 8),
            ),
            Case(
                "position 5, feature 5 (pair i=2, a cosine), d=8",
                math.cos(5 / 10000 ** (4 / 8)),
                args=(5, 5, 8),
            ),
            Case(
                "position 7, feature 3, d=16, max_wavelength=100",
                math.cos(7 / 100 ** (2 / 16)),
                args=(7, 3, 16),
                kwargs={"max_wavelength": 100},
            ),
        ),
        solution=_sinusoidal_value,
        hint=(
            "Features go in pairs: feature j belongs to pair i = j // 2, whose angle is "
            "pos / max_wavelength ** (2 * i / d). Even j takes the sine, odd j the cosine."
        ),
        mistakes=(
            ("even features take the sine and odd features the cosine", _sinusoidal_mistake(swap=True)),
            (
                "features 2i and 2i+1 share one frequency: the exponent uses i = j // 2, not j",
                _sinusoidal_mistake(exponent=lambda j, d: j / d),
            ),
            ("the exponent is 2i / d, not i / d", _sinusoidal_mistake(exponent=lambda j, d: (j // 2) / d)),
            ("divide the position by max_wavelength ** (2i / d)", _sinusoidal_mistake(multiply=True)),
            ("use the `max_wavelength` argument", _sinusoidal_mistake(wavelength=10000)),
        ),
    )
)

# 07.2 ------------------------------------------------------------------------------


def _rotate_2d(vector, angle):
    x, y = vector
    return np.array([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)])


def _rotation_case(description, vector, angle):
    x, y = vector
    expected = np.array([x * math.cos(angle) - y * math.sin(angle), x * math.sin(angle) + y * math.cos(angle)])
    return Case(description, expected, args=(np.array(vector), angle))


register(
    Exercise(
        key="07.2",
        question=(
            "Write `rotate_2d(vector, angle)`: the 2-D vector `(x, y)` turned "
            "counter-clockwise by `angle` radians, as a numpy array of shape (2,). "
            "Rotary positions do this to every pair of features of a query or key."
        ),
        cases=(
            _rotation_case("(1, 0) by 0 (position 0)", (1.0, 0.0), 0.0),
            _rotation_case("(1, 0) by pi/2, a quarter turn", (1.0, 0.0), math.pi / 2),
            _rotation_case("(0, 1) by pi/2", (0.0, 1.0), math.pi / 2),
            _rotation_case("(1, 2) by pi, a half turn", (1.0, 2.0), math.pi),
            _rotation_case("(3, 4) by 0.3 rad: the length 5 is kept", (3.0, 4.0), 0.3),
        ),
        solution=_rotate_2d,
        hint=(
            "Multiply by the rotation matrix [[cos a, -sin a], [sin a, cos a]]: "
            "x' = x cos a - y sin a, y' = x sin a + y cos a."
        ),
        atol=1e-7,
        mistakes=(
            (
                "turned clockwise: counter-clockwise by a positive angle moves (1, 0) towards (0, 1)",
                lambda vector, angle: _rotate_2d(vector, -angle),
            ),
            ("the angle is in radians: use it as it is", lambda vector, angle: _rotate_2d(vector, math.radians(angle))),
            ("the two components are swapped", lambda vector, angle: _rotate_2d(vector, angle)[::-1]),
        ),
    )
)

# 07.3 ------------------------------------------------------------------------------


def _permuted_rows():
    # Row k of the new output is the output of the token now at place k:
    # the tokens [x2, x0, x3, x1] give the outputs [y2, y0, y3, y1].
    return [2, 0, 3, 1]


register(
    Exercise(
        key="07.3",
        question=(
            "Self-attention without positions maps the tokens [x0, x1, x2, x3] to the "
            "outputs [y0, y1, y2, y3]. Fed the tokens [x2, x0, x3, x1], it returns four "
            "outputs: give their indices as a list, e.g. [0, 1, 2, 3] for [y0, y1, y2, y3]."
        ),
        cases=(Case("the tokens [x2, x0, x3, x1]", [2, 0, 3, 1]),),
        mistakes=(
            (
                "that says where each token went, not which output sits at each place: "
                "follow each token to its output",
                [1, 3, 0, 2],
            ),
            (
                "the outputs move with their tokens: self-attention without positions is "
                "permutation-equivariant, not invariant",
                [0, 1, 2, 3],
            ),
        ),
        diagnose=(
            lambda received, case: (
                None if sorted(received.tolist()) == [0, 1, 2, 3] else "each of the four outputs appears exactly once"
            ),
        ),
        solution=_permuted_rows,
        hint=(
            "Permutation equivariance: each token's output depends on the token and on "
            "the set of all tokens, not on where it sits. Follow each token to its output."
        ),
        answer_is_function=False,
    )
)

# 07.4 ------------------------------------------------------------------------------


def _fixed_length_scheme():
    # A learned table has one row per trained position: position 30 has no row.
    return "learned"


register(
    Exercise(
        key="07.4",
        question=(
            "The classifiers of this lesson were trained on sequences of 12 tokens. "
            "Which of 'none', 'sinusoidal', 'learned' and 'rotary' cannot even be run "
            "on a sequence of 30 tokens? Answer with one of these strings."
        ),
        cases=(Case("the scheme limited to its training length", "learned"),),
        mistakes=(
            (
                "rotary angles are a formula of the position, defined at any position: a rotary model runs at any length",
                "rotary",
            ),
            (
                "sines and cosines are formulas of the position: a sinusoidal model runs at any length",
                "sinusoidal",
            ),
            ("a model without positions does not depend on the length at all", "none"),
        ),
        diagnose=(lambda received, case: "answer with one of the four scheme names given in the question",),
        solution=_fixed_length_scheme,
        hint=(
            "Sines, cosines and rotation angles are formulas of the position, defined for "
            "any position. Which scheme stores one vector per position instead?"
        ),
        answer_is_function=False,
    )
)


# 07.5 ------------------------------------------------------------------------------


def _slowest_wavelength(d, max_wavelength=10000):
    # The last pair is i = d/2 - 1: it turns by max_wavelength ** (-2i/d) radians per
    # position, so a full turn (2 pi radians) takes 2 pi * max_wavelength ** ((d - 2) / d).
    return 2 * math.pi * max_wavelength ** ((d - 2) / d)


def _wavelength_case(description, d, max_wavelength=None):
    kwargs = {} if max_wavelength is None else {"max_wavelength": max_wavelength}
    expected = 2 * math.pi * (max_wavelength or 10000) ** ((d - 2) / d)
    return Case(description, expected, args=(d,), kwargs=kwargs)


register(
    Exercise(
        key="07.5",
        question=(
            "Write `slowest_wavelength(d, max_wavelength=10000)`: the wavelength, in "
            "positions, of the slowest pair of features of the sinusoidal encoding of "
            "(even) width `d`."
        ),
        cases=(
            _wavelength_case("d=4: two pairs", 4),
            _wavelength_case("d=64, the width of section 2.2", 64),
            _wavelength_case("d=512, the width of 'Attention Is All You Need'", 512),
            _wavelength_case("d=2: a single pair, i=0", 2),
            _wavelength_case("d=16, max_wavelength=100", 16, max_wavelength=100),
        ),
        solution=_slowest_wavelength,
        hint=(
            "Pair i turns by max_wavelength ** (-2i / d) radians per position; a full turn "
            "is 2 pi radians. Which i does the last pair have when there are d / 2 pairs?"
        ),
        rtol=1e-4,
        mistakes=(
            (
                "that is 2 pi * max_wavelength, the wavelength of a pair i = d/2, which does not "
                "exist: the pairs are i = 0 .. d/2 - 1",
                lambda d, max_wavelength=10000: 2 * math.pi * max_wavelength,
            ),
            (
                "that is the number of positions per radian: a full turn is 2 pi radians",
                lambda d, max_wavelength=10000: max_wavelength ** ((d - 2) / d),
            ),
            (
                "that is the turn per position, in radians: the wavelength is 2 pi divided by it",
                lambda d, max_wavelength=10000: max_wavelength ** (-(d - 2) / d),
            ),
            (
                "that is the fastest pair (i = 0): the slowest is the last one",
                lambda d, max_wavelength=10000: 2 * math.pi,
            ),
            (
                "features 2i and 2i + 1 share one angle: the slowest pair is i = d/2 - 1, "
                "not the last feature j = d - 1",
                lambda d, max_wavelength=10000: 2 * math.pi * max_wavelength ** (2 * (d - 1) / d),
            ),
            (
                "use the `max_wavelength` argument",
                lambda d, max_wavelength=10000: 2 * math.pi * 10000 ** ((d - 2) / d),
            ),
        ),
    )
)

# 07.6 ------------------------------------------------------------------------------

POSITION_KINDS = ("none", "sinusoidal", "learned", "rotary")
LONG_TEST_LENGTH = 48  # four times the training length 12 of the lesson's models


def _measure_long_run():
    return """\
long_test = make_offset_task(1000, 48, offset=3, vocab_size=vocab_size, seed=3)
accuracies = {positions: accuracy_at(model, long_test) for positions, model in offset_models.items()}
print(accuracies)  # learned: None (no rows past position 11); the others measured
check("07.6", (offset_models, accuracies))"""


def _remeasure(model):
    """The model's accuracy on the exercise's long test set, or None if it cannot run."""
    import keras

    from course_lib.synthetic import make_offset_task

    x, y = make_offset_task(1000, LONG_TEST_LENGTH, offset=3, vocab_size=10, seed=3)
    try:
        probability = keras.ops.convert_to_numpy(model(x, training=False))[:, 0]
    except ValueError:  # a learned table without rows for these positions
        return None
    return float(np.mean((probability > 0.5) == y))


def _check_long_run(answer):
    import keras

    if not (isinstance(answer, (tuple, list)) and len(answer) == 2 and isinstance(answer[0], dict)):
        raise AnswerError(
            "the answer should be a pair (offset_models, accuracies): the lesson's dict of models and "
            f"your dict from the four names {', '.join(POSITION_KINDS)} to the accuracy measured (or None), "
            f"not {kind(answer)}"
        )
    models, accuracies = answer
    if not isinstance(accuracies, dict):
        raise AnswerError(f"the second item should be a dict of accuracies, not {kind(accuracies)}")
    models = {str(name).strip().lower(): model for name, model in models.items()}
    measured = {str(name).strip().lower(): value for name, value in accuracies.items()}
    for label, found in (("offset_models", models), ("your accuracies", measured)):
        missing = [name for name in POSITION_KINDS if name not in found]
        unknown = [name for name in found if name not in POSITION_KINDS]
        if missing or unknown:
            parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
                [f"unknown {', '.join(map(repr, unknown))}"] if unknown else [])
            return f"{label} should have exactly the keys {', '.join(map(repr, POSITION_KINDS))}: {'; '.join(parts)}"
    for name in POSITION_KINDS:
        if not isinstance(models[name], keras.Model):
            return f"offset_models[{name!r}] should be the lesson's trained keras model, not {kind(models[name])}"
    if measured["learned"] is not None:
        return (
            "the learned model cannot run on 48 tokens: its table has rows for positions 0 to 11 only. "
            "Use None for it (`accuracy_at` returns None for a model that cannot run); a number means "
            "the sequences you measured on were not longer than 12"
        )
    for name in ("none", "sinusoidal", "rotary"):
        if measured[name] is None:
            return (
                f"the {name!r} model can run at any length (nothing in it depends on a table of "
                "positions): measure it with `accuracy_at`"
            )
        value = as_number(measured[name], f"the accuracy of {name!r}")
        if 1 < value <= 100:
            return f"the accuracy of {name!r} should be a fraction between 0 and 1, not a percentage"
        if not 0 <= value <= 1:
            return f"the accuracy of {name!r} should be a fraction between 0 and 1"
        again = _remeasure(models[name])
        if again is None or abs(value - again) > 0.01:
            return (
                f"the accuracy you give for {name!r} is not what its model scores when the checker "
                "measures it on make_offset_task(1000, 48, offset=3, vocab_size=vocab_size, seed=3): "
                "measure each model on that test set with accuracy_at, and give the numbers it returns"
            )
    return None


register(
    Exercise(
        key="07.6",
        question=(
            "Measure the lesson's four offset-task models (trained at length 12) on 1000 "
            "sequences of length 48 made by make_offset_task(1000, 48, offset=3, "
            "vocab_size=vocab_size, seed=3), with accuracy_at. Answer with a dict from "
            "'none', 'sinusoidal', 'learned', 'rotary' to the accuracy measured, or None "
            "for a model that cannot run. Check the pair (offset_models, accuracies): the "
            "checker measures the models again."
        ),
        checker=_check_long_run,
        solution=_measure_long_run(),
        hint=(
            "Make the long test set once, then call accuracy_at(model, long_test) for each "
            "model of offset_models; it returns None where the model raises ValueError."
        ),
    )
)
