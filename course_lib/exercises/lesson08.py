"""Exercises of lesson 08, "Multi-head attention".

08.1  count the parameters of a multi-head attention layer (function);
08.2  split the features into heads (function);
08.3  merge the heads back (function);
08.4  give the shape of the attention scores for a cross-attention call (value);
08.5  read the maps of a trained model: which heads look one position back (experiment);
08.6  train one head on the sum of the last two inputs and measure it (experiment).

Notation as in the lesson: `h` heads (`num_heads`), `d_k` per-head query/key width
(`key_dim`), `d_v` per-head value width (`value_dim`), `d_model` the input width. The
expected results follow `course_lib.layers.MultiHeadAttention`, whose weights have the
shapes of `keras.layers.MultiHeadAttention`.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, register

# 08.1 ------------------------------------------------------------------------------


def _param_count(dim, num_heads, key_dim, value_dim=None, output_dim=None, use_bias=True):
    value_dim = value_dim or key_dim
    output_dim = output_dim or dim
    query = dim * num_heads * key_dim + (num_heads * key_dim if use_bias else 0)
    key = dim * num_heads * key_dim + (num_heads * key_dim if use_bias else 0)
    value = dim * num_heads * value_dim + (num_heads * value_dim if use_bias else 0)
    output = num_heads * value_dim * output_dim + (output_dim if use_bias else 0)
    return query + key + value + output


def _count_mistake(value_dim_used=None, output_dim_used=None, bias=None, output_bias_per_head=False,
                   output_kernel_per_head=True, heads=True):
    """A wrong parameter count: value_dim or output_dim ignored, biases forgotten or
    always counted, the output bias counted per head, the heads left out."""

    def count(dim, num_heads, key_dim, value_dim=None, output_dim=None, use_bias=True):
        value_dim = (value_dim_used or (lambda k, v: v or k))(key_dim, value_dim)
        output_dim = (output_dim_used or (lambda d, o: o or d))(dim, output_dim)
        use_bias = use_bias if bias is None else bias
        n = num_heads if heads else 1
        total = 2 * (dim * n * key_dim + (n * key_dim if use_bias else 0))
        total += dim * n * value_dim + (n * value_dim if use_bias else 0)
        total += (n if output_kernel_per_head else 1) * value_dim * output_dim
        return total + ((n if output_bias_per_head else 1) * output_dim if use_bias else 0)

    return count


register(
    Exercise(
        key="08.1",
        question=(
            "Write `my_param_count(dim, num_heads, key_dim, value_dim=None, "
            "output_dim=None, use_bias=True)`: the number of weights of "
            "`MultiHeadAttention(num_heads, key_dim, value_dim, use_bias=use_bias, "
            "output_shape=output_dim)` called on a query, key and value that all have "
            "`dim` features. `value_dim=None` means `key_dim`; `output_dim=None` means `dim`."
        ),
        cases=(
            Case("dim=128, 8 heads of 16 (the Transformer-base shape, scaled down)",
                 _param_count(128, 8, 16), args=(128, 8, 16)),
            Case("dim=4, 1 head of 2, no bias",
                 _param_count(4, 1, 2, use_bias=False), args=(4, 1, 2), kwargs={"use_bias": False}),
            Case("value_dim=5 differs from key_dim=3", _param_count(6, 2, 3, value_dim=5),
                 args=(6, 2, 3), kwargs={"value_dim": 5}),
            Case("output_dim=10 differs from dim=6", _param_count(6, 2, 3, output_dim=10),
                 args=(6, 2, 3), kwargs={"output_dim": 10}),
            Case("no bias, value_dim and output_dim set",
                 _param_count(6, 4, 2, value_dim=3, output_dim=5, use_bias=False),
                 args=(6, 4, 2), kwargs={"value_dim": 3, "output_dim": 5, "use_bias": False}),
        ),
        solution=_param_count,
        hint=(
            "Four projections. Query and key kernels are (dim, num_heads, key_dim), the "
            "value kernel (dim, num_heads, value_dim), the output kernel (num_heads, "
            "value_dim, output_dim). Each bias has the kernel's shape without its first "
            "axis (the output bias: without its first two)."
        ),
        mistakes=(  # value_dim and output_dim first: forgetting them can give the count without biases
            (
                "the value projection and the output kernel use value_dim, not key_dim",
                _count_mistake(value_dim_used=lambda k, v: k),
            ),
            (
                "the output projection maps to output_dim features when output_dim is given",
                _count_mistake(output_dim_used=lambda d, o: d),
            ),
            ("forgot the biases: use_bias=True gives each projection one", _count_mistake(bias=False)),
            ("counted biases although use_bias=False", _count_mistake(bias=True)),
            (
                "the output bias has `output_dim` entries: the heads are summed before it is added",
                _count_mistake(output_bias_per_head=True),
            ),
            (
                "the output kernel reads every head: its shape is (num_heads, value_dim, output_dim)",
                _count_mistake(output_kernel_per_head=False),
            ),
            ("each projection has num_heads heads", _count_mistake(heads=False)),
        ),
    )
)


# 08.2 ------------------------------------------------------------------------------


def _split_heads(x, num_heads):
    x = np.asarray(x)
    batch_size, length, d_model = x.shape
    x = x.reshape(batch_size, length, num_heads, d_model // num_heads)  # (B, T, h, d_k)
    return x.transpose(0, 2, 1, 3)  # (B, h, T, d_k)


def _split_straight(x, num_heads):
    batch_size, length, d_model = x.shape
    return x.reshape(batch_size, num_heads, length, d_model // num_heads)  # (B, h, T, d_k), positions mixed


def _split_strided(x, num_heads):
    batch_size, length, d_model = x.shape
    x = x.reshape(batch_size, length, d_model // num_heads, num_heads)  # (B, T, d_k, h): every h-th feature
    return x.transpose(0, 3, 1, 2)  # (B, h, T, d_k)


_X = np.arange(2 * 3 * 8, dtype=float).reshape(2, 3, 8)  # (B, T, d_model) = (2, 3, 8)

register(
    Exercise(
        key="08.2",
        question=(
            "Write `my_split_heads(x, num_heads)` (numpy): from `x` of shape "
            "`(batch_size, T, d_model)` return shape `(batch_size, num_heads, T, d_k)` with "
            "`d_k = d_model // num_heads`, where head `i` holds the features "
            "`i * d_k ... (i + 1) * d_k - 1` of every position."
        ),
        cases=(
            Case("x of shape (2, 3, 8) into 2 heads of 4", _split_heads(_X, 2), args=(_X, 2)),
            Case("x of shape (2, 3, 8) into 4 heads of 2", _split_heads(_X, 4), args=(_X, 4)),
            Case("one head: only a new axis", _split_heads(_X, 1), args=(_X, 1)),
            Case("8 heads of width 1", _split_heads(_X, 8), args=(_X, 8)),
        ),
        solution=_split_heads,
        hint=(
            "First reshape (B, T, d_model) -> (B, T, h, d_k): the features of each position are "
            "cut into h consecutive pieces. Then move the head axis before the positions with "
            "a transpose (0, 2, 1, 3). A reshape straight to (B, h, T, d_k) mixes positions."
        ),
        mistakes=(
            (
                "a reshape straight to (B, h, T, d_k) mixes positions: reshape to (B, T, h, d_k), "
                "then move the head axis before the positions",
                _split_straight,
            ),
            (
                "head i holds consecutive features, i*d_k to (i+1)*d_k - 1, not every h-th feature",
                _split_strided,
            ),
        ),
    )
)


# 08.3 ------------------------------------------------------------------------------


def _merge_heads(x):
    x = np.asarray(x)
    batch_size, num_heads, length, d_v = x.shape
    x = x.transpose(0, 2, 1, 3)  # (B, h, T, d_v) -> (B, T, h, d_v)
    return x.reshape(batch_size, length, num_heads * d_v)  # (B, T, h * d_v)


_HEADS = np.arange(2 * 4 * 3 * 2, dtype=float).reshape(2, 4, 3, 2)  # (B, h, T, d_v)

register(
    Exercise(
        key="08.3",
        question=(
            "Write `my_merge_heads(x)` (numpy), the inverse of 08.2: from `x` of shape "
            "`(batch_size, num_heads, T, d_v)` return `(batch_size, T, num_heads * d_v)`, the "
            "heads of each position side by side (head 0 first)."
        ),
        cases=(
            Case("4 heads of width 2, T=3", _merge_heads(_HEADS), args=(_HEADS,)),
            Case("undoes the split of (2, 3, 8) into 2 heads", _X, args=(_split_heads(_X, 2),)),
            Case("undoes the split of (2, 3, 8) into 8 heads", _X, args=(_split_heads(_X, 8),)),
        ),
        solution=_merge_heads,
        hint="Transpose back to (B, T, h, d_v) first, then reshape to (B, T, h * d_v).",
        mistakes=(
            (
                "a reshape without the transpose puts each head's positions one after another: "
                "transpose to (B, T, h, d_v) first",
                lambda x: x.reshape(x.shape[0], x.shape[2], -1),  # (B, T, h * d_v), mixed
            ),
            (
                "the heads of each position go side by side, head 0 first: transpose to "
                "(B, T, h, d_v), not (B, T, d_v, h)",
                lambda x: x.transpose(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1),  # (B, T, d_v * h)
            ),
        ),
    )
)


# 08.4 ------------------------------------------------------------------------------


def _scores_shape():
    # Scores: (B, h, T, S), T from the query, S from the value.
    return (2, 4, 10, 7)


register(
    Exercise(
        key="08.4",
        question=(
            "`MultiHeadAttention(num_heads=4, key_dim=8)` is called on a query of shape "
            "(2, 10, 32) and a value of shape (2, 7, 16) with "
            "`return_attention_scores=True`. What is the shape of the scores? "
            "Answer with a tuple, without running the layer."
        ),
        cases=(Case("query (2, 10, 32), value (2, 7, 16), 4 heads of 8", _scores_shape()),),
        solution=_scores_shape,
        hint=(
            "One weight per head, per query and per key: (batch, heads, queries, keys). "
            "key_dim and the feature sizes play no part."
        ),
        answer_is_function=False,
        mistakes=(
            (
                "the last two axes are in the wrong order: one row per query, one column per key",
                (2, 4, 7, 10),
            ),
            ("the heads axis comes right after the batch axis", (2, 10, 4, 7)),
            ("the heads axis comes right after the batch axis", (2, 10, 7, 4)),
        ),
        diagnose=(
            lambda received, case: (
                "key_dim and the feature sizes play no part in the shape of the scores"
                if {8, 16, 32} & set(received.tolist()) else None
            ),
        ),
    )
)


# 08.5 ------------------------------------------------------------------------------


def one_back_share(weights, offset=1):
    """Per head, the mean weight that the queries `2 .. T-1` put on the key `offset`
    positions before them, over the whole batch: `weights` `(B, h, T, T)` -> `(h,)`."""
    weights = np.asarray(weights, dtype=float)
    queries = np.arange(2, weights.shape[-1])
    return weights[:, :, queries, queries - offset].mean(axis=(0, 2))


def _read_heads(heads, num_heads):
    if isinstance(heads, (int, np.integer)):
        heads = [heads]
    if isinstance(heads, (set, frozenset)):
        heads = sorted(heads)
    heads = as_array(list(heads) if not hasattr(heads, "shape") else heads, "the list of heads (the second item)")
    if heads.ndim != 1 or not np.array_equal(heads, np.round(heads)):
        raise AnswerError("the second item should be a list of head indices (whole numbers)")
    heads = {int(i) for i in heads}
    if any(i < 0 or i >= num_heads for i in heads):
        raise AnswerError(f"head indices run from 0 to {num_heads - 1} for these maps of {num_heads} heads")
    return heads


def _check_heads_one_back(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise AnswerError("give a tuple of 2 items: (weights, heads)")
    weights, heads = answer
    weights = as_array(weights, "the maps (the first item)")
    if weights.ndim != 4:
        return (f"the maps should have 4 axes (batch, heads, query position, key position), as "
                f"`return_attention_scores=True` returns them; these have shape {weights.shape}")
    if weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 3:
        return "the maps should be self-attention maps: as many key positions as query positions, at least 3"
    if not np.allclose(weights.sum(axis=-1), 1.0, atol=1e-3):
        return "these are not attention weights: every row of a map should sum to 1"
    if weights.shape[1] < 2:
        return "these maps have one head: pass the maps of the model with 4 heads"
    heads = _read_heads(heads, weights.shape[1])
    share = one_back_share(weights)
    truth = {int(i) for i in np.flatnonzero(share > 0.5)}
    if not truth:
        return ("in these maps no head puts more than half of its weight one position back: are they "
                "the maps of a trained model?")
    wrong = sorted(heads - truth)
    if wrong:
        return (f"head {wrong[0]} puts less than half of its weight one position back in these maps: "
                "look where the bright diagonal of its map lies")
    if truth - heads:
        return "your list misses a head that puts more than half of its weight one position back"
    return None


register(
    Exercise(
        key="08.5",
        question=(
            "Which heads of the trained 4-head model (seed 0) look one position back? Compute its maps "
            "on the test sequences with `attention_maps(models[4, 0], x_test)` (shape (B, 4, T, T)), draw "
            "them, and answer `(weights, heads)`: the maps and the list of the heads that put more than "
            "half of their weight on the key one position before the query (averaged over the test "
            "sequences and the query positions 2 .. T-1)."
        ),
        checker=_check_heads_one_back,
        solution=(
            "weights4 = attention_maps(models[4, 0], x_test)        # (B, 4, T, T)\n"
            "fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))\n"
            "for i, ax in enumerate(axes):\n"
            "    plot_attention(weights4[:, i].mean(axis=0), ax=ax, title=f\"head {i}\")\n"
            "plt.show()\n"
            "t = np.arange(2, T)\n"
            "share = weights4[:, :, t, t - 1].mean(axis=(0, 2))      # per head: weight one position back\n"
            "heads = [i for i in range(4) if share[i] > 0.5]\n"
            "answer = (weights4, heads)\n"
            "\n"
            "The other heads look two positions back, or share their weight: four heads of d_k = 4\n"
            "split the two jobs between them, and which head takes which job depends on the seed."
        ),
        hint=(
            "A head that looks one position back has its weight on the diagonal just below the main "
            "one: row t, column t - 1. `weights[:, :, t, t - 1]` with `t = np.arange(2, T)` picks "
            "those entries for every head; average them over the batch and the positions."
        ),
    )
)


# 08.6 ------------------------------------------------------------------------------


def _attention_layers(model):
    layers = getattr(model, "layers", None)
    if layers is None:
        raise AnswerError("the first item should be your trained Keras model")
    return [layer for layer in layers if hasattr(layer, "num_heads") and hasattr(layer, "key_dim")]


def sum_task_r2(model, num_samples=500, seed=808):
    """The share of the variance of `x[t-1] + x[t-2]` (positions 2 .. T-1) that `model`
    explains on fresh standard-normal sequences shaped like its input `(T, p)`."""
    _, length, width = model.input_shape
    x = np.random.default_rng(seed).normal(size=(num_samples, length, width)).astype("float32")
    target = x[:, 1:-1] + x[:, :-2]  # (B, T-2, p): positions 2 .. T-1
    predicted = np.asarray(model.predict(x, verbose=0))[:, 2:]
    return float(1 - np.mean((predicted - target) ** 2) / np.var(target))


def _check_one_head_sum(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise AnswerError("give a tuple of 2 items: (model, r2)")
    model, r2 = answer
    attention = _attention_layers(model)
    if not attention:
        return "the first item should be your trained model, with its MultiHeadAttention layer"
    if any(layer.num_heads != 1 for layer in attention):
        return "the question is about one head: build the model with `build_model(1, seed)`"
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 3 or shape[1] is None or shape[1] < 3:
        return "the model should read sequences of shape (T, p), as `build_model` makes it"
    r2 = as_number(r2, "r2 (the second item)")
    if r2 > 1:
        return "r2 is at most 1 (1 = every target explained): check your formula"
    measured = sum_task_r2(model)
    if measured < 0.9:
        return ("your model does not compute the sum: on fresh sequences it explains less than 0.9 of the "
                "variance of x[t-1] + x[t-2]; train it on the sum targets, `make_task(..., sign=+1)`")
    if abs(r2 - measured) > 0.05:
        return ("your r2 does not match your model: on fresh sequences of the sum task it explains a "
                "clearly different share of the variance; measure it with `r2_score` on the sum test targets")
    return None


register(
    Exercise(
        key="08.6",
        question=(
            "Is one head enough when the target is the sum `x[t-1] + x[t-2]` instead of the difference? "
            "Build a one-head model with `build_model(1, seed=0)`, train it with `train` on "
            "`make_task(2000, seed=1, sign=+1)`, measure `r2_score` on `make_task(1000, seed=2, sign=+1)`, "
            "and answer `(model, r2)`. The checker re-measures your model on fresh sequences."
        ),
        checker=_check_one_head_sum,
        solution=(
            "x_sum, y_sum = make_task(2000, seed=1, sign=+1)\n"
            "x_sum_test, y_sum_test = make_task(1000, seed=2, sign=+1)\n"
            "sum_model = build_model(1, seed=0)\n"
            "train(sum_model, x_sum, y_sum)\n"
            "sum_r2 = r2_score(sum_model, x_sum_test, y_sum_test)\n"
            "answer = (sum_model, sum_r2)\n"
            "\n"
            "One head is enough: the sum is 2 x (x[t-1] + x[t-2]) / 2, a weighted average with\n"
            "positive weights (1/2 and 1/2) times 2, which one head's softmax row and W^O can\n"
            "produce. The difference needs a negative weight, which no softmax row has; two\n"
            "heads give W^O two fetched vectors to subtract."
        ),
        hint=(
            "Only the targets change: `make_task` has a `sign` argument. After training, draw the "
            "one head's map (`attention_maps`): where does it put its weight, and how much?"
        ),
    )
)
