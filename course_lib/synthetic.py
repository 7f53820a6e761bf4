"""Synthetic tasks, generated from a seed (lessons 03, 07 and 10).

* `make_sequence_task` / `make_reversal_task`: map a sequence of symbols to its
  reversal (or copy, or sorted copy), for encoder-decoder models.
* `make_order_task`: does marker A come before marker B? A task that needs positions.
* `make_offset_task`: does marker B stand exactly `offset` positions after marker A?
  A task that needs relative positions: where each marker stands, alone, says nothing.

`course_lib.datasets` gathers these with the real data sets; import them from there.
"""

import numpy as np

from course_lib.checks import check_choice, check_int
from course_lib.tokens import END, PAD, START

# The sequence tasks use the reserved ids of `course_lib.tokens` (PAD, START, END) and
# symbols from FIRST_SYMBOL on. The order task is a classification task with ids of its
# own, unrelated to START and END (no decoder reads it): 0 unused, its two markers, and
# filler symbols from FIRST_SYMBOL on, as in the sequence tasks.
MARKER_A = 1  # the order task's first marker ("A")
MARKER_B = 2  # the order task's second marker ("B")
FIRST_SYMBOL = 3  # the first symbol id of both synthetic tasks

SEQUENCE_TASKS = ("reverse", "copy", "sort")


def make_sequence_task(kind, num_samples, min_length, max_length, vocab_size=10, seed=0):
    """A synthetic sequence-to-sequence task: reverse, copy or sort a sequence.

    Each source is a sequence of symbols drawn uniformly from `3 .. vocab_size + 2`
    (0, 1 and 2 are `PAD`, `START` and `END`), of a length drawn uniformly from
    `min_length .. max_length`, right-padded with `PAD`. Its target is
    `[START, f(source)..., END, PAD...]` where `f` reverses, copies or sorts the
    symbols.

    Args:
        kind: `"reverse"`, `"copy"` or `"sort"`.
        num_samples: number of pairs, >= 1.
        min_length: shortest source length, >= 1.
        max_length: longest source length, >= `min_length`.
        vocab_size: number of distinct symbols, >= 2. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(sources, targets)`: int32 arrays of shapes `(num_samples, max_length)` and
        `(num_samples, max_length + 2)`.

    Example:

    >>> sources, targets = make_sequence_task("sort", 2, min_length=3, max_length=3, seed=1)
    >>> sources.shape, targets.shape
    ((2, 3), (2, 5))
    >>> bool((targets[:, 1:4] == np.sort(sources, axis=1)).all()), targets[:, [0, 4]].tolist()
    (True, [[1, 2], [1, 2]])
    """
    kind = check_choice(kind, "kind", SEQUENCE_TASKS)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    min_length = check_int(min_length, "min_length", minimum=1)
    max_length = check_int(max_length, "max_length", minimum=1)
    if min_length > max_length:
        raise ValueError(
            "`min_length` must be <= `max_length`. "
            f"Received: min_length={min_length}, max_length={max_length}"
        )
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    seed = check_int(seed, "seed", minimum=0)

    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=num_samples)
    symbols = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + vocab_size, size=(num_samples, max_length))
    sources = np.full((num_samples, max_length), PAD, np.int32)
    targets = np.full((num_samples, max_length + 2), PAD, np.int32)
    targets[:, 0] = START
    for i, length in enumerate(lengths):
        sequence = symbols[i, :length]
        sources[i, :length] = sequence
        if kind == "reverse":
            sequence = sequence[::-1]
        elif kind == "sort":
            sequence = np.sort(sequence)
        targets[i, 1 : length + 1] = sequence
        targets[i, length + 1] = END
    return sources, targets


