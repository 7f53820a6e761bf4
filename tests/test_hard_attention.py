"""Tests of course_lib.hard_attention (lesson 06): HardAttention and its estimators."""

import keras
import numpy as np
import pytest

from course_lib.hard_attention import HardAttention, reinforce_loss, selection_log_prob
from course_lib.scoring import LuongAttention
from tests.helpers import error_case, gradients, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")  # (batch_size, Tq, dim_q)
VALUE = RNG.normal(size=(2, 5, 6)).astype("float32")  # (batch_size, Tv, dim_v)
KEY = RNG.normal(size=(2, 5, 4)).astype("float32")  # (batch_size, Tv, dim_k)
VALUE_MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
ON_TENSORFLOW = keras.backend.backend() == "tensorflow"


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
@pytest.mark.parametrize("score", ["general", "dot"])
def test_standard_layer_checks(estimator, score, tmp_path):
    # A training step moves the score's weights only through the straight-through estimator;
    # REINFORCE trains them through `reinforce_loss` (tested below).
    train = estimator == "gumbel" and score == "general"
    check_layer(lambda: HardAttention(score, estimator=estimator, seed=1),
                {"query": QUERY, "value": VALUE, "key": KEY}, tmp_path=tmp_path, train=train, atol=1e-5)


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_inference_reads_the_value_of_the_soft_layers_largest_weight(estimator):
    hard = HardAttention("general", estimator=estimator)
    soft = LuongAttention("general")
    hard(QUERY, VALUE, key=KEY)
    soft(QUERY, VALUE, key=KEY)
    soft.set_weights(hard.get_weights()[:1])
    output, weights, selection = to_numpy(hard(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK,
                                               return_attention_scores=True, return_selection=True))
    _, soft_weights = to_numpy(soft(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK, return_attention_scores=True))
    np.testing.assert_allclose(weights, soft_weights, atol=1e-6)
    chosen = soft_weights.argmax(-1)  # (batch_size, Tq)
    np.testing.assert_array_equal(selection, np.eye(5)[chosen])
    np.testing.assert_allclose(output, np.take_along_axis(VALUE, chosen[..., None], axis=1), atol=1e-6)
    again = to_numpy(hard(QUERY, VALUE, key=KEY, value_mask=VALUE_MASK, training=False))
    np.testing.assert_array_equal(again, output)  # deterministic at inference


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_training_samples_follow_the_weights(estimator):
    # One query, three keys with weights 0.6 / 0.3 / 0.1: the frequencies of the samples match.
    scores = np.log(np.array([0.6, 0.3, 0.1], "float32"))
    query = np.ones((4000, 1, 1), "float32")
    key = np.broadcast_to(scores[None, :, None], (4000, 3, 1)).astype("float32")
    value = np.broadcast_to(np.eye(3, dtype="float32"), (4000, 3, 3))
    layer = HardAttention("dot", estimator=estimator, seed=3)
    output, weights = to_numpy(layer(query, value, key=key, training=True, return_attention_scores=True))
    np.testing.assert_allclose(weights[0, 0], [0.6, 0.3, 0.1], atol=1e-6)
    assert set(np.unique(output)) <= {0.0, 1.0} and np.all(output.sum(-1) == 1.0), "one-hot reads"
    np.testing.assert_allclose(output[:, 0].mean(0), [0.6, 0.3, 0.1], atol=0.03)


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_masked_keys_are_never_read_and_empty_rows_read_nothing(estimator):
    value_mask = np.array([[0, 0, 0, 0, 0], [0, 1, 0, 1, 0]], dtype=bool)
    layer = HardAttention("general", estimator=estimator, seed=0)
    for training in (False, True):
        output, selection = to_numpy(layer(QUERY, VALUE, key=KEY, value_mask=value_mask, training=training,
                                           return_selection=True))
        assert np.all(selection[0] == 0) and np.all(output[0] == 0), "nothing to attend to -> zeros"
        assert np.all(selection[1][:, [0, 2, 4]] == 0), "a masked key was read"
        np.testing.assert_allclose(selection[1].sum(-1), 1.0)


def test_straight_through_gradient_reaches_the_query_and_reinforce_does_not():
    target = RNG.normal(size=(2, 3, 6)).astype("float32")

    def task_loss(estimator):
        layer = HardAttention("dot", estimator=estimator, seed=2, temperature=0.5)
        return lambda q: keras.ops.mean((layer(q, VALUE, key=KEY, training=True) - target) ** 2)

    if not ON_TENSORFLOW:
        pytest.skip("keras.random with a SeedGenerator inside jax.grad needs a stateless scope")
    (straight,) = gradients(task_loss("gumbel"), QUERY)
    (reinforce,) = gradients(task_loss("reinforce"), QUERY)
    assert np.abs(straight).max() > 1e-4
    assert np.all(reinforce == 0)


