"""Exercises of lesson 06, "Soft, hard and location-based attention".

06.1  the Gumbel-softmax sample, from uniform noise (function);
06.2  Luong's location weights, from the query alone (function);
06.3  the Gumbel-softmax temperature of hard attention (experiment: the checker
      re-measures the learner's trained models on the lesson's test canvases).

`glimpse_test_set()` is the lesson's test set of the glimpse task (the lesson and the
checker of 06.3 use the same one).
"""

import functools

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, register

# 06.1 ------------------------------------------------------------------------------


def _softmax(x, axis=-1):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _gumbel_softmax(log_weights, uniform, temperature):
    gumbel = -np.log(-np.log(uniform))  # Gumbel(0, 1) noise from Uniform(0, 1)
    return _softmax((np.asarray(log_weights) + gumbel) / temperature, axis=-1)


_U = np.array([[0.2, 0.7, 0.5], [0.9, 0.1, 0.4]])
_LOGW = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))

register(
    Exercise(
        key="06.1",
        question=(
            "Write `my_gumbel_softmax(log_weights, uniform, temperature)` (numpy): the soft "
            "Gumbel-softmax sample `softmax((log_weights + g) / temperature)` along the last axis, "
            "with the Gumbel noise `g` made from `uniform`, an array of Uniform(0, 1) draws of the "
            "same shape. Its argmax is a sample of Categorical(weights)."
        ),
        cases=(
            Case("two rows of three weights, temperature 1", _gumbel_softmax(_LOGW, _U, 1.0), args=(_LOGW, _U, 1.0)),
            Case("the same rows at temperature 0.25 (nearly one-hot)", _gumbel_softmax(_LOGW, _U, 0.25),
                 args=(_LOGW, _U, 0.25)),
            Case("one row at temperature 4 (nearly uniform)", _gumbel_softmax(_LOGW[0], _U[0], 4.0),
                 args=(_LOGW[0], _U[0], 4.0)),
        ),
        solution=_gumbel_softmax,
        hint="Gumbel noise is `-log(-log(u))`; add it to the log-weights, divide by the temperature, softmax.",
        rtol=1e-4,
        mistakes=(
            ("the temperature divides the noisy log-weights: (log_weights + g) / temperature",
             lambda lw, u, t: _softmax(np.asarray(lw) + -np.log(-np.log(u)), axis=-1)),
            ("Gumbel noise is -log(-log(u)), not log(u)",
             lambda lw, u, t: _softmax((np.asarray(lw) + np.log(u)) / t, axis=-1)),
            ("Gumbel noise is -log(-log(u)), not -log(u)",
             lambda lw, u, t: _softmax((np.asarray(lw) - np.log(u)) / t, axis=-1)),
            ("the noise is added to the log-weights, not to the weights",
             lambda lw, u, t: _softmax((np.exp(lw) + -np.log(-np.log(u))) / t, axis=-1)),
        ),
    )
)


# 06.2 ------------------------------------------------------------------------------


def _location_weights(query, kernel, length):
    scores = np.asarray(query, dtype=float) @ np.asarray(kernel, dtype=float)[:, :length]  # (Tq, length)
    return _softmax(scores, axis=-1)


_RNG = np.random.default_rng(6)
_Q = _RNG.normal(size=(3, 4))
_K = _RNG.normal(size=(4, 6))

register(
    Exercise(
        key="06.2",
        question=(
            "Write `my_location_weights(query, kernel, length)` (numpy): Luong's location-based "
            "weights `softmax(query @ W_a)` for queries `(Tq, d)` and `W_a = kernel` `(d, max_length)`, "
            "for a source of `length <= max_length` positions: one row of `length` weights per query. "
            "Which input does it not need?"
        ),
        cases=(
            Case("3 queries, a source as long as max_length = 6", _location_weights(_Q, _K, 6), args=(_Q, _K, 6)),
            Case("3 queries, a source of 4 positions (max_length 6)", _location_weights(_Q, _K, 4),
                 args=(_Q, _K, 4)),
            Case("one query, a source of 2 positions", _location_weights(_Q[:1], _K, 2), args=(_Q[:1], _K, 2)),
        ),
        solution=_location_weights,
        hint="Score every position with `query @ kernel`, keep the first `length` columns, then softmax each row.",
        mistakes=(
            ("softmax over the queries (axis 0); each query's weights over the positions should sum to 1",
             lambda q, k, n: _softmax(np.asarray(q) @ np.asarray(k)[:, :n], axis=0)),
            ("the softmax runs over all max_length positions and is cut afterwards: cut the scores first",
             lambda q, k, n: _softmax(np.asarray(q) @ np.asarray(k), axis=-1)[:, :n]),
            ("these are the scores; the weights are their softmax",
             lambda q, k, n: np.asarray(q) @ np.asarray(k)[:, :n]),
        ),
    )
)