def make_reversal_task(num_samples, min_length, max_length, vocab_size=10, seed=0):
    """Sequence reversal: `make_sequence_task("reverse", ...)` (lesson 03).

    Sources: int32 `(num_samples, max_length)`, symbols in `3 .. vocab_size + 2`,
    lengths uniform in `min_length .. max_length`, right-padded with `PAD` (0).
    Targets: int32 `(num_samples, max_length + 2)`,
    `[START, reversed source..., END, PAD...]` with `START = 1`, `END = 2`.
    See `make_sequence_task` for the arguments.
    """
    return make_sequence_task("reverse", num_samples, min_length, max_length, vocab_size, seed)


def make_order_task(num_samples, length, vocab_size=10, seed=0):
    """Does marker A come before marker B? A task that needs positions (lesson 07).

    Each sequence holds `length - 2` filler symbols drawn uniformly from
    `3 .. vocab_size + 2`, one `MARKER_A` (1) and one `MARKER_B` (2) at two distinct
    random positions. The label is 1 if A comes first, else 0. Exactly half the
    sequences (`num_samples // 2`) are labelled 1, in random order. Both classes hold
    the same tokens in the same proportions, so a model that sees only which tokens
    occur (a bag of tokens) scores 50%: only the order tells the classes apart.

    Args:
        num_samples: number of sequences, >= 1.
        length: sequence length, >= 2.
        vocab_size: number of distinct filler symbols, >= 2. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(x, y)`: int32 arrays of shapes `(num_samples, length)` and `(num_samples,)`.

    Example:

    >>> x, y = make_order_task(4, length=5, seed=0)
    >>> [(row.tolist().index(MARKER_A) < row.tolist().index(MARKER_B)) == bool(label) for row, label in zip(x, y)]
    [True, True, True, True]
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    length = check_int(length, "length", minimum=2)
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    seed = check_int(seed, "seed", minimum=0)

    rng = np.random.default_rng(seed)
    x = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + vocab_size, size=(num_samples, length))
    x = x.astype(np.int32)
    y = rng.permutation(np.arange(num_samples) % 2).astype(np.int32)
    # Two distinct positions per row, first < second.
    positions = np.sort(rng.random((num_samples, length)).argsort(axis=1)[:, :2], axis=1)
    rows = np.arange(num_samples)
    x[rows, positions[:, 0]] = np.where(y == 1, MARKER_A, MARKER_B)
    x[rows, positions[:, 1]] = np.where(y == 1, MARKER_B, MARKER_A)
    return x, y


def make_offset_task(num_samples, length, offset=3, vocab_size=10, seed=0):
    """Does marker B stand exactly `offset` positions after marker A? (lesson 07)

    Each sequence holds `length - 2` filler symbols drawn uniformly from
    `3 .. vocab_size + 2`, one `MARKER_A` (1) and one `MARKER_B` (2). In label-1
    sequences B stands exactly `offset` positions after A; in label-0 sequences it
    is a near miss, `offset - 1` or `offset + 1` positions after A. Exactly half the
    sequences (`num_samples // 2`) are labelled 1, in random order.

    Only the distance from A to B tells the classes apart:

    * the bag of tokens is the same in both classes (one A, one B, uniform fillers);
    * A's position is uniform over `0 .. n - 1` in both classes, and B's over
      `offset .. offset + n - 1` in both classes, where `n` is `length - offset`
      rounded down to an even number. So where A stands, alone, or where B stands,
      alone, says nothing about the label. (To keep B's distribution the same in both
      classes, a near miss is `offset + 1` when A's position is even and `offset - 1`
      when it is odd.)

    Args:
        num_samples: number of sequences, >= 1.
        length: sequence length, >= `offset + 2`.
        offset: the distance from A to B in label-1 sequences, >= 2. Defaults to `3`.
        vocab_size: number of distinct filler symbols, >= 2. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(x, y)`: int32 arrays of shapes `(num_samples, length)` and `(num_samples,)`.

    Example:

    >>> x, y = make_offset_task(6, length=10, offset=3, seed=0)
    >>> distance = np.argmax(x == MARKER_B, axis=1) - np.argmax(x == MARKER_A, axis=1)
    >>> [(int(d), int(label)) for d, label in zip(distance, y)]
    [(3, 1), (2, 0), (3, 1), (3, 1), (2, 0), (4, 0)]
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    offset = check_int(offset, "offset", minimum=2)
    length = check_int(length, "length", minimum=2)
    if length < offset + 2:
        raise ValueError(
            "`length` must be at least `offset + 2` (room for A, B and a near miss). "
            f"Received: length={length}, offset={offset}"
        )
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    seed = check_int(seed, "seed", minimum=0)

    rng = np.random.default_rng(seed)
    x = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + vocab_size, size=(num_samples, length))
    x = x.astype(np.int32)
    y = rng.permutation(np.arange(num_samples) % 2).astype(np.int32)
    n = (length - offset) // 2 * 2  # A's positions: 0 .. n - 1, as many even as odd
    a = rng.integers(0, n, size=num_samples)
    near_miss = np.where(a % 2 == 0, offset + 1, offset - 1)  # B stays uniform on offset .. offset + n - 1
    b = a + np.where(y == 1, offset, near_miss)
    rows = np.arange(num_samples)
    x[rows, a] = MARKER_A
    x[rows, b] = MARKER_B
    return x, y


def make_recall_task(num_samples, length, distance, vocab_size=10, num_distractors=10, seed=0):
    """Recall the symbol seen `distance` steps before the end, among distractors (lesson 10).

    Each sequence holds `length` tokens: one target symbol at position
    `length - 1 - distance` (so `distance` tokens follow it; `distance=0` puts it
    last), drawn from `vocab_size` symbols with ids `FIRST_SYMBOL .. FIRST_SYMBOL +
    vocab_size - 1`, and a distractor at every other position, drawn uniformly from
    `num_distractors` other symbols, the ids after those (up to `FIRST_SYMBOL +
    vocab_size + num_distractors - 1`). The label is the target's class, `target -
    FIRST_SYMBOL`, in `0 .. vocab_size - 1`; every class occurs `num_samples //
    vocab_size` or one more times, in random order, so chance is `1 / vocab_size`.

    A model that reads its answer at the last position must carry the target across
    `distance` steps: a recurrent layer through `distance` updates of its state,
    self-attention in one step, whatever the distance. Ids 0, 1, 2 (`PAD`, `MARKER_A`,
    `MARKER_B`) do not occur; an embedding needs `FIRST_SYMBOL + vocab_size +
    num_distractors` rows.

    Args:
        num_samples: number of sequences, >= 1.
        length: sequence length, >= `distance + 1`.
        distance: how many tokens follow the target, >= 0.
        vocab_size: number of target symbols (classes), >= 2. Defaults to `10`.
        num_distractors: number of distractor symbols, >= 1. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(x, y)`: int32 arrays of shapes `(num_samples, length)` and `(num_samples,)`.

    Example:

    >>> x, y = make_recall_task(3, length=6, distance=2, vocab_size=4, num_distractors=5, seed=0)
    >>> x[:, 3].tolist() == (y + FIRST_SYMBOL).tolist()  # the target, 2 tokens before the end
    True
    >>> bool((np.delete(x, 3, axis=1) >= FIRST_SYMBOL + 4).all())  # everything else: distractors
    True
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    length = check_int(length, "length", minimum=1)
    distance = check_int(distance, "distance", minimum=0)
    if distance > length - 1:
        raise ValueError(
            "`distance` must be at most `length - 1` (the target must fit in the sequence). "
            f"Received: distance={distance}, length={length}"
        )
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    num_distractors = check_int(num_distractors, "num_distractors", minimum=1)
    seed = check_int(seed, "seed", minimum=0)

    rng = np.random.default_rng(seed)
    first_distractor = FIRST_SYMBOL + vocab_size
    x = rng.integers(first_distractor, first_distractor + num_distractors, size=(num_samples, length))
    x = x.astype(np.int32)
    y = rng.permutation(np.arange(num_samples) % vocab_size).astype(np.int32)
    x[:, length - 1 - distance] = FIRST_SYMBOL + y
    return x, y
