"""Attention scoring functions as Keras layers (lesson 02).

Every attention layer scores each (query, key) pair, turns the scores into weights
with a softmax over the keys, and averages the values with those weights. Only the
score changes from one layer to the next:

* `AdditiveAttention` (Bahdanau et al., 2015): `v^T tanh(W_q q + W_k k + b)`;
* `LuongAttention` (Luong et al., 2015), three scores: `"dot"` `q . k`,
  `"general"` `q^T W k` and `"concat"` `v^T tanh(W [q; k])`.

The weighting and the aggregation (masks, softmax, dropout, shapes, configuration)
are written once, in the private base class `_ScoredAttention`; each layer only
builds its weights and computes its scores.
"""

import numbers

import keras
from keras import ops

from course_lib.attention import attention_output_spec, masked_softmax

LUONG_SCORES = ("dot", "general", "concat")


def _check_units(units, name="units"):
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={units!r}")


def _check_width(shape, name):
    """The shape as a tuple, or a `ValueError` unless it is `(batch_size, T, dim)`."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(
            f"`{name}` must have shape (batch_size, T, dim), 3 dimensions. "
            f"Received: {name} with shape {shape}"
        )
    return shape


def _additive_scores(query_proj, key_proj, score_vector):
    """`v^T tanh(q' + k')` for every pair of a projected query and a projected key.

    `query_proj` `(batch_size, Tq, units)`, `key_proj` `(batch_size, Tv, units)`,
    `score_vector` `(units,)`; returns scores of shape `(batch_size, Tq, Tv)`.
    """
    hidden = ops.tanh(
        ops.expand_dims(query_proj, -2)  # (batch_size, Tq, 1, units)
        + ops.expand_dims(key_proj, -3)  # (batch_size, 1, Tv, units)
    )  # (batch_size, Tq, Tv, units)
    return ops.einsum("...u,u->...", hidden, score_vector)  # (batch_size, Tq, Tv)


class _ScoredAttention(keras.layers.Layer):
    """Weighting and aggregation shared by the scoring layers of this module.

    A subclass implements `_build_score(query_dim, key_dim)`, which creates its
    weights, and `_score(query, key)`, which returns scores of shape
    `(batch_size, Tq, Tv)`; it may override `_check_dims(query_dim, key_dim)`.
    """

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0.0 <= dropout < 1.0
        ):
            raise ValueError(
                f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.dropout = dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if dropout > 0 else None
        self.supports_masking = True

    def _check_shapes(self, query_shape, value_shape, key_shape=None):
        query_shape = _check_width(query_shape, "query")
        value_shape = _check_width(value_shape, "value")
        key_shape = value_shape if key_shape is None else _check_width(key_shape, "key")
        if None not in (key_shape[1], value_shape[1]) and key_shape[1] != value_shape[1]:
            raise ValueError(
                "`key` and `value` must have the same length Tv (axis 1). Received: "
                f"key with shape {key_shape} and value with shape {value_shape}"
            )
        for name, shape in (("query", query_shape), ("key", key_shape)):
            if shape[-1] is None:
                raise ValueError(
                    f"The last dimension of `{name}` must be known. "
                    f"Received: {name} with shape {shape}"
                )
        self._check_dims(query_shape, key_shape)
        return query_shape, value_shape, key_shape

    def _check_dims(self, query_shape, key_shape):
        if self.built and (query_shape[-1], key_shape[-1]) != self._dims:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' was built for query width "
                f"{self._dims[0]} and key width {self._dims[1]}. Received: query with "
                f"shape {query_shape} and key with shape {key_shape}"
            )

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape, _, key_shape = self._check_shapes(query_shape, value_shape, key_shape)
        self._build_score(query_shape[-1], key_shape[-1])
        self._dims = (query_shape[-1], key_shape[-1])
        self.built = True

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        if key is None:
            key = value
        self._check_shapes(query.shape, value.shape, key.shape)

        # 1. Scoring: one number per (query, key) pair.
        scores = self._score(query, key)  # (batch_size, Tq, Tv)

        # 2. Weighting: softmax over the keys that may be attended to. Keras fills
        # the `*_mask` arguments from the inputs' masks (e.g. Embedding(mask_zero=True)).
        mask = None
        for source_mask in (value_mask, key_mask):
            if source_mask is not None:
                source_mask = ops.expand_dims(ops.cast(source_mask, "bool"), -2)  # (batch_size, 1, Tv)
                mask = source_mask if mask is None else ops.logical_and(mask, source_mask)
        if query_mask is not None:
            row_mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)  # (batch_size, Tq, 1)
            mask = row_mask if mask is None else ops.logical_and(mask, row_mask)
        weights = masked_softmax(scores, mask)  # (batch_size, Tq, Tv)

        # 3. Aggregation: a weighted average of the values.
        dropped = weights
        if training and self.dropout > 0:
            dropped = keras.random.dropout(weights, self.dropout, seed=self.seed_generator)
        output = ops.matmul(dropped, ops.cast(value, dropped.dtype))  # (batch_size, Tq, dim_v)
        if return_attention_scores:
            return output, weights
        return output

    def compute_mask(self, query, previous_mask=None):
        # The output has one row per query: it keeps the query's mask.
        return previous_mask

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, _ = self._check_shapes(query_shape, value_shape, key_shape)
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        return attention_output_spec(self, query, value, key, return_attention_scores)

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


@keras.saving.register_keras_serializable(package="course_lib")
class AdditiveAttention(_ScoredAttention):
    """Additive attention, a.k.a. Bahdanau attention.

    The query and the key are projected to `units` dimensions and added; a small
    one-hidden-layer network scores the pair. The calculation follows the steps:

    1. Scoring: `scores[i, j] = v^T tanh(W_q query_i + W_k key_j + b)`, shape
       `(batch_size, Tq, Tv)`, with `W_q` `(dim_q, units)`, `W_k` `(dim_k, units)`,
       `b` `(units,)` (if `use_bias`) and `v` `(units,)`.
    2. Weighting: `weights = softmax(scores)` over the `Tv` keys; masked keys get
       weight exactly 0 and a row with nothing to attend to gets all zeros.
    3. Aggregation: `output = weights @ value`, shape `(batch_size, Tq, dim_v)`.

    The query and key widths may differ; the layer has
    `(dim_q + dim_k + 1) * units` weights, plus `units` for the bias.

    Args:
        units: positive integer, the width of the hidden layer that scores a pair.
        use_bias: whether to add the bias `b` inside the `tanh`. Defaults to `True`.
        dropout: float in [0, 1), fraction of the attention weights dropped during
            training. Defaults to `0.0`.
        seed: optional integer seed for the dropout. Defaults to `None`.
        kernel_initializer: initializer of `W_q`, `W_k` and `v`.
            Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of `b`. Defaults to `"zeros"`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: tensor of shape `(batch_size, Tq, dim_q)`.
        value: tensor of shape `(batch_size, Tv, dim_v)`.
        key: optional tensor of shape `(batch_size, Tv, dim_k)`; `value` is used
            if `None`. Defaults to `None`.
        query_mask: optional boolean tensor `(batch_size, Tq)`, True for real
            queries; padded queries get zero weights and a zero output. Filled by
            Keras from `query`'s mask when not given.
        value_mask: optional boolean tensor `(batch_size, Tv)`, True for the
            positions that may be attended to. Filled by Keras from `value`'s mask
            (e.g. `Embedding(mask_zero=True)` upstream) when not given.
        key_mask: optional boolean tensor `(batch_size, Tv)`, combined with
            `value_mask`. Filled by Keras from `key`'s mask when not given.
        return_attention_scores: if `True`, also return the attention weights.
            Defaults to `False`.
        training: Python boolean, whether dropout is applied. Defaults to `None`.

    Returns:
        `output` of shape `(batch_size, Tq, dim_v)`, which keeps `query`'s Keras
        mask, and, if `return_attention_scores`, the weights (after the softmax,
        before dropout) of shape `(batch_size, Tq, Tv)`.
    """

    def __init__(
        self,
        units,
        use_bias=True,
        dropout=0.0,
        seed=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        _check_units(units)
        if not isinstance(use_bias, bool):
            raise TypeError(f"`use_bias` must be True or False. Received: use_bias={use_bias!r}")
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _build_score(self, query_dim, key_dim):
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(query_dim, self.units), initializer=self.kernel_initializer
        )
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=(key_dim, self.units), initializer=self.kernel_initializer
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer
            )
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units,), initializer=self.kernel_initializer
        )

    def _score(self, query, key):
        query_proj = ops.matmul(query, self.query_kernel)  # (batch_size, Tq, units)
        if self.bias is not None:
            query_proj = query_proj + self.bias
        key_proj = ops.matmul(key, self.key_kernel)  # (batch_size, Tv, units)
        return _additive_scores(query_proj, key_proj, self.score_vector)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="course_lib")
class LuongAttention(_ScoredAttention):
    """Multiplicative attention, a.k.a. Luong attention, with its three scores.

    The calculation follows the steps:

    1. Scoring, shape `(batch_size, Tq, Tv)`, one of
       - `"dot"`: `scores[i, j] = query_i . key_j` (needs `dim_q == dim_k`; no weights);
       - `"general"`: `scores[i, j] = query_i^T W key_j`, `W` of shape `(dim_q, dim_k)`;
       - `"concat"`: `scores[i, j] = v^T tanh(W [query_i; key_j])`, `W` of shape
         `(dim_q + dim_k, units)` and `v` of shape `(units,)`; since
         `W [q; k] = W[:dim_q]^T q + W[dim_q:]^T k`, this is additive attention
         without bias.
       then, if `scale` is given, `scores = scores * scale` (`scale = 1 / sqrt(dim)`
       with `"dot"` gives the scaled dot product of Transformers).
    2. Weighting: `weights = softmax(scores)` over the `Tv` keys; masked keys get
       weight exactly 0 and a row with nothing to attend to gets all zeros.
    3. Aggregation: `output = weights @ value`, shape `(batch_size, Tq, dim_v)`.

    Args:
        score: one of `"dot"`, `"general"`, `"concat"`. Defaults to `"dot"`.
        units: positive integer, the hidden width of the `"concat"` score; required
            for `"concat"` and not accepted by the other scores. Defaults to `None`.
        scale: optional positive number multiplying the scores. Defaults to `None`
            (no scaling).
        dropout: float in [0, 1), fraction of the attention weights dropped during
            training. Defaults to `0.0`.
        seed: optional integer seed for the dropout. Defaults to `None`.
        kernel_initializer: initializer of `W` and `v`. Defaults to `"glorot_uniform"`.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: tensor of shape `(batch_size, Tq, dim_q)`.
        value: tensor of shape `(batch_size, Tv, dim_v)`.
        key: optional tensor of shape `(batch_size, Tv, dim_k)`; `value` is used
            if `None`. Defaults to `None`.
        query_mask: optional boolean tensor `(batch_size, Tq)`, True for real
            queries; padded queries get zero weights and a zero output. Filled by
            Keras from `query`'s mask when not given.
        value_mask: optional boolean tensor `(batch_size, Tv)`, True for the
            positions that may be attended to. Filled by Keras from `value`'s mask
            (e.g. `Embedding(mask_zero=True)` upstream) when not given.
        key_mask: optional boolean tensor `(batch_size, Tv)`, combined with
            `value_mask`. Filled by Keras from `key`'s mask when not given.
        return_attention_scores: if `True`, also return the attention weights.
            Defaults to `False`.
        training: Python boolean, whether dropout is applied. Defaults to `None`.

    Returns:
        `output` of shape `(batch_size, Tq, dim_v)`, which keeps `query`'s Keras
        mask, and, if `return_attention_scores`, the weights (after the softmax,
        before dropout) of shape `(batch_size, Tq, Tv)`.
    """

    def __init__(
        self,
        score="dot",
        units=None,
        scale=None,
        dropout=0.0,
        seed=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(
                f"`score` must be one of {LUONG_SCORES}. Received: score={score!r}"
            )
        if score == "concat":
            if units is None:
                raise ValueError(
                    "`units` is required with score='concat'. Received: units=None"
                )
            _check_units(units)
        elif units is not None:
            raise ValueError(
                f"`units` is only used by score='concat'. Received: units={units!r} "
                f"with score={score!r}"
            )
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0
        ):
            raise ValueError(f"`scale` must be a positive number or None. Received: scale={scale!r}")
        self.score = score
        self.units = units
        self.scale = scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _check_dims(self, query_shape, key_shape):
        if self.score == "dot" and query_shape[-1] != key_shape[-1]:
            raise ValueError(
                "score='dot' needs `query` and `key` of the same width (last "
                "dimension); use score='general' or 'concat' otherwise. Received: "
                f"query with shape {query_shape} and key with shape {key_shape}"
            )
        super()._check_dims(query_shape, key_shape)

    def _build_score(self, query_dim, key_dim):
        self.kernel = None
        self.score_vector = None
        if self.score == "general":
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim, key_dim), initializer=self.kernel_initializer
            )
        elif self.score == "concat":
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim + key_dim, self.units),
                initializer=self.kernel_initializer,
            )
            self.score_vector = self.add_weight(
                name="score_vector", shape=(self.units,), initializer=self.kernel_initializer
            )

    def _score(self, query, key):
        if self.score == "dot":
            scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # (batch_size, Tq, Tv)
        elif self.score == "general":
            transformed = ops.matmul(query, self.kernel)  # (batch_size, Tq, dim_k)
            scores = ops.matmul(transformed, ops.swapaxes(key, -1, -2))  # (batch_size, Tq, Tv)
        else:
            query_dim = self._dims[0]
            query_proj = ops.matmul(query, self.kernel[:query_dim])  # (batch_size, Tq, units)
            key_proj = ops.matmul(key, self.kernel[query_dim:])  # (batch_size, Tv, units)
            scores = _additive_scores(query_proj, key_proj, self.score_vector)
        if self.scale is not None:
            scores = scores * self.scale
        return scores

    def get_config(self):
        return {
            **super().get_config(),
            "score": self.score,
            "units": self.units,
            "scale": self.scale,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
