"""Attention as three steps: scoring, weighting, aggregation.

Three pieces live here:

* numpy functions for lesson 01 (`softmax`, `three_step_attention`), small enough to
  read next to the maths and to step through in a debugger;
* `scaled_dot_product_attention`, written with `keras.ops`, which every later layer of
  the course calls (it runs on any Keras backend and is differentiable);
* `ScaledDotProductAttention`, the same computation as a Keras layer with Keras's
  masking rules (lesson 05).

Shapes follow Keras: `T` is the number of queries (target length), `S` the number of
keys and values (source length), `d` the query/key width and `dv` the value width.
"""

import math

import keras
import numpy as np

from course_lib import masks as _masks


def _as_float_array(x, name):
    """`x` as a floating numpy array, or a `TypeError` naming the argument."""
    try:
        array = np.asarray(x, dtype=float) if not isinstance(x, np.ndarray) else x
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be an array of numbers. Received: {name}={x!r}"
        ) from error
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(
            f"`{name}` must hold real numbers, not {array.dtype}. Received: {name}={x!r}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(float)
    return array


def softmax(x, axis=-1):
    """Numerically stable softmax along `axis` (numpy).

    `softmax(x)_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x))`. Subtracting the
    maximum changes nothing mathematically (it cancels between numerator and
    denominator) but keeps every `exp` argument at or below 0, so `exp` cannot
    overflow, and the largest term is exactly 1, so the sum cannot underflow to 0.

    Args:
        x: array-like of real numbers, any shape with at least one dimension.
        axis: the axis that is normalised to sum to 1. Defaults to `-1`.

    Returns:
        A float array with the shape of `x`; every slice along `axis` is
        non-negative and sums to 1.
    """
    x = _as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError(
            f"`x` must have at least one dimension. Received: x with shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"`x` must not be empty. Received: x with shape {x.shape}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"`axis` must be an integer in [{-x.ndim}, {x.ndim - 1}] for an input of "
            f"shape {x.shape}. Received: axis={axis!r}"
        )
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / np.sum(exps, axis=axis, keepdims=True)


def three_step_attention(query, keys, values, scale=None):
    """Attention written as its three steps: scoring, weighting, aggregation (numpy).

    1. Scoring: `scores = query @ keys.T * scale`, one score per key.
    2. Weighting: `weights = softmax(scores)`, non-negative and summing to 1.
    3. Aggregation: `output = weights @ values`, a weighted average of the values.

    Args:
        query: one query of shape `(d,)` or many queries of shape `(T, d)`.
        keys: array of shape `(S, d)`.
        values: array of shape `(S, dv)`.
        scale: number that multiplies the scores. `None` means `1 / sqrt(d)`, the
            scaling of "Attention Is All You Need" and of Keras; `scale=1.0` gives
            plain dot-product scores. Defaults to `None`.

    Returns:
        `(output, weights)`: for one query, shapes `(dv,)` and `(S,)`; for `T`
        queries, shapes `(T, dv)` and `(T, S)`.
    """
    query = _as_float_array(query, "query")
    keys = _as_float_array(keys, "keys")
    values = _as_float_array(values, "values")
    if query.ndim not in (1, 2):
        raise ValueError(
            "`query` must have shape (d,) or (T, d). "
            f"Received: query with shape {query.shape}"
        )
    if keys.ndim != 2:
        raise ValueError(
            f"`keys` must have shape (S, d). Received: keys with shape {keys.shape}"
        )
    if values.ndim != 2:
        raise ValueError(
            f"`values` must have shape (S, dv). Received: values with shape {values.shape}"
        )
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(
            "`query` and `keys` must have the same last dimension d. Received: "
            f"query with shape {query.shape} and keys with shape {keys.shape}"
        )
    if keys.shape[0] != values.shape[0]:
        raise ValueError(
            "`keys` and `values` must have the same number of rows S. Received: "
            f"keys with shape {keys.shape} and values with shape {values.shape}"
        )
    if keys.shape[0] == 0:
        raise ValueError(
            f"`keys` must hold at least one key. Received: keys with shape {keys.shape}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    elif isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)):
        raise TypeError(f"`scale` must be a number or None. Received: scale={scale!r}")
    elif not np.isfinite(scale):
        raise ValueError(f"`scale` must be a finite number. Received: scale={scale!r}")

    scores = query @ keys.T * scale  # (S,) or (T, S)
    weights = softmax(scores, axis=-1)  # (S,) or (T, S)
    output = weights @ values  # (dv,) or (T, dv)
    return output, weights


def scaled_dot_product_attention(query, key, value, mask=None, scale=None):
    """Scaled dot-product attention with an optional mask (`keras.ops`).

    `softmax(query @ key^T * scale, masked) @ value`, with `scale = 1 / sqrt(d)` by
    default. The mask follows Keras's convention: `True` (or 1) means "this query may
    attend to this key". Masked scores are replaced by a large negative number before
    the softmax and their weights are set to exactly 0 afterwards, so a query that may
    attend to nothing gets all-zero weights and a zero output, never NaN.

    Args:
        query: tensor of shape `(..., T, d)`.
        key: tensor of shape `(..., S, d)`.
        value: tensor of shape `(..., S, dv)`.
        mask: optional boolean or 0/1 tensor broadcastable to `(..., T, S)`.
            Defaults to `None` (attend everywhere).
        scale: number multiplying the scores. `None` means `1 / sqrt(d)`.
            Defaults to `None`.

    Returns:
        `(output, weights)` of shapes `(..., T, dv)` and `(..., T, S)`.
    """
    from keras import ops

    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if len(tensor.shape) < 2:
            raise ValueError(
                f"`{name}` must have at least 2 dimensions (..., length, width). "
                f"Received: {name} with shape {tuple(tensor.shape)}"
            )
    d, d_key = query.shape[-1], key.shape[-1]
    if d is not None and d_key is not None and d != d_key:
        raise ValueError(
            "`query` and `key` must have the same last dimension. Received: query "
            f"with shape {tuple(query.shape)} and key with shape {tuple(key.shape)}"
        )
    s_key, s_value = key.shape[-2], value.shape[-2]
    if s_key is not None and s_value is not None and s_key != s_value:
        raise ValueError(
            "`key` and `value` must have the same length S (axis -2). Received: key "
            f"with shape {tuple(key.shape)} and value with shape {tuple(value.shape)}"
        )
    if scale is None:
        if d is None:
            raise ValueError(
                "The last dimension of `query` must be known to compute the default "
                f"scale. Received: query with shape {tuple(query.shape)}"
            )
        scale = 1.0 / math.sqrt(d)

    query = ops.convert_to_tensor(query)
    key = ops.cast(key, query.dtype)
    value = ops.cast(value, query.dtype)
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2)) * ops.cast(scale, query.dtype)
    # scores: (..., T, S)
    weights = masked_softmax(scores, mask)
    output = ops.matmul(weights, value)  # (..., T, dv)
    return output, weights


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax of `scores` along `axis` where only positions with `mask` True count.

    Masked scores are replaced by a large negative number before the softmax, and
    their weights are set to exactly 0 afterwards: a row in which every position is
    masked gives all-zero weights, never NaN and never a uniform average over
    forbidden positions. Every attention layer of the course normalises its scores
    with this function (`keras.ops`).

    Args:
        scores: float tensor, for attention of shape `(..., T, S)`.
        mask: optional boolean or 0/1 tensor broadcastable to `scores`
            (True/1 = may attend). Defaults to `None`.
        axis: the axis to normalise. Defaults to `-1`.

    Returns:
        A tensor with the shape and dtype of `scores`.
    """
    from keras import ops

    scores = ops.convert_to_tensor(scores)
    if mask is None:
        return ops.softmax(scores, axis=axis)
    mask = ops.cast(mask, "bool")
    if len(mask.shape) > len(scores.shape):
        raise ValueError(
            "`mask` must be broadcastable to `scores` and have no more dimensions. "
            f"Received: mask with shape {tuple(mask.shape)} for scores with shape "
            f"{tuple(scores.shape)}"
        )
    for m, n in zip(reversed(tuple(mask.shape)), reversed(tuple(scores.shape))):
        if m is not None and n is not None and m not in (1, n):
            raise ValueError(
                "`mask` must be broadcastable to `scores` (each dimension 1 or equal). "
                f"Received: mask with shape {tuple(mask.shape)} for scores with shape "
                f"{tuple(scores.shape)}"
            )
    scores = ops.where(mask, scores, _large_negative(scores.dtype))
    weights = ops.softmax(scores, axis=axis)
    return ops.where(mask, weights, ops.zeros_like(weights))


def attention_output_spec(layer, query, value, key=None, return_attention_scores=False):
    """The symbolic output of a single-head attention layer (for `compute_output_spec`).

    `output` has the shape `layer.compute_output_shape` gives; with
    `return_attention_scores`, also the weights of shape `(batch_size, Tq, Tv)`.
    """
    key_shape = None if key is None else key.shape
    output_shape = layer.compute_output_shape(query.shape, value.shape, key_shape)
    output = keras.KerasTensor(output_shape, dtype=layer.compute_dtype)
    if return_attention_scores:
        weights_shape = (*query.shape[:-1], value.shape[1])  # (batch_size, Tq, Tv)
        return output, keras.KerasTensor(weights_shape, dtype=layer.compute_dtype)
    return output


def _large_negative(dtype):
    """A large negative number that `exp` maps to 0 without overflow in `dtype`."""
    return -1e9 if str(dtype) in ("float32", "float64") else -3e4


@keras.saving.register_keras_serializable(package="course_lib")
class ScaledDotProductAttention(keras.layers.Layer):
    """Scaled dot-product attention, with Keras masking and no weights.

    The attention of "Attention Is All You Need" without the projections of
    multi-head attention:

    1. Scores: `scores = query @ key^T / sqrt(d)`, shape `(batch_size, Tq, Tv)`.
    2. Mask: `masks.compute_attention_mask` combines `query_mask`, `value_mask`,
       `key_mask`, the causal mask and `attention_mask` by logical AND, the rule of
       `keras.layers.MultiHeadAttention` (`True` = may attend).
    3. Weights: `weights = masked_softmax(scores, mask)`; masked positions get a
       weight of exactly 0, and a query that may attend to nothing gets all-zero
       weights (a zero output), never NaN.
    4. Dropout on the weights (training only), then `output = weights @ value`.

    Steps 1, 3 and 4 are `attention.scaled_dot_product_attention`.

    Args:
        dropout: fraction of the attention weights to drop during training, a float
            in `[0, 1)`. Defaults to `0.0`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        query: query tensor of shape `(batch_size, Tq, dim)`.
        value: value tensor of shape `(batch_size, Tv, value_dim)`.
        key: optional key tensor of shape `(batch_size, Tv, dim)`. If not given,
            `value` is used as the key too (then `value_dim` must equal `dim`).
        attention_mask: optional boolean tensor of shape `(batch_size, Tq, Tv)`
            (or broadcastable to it): `True` where a query may attend to a key.
        query_mask: optional boolean tensor of shape `(batch_size, Tq)`; filled
            automatically from `query`'s Keras mask. A masked query attends to nothing.
        value_mask: optional boolean tensor of shape `(batch_size, Tv)`; filled
            automatically from `value`'s Keras mask. No query attends to a masked value.
        key_mask: optional boolean tensor of shape `(batch_size, Tv)`; filled
            automatically from `key`'s Keras mask.
        use_causal_mask: if `True`, query `i` may attend only to keys `0..i`
            (a decoder's self-attention). Defaults to `False`.
        return_attention_scores: if `True`, also return the attention weights.
            Defaults to `False`.
        training: Python bool, whether dropout is applied. Defaults to `None`
            (inference).

    Returns:
        output: tensor of shape `(batch_size, Tq, value_dim)`, carrying `query`'s
            Keras mask.
        weights: (only with `return_attention_scores=True`) tensor of shape
            `(batch_size, Tq, Tv)`, the attention weights before dropout.
    """

    def __init__(self, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float, np.number))
            or not 0.0 <= dropout < 1.0
        ):
            raise ValueError(
                f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}"
            )
        self.dropout = float(dropout)
        self.supports_masking = True
        self._dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape, key_shape=None):
        self._check_shapes(query_shape, value_shape, key_shape)
        self.built = True

    def _check_shapes(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"`{name}` must have shape (batch_size, length, dim). "
                    f"Received: {name} with shape {tuple(shape)}"
                )
        if None not in (query_shape[-1], key_shape[-1]) and query_shape[-1] != key_shape[-1]:
            raise ValueError(
                "`query` and `key` (`value` when no key is given) must have the same "
                f"last dimension. Received: query with shape {tuple(query_shape)} and "
                f"key with shape {tuple(key_shape)}"
            )
        if None not in (key_shape[1], value_shape[1]) and key_shape[1] != value_shape[1]:
            raise ValueError(
                "`key` and `value` must have the same length Tv (axis 1). Received: "
                f"key with shape {tuple(key_shape)} and value with shape "
                f"{tuple(value_shape)}"
            )

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        if key is None:
            key = value
        self._check_shapes(query.shape, value.shape, key.shape)
        mask = _masks.compute_attention_mask(
            query,
            value,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )  # (batch_size, Tq, Tv), (1, Tq, Tv) or None
        output, weights = scaled_dot_product_attention(query, key, value, mask=mask)
        if training and self.dropout > 0:
            dropped = self._dropout_layer(weights, training=training)
            output = keras.ops.matmul(dropped, keras.ops.cast(value, dropped.dtype))
        if return_attention_scores:
            return output, weights
        return output

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        self._check_shapes(query_shape, value_shape, key_shape)
        return tuple(query_shape[:-1]) + (value_shape[-1],)

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        return attention_output_spec(self, query, value, key, return_attention_scores)

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout}
