"""Exercises of lesson 10, "Why attention beats recurrence, measured".

10.1  count the parameters of a self-attention layer (function), against the GRU's;
10.2  measure how the gradient of an LSTM decays with distance (experiment: the checker
      re-measures the learner's layer);
10.3  read the crossover length from your own timing measurement (experiment: the
      checker reads the learner's measurement).

Notation as in the lesson: `T` sequence length, `k` distance back from the last
position, `C` width (`d_model`, a recurrent layer's `units`).
"""

import numpy as np

from course_lib.exercises import (
    AnswerError,
    Case,
    Exercise,
    as_array,
    as_number,
    first_below,
    register,
)

# 10.1 ------------------------------------------------------------------------------


def _attention_params(width, num_heads, key_dim):
    # MultiHeadAttention(num_heads, key_dim) as self-attention on inputs of `width`
    # features (value_dim = key_dim): the query, key and value projections, each a kernel
    # (width, num_heads * key_dim) and a bias (num_heads * key_dim,), and the output
    # projection back to `width`, a kernel (num_heads * key_dim, width) and a bias (width,).
    inner = num_heads * key_dim
    return 3 * (width * inner + inner) + inner * width + width


def _attention_mistake(projections=3, biases=True, output=True):
    def count(width, num_heads, key_dim):
        inner = num_heads * key_dim
        total = projections * (width * inner + (inner if biases else 0))
        return total + ((inner * width + (width if biases else 0)) if output else 0)

    return count


register(
    Exercise(
        key="10.1",
        question=(
            "Write `my_attention_params(width, num_heads, key_dim)`: the number of weights of "
            "`course_lib.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim)` used "
            "as self-attention on inputs with `width` features (biases on, value_dim = key_dim). "
            "Then check that the lesson's one-head body of width 39 has about the parameters of "
            "the GRU body of width 32 (6,336)."
        ),
        cases=(
            Case("width=16, 2 heads, key_dim=4: the heads narrower than the model", _attention_params(16, 2, 4),
                 args=(16, 2, 4)),
            Case("width=6, 3 heads, key_dim=5: num_heads * key_dim wider than the input",
                 _attention_params(6, 3, 5), args=(6, 3, 5)),
            Case("width=39, 1 head, key_dim=39 (the lesson's attention body)", _attention_params(39, 1, 39),
                 args=(39, 1, 39)),
            Case("width=32, 4 heads, key_dim=8 (lesson 08's split)", _attention_params(32, 4, 8), args=(32, 4, 8)),
        ),
        solution=_attention_params,
        hint=(
            "Four dense projections: query, key and value map `width` features to "
            "`num_heads * key_dim`, the output projection maps them back to `width`; each has a "
            "kernel and a bias. `layer.count_params()` on a built layer tells you whether your "
            "formula is right."
        ),
        mistakes=(
            ("forgot the biases (one per output feature of each projection)", _attention_mistake(biases=False)),
            ("forgot the output projection back to `width` (kernel and bias)", _attention_mistake(output=False)),
            ("counted only the query and key projections: the values are projected too",
             _attention_mistake(projections=2)),
            ("the projections go to `num_heads * key_dim` features, not `key_dim`: every head has its own",
             lambda width, num_heads, key_dim: _attention_params(width, 1, key_dim)),
        ),
    )
)


# 10.2 ------------------------------------------------------------------------------


def gradient_by_distance(layer, inputs):
    """The norm of the Jacobian `d output[T-1] / d input[T-1-k]` for `k = 0 .. T-1`.

    `layer` (a layer, or any function) maps `(batch, T, C_in)` to `(batch, T, C_out)`; `inputs` is one sequence
    `(1, T, C_in)`. The sequence is copied once per output feature (a batch of `C_out`),
    copy `i` differentiates output feature `i` at the last position, so one backward
    pass gives every row of the Jacobian. Returns a numpy array `(T,)`, index `k`.
    """
    import tensorflow as tf

    inputs = np.asarray(inputs, dtype="float32")
    out_dim = int(layer(inputs).shape[-1])
    copies = tf.constant(np.repeat(inputs, out_dim, axis=0))  # (C_out, T, C_in)
    with tf.GradientTape() as tape:
        tape.watch(copies)
        last = layer(copies)[:, -1, :]  # (C_out, C_out): copy i, output feature j
        picked = tf.reduce_sum(last * tf.eye(out_dim))  # copy i keeps feature i
    rows = tape.gradient(picked, copies).numpy()  # (C_out, T, C_in): row i of the Jacobian in copy i
    norms = np.sqrt((rows.astype("float64") ** 2).sum(axis=(0, 2)))  # (T,) per input position
    return norms[::-1].copy()  # index k: the input k positions before the last


def lesson_input(length=128, width=32, seed=0):
    """The lesson's input for the gradient measurements: standard normal `(1, T, C)`."""
    return np.random.default_rng(seed).normal(size=(1, length, width)).astype("float32")


