"""Greedy decoding and beam search for any model that gives the logits of the next token,
and exact match.

The decoding loop knows nothing of RNNs or Transformers. A model takes part through a
*step function*, in the convention of keras-hub's samplers:

    step(prefix, state, index) -> (logits, weights, state)

* `prefix`: an int32 numpy array `(batch_size, max_length + 1)` of fixed shape: START
  at position 0, the tokens generated so far at positions `1 .. index`, `pad_id` after.
* `state`: whatever the function carries from one step to the next (the RNN state of
  `course_lib.seq2seq`, a key/value cache), or `None`. Keep every tensor in it batch
  first, so that a beam search (not written yet) can reorder it along axis 0.
* `index`: a numpy int32 scalar, the position of the last token known (0 at the first
  step). The step returns the logits of the token at position `index + 1`,
  `(batch_size, vocab_size)`, optional per-step `weights` (attention weights
  `(batch_size, S)`, or `None`) and the new state.

The buffer keeps one shape for the whole run and `index` is a numpy scalar, not a
Python int, so a step compiled once with `tf.function` or `jax.jit` is traced once, not
once per generated token. A function that carries a state reads only `prefix[:, index]`
(the RNN decoder); one without reads the whole buffer under a causal mask and takes
its logits at `index` (a Transformer decoder).

`NextTokenFunction(step, batch_size, initial_state)` bundles a step function with what
the loop needs to start it. A module that builds models lets `greedy_decode` accept them
directly by registering a provider (`register_next_token_provider`):
`course_lib.seq2seq` does for its `build_seq2seq` models.

`beam_search` keeps the `beam_width` most likely prefixes of each sentence instead of
one: it drives the same step functions on the sources repeated `beam_width` times.
"""

import dataclasses
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

from course_lib.checks import check_int, check_number, check_positive_int, message
from course_lib.tokens import END, PAD, START


@dataclasses.dataclass(frozen=True)
class NextTokenFunction:
    """A step function `step(prefix, state, index) -> (logits, weights, state)` with
    the batch size and the state it starts from (see the module's docstring).

    Args:
        step: the step function.
        batch_size: the number of sequences it generates.
        initial_state: the state at the first step. Defaults to `None`.

    Example:

    >>> def step(prefix, state, index):  # always predicts token 2 (END)
    ...     return np.eye(4, dtype="float32")[[2, 2]], None, state
    >>> tokens, _ = greedy_decode(NextTokenFunction(step, batch_size=2), max_length=5)
    >>> tokens.tolist()
    [[2], [2]]
    """

    step: Callable
    batch_size: int
    initial_state: Any = None

    def __post_init__(self):
        if not callable(self.step):
            raise TypeError(message("step", "a function step(prefix, state, index)", self.step))
        object.__setattr__(self, "batch_size", check_positive_int(self.batch_size, "batch_size"))


_PROVIDERS = []


def register_next_token_provider(provider):
    """Let `greedy_decode` accept a kind of model.

    `provider(model, source_tokens)` returns the `NextTokenFunction` of `model` for the
    source tokens `(batch_size, S)` (an int numpy array), or `None` when `model` is not
    of its kind. The module that builds such models registers it when imported, so a
    model of that kind (even one loaded from a `.keras` file) always has its provider.
    Returns `provider`, so it can be used as a decorator.

    Example:

    >>> class Parrot:  # a "model" that always says the same token
    ...     def __init__(self, token):
    ...         self.token = token
    >>> @register_next_token_provider
    ... def _parrot_step(model, source_tokens):
    ...     if not isinstance(model, Parrot):
    ...         return None  # not ours: the next provider is asked
    ...     logits = np.eye(5, dtype="float32")[[model.token] * len(source_tokens)]
    ...     return NextTokenFunction(lambda prefix, state, index: (logits, None, state), len(source_tokens))
    >>> greedy_decode(Parrot(END), np.array([[3, 4]]), max_length=3)[0].tolist()
    [[2]]
    >>> _PROVIDERS.remove(_parrot_step)  # (only to leave this example without a trace)
    """
    if not callable(provider):
        raise TypeError(message("provider", "a function provider(model, source_tokens)", provider))
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def _check_source_tokens(source_tokens):
    array = np.asarray(source_tokens)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(message("source_tokens", "an integer array of shape (batch_size, S)", array))
    return array