# 06.3 ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _test_set():
    from course_lib.datasets import load_fashion_mnist
    from course_lib.glimpses import coarse_view, grid_cells, make_glimpse_task

    _, _, (x_test, y_test) = load_fashion_mnist()
    canvases, labels, cells = make_glimpse_task(x_test[:2000], y_test[:2000], seed=2)
    pieces = grid_cells(canvases)
    return canvases, coarse_view(pieces), pieces, labels, cells


def glimpse_test_set():
    """The lesson's 2,000 test canvases: `(canvases, coarse, cells, labels, item_cells)`
    (Fashion-MNIST test images 0..1999, `make_glimpse_task(..., seed=2)`)."""
    return _test_set()


def glimpse_accuracy(model):
    """A glimpse model's test accuracy at inference on `glimpse_test_set()`."""
    _, coarse, cells, labels, _ = _test_set()
    probabilities = model.predict([coarse, cells], batch_size=500, verbose=0)[0]
    return float(np.mean(probabilities.argmax(-1) == labels))


def _check_temperatures(answer):
    import keras

    from course_lib.hard_attention import HardAttention

    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise AnswerError("give a tuple of 3 items: (models, accuracies, best_temperature)")
    models, accuracies, best = answer
    if not isinstance(models, (tuple, list)) or len(models) < 2:
        return "train at least 2 models, one per temperature, and pass them as a list"
    temperatures = []
    for model in models:
        if not isinstance(model, keras.Model):
            return "the first item should be your trained glimpse models (keras models)"
        try:
            attention = model.get_layer("attention")
        except ValueError:
            return "build each model with `build_glimpse_model(HardAttention(..., name='attention'))`"
        if not isinstance(attention, HardAttention) or attention.estimator != "gumbel":
            return "each model should read through `HardAttention(estimator='gumbel', temperature=...)`"
        temperatures.append(attention.temperature)
    if len(set(temperatures)) != len(temperatures):
        return "train each model at another temperature"
    accuracies = as_array(accuracies, "the accuracies (the second item)")
    if accuracies.shape != (len(models),):
        return "give one accuracy per model, in the order of the models"
    measured = np.array([glimpse_accuracy(model) for model in models])
    if measured.max() < 0.3:
        return "your models have not learnt the task (below 0.3 on the test canvases): train them first"
    if not np.allclose(accuracies, measured, atol=2e-3):
        wrong = int(np.flatnonzero(~np.isclose(accuracies, measured, atol=2e-3))[0])
        return (f"the accuracy of model {wrong} (temperature {temperatures[wrong]}) is not what it measures on the "
                "lesson's test canvases (`glimpse_accuracy(model)`)")
    best = as_number(best, "the best temperature (the third item)")
    if best not in temperatures:
        return "the best temperature should be one of those of your models"
    if measured[temperatures.index(best)] < measured.max():
        return "another of your temperatures gave a higher test accuracy"
    return None


register(
    Exercise(
        key="06.3",
        question=(
            "An experiment: which Gumbel-softmax temperature trains hard attention best on this "
            "budget? Train the lesson's glimpse model with `HardAttention(estimator='gumbel', "
            "temperature=t, name='attention')` for at least two temperatures (for example 0.3 and 3; "
            "the lesson used 1), measure each with `glimpse_accuracy(model)`, and answer "
            "`(models, accuracies, best_temperature)`. The checker re-measures your models."
        ),
        checker=_check_temperatures,
        solution=(
            "models = [train_variant('gumbel', temperature=t)[0] for t in (0.3, 1.0, 3.0)]\n"
            "accuracies = [glimpse_accuracy(m) for m in models]\n"
            "best = (0.3, 1.0, 3.0)[int(np.argmax(accuracies))]\n"
            "answer = (models, accuracies, best)\n"
            "\n"
            "A low temperature makes the soft sample nearly the hard one (less bias) but its\n"
            "gradient noisier and larger; a high one smooths the gradient but trains something\n"
            "closer to soft attention, whose forward pass the model never sees."
        ),
        hint="Compare the accuracies model by model; the best temperature is that of the most accurate one.",
    )
)