def _check_lstm_decay(answer):
    import keras

    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise AnswerError("give a tuple of 3 items: (layer, norms, k)")
    layer, norms, k = answer
    if not isinstance(layer, keras.layers.Layer):
        return "the first item should be your LSTM layer"
    if not isinstance(layer, keras.layers.LSTM):
        return "the question is about an LSTM: build `keras.layers.LSTM(32, return_sequences=True)`"
    if not layer.return_sequences:
        return "the layer should return every position: `return_sequences=True`"
    if not layer.built:
        return "measure your layer first: call `gradient_by_distance(lstm, x_grad)`"
    norms = as_array(norms, "the norms (the second item)")
    if norms.ndim != 1 or norms.size < 2:
        return "the norms should be one number per distance k = 0 .. T-1, as `gradient_by_distance` returns them"
    try:
        reference = gradient_by_distance(layer, lesson_input(norms.size, 32))
    except Exception:  # a layer built for other inputs
        return "your layer should read inputs of 32 features, as `x_grad` has"
    if not np.allclose(norms, reference, rtol=1e-3, atol=1e-6 * reference.max()):
        return ("your norms are not those of your layer on the lesson's input `x_grad` "
                "(`lesson_input()`); measure them with `gradient_by_distance(lstm, x_grad)`")
    first = first_below(np.arange(norms.size), reference / reference[0], 1e-3)
    if k is None:
        if first is not None:
            return "your curve does fall below 1/1000 of its value at k = 0 within the sequence"
        return None
    k = as_number(k, "k (the third item)")
    if first is None:
        return "your curve never falls below 1/1000 of its value at k = 0 in this sequence: answer None"
    if k != first:
        side = "after" if k < first else "before"
        return (f"that is not where your curve first falls below 1/1000 of its value at k = 0: "
                f"it falls below {side} your distance")
    return None


register(
    Exercise(
        key="10.2",
        question=(
            "Does an LSTM keep the gradient longer than the GRU? Build "
            "`keras.layers.LSTM(32, return_sequences=True)` after `keras.utils.set_random_seed(0)`, "
            "measure `gradient_by_distance(lstm, x_grad)` on the lesson's input, and answer "
            "`(lstm, norms, k)`: the layer, its norms, and the first distance k at which the norm "
            "is below 1/1000 of its value at k = 0 (None if it never is). The checker re-measures "
            "your layer."
        ),
        checker=_check_lstm_decay,
        solution=(
            "keras.utils.set_random_seed(0)\n"
            "lstm = keras.layers.LSTM(32, return_sequences=True)\n"
            "norms = gradient_by_distance(lstm, x_grad)\n"
            "k = first_below(np.arange(len(norms)), norms / norms[0], 1e-3)\n"
            "answer = (lstm, norms, k)\n"
            "\n"
            "The LSTM's forget gate starts open (Keras sets its bias to 1), so the gradient\n"
            "decays more slowly than the GRU's, but it still decays exponentially with k."
        ),
        hint=(
            "`first_below(distances, values, threshold)` (from course_lib.exercises) gives the first "
            "distance whose value is below the threshold; divide the norms by norms[0] first."
        ),
    )
)


# 10.3 ------------------------------------------------------------------------------


def _check_crossover(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 4:
        raise AnswerError("give a tuple of 4 items: (lengths, rnn_ms, attention_ms, crossover)")
    lengths, rnn, attention, crossover = answer
    lengths = as_array(lengths, "the lengths (the first item)")
    rnn = as_array(rnn, "the GRU times (the second item)")
    attention = as_array(attention, "the attention times (the third item)")
    if lengths.ndim != 1 or lengths.size < 3:
        return "measure at least 3 lengths, as one list"
    if rnn.shape != lengths.shape or attention.shape != lengths.shape:
        return "give one GRU time and one attention time per length"
    if not np.all(np.diff(lengths) > 0):
        return "list the lengths in increasing order, each once"
    if not (np.all(rnn > 0) and np.all(attention > 0)):
        return "every time should be positive: pass the measured times"
    slower = np.flatnonzero(attention > rnn)
    first = None if slower.size == 0 else float(lengths[slower[0]])
    if crossover is None:
        if first is not None:
            return "in your measurement attention is slower than the GRU at some length"
        return None
    crossover = as_number(crossover, "the crossover (the fourth item)")
    if first is None:
        return ("in your measurement attention is never slower than the GRU: measure longer sequences, "
                "or answer None")
    if crossover not in lengths:
        return "the crossover should be one of the lengths you measured"
    if crossover != first:
        return ("that is not the first length at which attention is slower in your measurement"
                + (": attention is still faster there" if attention[lengths == crossover][0] <= rnn[lengths == crossover][0]
                   else ": it is already slower at a shorter length"))
    return None


register(
    Exercise(
        key="10.3",
        question=(
            "Where is the crossover with a larger batch? Re-run `time_training_steps` with "
            "`batch_size=128` (or any batch size you choose) on the lesson's two models and lengths, "
            "and answer `(lengths, gru_ms, attention_ms, crossover)`: your lengths, the median times "
            "per training step, and the first measured length at which attention is slower than the "
            "GRU (None if it never is). The checker reads your measurement."
        ),
        checker=_check_crossover,
        solution=(
            "times = time_training_steps(timing_models, LENGTHS, batch_size=128)\n"
            "gru_ms, attention_ms = times['gru'], times['self_attention']\n"
            "slower = [t for t, g, a in zip(LENGTHS, gru_ms, attention_ms) if a > g]\n"
            "answer = (LENGTHS, gru_ms, attention_ms, slower[0] if slower else None)\n"
            "\n"
            "A larger batch gives attention more work per step (it grows with B * T^2) while the\n"
            "GRU's T sequential steps each get a wider matrix product for nearly the same overhead:\n"
            "the crossover moves to shorter sequences."
        ),
        hint=(
            "Compare the two lists length by length: the crossover is the first length where the "
            "attention time is the larger one."
        ),
    )
)