def _next_token_function(model, source_tokens):
    """What `greedy_decode` drives, from any of the accepted kinds of `model`."""
    if isinstance(model, NextTokenFunction):
        if source_tokens is not None:
            raise ValueError(
                message("source_tokens", "None with a NextTokenFunction (it holds its sources)", source_tokens)
            )
        return model
    if source_tokens is None:
        raise ValueError(message("source_tokens", "an integer array of shape (batch_size, S)", None))
    source_tokens = _check_source_tokens(source_tokens)
    for provider in _PROVIDERS:
        function = provider(model, source_tokens)
        if function is not None:
            return function
    if not callable(model) or isinstance(model, keras.Layer):  # a Keras model is callable too
        raise TypeError(
            message(
                "model",
                "a NextTokenFunction, a model with a registered next-token provider (for "
                "example one from `course_lib.seq2seq.build_seq2seq`) or a function "
                "next_token_logits(source_tokens, prefix)",
                model,
            )
        )

    def step(prefix, state, index):
        result = model(source_tokens, prefix[:, : index + 1])  # the prefix so far: (batch, t)
        logits, weights = result if isinstance(result, tuple) else (result, None)
        return logits, weights, state

    return NextTokenFunction(step, len(source_tokens))


def _check_ids(max_length, start_id, end_id, pad_id):
    max_length = check_positive_int(max_length, "max_length")
    ids = (check_int(value, name, minimum=0) for value, name in ((start_id, "start_id"), (end_id, "end_id"), (pad_id, "pad_id")))
    return (max_length, *ids)


def _start_buffer(rows, max_length, start_id, pad_id):
    """The fixed-shape prefix buffer `(rows, max_length + 1)`: START, then `pad_id`."""
    prefix = np.full((rows, max_length + 1), pad_id, dtype="int32")
    prefix[:, 0] = start_id
    return prefix


def _call_step(function, prefix, state, index):
    """One call of the step function, its result checked: `(logits as numpy, weights, state)`."""
    result = function.step(prefix.copy(), state, np.int32(index))
    if not isinstance(result, tuple) or len(result) != 3:
        raise ValueError(message("step", "a function that returns (logits, weights, state)", result))
    logits, weights, state = result
    logits = ops.convert_to_numpy(logits)
    if logits.ndim != 2 or logits.shape[0] != function.batch_size:
        raise ValueError(
            f"The step must give logits of shape (batch_size, vocab_size), batch_size={function.batch_size}. "
            f"Received: logits with shape {logits.shape}"
        )
    return logits, weights, state


def greedy_decode(model, source_tokens=None, max_length=None, start_id=START, end_id=END, pad_id=PAD):
    """Generate sequences one token at a time, always taking the most likely token.

    Starting from `start_id`, the token with the largest logit is written after the
    prefix until every sequence has produced `end_id` or `max_length` tokens were
    generated. After its END a sequence is filled with `pad_id` (and the step function
    reads `pad_id` there).

    Args:
        model: what gives the next-token logits, one of:
            a `NextTokenFunction`, already bound to its sources (then leave
            `source_tokens` out), for example
            `course_lib.seq2seq.next_token_function(model, source_tokens)`;
            a model whose module registered a provider (`register_next_token_provider`),
            for example one from `course_lib.seq2seq.build_seq2seq`;
            or a function `next_token_logits(source_tokens, prefix)` of the sources and
            of the prefix generated so far `(batch_size, t)` (START first) that returns
            the logits `(batch_size, vocab_size)` or a pair `(logits, weights)`.
        source_tokens: integer array `(batch_size, S)`, padded with 0; needed unless
            `model` is a `NextTokenFunction`. Defaults to `None`.
        max_length: the most tokens to generate (END included).
        start_id: the START token id. Defaults to `1`.
        end_id: the END token id. Defaults to `2`.
        pad_id: the id written after END. Defaults to `0`.

    Returns:
        `(tokens, weights)`: `tokens` an int32 numpy array `(batch_size, L)`, with
        `L <= max_length` the number of steps run (START not included, END included
        when produced); `weights` a numpy array `(batch_size, L, ...)` of the step
        function's weights at each step (attention weights `(batch_size, L, S)`), or
        `None` when it gives none.

    Example:

    >>> def copy_source(source_tokens, prefix):  # predicts the source token at t, then END
    ...     t = prefix.shape[1] - 1
    ...     tokens = source_tokens[:, t] if t < source_tokens.shape[1] else [END] * len(prefix)
    ...     tokens = np.where(tokens == PAD, END, tokens)
    ...     return np.eye(10, dtype="float32")[tokens]
    >>> tokens, weights = greedy_decode(copy_source, np.array([[5, 6, 7], [8, 0, 0]]), max_length=6)
    >>> tokens.tolist()
    [[5, 6, 7, 2], [8, 2, 0, 0]]
    >>> weights is None
    True
    """
    function = _next_token_function(model, source_tokens)
    max_length, start_id, end_id, pad_id = _check_ids(max_length, start_id, end_id, pad_id)
    batch_size = function.batch_size
    prefix = _start_buffer(batch_size, max_length, start_id, pad_id)
    finished = np.zeros(batch_size, dtype=bool)
    state, steps_weights, length = function.initial_state, [], 0
    for index in range(max_length):
        logits, weights, state = _call_step(function, prefix, state, index)
        tokens = np.where(finished, pad_id, np.argmax(logits, axis=-1)).astype("int32")
        prefix[:, index + 1] = tokens
        length = index + 1
        if weights is not None:
            steps_weights.append(ops.convert_to_numpy(weights))
        finished |= tokens == end_id
        if finished.all():
            break
    weights = np.stack(steps_weights, axis=1) if steps_weights else None
    return prefix[:, 1 : length + 1].copy(), weights


