"""Attention as three steps: scoring, weighting, aggregation.

* numpy functions for lesson 01 (`softmax`, `three_step_attention`), small enough to
  read next to the maths and to step through in a debugger;
* `scaled_dot_product_attention` and `masked_softmax` (`keras.ops`, any backend), which
  every later layer of the course calls;
* `ScoredAttention`, the base of every single-head attention layer (masks, softmax,
  dropout, shapes, configuration): a subclass supplies only its score, as
  `ScaledDotProductAttention` (lesson 05) does.

Shapes follow Keras: `T` is the number of queries (target length), `S` the number of
keys and values (source length), `d` the query/key width and `dv` the value width.
"""

import math

import keras
import numpy as np
from keras import ops

from course_lib import checks
from course_lib import masks as _masks


def _as_float_array(x, name):
    """`x` as a floating numpy array, or a `TypeError` naming the argument."""
    array = np.asarray(checks.check_array_like(x, name))
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise TypeError(checks.message(name, "an array of real numbers", x))
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(float)


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

    Example:

    >>> softmax([1000.0, 1000.0]).tolist()  # the naive exp(1000) overflows
    [0.5, 0.5]
    """
    x = _as_float_array(x, "x")
    if x.ndim == 0:
        raise ValueError(f"`x` must have at least one dimension. Received: x with shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"`x` must not be empty. Received: x with shape {x.shape}")
    axis = checks.check_int(axis, "axis", minimum=-x.ndim, maximum=x.ndim - 1)
    exps = np.exp(x - np.max(x, axis=axis, keepdims=True))
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

    Example:

    >>> keys = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    >>> values = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]
    >>> output, weights = three_step_attention([1, 0, 1], keys, values, scale=1.0)
    >>> np.round(weights, 4).tolist(), np.round(output, 4).tolist()
    ([0.0, 0.0025, 0.9975], [0.6993, 0.7993, 0.8993])
    """
    query = _as_float_array(query, "query")
    keys = _as_float_array(keys, "keys")
    values = _as_float_array(values, "values")
    checks.check_shape_rank(query.shape, "query", (1, 2), "(d,) or (T, d)")
    checks.check_shape_rank(keys.shape, "keys", 2, "(S, d)")
    checks.check_shape_rank(values.shape, "values", 2, "(S, dv)")
    received = f"query with shape {query.shape}, keys with shape {keys.shape}, values with shape {values.shape}"
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"`query` and `keys` must have the same last dimension d. Received: {received}")
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"`keys` and `values` must have the same number of rows S. Received: {received}")
    if keys.shape[0] == 0:
        raise ValueError(f"`keys` must hold at least one key. Received: keys with shape {keys.shape}")
    if query.size == 0:
        raise ValueError(f"`query` must hold at least one query of width d >= 1. Received: {received}")
    scale = checks.check_number(scale, "scale", allow_none=True)
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])

    scores = query @ keys.T * scale  # (S,) or (T, S)
    weights = softmax(scores, axis=-1)  # (S,) or (T, S)
    output = weights @ values  # (dv,) or (T, dv)
    return output, weights


def _floating(x):
    """`x` as a tensor of floats: integer and bool tensors become `floatx()`."""
    x = ops.convert_to_tensor(x)
    return x if keras.backend.is_float_dtype(x.dtype) else ops.cast(x, keras.config.floatx())


def _scaled_scores(query, key, scale):
    """`query @ key^T * scale`, shape `(..., T, S)`, in the dtype of `query`."""
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # (..., T, S)
    if checks.is_number(scale):  # a Python float keeps float64 precision in float64
        return scores * ops.convert_to_tensor(scale, dtype=scores.dtype)
    return scores * ops.cast(scale, scores.dtype)


