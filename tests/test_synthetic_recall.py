"""Tests of course_lib.synthetic's recall task (lesson 10): the target stands exactly
`distance` tokens before the end, everything else is a distractor, the label is the
target's class, the classes are balanced, and nothing but the target tells the label."""

import numpy as np
import pytest

from course_lib import datasets, synthetic
from course_lib.synthetic import FIRST_SYMBOL, make_recall_task
from tests.helpers import error_case, raises_naming


def test_gathered_by_datasets():
    assert datasets.make_recall_task is synthetic.make_recall_task


@pytest.mark.parametrize("length, distance", [(1, 0), (6, 0), (6, 2), (6, 5), (64, 32), (64, 63)])
def test_the_target_stands_distance_tokens_before_the_end(length, distance):
    vocab_size, num_distractors = 4, 7
    x, y = make_recall_task(300, length, distance, vocab_size, num_distractors, seed=3)
    assert x.shape == (300, length) and y.shape == (300,)
    assert x.dtype == np.int32 and y.dtype == np.int32
    is_target = x < FIRST_SYMBOL + vocab_size  # (N, T)
    assert np.all(is_target.sum(axis=1) == 1)  # exactly one target per sequence
    assert np.all(is_target[:, length - 1 - distance])  # ... with `distance` tokens after it
    assert np.array_equal(x[:, length - 1 - distance] - FIRST_SYMBOL, y)  # the label is its class
    distractors = x[~is_target]
    assert distractors.size == 300 * (length - 1)
    assert np.all((distractors >= FIRST_SYMBOL + vocab_size) & (distractors < FIRST_SYMBOL + vocab_size + num_distractors))
    assert x.min() >= FIRST_SYMBOL  # PAD and the markers never occur


def test_classes_are_balanced_and_every_distractor_occurs():
    x, y = make_recall_task(1003, 20, 5, vocab_size=10, num_distractors=6, seed=0)
    counts = np.bincount(y, minlength=10)
    assert counts.min() == 100 and counts.max() == 101 and counts.sum() == 1003
    assert set(np.unique(np.delete(x, 14, axis=1))) == set(range(FIRST_SYMBOL + 10, FIRST_SYMBOL + 16))


def test_the_distractors_say_nothing_about_the_label():
    # The distractors are drawn independently of the label: their frequencies are the
    # same in every class, up to sampling noise.
    x, y = make_recall_task(20000, 16, 4, vocab_size=4, num_distractors=5, seed=1)
    rest = np.delete(x, 11, axis=1)
    frequencies = np.stack([np.bincount(rest[y == c].ravel(), minlength=FIRST_SYMBOL + 9)[FIRST_SYMBOL + 4:]
                            / rest[y == c].size for c in range(4)])  # (class, distractor)
    assert np.abs(frequencies - 0.2).max() < 0.01


def test_same_seed_same_arrays_other_seed_other_arrays():
    first, again, other = (make_recall_task(50, 10, 3, seed=s) for s in (7, 7, 8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("make, exception, name", [
    error_case("distance-too-far", lambda: make_recall_task(4, 8, 8), ValueError, "distance"),
    error_case("distance-negative", lambda: make_recall_task(4, 8, -1), ValueError, "distance"),
    error_case("distance-float", lambda: make_recall_task(4, 8, 2.0), TypeError, "distance"),
    error_case("length-0", lambda: make_recall_task(4, 0, 0), ValueError, "length"),
    error_case("num_samples-0", lambda: make_recall_task(0, 8, 2), ValueError, "num_samples"),
    error_case("vocab_size-1", lambda: make_recall_task(4, 8, 2, vocab_size=1), ValueError, "vocab_size"),
    error_case("num_distractors-0", lambda: make_recall_task(4, 8, 2, num_distractors=0), ValueError,
               "num_distractors"),
    error_case("seed-negative", lambda: make_recall_task(4, 8, 2, seed=-1), ValueError, "seed"),
])
def test_bad_arguments_are_refused_with_their_name(make, exception, name):
    with raises_naming(exception, name):
        make()
