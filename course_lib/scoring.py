"""Attention scoring functions as Keras layers (lessons 02 and 06).

Every attention layer scores each (query, key) pair, turns the scores into weights
with a softmax over the keys, and averages the values with those weights. Only the
score changes from one layer to the next:

* `AdditiveAttention` (Bahdanau et al., 2015): `v^T tanh(W_q q + W_k k + b)`;
* `LuongAttention` (Luong et al., 2015), three content scores: `"dot"` `q . k`,
  `"general"` `q^T W k` and `"concat"` `v^T tanh(W [q; k])`;
* `LocationAttention` (Luong et al., 2015, lesson 06), the location score
  `W_a q`: one score per source position from the query alone.

The weighting and the aggregation (masks, softmax, dropout, shapes, configuration)
are written once, in `course_lib.attention.ScoredAttention`; each layer here only
builds its weights (`build_score`) and computes its scores (`compute_scores`).
"""

import keras
from keras import ops

from course_lib import checks
from course_lib.attention import ScoredAttention

LUONG_SCORES = ("dot", "general", "concat")


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


@keras.saving.register_keras_serializable(package="course_lib")
class AdditiveAttention(ScoredAttention):
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
        attention_mask, query_mask, value_mask, key_mask, use_causal_mask,
            return_attention_scores, training: as for
            `course_lib.attention.ScoredAttention` (`True` = may attend; Keras
            fills `value_mask` `(batch_size, Tv)` from `value`'s mask, e.g. from
            `Embedding(mask_zero=True)`, and `query_mask` from `query`'s).

    Returns:
        `output` of shape `(batch_size, Tq, dim_v)`, which keeps `query`'s Keras
        mask, and, if `return_attention_scores`, the weights (after the softmax,
        before dropout) of shape `(batch_size, Tq, Tv)`.

    Example:

    >>> import numpy as np
    >>> query = np.ones((2, 1, 4), "float32")  # (batch_size, Tq=1, dim_q=4): decoder states
    >>> value = np.ones((2, 5, 6), "float32")  # (batch_size, Tv=5, dim_v=6): encoder states
    >>> value_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)  # padding
    >>> layer = AdditiveAttention(units=8)
    >>> context, weights = layer(query, value, value_mask=value_mask, return_attention_scores=True)
    >>> tuple(context.shape), layer.count_params()  # (4 + 6 + 1) * 8 + 8
    ((2, 1, 6), 96)
    >>> print(np.round(ops.convert_to_numpy(weights)[0, 0], 3))  # equal keys: uniform
    [0.333 0.333 0.333 0.    0.   ]
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
        self.units = checks.check_positive_int(units, "units")
        self.use_bias = checks.check_bool(use_bias, "use_bias")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build_score(self, query_shape, key_shape):
        query_dim, key_dim = query_shape[-1], key_shape[-1]
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

    def compute_scores(self, query, key):
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
class LuongAttention(ScoredAttention):
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
        attention_mask, query_mask, value_mask, key_mask, use_causal_mask,
            return_attention_scores, training: as for
            `course_lib.attention.ScoredAttention` (`True` = may attend; Keras
            fills `value_mask` `(batch_size, Tv)` from `value`'s mask, e.g. from
            `Embedding(mask_zero=True)`, and `query_mask` from `query`'s).

    Returns:
        `output` of shape `(batch_size, Tq, dim_v)`, which keeps `query`'s Keras
        mask, and, if `return_attention_scores`, the weights (after the softmax,
        before dropout) of shape `(batch_size, Tq, Tv)`.

    Example:

    >>> import numpy as np
    >>> query = np.array([[[1.0, 0.0]]], "float32")  # (batch_size=1, Tq=1, dim=2)
    >>> key = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # (1, Tv=2, dim)
    >>> value = np.array([[[1.0], [3.0]]], "float32")  # (1, Tv, dim_v=1)
    >>> output, weights = LuongAttention("dot")(query, value, key=key, return_attention_scores=True)
    >>> print(np.round(ops.convert_to_numpy(weights), 3))  # softmax([1, 0])
    [[[0.731 0.269]]]
    >>> print(np.round(ops.convert_to_numpy(output), 3))  # 0.731 * 1 + 0.269 * 3
    [[[1.538]]]
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
        self.score = checks.check_choice(score, "score", LUONG_SCORES)
        if self.score == "concat" and units is None:
            raise ValueError(checks.message("units", "a positive integer with score='concat'", units))
        if self.score != "concat" and units is not None:
            raise ValueError(checks.message("units", f"None with score={self.score!r} (only 'concat' uses it)", units))
        self.units = checks.check_positive_int(units, "units", allow_none=True)
        self.scale = checks.check_number(scale, "scale", minimum=0, min_inclusive=False, allow_none=True)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_score(self, query_shape, key_shape):
        query_dim, key_dim = query_shape[-1], key_shape[-1]
        if self.score == "dot" and query_dim != key_dim:
            raise ValueError(
                "score='dot' needs `query` and `key` of the same width (last "
                "dimension); use score='general' or 'concat' otherwise. Received: "
                f"query with shape {tuple(query_shape)} and key with shape {tuple(key_shape)}"
            )
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

    def compute_scores(self, query, key):
        if self.score == "dot":
            scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # (batch_size, Tq, Tv)
        elif self.score == "general":
            transformed = ops.matmul(query, self.kernel)  # (batch_size, Tq, dim_k)
            scores = ops.matmul(transformed, ops.swapaxes(key, -1, -2))  # (batch_size, Tq, Tv)
        else:
            query_dim = query.shape[-1]
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


@keras.saving.register_keras_serializable(package="course_lib")
class LocationAttention(ScoredAttention):
    """Luong's location-based attention: the weights come from the query alone.

    Luong et al. (2015, section 3.1) list, beside the content scores `dot`,
    `general` and `concat`, a *location* score `a_t = softmax(W_a h_t)`: the decoder
    state `h_t` is mapped to one score per source **position**; the source contents
    (the keys) are not read at all. It can learn "read position f(t)" (a fixed
    alignment, such as reversal) where the contents give no clue, and it cannot
    find a token by what it is.

    1. Scoring: `scores = query @ W_a` `(batch_size, Tq, Tv)`, with `W_a`
       `(dim_q, max_length)` cut to its first `Tv` columns (`Tv <= max_length`).
    2. Weighting and aggregation: those of `ScoredAttention` (masks, softmax,
       dropout, `weights @ value`).

    Args:
        max_length: positive integer, the longest source the layer can read (the
            number of positions `W_a` scores).
        dropout, seed: as for `ScoredAttention`.
        kernel_initializer: initializer of `W_a`. Defaults to `"glorot_uniform"`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments and returns: those of `ScoredAttention`; `key` is accepted and
    checked (its length is `Tv`) but its contents are not used.

    Example:

    >>> import numpy as np
    >>> layer = LocationAttention(max_length=4)
    >>> query = np.ones((2, 3, 5), "float32")  # (batch_size, Tq, dim)
    >>> value = np.random.default_rng(0).normal(size=(2, 4, 6)).astype("float32")
    >>> output, weights = layer(query, value, return_attention_scores=True)
    >>> tuple(output.shape), tuple(weights.shape), layer.count_params()
    ((2, 3, 6), (2, 3, 4), 20)
    >>> bool(np.allclose(ops.convert_to_numpy(weights)[0], ops.convert_to_numpy(weights)[1]))  # contents unused
    True
    """

    def __init__(self, max_length, dropout=0.0, seed=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.max_length = checks.check_positive_int(max_length, "max_length")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_score(self, query_shape, key_shape):
        length = key_shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"`key` (`value` when no key is given) is longer than max_length={self.max_length}. "
                f"Received: key with shape {tuple(key_shape)}"
            )
        self.kernel = self.add_weight(
            name="kernel", shape=(query_shape[-1], self.max_length), initializer=self.kernel_initializer
        )

    def compute_scores(self, query, key):
        length = key.shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"`key` (`value` when no key is given) is longer than max_length={self.max_length}. "
                f"Received: key with shape {tuple(key.shape)}"
            )
        scores = ops.matmul(query, self.kernel)  # (batch_size, Tq, max_length)
        return scores[:, :, : ops.shape(key)[1]]  # (batch_size, Tq, Tv)

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