def test_reinforce_loss_is_the_score_function_estimate():
    # d/d(scores) of (loss - b) * log softmax(scores)[s] is (loss - b) * (one_hot(s) - p).
    scores = np.array([[[0.5, -1.0, 2.0]]], "float32")  # (batch_size=1, Tq=1, Tv=3)
    selection = np.array([[[0.0, 1.0, 0.0]]], "float32")
    losses = np.array([3.0], "float32")

    def surrogate(s):
        weights = keras.ops.softmax(s, axis=-1)
        return reinforce_loss(losses, weights, selection, baseline=1.0)

    (gradient,) = gradients(surrogate, scores)
    p = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(gradient, (3.0 - 1.0) * (selection - p), atol=1e-5)


def test_reinforce_baselines():
    weights = np.array([[[0.5, 0.5]], [[0.25, 0.75]], [[0.9, 0.1]]], "float32")
    selection = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]], "float32")
    losses = np.array([1.0, 2.0, 6.0], "float32")
    log_p = np.log([0.5, 0.75, 0.9])
    np.testing.assert_allclose(to_numpy(selection_log_prob(weights, selection))[:, 0], log_p, rtol=1e-6)
    none = to_numpy(reinforce_loss(losses, weights, selection, baseline=None))
    np.testing.assert_allclose(none, np.mean(losses * log_p), rtol=1e-6)
    leave_one_out = losses - (losses.sum() - losses) / 2
    mean = to_numpy(reinforce_loss(losses, weights, selection))
    np.testing.assert_allclose(mean, np.mean(leave_one_out * log_p), rtol=1e-6)
    fixed = to_numpy(reinforce_loss(losses, weights, selection, baseline=np.array([1.0, 1.0, 1.0], "float32")))
    np.testing.assert_allclose(fixed, np.mean((losses - 1) * log_p), rtol=1e-6)


def test_symbolic_outputs_with_and_without_the_selection():
    query, value = keras.Input((1, 4)), keras.Input((7, 6))
    layer = HardAttention("general")
    assert layer(query, value, key=keras.Input((7, 3))).shape == (None, 1, 6)
    output, weights, selection = layer(query, value, key=keras.Input((7, 3)), return_attention_scores=True,
                                       return_selection=True)
    assert output.shape == (None, 1, 6) and weights.shape == selection.shape == (None, 1, 7)
    output, selection = layer(query, value, key=keras.Input((7, 3)), return_selection=True)
    assert selection.shape == (None, 1, 7)


CONSTRUCTOR_ERRORS = [
    error_case("temperature=0", lambda: HardAttention(temperature=0), ValueError, "temperature"),
    error_case("temperature=-1", lambda: HardAttention(temperature=-1.0), ValueError, "temperature"),
    error_case("temperature='hot'", lambda: HardAttention(temperature="hot"), TypeError, "temperature"),
    error_case("estimator='straight'", lambda: HardAttention(estimator="straight"), ValueError, "estimator"),
    error_case("score='cosine'", lambda: HardAttention("cosine"), ValueError, "score"),
    error_case("dropout=0.1", lambda: HardAttention(dropout=0.1), ValueError, "dropout"),
    error_case("seed=-1", lambda: HardAttention(seed=-1), ValueError, "seed"),
]


@pytest.mark.parametrize("make, exception, name", CONSTRUCTOR_ERRORS)
def test_bad_constructor_arguments_name_the_argument(make, exception, name):
    with raises_naming(exception, name) as error:
        make()
    assert f"Received: {name}=" in str(error.value)


def test_bad_inputs_name_the_argument():
    with raises_naming(ValueError, "query"):
        HardAttention()(QUERY[0], VALUE, key=KEY)
    with raises_naming(ValueError, "losses"):
        reinforce_loss(np.ones((2, 1), "float32"), np.ones((2, 1, 3), "float32") / 3, np.eye(3)[None, :1] * [[1], [1]])
    with raises_naming(ValueError, "baseline"):
        reinforce_loss(np.ones(2, "float32"), np.ones((2, 1, 3), "float32") / 3, np.ones((2, 1, 3), "float32"),
                       baseline="median")
