"""Teacher-forcing batches of similar lengths, for `model.fit` (lessons 03 and 04).

A batch of short sequences padded to the longest sequence of the whole data set costs
an RNN loop over that longest length. `LengthBucketedBatches` sorts the pairs by
length and trims each batch to its own longest sequence instead.
"""

import keras
import numpy as np

from course_lib.checks import check_int, check_positive_int, message
from course_lib.tokens import PAD


class LengthBucketedBatches(keras.utils.PyDataset):
    """Teacher-forcing batches of sequences of similar length, for `model.fit`.

    The pairs are sorted by source length (ties broken at random), cut into batches of
    `batch_size`, and each batch is trimmed to its own longest source and target: a
    batch of short sequences costs a short RNN loop instead of one over the longest
    sequence of the data set. The batch order is shuffled every epoch.

    Each item is `((source, target_in), target_out)` with `target_in = targets[:, :-1]`
    and `target_out = targets[:, 1:]`, as `course_lib.seq2seq.build_seq2seq` models
    expect.

    Keras infers the input signature from the first two batches, leaving free only the
    axes whose sizes differ: the first two batches are therefore always of different
    source lengths, and of different target lengths too wherever the data has another
    batch for that (sources and targets of independent lengths, as in translation), so
    that both length axes stay free.

    Args:
        sources: integer array `(num_samples, S)`, right-padded with 0.
        targets: integer array `(num_samples, T + 1)`, `[START, ..., END, PAD...]`.
        batch_size: sequences per batch.
        seed: seed of the tie-breaking and of the batch order. Defaults to `0`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Example:

    >>> sources = np.array([[3, 4, 0, 0], [5, 0, 0, 0], [3, 4, 5, 6], [6, 5, 0, 0]])
    >>> targets = np.array([[1, 4, 3, 2, 0, 0], [1, 5, 2, 0, 0, 0], [1, 6, 5, 4, 3, 2], [1, 5, 6, 2, 0, 0]])
    >>> batches = LengthBucketedBatches(sources, targets, batch_size=2)
    >>> len(batches)
    2
    >>> sorted(batches[i][0][0].shape for i in range(len(batches)))  # trimmed sources
    [(2, 2), (2, 4)]
    """

    def __init__(self, sources, targets, batch_size, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.sources, self.targets = np.asarray(sources), np.asarray(targets)
        if self.sources.ndim != 2 or self.targets.ndim != 2 or len(self.sources) != len(self.targets):
            raise ValueError(
                "`sources` and `targets` must be 2-D arrays with the same number of rows. "
                f"Received: sources with shape {self.sources.shape} and targets with shape {self.targets.shape}"
            )
        for name, array in (("sources", self.sources), ("targets", self.targets)):
            if not np.issubdtype(array.dtype, np.integer):
                raise TypeError(message(name, "an integer array of token ids", array))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_int(seed, "seed", minimum=0)
        self._rng = np.random.default_rng(self.seed)
        lengths = np.sum(self.sources != PAD, axis=1)
        order = np.lexsort((self._rng.random(len(lengths)), lengths))  # by length, ties at random
        self._batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self._order = np.arange(len(self._batches))
        self.on_epoch_end()

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        rows = self._batches[self._order[index]]
        sources, targets = self.sources[rows], self.targets[rows]
        source_length = max(1, int(np.sum(sources != PAD, axis=1).max()))
        target_length = max(2, int(np.sum(targets != PAD, axis=1).max()))
        sources, targets = sources[:, :source_length], targets[:, :target_length]
        return (sources, targets[:, :-1]), targets[:, 1:]

    def on_epoch_end(self):
        self._rng.shuffle(self._order)
        if len(self._order) > 1:
            widths = [(self[i][0][0].shape[1], self[i][0][1].shape[1]) for i in range(len(self._order))]
            # another source AND target length if there is one, else another source length
            first = next((i for i in range(1, len(widths)) if all(a != b for a, b in zip(widths[i], widths[0]))),
                         next((i for i in range(1, len(widths)) if widths[i][0] != widths[0][0]), None))
            if first is not None:  # put a batch of another length second
                self._order[[1, first]] = self._order[[first, 1]]
