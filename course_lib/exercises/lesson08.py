"""Exercises of lesson 08, "Multi-head attention".

08.1  count the parameters of a multi-head attention layer (function);
08.2  split the features into heads (function);
08.3  merge the heads back (function);
08.4  give the shape of the attention scores for a cross-attention call (value).

The expected results follow `course_lib.layers.MultiHeadAttention`, whose weights
have the shapes of `keras.layers.MultiHeadAttention`.
"""

import numpy as np

from course_lib.exercises import Case, Exercise, register

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
    batch_size, length, dim = x.shape
    x = x.reshape(batch_size, length, num_heads, dim // num_heads)  # (B, T, N, h)
    return x.transpose(0, 2, 1, 3)  # (B, N, T, h)


def _split_straight(x, num_heads):
    batch_size, length, dim = x.shape
    return x.reshape(batch_size, num_heads, length, dim // num_heads)  # (B, N, T, h), positions mixed


def _split_strided(x, num_heads):
    batch_size, length, dim = x.shape
    x = x.reshape(batch_size, length, dim // num_heads, num_heads)  # (B, T, h, N): every N-th feature
    return x.transpose(0, 3, 1, 2)  # (B, N, T, h)


_X = np.arange(2 * 3 * 8, dtype=float).reshape(2, 3, 8)  # (B, T, D) = (2, 3, 8)

register(
    Exercise(
        key="08.2",
        question=(
            "Write `my_split_heads(x, num_heads)` (numpy): from `x` of shape "
            "`(batch_size, T, D)` return shape `(batch_size, num_heads, T, D // num_heads)`, "
            "where head `i` holds the features `i * h ... (i + 1) * h - 1` (h = D // num_heads) "
            "of every position."
        ),
        cases=(
            Case("x of shape (2, 3, 8) into 2 heads of 4", _split_heads(_X, 2), args=(_X, 2)),
            Case("x of shape (2, 3, 8) into 4 heads of 2", _split_heads(_X, 4), args=(_X, 4)),
            Case("one head: only a new axis", _split_heads(_X, 1), args=(_X, 1)),
            Case("8 heads of width 1", _split_heads(_X, 8), args=(_X, 8)),
        ),
        solution=_split_heads,
        hint=(
            "First reshape (B, T, D) -> (B, T, N, h): the features of each position are cut "
            "into N consecutive pieces. Then move the head axis before the positions with "
            "a transpose (0, 2, 1, 3). A reshape straight to (B, N, T, h) mixes positions."
        ),
        mistakes=(
            (
                "a reshape straight to (B, N, T, h) mixes positions: reshape to (B, T, N, h), "
                "then move the head axis before the positions",
                _split_straight,
            ),
            (
                "head i holds consecutive features, i*h to (i+1)*h - 1, not every N-th feature",
                _split_strided,
            ),
        ),
    )
)


# 08.3 ------------------------------------------------------------------------------


def _merge_heads(x):
    x = np.asarray(x)
    batch_size, num_heads, length, head_dim = x.shape
    x = x.transpose(0, 2, 1, 3)  # (B, N, T, h) -> (B, T, N, h)
    return x.reshape(batch_size, length, num_heads * head_dim)  # (B, T, N * h)


_HEADS = np.arange(2 * 4 * 3 * 2, dtype=float).reshape(2, 4, 3, 2)  # (B, N, T, h)

register(
    Exercise(
        key="08.3",
        question=(
            "Write `my_merge_heads(x)` (numpy), the inverse of 08.2: from `x` of shape "
            "`(batch_size, num_heads, T, h)` return `(batch_size, T, num_heads * h)`, the "
            "heads of each position side by side (head 0 first)."
        ),
        cases=(
            Case("4 heads of width 2, T=3", _merge_heads(_HEADS), args=(_HEADS,)),
            Case("undoes the split of (2, 3, 8) into 2 heads", _X, args=(_split_heads(_X, 2),)),
            Case("undoes the split of (2, 3, 8) into 8 heads", _X, args=(_split_heads(_X, 8),)),
        ),
        solution=_merge_heads,
        hint="Transpose back to (B, T, N, h) first, then reshape to (B, T, N * h).",
        mistakes=(
            (
                "a reshape without the transpose puts each head's positions one after another: "
                "transpose to (B, T, N, h) first",
                lambda x: x.reshape(x.shape[0], x.shape[2], -1),  # (B, T, N * h), mixed
            ),
            (
                "the heads of each position go side by side, head 0 first: transpose to "
                "(B, T, N, h), not (B, T, h, N)",
                lambda x: x.transpose(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1),  # (B, T, h * N)
            ),
        ),
    )
)


# 08.4 ------------------------------------------------------------------------------


def _scores_shape():
    # Scores: (batch_size, num_heads, T, S), T from the query, S from the value.
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
