"""Tests of course_lib.synthetic's offset task (lesson 07): the markers stand where the
label says, the classes are balanced, the same seed gives the same data, and neither the
bag of tokens nor the absolute position of either marker tells the classes apart: only
the distance between them does. (The sequence and order tasks are tested in
tests/test_datasets.py.)"""

import numpy as np
import pytest

from course_lib import datasets, synthetic
from course_lib.synthetic import FIRST_SYMBOL, MARKER_A, MARKER_B, make_offset_task


def marker_positions(x):
    return np.argmax(x == MARKER_A, axis=1), np.argmax(x == MARKER_B, axis=1)


def test_gathered_by_datasets():
    assert datasets.make_offset_task is synthetic.make_offset_task


@pytest.mark.parametrize("length, offset", [(4, 2), (12, 3), (16, 3), (32, 3), (11, 5), (40, 9)])
def test_one_of_each_marker_fillers_and_shapes(length, offset):
    x, y = make_offset_task(500, length, offset=offset, vocab_size=5, seed=3)
    assert x.shape == (500, length) and y.shape == (500,)
    assert x.dtype == np.int32 and y.dtype == np.int32
    assert np.all(np.sum(x == MARKER_A, axis=1) == 1)
    assert np.all(np.sum(x == MARKER_B, axis=1) == 1)
    fillers = x[(x != MARKER_A) & (x != MARKER_B)]
    assert fillers.min() >= FIRST_SYMBOL and fillers.max() <= FIRST_SYMBOL + 5 - 1


@pytest.mark.parametrize("length, offset", [(4, 2), (12, 3), (13, 3), (24, 3), (40, 9)])
def test_label_1_is_exactly_offset_label_0_a_near_miss(length, offset):
    x, y = make_offset_task(2000, length, offset=offset, seed=1)
    a, b = marker_positions(x)
    distance = b - a
    np.testing.assert_array_equal(y, (distance == offset).astype(np.int32))
    assert set(np.unique(distance[y == 0])) == {offset - 1, offset + 1}
    n = (length - offset) // 2 * 2
    assert set(np.unique(a)) == set(range(n))  # every start used, in both classes
    assert set(np.unique(b)) == set(range(offset, offset + n))
    for label in (0, 1):
        assert set(np.unique(a[y == label])) == set(range(n))


@pytest.mark.parametrize("num_samples", [1, 2, 7, 1000])
def test_labels_are_balanced(num_samples):
    _, y = make_offset_task(num_samples, 12, seed=0)
    assert set(np.unique(y)) <= {0, 1}
    assert int(y.sum()) == num_samples // 2


def test_same_seed_same_data_other_seed_other_data():
    first, again, other = (make_offset_task(50, 12, seed=s) for s in (0, 0, 1))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


def test_bag_of_tokens_cannot_tell_the_classes_apart():
    x, y = make_offset_task(20000, 12, vocab_size=6, seed=0)
    bags = np.stack([np.bincount(row, minlength=FIRST_SYMBOL + 6) for row in x])
    assert np.all(bags[:, MARKER_A] == 1) and np.all(bags[:, MARKER_B] == 1)
    difference = np.abs(bags[y == 1].mean(axis=0) - bags[y == 0].mean(axis=0))
    assert difference.max() < 0.05, difference  # sampling noise only


def best_lookup_accuracy(train_feature, train_y, test_feature, test_y):
    """Accuracy on the test set of the best classifier that sees one integer feature:
    the majority label of each feature value in the training set."""
    values = np.unique(np.concatenate([train_feature, test_feature]))
    majority = {v: float(train_y[train_feature == v].mean() > 0.5) if np.any(train_feature == v) else 0.0
                for v in values}
    predicted = np.array([majority[v] for v in test_feature])
    return float((predicted == test_y).mean())


@pytest.mark.parametrize("length", [12, 16, 24])
def test_where_a_marker_stands_alone_says_nothing(length):
    # Large samples, so that sampling noise is well below what a design that moved B
    # by offset - 1 or offset + 1 independently of A would show: a total variation of
    # 1 / n between the classes for B's position, a lookup accuracy of 0.5 + 1 / (2n).
    train_x, train_y = make_offset_task(100_000, length, seed=0)
    test_x, test_y = make_offset_task(100_000, length, seed=1)
    (train_a, train_b), (test_a, test_b) = marker_positions(train_x), marker_positions(test_x)
    # The position of A, or of B, has the same distribution in both classes ...
    for positions, y in ((train_a, train_y), (train_b, train_y)):
        counts = [np.bincount(positions[y == label], minlength=length) / np.sum(y == label) for label in (0, 1)]
        assert 0.5 * np.abs(counts[0] - counts[1]).sum() < 0.025  # total variation: sampling noise only
    # ... so the best classifier that reads one marker's absolute position is at chance,
    assert best_lookup_accuracy(train_a, train_y, test_a, test_y) < 0.51
    assert best_lookup_accuracy(train_b, train_y, test_b, test_y) < 0.51
    # ... and so is the best one that reads which marker comes first (A always does).
    assert np.all(test_a < test_b)
    # The distance between them decides every label.
    assert best_lookup_accuracy(train_b - train_a, train_y, test_b - test_a, test_y) == 1.0


@pytest.mark.parametrize(
    "call, error, words",
    [
        pytest.param(lambda: make_offset_task(4, 12, offset=1), ValueError, "offset", id="offset-1"),
        pytest.param(lambda: make_offset_task(4, 12, offset=3.0), TypeError, "offset", id="offset-float"),
        pytest.param(lambda: make_offset_task(4, 4, offset=3), ValueError, "offset + 2", id="too-short"),
        pytest.param(lambda: make_offset_task(0, 12), ValueError, "num_samples", id="num_samples-0"),
        pytest.param(lambda: make_offset_task(2.5, 12), TypeError, "num_samples", id="num_samples-float"),
        pytest.param(lambda: make_offset_task(4, 12, vocab_size=1), ValueError, "vocab_size", id="vocab_size-1"),
        pytest.param(lambda: make_offset_task(4, 12, seed=-1), ValueError, "seed", id="seed-negative"),
    ],
)
def test_bad_arguments_are_refused_with_their_name(call, error, words):
    with pytest.raises(error, match=words.replace("+", r"\+")):
        call()
