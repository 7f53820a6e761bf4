"""course_lib.batching.LengthBucketedBatches: every pair once, batches trimmed to their
longest sequence, similar lengths together, a free length axis, and `fit` on them."""

import keras
import numpy as np
import pytest

from course_lib.batching import LengthBucketedBatches
from course_lib.datasets import make_reversal_task
from course_lib.seq2seq import build_seq2seq
from course_lib.tokens import PAD
from tests.helpers import error_case, raises_naming


def test_length_bucketed_batches_cover_every_pair_once_trimmed():
    sources, targets = make_reversal_task(50, 2, 12, seed=3)
    batches = LengthBucketedBatches(sources, targets, batch_size=8, seed=1)
    assert len(batches) == 7
    seen = []
    for index in range(len(batches)):
        (source, target_in), target_out = batches[index]
        lengths = (source != PAD).sum(1)
        assert source.shape[1] == lengths.max()  # trimmed to its longest source
        assert target_in.shape == target_out.shape == (len(source), lengths.max() + 1)
        np.testing.assert_array_equal(target_in[:, 1:], target_out[:, :-1])
        assert lengths.max() - lengths.min() <= 3  # similar lengths together
        seen += [tuple(row[row != PAD]) for row in source]
    assert sorted(seen) == sorted(tuple(row[row != PAD]) for row in sources)  # each pair once
    first_widths = (batches[0][0][0].shape[1], batches[1][0][0].shape[1])
    assert first_widths[0] != first_widths[1]  # Keras leaves the length axis free
    order = batches._order.copy()
    batches.on_epoch_end()
    assert (batches._order != order).any()


def test_the_same_seed_gives_the_same_batches():
    sources, targets = make_reversal_task(40, 2, 9, seed=5)
    first, again = (LengthBucketedBatches(sources, targets, batch_size=6, seed=2) for _ in range(2))
    for index in range(len(first)):
        np.testing.assert_array_equal(first[index][0][0], again[index][0][0])


def test_fit_on_length_bucketed_batches_of_several_widths():
    keras.utils.set_random_seed(0)
    sources, targets = make_reversal_task(48, 2, 9, vocab_size=9, seed=3)  # ids up to 11
    model = build_seq2seq(12, 13, embedding_dim=8, units=6, attention="additive")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(LengthBucketedBatches(sources, targets, batch_size=8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fit_when_source_and_target_lengths_are_independent():
    # translation-like data: targets of 1 to 6 tokens whatever the source length. The
    # second batch must differ from the first in both lengths, or Keras fixes the target
    # axis to the first batches' width and a later batch of another width fails.
    rng = np.random.default_rng(0)
    sources, targets = np.zeros((96, 8), "int32"), np.zeros((96, 8), "int32")
    for row in range(96):
        s, t = 1 + row % 8, int(rng.integers(1, 7))
        sources[row, :s] = rng.integers(3, 12, s)
        targets[row, : t + 2] = [1, *rng.integers(3, 12, t), 2]
    for seed in range(6):
        batches = LengthBucketedBatches(sources, targets, batch_size=8, seed=seed)
        (source_0, target_0), _ = batches[0]
        (source_1, target_1), _ = batches[1]
        assert source_0.shape[1] != source_1.shape[1] and target_0.shape[1] != target_1.shape[1], seed
    keras.utils.set_random_seed(0)
    model = build_seq2seq(12, 12, embedding_dim=8, units=6, attention="luong")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(LengthBucketedBatches(sources, targets, batch_size=8, seed=1), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


SOURCES = np.array([[3, 4, 0], [5, 0, 0]], dtype="int32")
TARGETS = np.array([[1, 4, 3, 2], [1, 5, 2, 0]], dtype="int32")


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("batch_size-0", lambda: LengthBucketedBatches(SOURCES, TARGETS, batch_size=0), ValueError, "batch_size"),
        error_case("batch_size-float", lambda: LengthBucketedBatches(SOURCES, TARGETS, batch_size=2.0), TypeError, "batch_size"),
        error_case("sources-1d", lambda: LengthBucketedBatches(SOURCES[0], TARGETS, batch_size=2), ValueError, "sources"),
        error_case("rows-differ", lambda: LengthBucketedBatches(SOURCES, TARGETS[:1], batch_size=2), ValueError, "targets"),
        error_case("float-targets", lambda: LengthBucketedBatches(SOURCES, TARGETS * 1.0, batch_size=2), TypeError, "targets"),
        error_case("seed-negative", lambda: LengthBucketedBatches(SOURCES, TARGETS, batch_size=2, seed=-1), ValueError, "seed"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