def _log_softmax(logits):
    shifted = logits.astype("float64") - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _length_penalty(lengths, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016, eq. 14)."""
    return ((5.0 + lengths) / 6.0) ** alpha


def _reorder(state, rows):
    """Every tensor of `state` with its rows (axis 0) taken in the order `rows`."""

    def take(x):
        if x is None:
            return None
        return x[rows] if isinstance(x, np.ndarray) else ops.take(x, ops.convert_to_tensor(rows), axis=0)

    return None if state is None else keras.tree.map_structure(take, state)


def beam_search(
    model,
    source_tokens=None,
    max_length=None,
    beam_width=4,
    length_penalty=0.6,
    start_id=START,
    end_id=END,
    pad_id=PAD,
):
    """Generate sequences keeping the `beam_width` most likely prefixes of each sentence.

    At every step each of a sentence's `beam_width` prefixes (its *beams*) is extended
    by every token of the vocabulary; of these `beam_width * vocab_size` candidates the
    `beam_width` best go on, ranked by their log-probability (the sum of the log-softmax
    of their tokens) divided by GNMT's length penalty `((5 + length) / 6) ** length_penalty`
    (0: no penalty, raw log-probabilities, which favour short sequences). A beam that
    has produced `end_id` keeps its score and is extended by `pad_id` only. The search
    stops when every beam has ended or after `max_length` steps; each sentence's best
    beam by the same ranking is returned. The step function's state is reordered along
    axis 0 after each step (every tensor in it must be batch first). With
    `beam_width=1` and any `length_penalty`, the tokens are those of `greedy_decode`
    (but for exact ties between logits, which either may break its own way).

    Args:
        model: what gives the next-token logits, as for `greedy_decode`: a model whose
            module registered a provider, or a function `next_token_logits(source_tokens,
            prefix)` (both with `source_tokens`, which are repeated `beam_width` times
            here); or a `NextTokenFunction` already bound to the sources repeated
            `beam_width` times, `np.repeat(source_tokens, beam_width, axis=0)` (then leave
            `source_tokens` out).
        source_tokens: integer array `(batch_size, S)`, padded with 0. Defaults to `None`.
        max_length: the most tokens to generate (END included).
        beam_width: the beams kept per sentence. Defaults to `4`.
        length_penalty: the exponent `alpha` of the length penalty, at least 0.
            Defaults to `0.6`.
        start_id: the START token id. Defaults to `1`.
        end_id: the END token id. Defaults to `2`.
        pad_id: the id written after END. Defaults to `0`.

    Returns:
        `(tokens, log_probabilities)`: `tokens` an int32 numpy array `(batch_size, L)`
        laid out as `greedy_decode`'s (END included when produced, `pad_id` after it),
        `log_probabilities` a float64 numpy array `(batch_size,)`, the log-probability of
        each returned sequence under the model (without the length penalty).

    Example: greedy takes "a" (0.5) and then has only poor continuations; the beam keeps
    "b" (0.4), which is followed by END with probability 0.9.

    >>> def model(source_tokens, prefix):  # tokens: 0 PAD, 1 START, 2 END, 3 "a", 4 "b"
    ...     table = {(1,): [0, 0, 0.1, 0.5, 0.4], (1, 3): [0, 0, 0.3, 0.35, 0.35],
    ...              (1, 4): [0, 0, 0.9, 0.05, 0.05]}
    ...     probabilities = [table.get(tuple(row), [0, 0, 1, 0, 0]) for row in prefix.tolist()]
    ...     return np.log(np.array(probabilities) + 1e-12)
    >>> source = np.array([[3]])
    >>> greedy_decode(model, source, max_length=3)[0].tolist()
    [[3, 3, 2]]
    >>> tokens, log_probabilities = beam_search(model, source, max_length=3, beam_width=2, length_penalty=0)
    >>> tokens.tolist(), np.round(np.exp(log_probabilities), 2).tolist()  # PAD after END: the other beam ran 3 steps
    ([[4, 2, 0]], [0.36])
    """
    beam_width = check_positive_int(beam_width, "beam_width")
    length_penalty = check_number(length_penalty, "length_penalty", minimum=0)
    if isinstance(model, NextTokenFunction) or source_tokens is None:
        function = _next_token_function(model, source_tokens)
        if function.batch_size % beam_width:
            raise ValueError(
                message(
                    "model",
                    f"a NextTokenFunction for the sources repeated beam_width={beam_width} times "
                    "(np.repeat(source_tokens, beam_width, axis=0))",
                    f"batch_size={function.batch_size}",
                )
            )
    else:
        function = _next_token_function(model, np.repeat(_check_source_tokens(source_tokens), beam_width, axis=0))
    max_length, start_id, end_id, pad_id = _check_ids(max_length, start_id, end_id, pad_id)
    batch, k = function.batch_size // beam_width, beam_width
    prefix = _start_buffer(batch * k, max_length, start_id, pad_id)  # row b * k + j: beam j of sentence b
    scores = np.full((batch, k), -np.inf)
    scores[:, 0] = 0.0  # the k beams start identical: only the first one is extended at the first step
    lengths = np.zeros((batch, k))
    finished = np.zeros((batch, k), dtype=bool)
    first_row = (np.arange(batch) * k)[:, None]
    state, steps = function.initial_state, 0
    for index in range(max_length):
        logits, _, state = _call_step(function, prefix, state, index)
        log_probs = _log_softmax(logits).reshape(batch, k, -1)  # (B, k, V)
        vocab = log_probs.shape[-1]
        log_probs[finished] = -np.inf  # an ended beam goes on with PAD only, at no cost
        log_probs[finished, pad_id] = 0.0
        candidates = (scores[..., None] + log_probs).reshape(batch, -1)  # (B, k * V)
        candidate_lengths = np.repeat(np.where(finished, lengths, index + 1), vocab, axis=1)
        ranking = candidates / _length_penalty(candidate_lengths, length_penalty)
        best = np.argpartition(-ranking, k - 1, axis=1)[:, :k]  # the k best candidates, in any order
        order = np.argsort(-np.take_along_axis(ranking, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)  # best first
        beam, tokens = best // vocab, (best % vocab).astype("int32")
        scores = np.take_along_axis(candidates, best, axis=1)
        lengths = np.take_along_axis(candidate_lengths, best, axis=1)
        finished = np.take_along_axis(finished, beam, axis=1) | (tokens == end_id)
        rows = (first_row + beam).reshape(-1)
        prefix = prefix[rows]
        prefix[:, index + 1] = tokens.reshape(-1)
        state = _reorder(state, rows)
        steps = index + 1
        if finished[np.isfinite(scores)].all():
            break
    choice = np.argmax(scores / _length_penalty(lengths, length_penalty), axis=1)
    chosen = first_row[:, 0] + choice
    return prefix[chosen, 1 : steps + 1].copy(), scores[np.arange(batch), choice]


def exact_match(predicted, expected, end_id=END, pad_id=PAD):
    """Per-sequence exact match: `True` where `predicted` equals `expected` up to END.

    Each sequence is cut after its first `end_id` (or at its first `pad_id`), then the
    two token lists must be identical: same tokens, same length. `mean()` of the
    result is the exact-match accuracy.

    Args:
        predicted: integer array `(batch_size, L1)`, e.g. from `greedy_decode`.
        expected: integer array `(batch_size, L2)`, e.g. the targets without START.
        end_id: the END token id. Defaults to `2`.
        pad_id: the padding id. Defaults to `0`.

    Returns:
        A boolean numpy array of shape `(batch_size,)`.

    Example:

    >>> expected = np.array([[5, 4, END, PAD], [6, 7, END, PAD]])
    >>> exact_match(np.array([[5, 4, END, 9], [6, 7, 7, END]]), expected).tolist()
    [True, False]
    """
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    for name, array in (("predicted", predicted), ("expected", expected)):
        if array.ndim != 2:
            raise ValueError(message(name, "of shape (batch_size, length)", array))
    if predicted.shape[0] != expected.shape[0]:
        raise ValueError(
            "`predicted` and `expected` must hold the same number of sequences. Received: "
            f"predicted with shape {predicted.shape} and expected with shape {expected.shape}"
        )
    return np.array(
        [_cut(p, end_id, pad_id) == _cut(e, end_id, pad_id) for p, e in zip(predicted, expected)], dtype=bool
    )


def _cut(tokens, end_id, pad_id):
    out = []
    for token in tokens.tolist():
        if token == pad_id:
            break
        out.append(token)
        if token == end_id:
            break
    return out
