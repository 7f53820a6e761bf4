"""Lesson 10's exercises: 10.1 (a self-attention layer's parameter count, checked against the layer), 10.2
(an LSTM's gradient against distance, re-measured by the checker) and 10.3 (the
crossover read from the learner's own timing). Each checker accepts the reference in
any valid form, rejects typical wrong answers with feedback that says what is wrong,
and never shows the expected answer. The generic tests in tests/test_exercises.py cover
10.1's cases and declared mistakes too."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import first_below, lesson10
from course_lib.multihead import MultiHeadAttention

CORRECT = ("correct", "your answer passes the check.")


def shows_number(message, value):
    return any(text in message for text in {str(value), f"{value:.1f}", repr(value)})


# 10.1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width, num_heads, key_dim", [(39, 1, 39), (32, 4, 8), (16, 2, 4), (6, 3, 5), (1, 1, 1)])
def test_10_1_reference_counts_what_the_layer_builds(width, num_heads, key_dim):
    layer = MultiHeadAttention(num_heads=num_heads, key_dim=key_dim)
    x = np.zeros((1, 3, width), "float32")
    layer(x, x)
    assert lesson10._attention_params(width, num_heads, key_dim) == layer.count_params()


def test_10_1_the_lessons_bodies_are_matched():
    gru = keras.layers.GRU(32, return_sequences=True)
    gru.build((None, None, 32))
    assert abs(lesson10._attention_params(39, 1, 39) - gru.count_params()) < 0.02 * gru.count_params()


def test_10_1_accepts_numpy_integers():
    def numpy_count(width, num_heads, key_dim):
        inner = num_heads * key_dim
        return np.int64(4 * width * inner + 3 * inner + width)

    assert exercises.evaluate("10.1", numpy_count)[0] == "correct"


@pytest.mark.parametrize(
    "wrong, says",
    [
        pytest.param(lambda w, h, k: 4 * w * h * k, "forgot the biases", id="no-bias"),
        pytest.param(lambda w, h, k: 3 * (w * h * k + h * k), "output projection", id="no-output"),
        pytest.param(lambda w, h, k: 2 * (w * h * k + h * k) + h * k * w + w, "values are projected", id="no-value"),
        pytest.param(lambda w, h, k: 3 * (w * k + k) + k * w + w, "every head has its own", id="one-head"),
    ],
)
def test_10_1_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("10.1", wrong)
    assert status == "wrong" and says in message, message
    assert not shows_number(message, lesson10._attention_params(32, 4, 8))


# 10.2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def measured_lstm():
    keras.utils.set_random_seed(0)
    lstm = keras.layers.LSTM(32, return_sequences=True)
    norms = lesson10.gradient_by_distance(lstm, lesson10.lesson_input(64, 32))
    k = first_below(np.arange(norms.size), norms / norms[0], 1e-3)
    return lstm, norms, k


def test_gradient_by_distance_reads_the_jacobian_of_a_known_layer():
    # out[t] = 2 * in[t] + 3 * in[t - 1] (a causal convolution): only k = 0 and k = 1 reach the last output.
    layer = keras.layers.Conv1D(4, 2, padding="causal", use_bias=False)
    layer.build((None, None, 4))
    kernel = np.stack([3 * np.eye(4), 2 * np.eye(4)]).astype("float32")  # (taps, C_in, C_out): tap 1 is t
    layer.set_weights([kernel])
    norms = lesson10.gradient_by_distance(layer, lesson10.lesson_input(6, 4))
    np.testing.assert_allclose(norms, [2 * 2, 3 * 2, 0, 0, 0, 0], atol=1e-6)  # Frobenius norms of 2 I and 3 I


def test_10_2_the_lstm_curve_falls_below_the_threshold_within_64_positions(measured_lstm):
    assert measured_lstm[2] is not None


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda lstm, norms, k: (lstm, norms, k), id="tuple"),
        pytest.param(lambda lstm, norms, k: [lstm, norms.tolist(), int(k)], id="list-of-floats-int"),
        pytest.param(lambda lstm, norms, k: (lstm, keras.ops.convert_to_tensor(norms), np.int64(k)), id="tensor"),
        pytest.param(lambda lstm, norms, k: (lstm, norms, float(k)), id="float-k"),
    ],
)
def test_10_2_accepts_the_reference_in_any_form(measured_lstm, form):
    assert exercises.evaluate("10.2", form(*measured_lstm)) == CORRECT


def test_10_2_a_curve_that_never_falls_wants_none(measured_lstm):
    lstm = measured_lstm[0]
    short = lesson10.gradient_by_distance(lstm, lesson10.lesson_input(4, 32))
    assert (short / short[0]).min() > 1e-3
    assert exercises.evaluate("10.2", (lstm, short, None)) == CORRECT
    status, message = exercises.evaluate("10.2", (lstm, short, 3))
    assert status == "wrong" and "answer None" in message, message


def test_10_2_rejects_typical_mistakes(measured_lstm):
    lstm, norms, k = measured_lstm
    keras.utils.set_random_seed(0)
    gru = keras.layers.GRU(32, return_sequences=True)
    gru_norms = lesson10.gradient_by_distance(gru, lesson10.lesson_input(64, 32))
    unbuilt = keras.layers.LSTM(32, return_sequences=True)
    last_only = keras.layers.LSTM(32)
    cases = [
        ((gru, gru_norms, 12), "about an LSTM"),
        ((lstm, norms * 2, k), "not those of your layer"),
        ((lstm, gru_norms, k), "not those of your layer"),
        ((lstm, norms, k + 5), "falls below before"),
        ((lstm, norms, k - 5), "falls below after"),
        ((lstm, norms, None), "does fall below"),
        ((unbuilt, norms, k), "measure your layer first"),
        ((last_only, norms, k), "return_sequences=True"),
        (("lstm", norms, k), "your LSTM layer"),
        ((lstm, norms[None], k), "one number per distance"),
    ]
    for answer, says in cases:
        status, message = exercises.evaluate("10.2", answer)
        assert status == "wrong" and says in message, (says, message)
        assert not shows_number(message, k), message


def test_10_2_wrong_form_is_explained(measured_lstm):
    status, message = exercises.evaluate("10.2", measured_lstm[:2])
    assert status == "wrong" and "tuple of 3 items" in message, message


# 10.3 ---------------------------------------------------------------------------------

LENGTHS = [16, 64, 256, 1024]
GRU_MS = [10.0, 20.0, 40.0, 80.0]
ATTENTION_MS = [5.0, 10.0, 60.0, 200.0]  # slower from 256 on


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS, 256), id="lists"),
        pytest.param((np.array(LENGTHS), np.array(GRU_MS), np.array(ATTENTION_MS), np.int64(256)), id="arrays"),
        pytest.param([tuple(LENGTHS), GRU_MS, ATTENTION_MS, 256.0], id="tuple-float"),
    ],
)
def test_10_3_accepts_the_first_slower_length_in_any_form(answer):
    assert exercises.evaluate("10.3", answer) == CORRECT


def test_10_3_no_crossover_wants_none():
    faster = [1.0, 2.0, 3.0, 4.0]
    assert exercises.evaluate("10.3", (LENGTHS, GRU_MS, faster, None)) == CORRECT
    status, message = exercises.evaluate("10.3", (LENGTHS, GRU_MS, faster, 1024))
    assert status == "wrong" and "never slower" in message, message


@pytest.mark.parametrize(
    "answer, says",
    [
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS, 1024), "already slower at a shorter length", id="too-late"),
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS, 64), "still faster there", id="too-early"),
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS, None), "slower than the GRU at some length", id="none"),
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS, 300), "one of the lengths you measured", id="not-measured"),
        pytest.param((LENGTHS[::-1], GRU_MS, ATTENTION_MS, 256), "increasing order", id="unsorted"),
        pytest.param((LENGTHS, GRU_MS[:3], ATTENTION_MS, 256), "one GRU time and one attention time", id="short-list"),
        pytest.param((LENGTHS, [-1.0] * 4, ATTENTION_MS, 256), "positive", id="negative-times"),
        pytest.param((LENGTHS[:2], GRU_MS[:2], ATTENTION_MS[:2], None), "at least 3 lengths", id="two-lengths"),
        pytest.param((LENGTHS, GRU_MS, ATTENTION_MS), "tuple of 4 items", id="three-items"),
    ],
)
def test_10_3_rejects_typical_mistakes_without_the_answer(answer, says):
    status, message = exercises.evaluate("10.3", answer)
    assert status == "wrong" and says in message, message
    assert "256" not in message, message
