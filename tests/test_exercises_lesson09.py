"""Lesson 09's exercises: 09.1 (an encoder block's weights, checked against the block),
09.2 (the label-smoothed loss, checked against the trainer's loss) and 09.3 (the warm-up
experiment, read from the learner's curves). Each accepts the reference, rejects typical
wrong answers with feedback that says what is wrong, and never shows the expected
answer. tests/test_exercises.py covers 09.1's and 09.2's cases and declared mistakes too."""

import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises import lesson09
from course_lib.train import label_smoothed_cross_entropy
from course_lib.transformer import TransformerEncoderBlock


@pytest.mark.parametrize("width, num_heads, intermediate_dim", [(16, 4, 64), (128, 4, 512), (24, 3, 40), (8, 1, 8)])
def test_09_1_reference_counts_what_the_block_builds(width, num_heads, intermediate_dim):
    block = TransformerEncoderBlock(intermediate_dim=intermediate_dim, num_heads=num_heads)
    block(np.zeros((1, 3, width), "float32"))
    assert lesson09._encoder_params(width, num_heads, intermediate_dim) == block.count_params()


def test_09_2_reference_is_the_trainers_loss():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 7)).astype("float32")
    targets = np.array([[3, 5, 1, 0], [6, 2, 0, 0]])
    ours = lesson09._smoothed_loss(logits, targets, 0.1)  # (B, T)
    trainer = float(label_smoothed_cross_entropy(0.1)(targets, logits))  # averaged over all B * T
    assert ours.mean() == pytest.approx(trainer, rel=1e-5)
    assert np.all(ours[targets == 0] == 0)


def test_09_2_the_mistakes_differ_from_the_reference():
    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(2, 3, 5)), np.array([[1, 2, 0], [3, 4, 0]])
    reference = lesson09._smoothed_loss(logits, targets, 0.2)
    for mistake in exercises.get("09.2").mistakes:
        assert not np.allclose(mistake[1](logits, targets, 0.2), reference), mistake[0]


def _curves(finals, steps=30, seed=0):
    rng = np.random.default_rng(seed)
    return {name: np.linspace(3.0, final, steps) + 0.001 * rng.normal(size=steps)
            for name, final in zip(lesson09.VARIANTS, finals)}


def test_09_3_accepts_a_consistent_reading_in_any_form():
    curves = _curves([2.9, 2.2, 0.8, 0.9])
    lowest = ("pre-norm", "no warm-up")
    assert exercises.evaluate("09.3", (3e-3, curves, lowest))[0] == "correct"
    as_lists = {name: curve.tolist() for name, curve in curves.items()}
    assert exercises.evaluate("09.3", [np.float32(3e-3), as_lists, list(lowest)])[0] == "correct"


@pytest.mark.parametrize("answer, words", [
    ((1e-2, "curves", ("pre-norm", "warm-up")), "another peak"),
    ((3e-3, {"a": [1.0] * 30}, ("pre-norm", "warm-up")), "four keys"),
    ((3e-3, "curves", ("post-norm", "no warm-up")), "does not end lowest"),
    ((3e-3, "curves", "pre-norm"), "one of the four keys"),
    ((3e-3, "short", ("pre-norm", "no warm-up")), "every step"),
    ((3e-3, "nan", ("pre-norm", "no warm-up")), "NaN"),
    ((5.0, "curves", ("pre-norm", "no warm-up")), "between 1e-5 and 1"),
    ((3e-3, "curves"), "tuple of 3 items"),
])
def test_09_3_rejects_with_specific_feedback(answer, words):
    curves = _curves([2.9, 2.2, 0.8, 0.9])
    if answer[1:2] == ("short",):
        curves = {name: curve[:5] for name, curve in curves.items()}
    if answer[1:2] == ("nan",):
        curves[("post-norm", "warm-up")][-1] = np.nan
    if len(answer) > 1 and isinstance(answer[1], str):
        answer = (answer[0], curves, *answer[2:])
    status, message = exercises.evaluate("09.3", answer)
    assert status == "wrong" and words in message, message
    assert "0.8" not in message and "pre-norm', 'no warm-up" not in message  # never the right variant
