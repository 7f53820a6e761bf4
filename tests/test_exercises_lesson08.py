"""Lesson 08's experiment exercises: 08.5 (which heads of a trained model look one
position back, read from its own maps) and 08.6 (one head trained on the sum of the last
two inputs, re-measured by the checker). Each checker accepts the reference in any valid
form, rejects typical wrong answers with feedback that says what is wrong, and never
shows the expected answer. The models here have hand-set weights with a known job, so
that the tests are fast and exact; they have the architecture of the lesson's
`build_model`."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson08
from course_lib.layers import LearnedPositionalEmbedding, MultiHeadAttention

T, P = 10, 4  # the lesson's sequence length and input width


# 08.5: maps with known jobs -------------------------------------------------------------


def offset_map(length, offsets, weight=0.9):
    """A causal map (T, T) that puts `weight` on the keys `offsets` back (shared evenly),
    the rest spread over the allowed keys; the first rows take what they can."""
    w = np.zeros((length, length))
    for t in range(length):
        allowed = np.arange(t + 1)
        w[t, allowed] = (1 - weight) / len(allowed)
        targets = [t - o for o in offsets if t - o >= 0]
        w[t, targets] += weight / len(targets) if targets else 0
        w[t] /= w[t].sum()
    return w


def maps_of(jobs, batch=3):
    """Maps (B, h, T, T), one head per entry of `jobs` (a tuple of offsets)."""
    return np.broadcast_to(np.stack([offset_map(T, job) for job in jobs])[None], (batch, len(jobs), T, T)).copy()


# Heads 1 and 3 look one back; head 0 two back; head 2 shares between one and two back
# (0.45 + a little: under half).
FOUR_HEADS = maps_of([(2,), (1,), (1, 2), (1,)])
TRUTH = [1, 3]


def test_one_back_share_reads_the_diagonal_below_the_main_one():
    share = lesson08.one_back_share(FOUR_HEADS)
    assert share.shape == (4,)
    assert share[1] > 0.9 and share[3] > 0.9 and share[0] < 0.1 and 0.4 < share[2] < 0.5


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda w: (w, TRUTH), id="list"),
        pytest.param(lambda w: [w, (3, 1)], id="tuple-any-order"),
        pytest.param(lambda w: (w, {1, 3}), id="set"),
        pytest.param(lambda w: (w, np.array(TRUTH)), id="array"),
        pytest.param(lambda w: (keras.ops.convert_to_tensor(w), [np.int64(1), np.int64(3)]), id="tensor-numpy-ints"),
    ],
)
def test_08_5_accepts_the_heads_in_any_form(form):
    assert exercises.evaluate("08.5", form(FOUR_HEADS)) == ("correct", "your answer passes the check.")


def test_08_5_accepts_a_single_head_as_an_int():
    weights = maps_of([(2,), (1,)])
    assert exercises.evaluate("08.5", (weights, 1))[0] == "correct"


@pytest.mark.parametrize(
    "answer, says",
    [
        pytest.param((FOUR_HEADS, [0, 1, 3]), "head 0 puts less than half", id="two-back-head-added"),
        pytest.param((FOUR_HEADS, [1, 2, 3]), "head 2 puts less than half", id="shared-head-added"),
        pytest.param((FOUR_HEADS, [1]), "misses a head", id="one-missing"),
        pytest.param((FOUR_HEADS, []), "misses a head", id="empty"),
        pytest.param((FOUR_HEADS, [4]), "from 0 to 3", id="index-out-of-range"),
        pytest.param((FOUR_HEADS, [1.5]), "whole numbers", id="fractional-index"),
        pytest.param((FOUR_HEADS[0], TRUTH), "4 axes", id="maps-of-one-sequence"),
        pytest.param((FOUR_HEADS[:, :, :, :5], TRUTH), "as many key positions", id="not-square"),
        pytest.param((FOUR_HEADS * 2, TRUTH), "sum to 1", id="not-weights"),
        pytest.param((maps_of([(1,)]), [0]), "one head", id="one-head-model"),
        pytest.param((maps_of([(3,), (3,)]), [0]), "no head puts more than half", id="untrained"),
        pytest.param((FOUR_HEADS,), "tuple of 2 items", id="no-heads-given"),
    ],
)
def test_08_5_rejects_typical_mistakes_with_specific_feedback(answer, says):
    status, message = exercises.evaluate("08.5", answer)
    assert status == "wrong" and says in message, message


def test_08_5_feedback_never_names_the_missing_heads():
    for answer in ([], [1], [3], [0]):
        _, message = exercises.evaluate("08.5", (FOUR_HEADS, answer))
        missing = set(TRUTH) - set(answer)
        assert not any(f"head {i}" in message for i in missing), message


# 08.6: hand-set one-head models ---------------------------------------------------------


def hand_set_model(offsets, factor, num_heads=1):
    """The lesson's architecture (Dense embedding, learned positions, causal
    MultiHeadAttention, Dense readout) with d_model = P + T: content in the first P
    features, a one-hot position in the others. Head 0 attends evenly to the keys
    `offsets` back and the output is `factor` times what it fetched; it computes
    `factor * mean(x[t - o] for o in offsets)` from position 2 on (other heads: all zero)."""
    d_model = P + T
    inputs = keras.Input((T, P))
    x = keras.layers.Dense(d_model, name="embed")(inputs)
    x = LearnedPositionalEmbedding(T, name="positions")(x)
    attention = MultiHeadAttention(num_heads=num_heads, key_dim=d_model, name="attention")  # every head as wide
    x = attention(x, x, use_causal_mask=True)
    outputs = keras.layers.Dense(P, name="readout")(x)
    model = keras.Model(inputs, outputs)
    eye = np.eye(P, d_model, dtype="float32")  # (P, d_model): content goes to the first P features
    model.get_layer("embed").set_weights([eye, np.zeros(d_model, "float32")])
    model.get_layer("positions").set_weights([np.eye(T, d_model, k=P, dtype="float32")])
    d_k = d_model
    wq, wk = np.zeros((d_model, num_heads, d_k), "float32"), np.zeros((d_model, num_heads, d_k), "float32")
    wv, wo = np.zeros((d_model, num_heads, d_k), "float32"), np.zeros((num_heads, d_k, d_model), "float32")
    for t in range(T):
        for o in offsets:
            if t - o >= 0:
                wq[P + t, 0, t - o] = 50.0  # query of position t: the positions o back
        wk[P + t, 0, t] = 1.0  # key of position t: its position
    wv[np.arange(P), 0, np.arange(P)] = 1.0  # value: the content
    wo[0, np.arange(P), np.arange(P)] = factor
    zeros = [np.zeros((num_heads, d_k), "float32")] * 3
    attention.set_weights([wq, zeros[0], wk, zeros[1], wv, zeros[2], wo, np.zeros(d_model, "float32")])
    model.get_layer("readout").set_weights([eye.T.copy(), np.zeros(P, "float32")])
    return model


@pytest.fixture(scope="module")
def sum_model():
    return hand_set_model(offsets=(1, 2), factor=2.0)


def test_the_hand_set_model_computes_the_sum(sum_model):
    x = np.random.default_rng(0).normal(size=(5, T, P)).astype("float32")
    predicted = sum_model.predict(x, verbose=0)
    np.testing.assert_allclose(predicted[:, 2:], x[:, 1:-1] + x[:, :-2], atol=1e-4)
    assert lesson08.sum_task_r2(sum_model) > 0.999


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda m: (m, lesson08.sum_task_r2(m)), id="exact"),
        pytest.param(lambda m: [m, np.float32(round(lesson08.sum_task_r2(m), 2))], id="rounded-float32"),
        pytest.param(lambda m: (m, keras.ops.convert_to_tensor(lesson08.sum_task_r2(m, seed=3))), id="other-data-tensor"),
    ],
)
def test_08_6_accepts_an_honest_measurement(sum_model, form):
    assert exercises.evaluate("08.6", form(sum_model)) == ("correct", "your answer passes the check.")


def test_08_6_rejects_typical_mistakes_with_specific_feedback(sum_model):
    one_back = hand_set_model(offsets=(1,), factor=1.0)  # fetches x[t-1] only: half the variance
    two_heads = hand_set_model(offsets=(1, 2), factor=2.0, num_heads=2)
    cases = [
        ((one_back, lesson08.sum_task_r2(one_back)), "does not compute the sum"),
        ((sum_model, 0.5), "does not match your model"),
        ((sum_model, 1.5), "at most 1"),
        ((two_heads, 1.0), "about one head"),
        (("my model", 1.0), "trained Keras model"),
        ((sum_model, "high"), "should be a number"),
        ((sum_model,), "tuple of 2 items"),
    ]
    for answer, says in cases:
        status, message = exercises.evaluate("08.6", answer)
        assert status == "wrong" and says in message, (says, message)


def test_08_6_feedback_never_shows_a_measured_r2(sum_model):
    one_back = hand_set_model(offsets=(1,), factor=1.0)
    for answer in ((one_back, 0.5), (sum_model, 0.2)):
        _, message = exercises.evaluate("08.6", answer)
        r2 = lesson08.sum_task_r2(answer[0])
        for shown in {f"{r2:.1f}", f"{r2:.2f}", f"{r2:.3f}", str(round(r2, 2))}:
            assert shown not in message, message


def test_the_solutions_are_texts_that_use_the_lessons_names():
    assert "attention_maps(models[4, 0], x_test)" in exercises.get("08.5").solution
    text = exercises.get("08.6").solution
    assert "build_model(1, seed=0)" in text and "make_task(2000, seed=1, sign=+1)" in text and "r2_score" in text