def check_query_key_value(query, key, value):
    """Check the inputs of an attention function: array-likes of rank >= 2, `query` and
    `key` of the same width, `key` and `value` of the same length (where known). Returns
    `(query, key, value, received)`, `received` describing their shapes for messages."""
    names = ("query", "key", "value")
    query, key, value = (checks.check_array_like(x, n) for x, n in zip((query, key, value), names))
    for name, x in zip(names, (query, key, value)):
        if len(x.shape) < 2:
            raise ValueError(checks.message(name, "a tensor of shape (..., length, width)", x))
    received = ", ".join(f"{n} with shape {tuple(x.shape)}" for n, x in zip(names, (query, key, value)))
    if None not in (query.shape[-1], key.shape[-1]) and query.shape[-1] != key.shape[-1]:
        raise ValueError(f"`query` and `key` must have the same last dimension. Received: {received}")
    if None not in (key.shape[-2], value.shape[-2]) and key.shape[-2] != value.shape[-2]:
        raise ValueError(f"`key` and `value` must have the same length S (axis -2). Received: {received}")
    return query, key, value, received


def scaled_dot_product_attention(query, key, value, mask=None, scale=None):
    """Scaled dot-product attention with an optional mask (`keras.ops`).

    `masked_softmax(query @ key^T * scale, mask) @ value`, with `scale = 1 / sqrt(d)`
    by default. The mask follows Keras's convention: `True` (or 1) means "this query
    may attend to this key". Masked keys get a weight of exactly 0, whatever the
    scores, and a query that may attend to nothing gets all-zero weights and a zero
    output, never NaN. Integer or bool inputs are computed in `keras.config.floatx()`;
    float inputs keep the dtype of `query`.

    Args:
        query: tensor (or nested list) of shape `(..., T, d)`.
        key: tensor of shape `(..., S, d)`.
        value: tensor of shape `(..., S, dv)`.
        mask: optional boolean or 0/1 tensor broadcastable to `(..., T, S)`.
            Defaults to `None` (attend everywhere).
        scale: number (or scalar tensor) multiplying the scores. `None` means
            `1 / sqrt(d)`. Defaults to `None`.

    Returns:
        `(output, weights)` of shapes `(..., T, dv)` and `(..., T, S)`.

    Example:

    >>> query = [[[1.0, 0.0]]]  # (batch_size=1, T=1, d=2)
    >>> key = [[[1.0, 0.0], [0.0, 1.0]]]  # (1, S=2, d)
    >>> value = [[[1.0], [3.0]]]  # (1, S, dv=1)
    >>> output, weights = scaled_dot_product_attention(query, key, value, scale=1.0)
    >>> print(np.round(ops.convert_to_numpy(weights), 3))
    [[[0.731 0.269]]]
    >>> _, weights = scaled_dot_product_attention(query, key, value, mask=[[[False, True]]])
    >>> ops.convert_to_numpy(weights).tolist()
    [[[0.0, 1.0]]]
    """
    query, key, value, received = check_query_key_value(query, key, value)
    d = query.shape[-1]
    if scale is None:
        if not d:  # unknown (None) or 0
            raise ValueError(f"The last dimension d of `query` must be known and >= 1 for the "
                             f"default scale 1 / sqrt(d). Received: query with shape {tuple(query.shape)}")
        scale = 1.0 / math.sqrt(d)
    elif checks.is_number(scale):
        scale = checks.check_number(scale, "scale")
    elif not hasattr(scale, "dtype"):
        raise TypeError(checks.message("scale", "a number, a scalar tensor or None", scale))

    query = _floating(query)
    key, value = ops.cast(key, query.dtype), ops.cast(value, query.dtype)
    scores = _scaled_scores(query, key, scale)  # (..., T, S)
    weights = masked_softmax(scores, mask)  # (..., T, S)
    output = ops.matmul(weights, value)  # (..., T, dv)
    return output, weights


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax of `scores` along `axis` in which only positions with `mask` True count.

    Exact whatever the scores: masked positions get a weight of exactly 0, the
    allowed positions of a row sum to 1 (even if every allowed score is -1e30), and
    a row in which everything is masked gives all-zero weights, never NaN, with
    finite gradients. How: masked scores become `-inf` (no finite fill is safe for
    every score range), whose `exp` is exactly 0; a row with nothing allowed, whose
    softmax would be NaN, is softmaxed as zeros and then set to 0. Every attention
    layer of the course normalises its scores with this function (`keras.ops`).

    Args:
        scores: float tensor, for attention of shape `(..., T, S)`.
        mask: optional boolean or 0/1 tensor broadcastable to `scores`
            (True/1 = may attend); see `masks.as_bool_mask`. Defaults to `None`.
        axis: the axis to normalise. Defaults to `-1`.

    Returns:
        A tensor with the shape and dtype of `scores`.

    Example:

    >>> scores = [[-8e4, -8e4, 0.0], [1.0, 2.0, 3.0]]
    >>> mask = [[True, True, False], [False, False, False]]
    >>> ops.convert_to_numpy(masked_softmax(scores, mask)).tolist()
    [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    """
    scores = _floating(checks.check_array_like(scores, "scores"))
    if mask is None:
        return _softmax(scores, axis)
    mask = _masks.as_bool_mask(mask, "mask")
    mask_shape, scores_shape = tuple(mask.shape), tuple(scores.shape)
    broadcastable = len(mask_shape) <= len(scores_shape) and all(
        m is None or n is None or m in (1, n) for m, n in zip(reversed(mask_shape), reversed(scores_shape))
    )
    if not broadcastable:
        raise ValueError(
            "`mask` must be broadcastable to `scores` (no more dimensions, each one 1 or "
            f"equal). Received: mask with shape {mask_shape} for scores with shape {scores_shape}"
        )
    negative_infinity = ops.cast(float("-inf"), scores.dtype)
    filled = ops.where(mask, scores, negative_infinity)  # exp(-inf - max) is exactly 0
    anything_allowed = ops.greater(ops.max(filled, axis=axis, keepdims=True), negative_infinity)
    # A row with nothing allowed would be -inf - (-inf) = NaN: it gets 0s, then weight 0.
    weights = _softmax(ops.where(anything_allowed, filled, ops.zeros_like(filled)), axis)
    return ops.where(mask, weights, ops.zeros_like(weights))


def _softmax(scores, axis):
    """`ops.softmax`, except over an axis of size 1 (one key: a decoder's first step),
    where the weight is 1 and Keras would warn that the softmax is constant."""
    if scores.shape[axis] == 1:
        return ops.ones_like(scores)
    return ops.softmax(scores, axis=axis)


@keras.saving.register_keras_serializable(package="course_lib")
class ScoredAttention(keras.layers.Layer):
    """Base of the single-head attention layers: a subclass supplies only its score.

    1. Scores: `scores = compute_scores(query, key)`, shape `(batch_size, Tq, Tv)`,
       the one method a subclass must write.
    2. Mask: `masks.compute_attention_mask` ANDs `query_mask`, `value_mask`,
       `key_mask`, the causal mask and `attention_mask`, the rule of
       `keras.layers.MultiHeadAttention` (`True` = may attend).
    3. Weights: `weights = masked_softmax(scores, mask)`: masked keys weigh exactly 0,
       a query that may attend to nothing gets all-zero weights (a zero output).
    4. Dropout on the weights (training only), then `output = weights @ value`.

    A subclass writes `compute_scores(query, key)` and, if its score has weights,
    `build_score(query_shape, key_shape)`, which creates them with `add_weight` (the
    last dimensions of both shapes are known; raise `ValueError` for shapes the score
    cannot take). Its `__init__` forwards `dropout`, `seed` and `**kwargs`, and its
    `get_config` adds its own arguments to `super().get_config()`. Inputs are checked
    here: rank 3, one batch size, `key` and `value` of one length, and, once built,
    the widths the layer was built for. Integer inputs are cast to the compute dtype.

    Args:
        dropout: fraction of the attention weights dropped during training, a float
            in `[0, 1)`. Defaults to `0.0`.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        query: tensor of shape `(batch_size, Tq, dim)`.
        value: tensor of shape `(batch_size, Tv, value_dim)`.
        key: optional tensor of shape `(batch_size, Tv, key_dim)`; `value` if `None`.
        attention_mask: optional boolean tensor broadcastable to `(batch_size, Tq, Tv)`.
        query_mask: optional boolean `(batch_size, Tq)`, filled by Keras from `query`'s
            mask (e.g. `Embedding(mask_zero=True)`): a masked query attends to nothing.
        value_mask, key_mask: optional booleans `(batch_size, Tv)`, filled from the
            masks of `value` and `key`: no query attends to a masked value or key.
        use_causal_mask: if `True`, query `i` attends only to keys `0..i`.
            Defaults to `False`.
        return_attention_scores: if `True`, also return the weights. Defaults to `False`.
        training: Python bool, whether dropout is applied. Defaults to `None`.

    Returns:
        output: tensor of shape `(batch_size, Tq, value_dim)`, carrying `query`'s mask.
        weights: (only with `return_attention_scores=True`) the attention weights
            `(batch_size, Tq, Tv)`, before dropout.

    Example:

    >>> class NegativeDistance(ScoredAttention):  # scores -|query - key|^2, no weights
    ...     def compute_scores(self, query, key):
    ...         difference = query[:, :, None, :] - key[:, None, :, :]  # (B, Tq, Tv, dim)
    ...         return -ops.sum(difference**2, axis=-1)  # (B, Tq, Tv)
    >>> value = np.array([[[0.0], [1.0], [5.0]]])  # (batch_size=1, Tv=3, dim=1)
    >>> output, weights = NegativeDistance()(value, value, return_attention_scores=True)
    >>> tuple(output.shape), tuple(weights.shape)
    ((1, 3, 1), (1, 3, 3))
    >>> print(np.round(ops.convert_to_numpy(weights)[0, 0], 3))  # softmax([0, -1, -25])
    [0.731 0.269 0.   ]
    """

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = checks.check_rate(dropout, "dropout")
        self.seed = checks.check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed) if self.dropout > 0 else None
        self.supports_masking = True

    def build_score(self, query_shape, key_shape):
        """Create the weights of the score (none by default)."""

    def compute_scores(self, query, key):
        """The scores `(batch_size, Tq, Tv)` of `query` and `key`."""
        raise NotImplementedError(f"{self.__class__.__name__} must implement `compute_scores(query, key)`.")

    def _check_shapes(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        shapes = {"query": query_shape, "value": value_shape, "key": key_shape}
        for name, shape in shapes.items():
            layout = f"(batch_size, {'Tq' if name == 'query' else 'Tv'}, dim)"
            if shape is None:
                raise TypeError(checks.message(name, f"a tensor of shape {layout}", None))
            shapes[name] = checks.check_shape_rank(shape, name, 3, layout)
        received = ", ".join(f"{name} with shape {shape}" for name, shape in shapes.items())
        if len({shape[0] for shape in shapes.values()} - {None}) > 1:
            raise ValueError(f"`query`, `value` and `key` must have the same batch size. Received: {received}")
        if None not in (shapes["key"][1], shapes["value"][1]) and shapes["key"][1] != shapes["value"][1]:
            raise ValueError(f"`key` and `value` must have the same length Tv (axis 1). Received: {received}")
        widths = (shapes["query"][-1], shapes["key"][-1])
        if None in widths or 0 in widths:
            raise ValueError(f"The last dimensions of `query` and `key` must be known and >= 1. Received: {received}")
        if self.built and widths != self._widths:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' was built for query width {self._widths[0]} "
                f"and key width {self._widths[1]}. Received: {received}"
            )
        return shapes["query"], shapes["value"], shapes["key"]

    def build(self, query_shape=None, value_shape=None, key_shape=None):
        query_shape, _, key_shape = self._check_shapes(query_shape, value_shape, key_shape)
        self.build_score(query_shape, key_shape)
        self._widths = (query_shape[-1], key_shape[-1])
        self.built = True

    def call(self, query, value, key=None, attention_mask=None, query_mask=None, value_mask=None,
             key_mask=None, use_causal_mask=False, return_attention_scores=False, training=None):
        key = value if key is None else key
        self._check_shapes(query.shape, value.shape, key.shape)
        # Keras casts float inputs to the compute dtype; integer and bool inputs are cast here.
        query, value, key = (ops.cast(x, self.compute_dtype) for x in (query, value, key))
        scores = self.compute_scores(query, key)  # (batch_size, Tq, Tv)
        mask = _masks.compute_attention_mask(
            query, value, query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
            attention_mask=attention_mask, use_causal_mask=use_causal_mask,
        )  # broadcastable to (batch_size, Tq, Tv), or None
        weights = masked_softmax(scores, mask)  # (batch_size, Tq, Tv)
        dropped = weights
        if training and self.dropout > 0:
            dropped = keras.random.dropout(weights, self.dropout, seed=self.seed_generator)
        output = ops.matmul(dropped, ops.cast(value, dropped.dtype))  # (batch_size, Tq, value_dim)
        return (output, weights) if return_attention_scores else output

    def compute_mask(self, query, previous_mask=None):
        return previous_mask  # one output row per query: the query's mask

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, _ = self._check_shapes(query_shape, value_shape, key_shape)
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(self, query, value, key=None, attention_mask=None, query_mask=None,
                            value_mask=None, key_mask=None, use_causal_mask=False,
                            return_attention_scores=False, training=None, **kwargs):
        key_shape = None if key is None else key.shape
        output_shape = self.compute_output_shape(query.shape, value.shape, key_shape)
        output = keras.KerasTensor(output_shape, dtype=self.compute_dtype)
        if return_attention_scores:
            weights_shape = (*query.shape[:-1], value.shape[1])  # (batch_size, Tq, Tv)
            return output, keras.KerasTensor(weights_shape, dtype=self.compute_dtype)
        return output

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


@keras.saving.register_keras_serializable(package="course_lib")
class ScaledDotProductAttention(ScoredAttention):
    """Scaled dot-product attention, with Keras masking and no weights.

    The attention of "Attention Is All You Need" without the projections of
    multi-head attention: `scores = query @ key^T / sqrt(dim)`, then the masks,
    softmax, dropout and aggregation of `ScoredAttention` (the same computation as
    `scaled_dot_product_attention` with the mask of `masks.compute_attention_mask`).

    Args:
        dropout: fraction of the attention weights to drop during training, a float
            in `[0, 1)`. Defaults to `0.0`.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments and returns: those of `ScoredAttention` (`query`
    `(batch_size, Tq, dim)`, `value`, `key` of the same width `dim`, the masks,
    `use_causal_mask`, `return_attention_scores`, `training`).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype("float32")
    >>> output, weights = ScaledDotProductAttention()(
    ...     x, x, use_causal_mask=True, return_attention_scores=True)
    >>> tuple(output.shape), tuple(weights.shape)
    ((2, 4, 8), (2, 4, 4))
    >>> print(ops.convert_to_numpy(weights)[0, 0])  # query 0 sees key 0 only
    [1. 0. 0. 0.]
    """

    def build_score(self, query_shape, key_shape):
        if query_shape[-1] != key_shape[-1]:
            raise ValueError(
                "`query` and `key` (`value` when no key is given) must have the same "
                f"last dimension. Received: query with shape {tuple(query_shape)} and "
                f"key with shape {tuple(key_shape)}"
            )

    def compute_scores(self, query, key):
        return _scaled_scores(query, key, 1.0 / math.sqrt(query.shape[-1]))  # (batch_size, Tq, Tv)
