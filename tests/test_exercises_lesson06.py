"""Lesson 06's exercises: 06.1 (the Gumbel-softmax sample), 06.2 (Luong's location weights) and
06.3 (the Gumbel temperature, re-measured by the checker on the learner's models). The
references pass in any valid form, typical wrong answers get specific feedback, and no message
shows the expected value. tests/test_exercises.py covers the generic part of 06.1 and 06.2."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson06
from course_lib.glimpses import build_glimpse_model
from course_lib.hard_attention import HardAttention
from course_lib.scoring import LocationAttention, LuongAttention

CORRECT = ("correct", "your answer passes the check.")


def test_06_1_reference_is_what_the_layer_samples():
    # The layer's forward pass is the argmax of the exercise's soft sample for the same noise.
    logw, u = lesson06._LOGW, lesson06._U
    soft = lesson06._gumbel_softmax(logw, u, 0.5)
    np.testing.assert_allclose(soft.sum(-1), 1.0)
    assert (soft.argmax(-1) == (logw - np.log(-np.log(u))).argmax(-1)).all()


@pytest.mark.parametrize(
    "wrong, says",
    [
        pytest.param(lambda lw, u, t: lesson06._softmax(np.asarray(lw) - np.log(-np.log(u))), "temperature",
                     id="no-temperature"),
        pytest.param(lambda lw, u, t: lesson06._softmax((np.asarray(lw) + np.log(u)) / t), "not log(u)", id="log-u"),
        pytest.param(lambda lw, u, t: lesson06._softmax((np.exp(lw) - np.log(-np.log(u))) / t), "not to the weights",
                     id="weights"),
    ],
)
def test_06_1_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("06.1", wrong)
    assert status == "wrong" and says in message, message


def test_06_2_reference_equals_the_layer():
    layer = LocationAttention(6)
    query = lesson06._Q[None].astype("float32")  # (1, Tq=3, d=4)
    value = np.zeros((1, 4, 2), "float32")
    layer(query, value)
    layer.set_weights([lesson06._K.astype("float32")])
    _, weights = layer(query, value, return_attention_scores=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights)[0], lesson06._location_weights(lesson06._Q,
                                                                                                 lesson06._K, 4),
                               atol=1e-5)


@pytest.mark.parametrize(
    "wrong, says",
    [
        pytest.param(lambda q, k, n: lesson06._softmax(np.asarray(q) @ np.asarray(k)[:, :n], axis=0), "axis 0",
                     id="axis"),
        pytest.param(lambda q, k, n: lesson06._softmax(np.asarray(q) @ np.asarray(k))[:, :n], "cut the scores first",
                     id="cut-late"),
        pytest.param(lambda q, k, n: np.asarray(q) @ np.asarray(k)[:, :n], "their softmax", id="scores"),
    ],
)
def test_06_2_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("06.2", wrong)
    assert status == "wrong" and says in message, message


# 06.3 -----------------------------------------------------------------------------------------


def trained(temperature, steps=150, estimator="gumbel"):
    """A glimpse model trained briefly with Keras's fit (any backend)."""
    from course_lib.datasets import load_fashion_mnist
    from course_lib.glimpses import coarse_view, grid_cells, make_glimpse_task

    (x, y), _, _ = load_fashion_mnist()
    canvases, labels, _ = make_glimpse_task(x[:1500], y[:1500], seed=1)
    cells = grid_cells(canvases)
    keras.utils.set_random_seed(0)
    model = build_glimpse_model(HardAttention(estimator=estimator, temperature=temperature, name="attention", seed=0))
    model.compile(keras.optimizers.Adam(2e-3), loss=["sparse_categorical_crossentropy", None, None])
    model.fit([coarse_view(cells), cells], labels, batch_size=64, epochs=steps * 64 // 1500, verbose=0)
    return model


@pytest.fixture(scope="module")
def models():
    return [trained(0.5), trained(2.0)]


def test_06_3_accepts_the_measurement_in_any_form(models):
    accuracies = [lesson06.glimpse_accuracy(m) for m in models]
    best = (0.5, 2.0)[int(np.argmax(accuracies))]
    assert exercises.evaluate("06.3", (models, accuracies, best)) == CORRECT
    assert exercises.evaluate("06.3", [tuple(models), np.array(accuracies), np.float32(best)]) == CORRECT


def test_06_3_refuses_made_up_or_wrong_readings(models):
    accuracies = [lesson06.glimpse_accuracy(m) for m in models]
    best = (0.5, 2.0)[int(np.argmax(accuracies))]
    worst = (0.5, 2.0)[int(np.argmin(accuracies))]
    keras.utils.set_random_seed(0)
    soft = build_glimpse_model(LuongAttention("general", name="attention"))
    cases = [
        ((models, [a + 0.05 for a in accuracies], best), "not what it measures"),
        ((models, accuracies, 1.0), "one of those of your models"),
        ((models[:1], accuracies[:1], best), "at least 2 models"),
        ((models, accuracies[:1], best), "one accuracy per model"),
        (([models[0], soft], accuracies, best), "HardAttention(estimator='gumbel'"),
        (([models[0], models[0]], accuracies, best), "another temperature"),
        ((["model", models[1]], accuracies, best), "keras models"),
    ]
    if accuracies[0] != accuracies[1]:
        cases.append(((models, accuracies, worst), "higher test accuracy"))
    for answer, says in cases:
        status, message = exercises.evaluate("06.3", answer)
        assert status == "wrong" and says in message, (says, message)
        for value in accuracies:
            assert f"{value:.3f}" not in message and f"{value:.4f}" not in message


def test_06_3_untrained_models_are_refused():
    keras.utils.set_random_seed(0)
    fresh = [build_glimpse_model(HardAttention(temperature=t, name="attention")) for t in (0.5, 2.0)]
    accuracies = [lesson06.glimpse_accuracy(m) for m in fresh]
    status, message = exercises.evaluate("06.3", (fresh, accuracies, 0.5))
    assert status == "wrong" and "train them first" in message, message


def test_06_3_wrong_form_is_explained():
    status, message = exercises.evaluate("06.3", ([], []))
    assert status == "wrong" and "tuple of 3 items" in message, message
