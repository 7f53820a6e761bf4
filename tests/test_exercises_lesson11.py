"""Lesson 11's exercises: 11.1 (patches by hand), 11.2 (the input's parameter count, checked
against the layers themselves), 11.3 (2-D positions, the checker re-measures the learner's
model) and 11.4 (the rollout check without the residual term, re-measured with the
committed ViT). References pass in any valid form, typical wrong answers get feedback
that names the mistake, and the expected value is never shown. The generic tests in
tests/test_exercises.py cover 11.1's and 11.2's cases too."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson11
from course_lib.vision import ClassToken, PatchEmbedding, PatchPositionEmbedding, build_vit

CORRECT = ("correct", "your answer passes the check.")


def shows_number(message, value):
    return any(text in message for text in {str(value), f"{value:.3f}", f"{value:.2f}", repr(value)})


# 11.1 ---------------------------------------------------------------------------------


def test_11_1_reference_reads_patches_as_the_layer_does():
    images = np.random.default_rng(0).random((2, 8, 12, 3)).astype("float32")
    layer = PatchEmbedding(4, 5)
    tokens = keras.ops.convert_to_numpy(layer(images))
    by_hand = lesson11._patchify(images, 4) @ keras.ops.convert_to_numpy(layer.kernel)
    np.testing.assert_allclose(tokens, by_hand, rtol=1e-5, atol=1e-5)


def test_11_1_accepts_a_list_answer():
    assert exercises.evaluate("11.1", lambda images, p: lesson11._patchify(images, p).tolist())[0] == "correct"


@pytest.mark.parametrize("wrong, says", [
    pytest.param(lesson11._no_transpose, "single reshape", id="one-reshape"),
    pytest.param(lesson11._column_by_column, "column by column", id="column-major"),
])
def test_11_1_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("11.1", wrong)
    assert status == "wrong" and says in message, message


def test_11_1_a_wrong_shape_is_named():
    status, message = exercises.evaluate("11.1", lambda images, p: lesson11._patchify(images, p)[:, :-1])
    assert status == "wrong" and "shape" in message, message


# 11.2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, p, d, mode", [((28, 28, 1), 7, 64, "1d"), ((28, 28, 1), 4, 64, "2d"),
                                               ((32, 16, 3), 4, 8, "2d"), ((12, 8, 2), 2, 5, "1d")])
def test_11_2_reference_counts_what_the_layers_build(shape, p, d, mode):
    images = np.zeros((1, *shape), "float32")
    embed, token = PatchEmbedding(p, d), ClassToken()
    positions = PatchPositionEmbedding((shape[0] // p, shape[1] // p), mode=mode)
    positions(token(embed(images)))
    total = embed.count_params() + token.count_params() + positions.count_params()
    assert lesson11._input_params(*shape, p, d, mode) == total


@pytest.mark.parametrize("wrong, says", [
    pytest.param(lesson11._short_by(1), "short by D weights", id="one-vector-missing"),
    pytest.param(lesson11._short_by(2), "short by 2 * D", id="two-vectors-missing"),
    pytest.param(lesson11._2d_as_1d, "one vector per row", id="2d-counted-as-1d"),
])
def test_11_2_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("11.2", wrong)
    assert status == "wrong" and says in message, message
    assert not shows_number(message, lesson11._input_params(28, 28, 1, 7, 64, "1d"))


def test_11_2_accepts_numpy_integers():
    assert exercises.evaluate("11.2", lambda *args: np.int64(lesson11._input_params(*args)))[0] == "correct"


# 11.3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_2d():
    from course_lib.datasets import load_fashion_mnist
    from course_lib.train_vision import compile_classifier, scaled

    (x_train, y_train), _, _ = load_fashion_mnist()
    keras.utils.set_random_seed(0)
    model = build_vit(patch_size=7, width=16, num_layers=1, num_heads=2, intermediate_dim=32, positions="2d")
    compile_classifier(model, learning_rate=3e-3)
    model.fit(scaled(x_train[:10000]), y_train[:10000], batch_size=128, epochs=2, verbose=0)
    return model, lesson11._test_accuracy(model)


def test_11_3_accepts_the_measured_accuracy(trained_2d):
    model, measured = trained_2d
    assert measured > 0.5
    assert exercises.evaluate("11.3", (model, measured)) == CORRECT
    assert exercises.evaluate("11.3", [model, np.float32(measured)]) == CORRECT


def test_11_3_refuses_a_made_up_accuracy(trained_2d):
    model, measured = trained_2d
    status, message = exercises.evaluate("11.3", (model, min(1.0, measured + 0.05)))
    assert status == "wrong" and "not your model's accuracy" in message, message
    assert not shows_number(message, measured)
    status, message = exercises.evaluate("11.3", (model, 100 * measured))
    assert status == "wrong" and "fraction" in message, message


def test_11_3_refuses_1d_positions_and_untrained_models():
    keras.utils.set_random_seed(0)
    one_d = build_vit(patch_size=7, width=8, num_layers=1, num_heads=2, intermediate_dim=16)
    status, message = exercises.evaluate("11.3", (one_d, 0.8))
    assert status == "wrong" and "not 2-D" in message, message
    untrained = build_vit(patch_size=7, width=8, num_layers=1, num_heads=2, intermediate_dim=16, positions="2d")
    status, message = exercises.evaluate("11.3", (untrained, 0.1))
    assert status == "wrong" and "chance" in message, message


def test_11_3_a_malformed_answer_says_what_to_give():
    status, message = exercises.evaluate("11.3", 0.85)
    assert status != "correct" and "(model, test_accuracy)" in message, message


# 11.4 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masses():
    return lesson11._mean_mass(0.0), lesson11._mean_mass(0.5)


def test_11_4_accepts_the_measurement(masses):
    assert exercises.evaluate("11.4", masses[0]) == CORRECT
    assert exercises.evaluate("11.4", np.float32(masses[0])) == CORRECT


def test_11_4_names_the_lessons_residual_weight(masses):
    if abs(masses[0] - masses[1]) < 4e-3:
        pytest.skip("the two residual weights give nearly the same mass for the committed weights")
    status, message = exercises.evaluate("11.4", masses[1])
    assert status == "wrong" and "residual_weight=0.5" in message, message
    assert not shows_number(message, masses[0])


def test_11_4_refuses_other_numbers(masses):
    status, message = exercises.evaluate("11.4", masses[0] + 0.05)
    assert status == "wrong" and not shows_number(message, masses[0]), message
    status, message = exercises.evaluate("11.4", 1.5)
    assert status == "wrong" and "between 0 and 1" in message, message
