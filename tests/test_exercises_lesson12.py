"""Lesson 12's exercises: 12.1 (attention pooling's weights in numpy) and 12.2 (how often
removing the most-attended word flips a prediction, re-measured by the checker). The
reference passes in any valid form, typical wrong answers get feedback that says what is
wrong, and the expected value is never shown. The generic tests in tests/test_exercises.py
cover 12.1's cases and declared mistakes too."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib import faithfulness as fa
from course_lib.attention_pooling import build_attention_pooling_classifier
from course_lib.exercises import lesson12

CORRECT = ("correct", "your answer passes the check.")


# 12.1 ---------------------------------------------------------------------------------


def test_12_1_reference_is_the_layer():
    from course_lib.attention_pooling import AttentionPooling

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[True] * 5, [True, True, False, False, False]])
    layer = AttentionPooling(query_initializer=keras.initializers.RandomNormal(seed=3))
    _, weights = layer(x, padding_mask=mask, return_attention_scores=True)
    q = keras.ops.convert_to_numpy(layer.query)
    np.testing.assert_allclose(lesson12._pooling_weights(x, q, mask), keras.ops.convert_to_numpy(weights), atol=1e-6)


def test_12_1_accepts_lists():
    assert exercises.evaluate("12.1", lambda x, q, m: lesson12._pooling_weights(x, q, m).tolist())[0] == "correct"


@pytest.mark.parametrize("wrong, says", [
    pytest.param(lesson12._unscaled, "sqrt(C)", id="unscaled"),
    pytest.param(lesson12._unmasked, "padded positions get weight", id="unmasked"),
    pytest.param(lambda x, q, m: np.where(m, np.exp(x @ q / np.sqrt(x.shape[-1])), 0), "sum", id="unnormalised"),
])
def test_12_1_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("12.1", wrong)
    assert status == "wrong" and says in message, message


# 12.2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A small attention-pooling model that has learned which words count (words 4-8 say 1, 9-13 say 0)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 30, size=(400, 8)).astype("int32")
    tokens[np.arange(400) % 3 == 0, 5:] = 0  # some padding
    labels = ((tokens >= 4) & (tokens < 9)).sum(1) > ((tokens >= 9) & (tokens < 14)).sum(1)
    model = build_attention_pooling_classifier(30, 2, width=8)
    model.compile(keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(tokens, labels.astype("int32"), epochs=5, batch_size=64, verbose=0)
    return model, tokens[:120]


def reference(model, tokens):
    return (lesson12.flips(model, tokens, fa.attention_weights(model, tokens)),
            lesson12.flips(model, tokens, fa.random_scores(tokens, seed=0)))


def test_12_2_reference_passes_as_counts_and_fractions(trained):
    model, tokens = trained
    a, r = reference(model, tokens)
    assert a != r  # the test below for swapped counts needs them to differ
    assert exercises.evaluate("12.2", (model, tokens, a, r)) == CORRECT
    assert exercises.evaluate("12.2", (model, tokens.tolist(), np.int64(a), r / len(tokens))) == CORRECT


def test_12_2_rejects_wrong_counts_without_showing_them(trained):
    model, tokens = trained
    a, r = reference(model, tokens)
    for answer, says in [((model, tokens, r, a), "swapped"),
                         ((model, tokens, a + 1, r), "attention count"),
                         ((model, tokens, a, r + 2), "random count"),
                         ((model, tokens[:10], a, r), "at least 50"),
                         (("model", tokens, a, r), "first item"),
                         ((model, tokens, a), "4 items")]:
        status, message = exercises.evaluate("12.2", answer)
        assert status == "wrong" and says in message, message
        assert str(a) not in message.replace("4 items", "") or a == 4
