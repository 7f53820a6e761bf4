"""Lesson 05's experiment exercise 05.5 (the smallest d_k at which the median gradient
reaching unscaled scores falls below 1e-2): the checker's numpy re-measurement is the
lesson's gradient, the checker accepts an honest curve in any array form, rejects typical
wrong answers with feedback that says what is wrong, and never shows the crossing."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson05

GRID = list(range(192, 321, 16))  # around the crossing, 16 apart


def loss_of_scores(scores, v, g):
    """The lesson's loss L = sum(softmax(scores) @ v * g), per query, in float64."""
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("ns,nsv,nv->n", w, v, g)


@pytest.mark.parametrize("d_k, scale", [(4, 1.0), (16, 0.25), (64, 1.0)], ids=["d4", "d16-scaled", "d64"])
def test_the_numpy_gradient_is_the_gradient_of_the_lessons_loss(d_k, scale):
    n, n_keys, value_dim = 6, 16, 8
    rng = np.random.default_rng(2)  # the draws of the lesson's score_gradient_norms, in its order
    q = rng.standard_normal((n, 1, d_k))
    k = rng.standard_normal((n, n_keys, d_k))
    v = rng.standard_normal((n, n_keys, value_dim))
    g = rng.standard_normal((n, 1, value_dim))[:, 0]
    scores = (q @ k.transpose(0, 2, 1))[:, 0] * scale  # (n, S)
    step = 1e-6
    numeric = np.stack([
        (loss_of_scores(scores + step * np.eye(n_keys)[j], v, g)
         - loss_of_scores(scores - step * np.eye(n_keys)[j], v, g)) / (2 * step)
        for j in range(n_keys)
    ], axis=-1)  # (n, S): central differences
    expected = np.linalg.norm(numeric, axis=-1)
    measured = lesson05.score_gradient_norms_numpy(d_k, scale, n=n)
    np.testing.assert_allclose(measured, expected, rtol=1e-6, atol=1e-9)


def test_keys_drawn_in_chunks_are_the_lessons_draws():
    n, d_k = 600, 8  # three chunks: 250, 250, 100
    rng = np.random.default_rng(2)  # one draw per array, as the lesson's function does
    q, k = rng.standard_normal((n, 1, d_k)), rng.standard_normal((n, 16, d_k))
    v, g = rng.standard_normal((n, 16, 8)), rng.standard_normal((n, 1, 8))[:, 0]
    w = np.exp((q @ k.transpose(0, 2, 1))[:, 0])
    w /= w.sum(axis=-1, keepdims=True)
    a = np.einsum("nsv,nv->ns", v, g)
    expected = np.linalg.norm(w * (a - np.sum(w * a, axis=-1, keepdims=True)), axis=-1)
    np.testing.assert_allclose(lesson05.score_gradient_norms_numpy(d_k, 1.0, n=n), expected, rtol=1e-12)


@pytest.fixture(scope="module")
def curve():
    medians = [float(np.median(lesson05.score_gradient_norms_numpy(d_k, 1.0))) for d_k in GRID]
    first = exercises.first_below(GRID, medians, 1e-2)
    assert first is not None and first > GRID[0], "the grid must bracket the crossing"
    return GRID, medians, first


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda d, m, f: (d, m, f), id="lists"),
        pytest.param(lambda d, m, f: [np.array(d), np.array(m), np.int64(f)], id="arrays-list"),
        pytest.param(lambda d, m, f: (d, keras.ops.convert_to_tensor(m), float(f)), id="tensor-float"),
        pytest.param(lambda d, m, f: (d, [x * 1.3 for x in m], exercises.first_below(d, [x * 1.3 for x in m], 1e-2)),
                     id="another-seed-within-noise"),
    ],
)
def test_an_honest_curve_in_any_form_passes(curve, form):
    assert exercises.evaluate("05.5", form(*curve)) == ("correct", "your answer passes the check.")


def test_the_solution_text_uses_the_lessons_function_and_checks():
    text = exercises.get("05.5").solution
    assert "score_gradient_norms(d_k, scale=1.0)" in text and 'check("05.5", answer)' in text


def shifted(curve, factor):
    d_ks, medians, _ = curve
    medians = [m * factor for m in medians]
    return d_ks, medians, exercises.first_below(d_ks, medians, 1e-2)


WRONG = [
    pytest.param(lambda c: ([128, 256, 512], [0.0448, 0.0105, 0.001], 512), ("too coarse", "at most 32 apart"),
                 id="the-lessons-powers-of-two"),
    pytest.param(lambda c: (c[0], c[1], c[2] + 16), ("not where your curve",), id="not-the-first-below"),
    pytest.param(lambda c: (c[0], c[1], c[0][-1]), ("not where your curve",), id="the-last-point"),
    pytest.param(lambda c: (c[0], [0.7] * len(c[0]), c[0][-1]), ("never fall below", "scale=1.0"),
                 id="scaled-scores"),
    pytest.param(lambda c: shifted(c, 0.5), ("more than 1.5 times", "median"), id="half-of-the-medians"),
    pytest.param(lambda c: shifted(c, 0.4), ("below 1e-2 already", "start the grid lower"), id="starts-after-crossing"),
    pytest.param(lambda c: (c[0][::-1], c[1][::-1], c[2]), ("should increase",), id="unsorted"),
    pytest.param(lambda c: (c[0], c[1][:-1], c[2]), ("same length",), id="lengths-differ"),
    pytest.param(lambda c: (c[0][:1], c[1][:1], c[0][0]), ("several d_k",), id="one-point"),
    pytest.param(lambda c: c[2], ("tuple of 3 items",), id="only-the-number"),
    pytest.param(lambda c: (c[0], c[1]), ("tuple of 3 items",), id="no-answer"),
    pytest.param(lambda c: ([x + 0.5 for x in c[0]], c[1], c[2]), ("whole numbers",), id="fractional-d_k"),
    pytest.param(lambda c: (c[0], [-x for x in c[1]], c[2]), ("non-negative",), id="negative-medians"),
    pytest.param(lambda c: (c[0], c[1], "256"), ("d_k_first should be a number",), id="string-answer"),
]


@pytest.mark.parametrize("make, words", WRONG)
def test_a_wrong_curve_says_what_is_wrong_without_the_crossing(curve, make, words, capsys):
    answer = make(curve)
    status, message = exercises.evaluate("05.5", answer)
    assert status == "wrong", message
    for word in words:
        assert word in message.lower(), f"{word!r} not in: {message}"
    exercises.check("05.5", answer)
    printed = capsys.readouterr().out
    learner_numbers = {str(x) for part in answer[:2] for x in np.ravel(part)} if isinstance(answer, tuple) else set()
    if str(curve[2]) not in learner_numbers:
        assert str(curve[2]) not in printed, printed


def test_hint_and_question_do_not_give_the_crossing_away(curve, capsys):
    exercises.hint("05.5")
    exercises.question("05.5")
    printed = capsys.readouterr().out
    assert "1e-2" in printed and str(curve[2]) not in printed
