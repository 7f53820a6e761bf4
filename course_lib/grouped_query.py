"""Grouped-query attention: several query heads share one key/value head (lesson 13).

Multi-head attention gives each of its `N` heads its own keys and values; a decoder
keeps them all in its cache, `2 * L * N * H` numbers per layer for `L` positions.
Grouped-query attention (Ainslie et al., 2023) keeps `num_query_heads` query heads but
only `num_key_value_heads` key/value heads: query head `u` reads key/value head
`u // g`, with `g = num_query_heads // num_key_value_heads` query heads per group. The
cache shrinks by the factor `g`; `num_key_value_heads = 1` is multi-query attention
(Shazeer, 2019), `num_key_value_heads = num_query_heads` multi-head attention.

`GroupedQueryAttention` is a drop-in for `keras.layers.GroupQueryAttention`: the same
arguments and call, the same weights in the same order and shapes. It is the course's
`MultiHeadAttention` (lesson 08) with narrower key and value projections and an
attention step that groups the query heads instead of copying the key/value heads:
the queries `(B, T, u, H)` become `(B, v, g, T, H)` and attend to keys `(B, v, 1, S, H)`,
broadcast over the group (Keras repeats the keys and values `g` times first).

Shape letters: `B` batch, `T` query length, `S` key/value length, `u` query heads,
`v` key/value heads, `g = u / v` query heads per group, `H` head_dim, `dim` the width.
"""

import math

import keras
from keras import ops

from course_lib.attention import scaled_dot_product_attention
from course_lib.checks import check_positive_int, message
from course_lib.masks import as_bool_mask, causal_mask, combine_masks
from course_lib.multihead import MultiHeadAttention, _flag


@keras.saving.register_keras_serializable(package="course_lib")
class GroupedQueryAttention(MultiHeadAttention):
    """Grouped-query attention (Ainslie et al., 2023).

    With `u = num_query_heads`, `v = num_key_value_heads` and `g = u / v`:

    1. Project: `Q = query @ Wq` `(B, T, u, H)`; `K = key @ Wk`, `V = value @ Wv`
       `(B, S, v, H)`, each plus its bias.
    2. Attend: query head `i` attends with key/value head `i // g`:
       `head_i = softmax(Q_i K_{i//g}^T / sqrt(H), masked) V_{i//g}`.
    3. Gate (only with `use_gate=True`): `head_i *= sigmoid(query @ Wg_i + bg_i)`.
    4. Merge and project back to the query's width: `concat(heads) @ Wo + bo`.

    Weights, in Keras's order and shapes: `query_kernel (dim_q, u, H)`, `query_bias (u, H)`,
    `key_kernel (dim_k, v, H)`, `key_bias (v, H)`, (`gate_kernel (dim_q, u, H)`,
    `gate_bias`,) `value_kernel (dim_v, v, H)`, `value_bias`, `output_kernel (u, H, dim_q)`,
    `output_bias (dim_q,)`.

    Differences from `keras.layers.GroupQueryAttention` (Keras 3.15): those of the
    course's `MultiHeadAttention` (a fully masked query row gets zero weights; numeric
    masks must hold only 0 and 1; no LoRA or quantisation; numpy integers accepted,
    wrong types raise `TypeError`); the flash path is taken only with
    `flash_attention=True`, not from `keras.config.enable_flash_attention()`.

    Args:
        head_dim: size of each head `H`.
        num_query_heads: number of query heads `u`.
        num_key_value_heads: number of key/value heads `v`; must divide `u`.
        dropout: dropout rate of the attention weights (training). Defaults to `0.0`.
        use_bias: whether the projections have biases. Defaults to `True`.
        sliding_window: optional positive int `w`: query `i` attends only to keys `j`
            with `|i - j| < w` (with `use_causal_mask`, the `w - 1` before it and
            itself). Defaults to `None`.
        flash_attention: `True` computes the heads with the backend's fused kernel.
            Defaults to `None`.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint: as in Keras.
        use_gate: whether the heads are gated (Qiu et al., 2025). Defaults to `False`.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        query: tensor `(batch_size, T, dim)`.
        value: tensor `(batch_size, S, dim)`.
        key: optional tensor `(batch_size, S, dim_k)`; `None` means `value`.
        query_mask, value_mask, key_mask: optional boolean `(batch_size, T)`,
            `(batch_size, S)`, filled by Keras from the inputs' masks.
        attention_mask: optional boolean `(batch_size, T, S)`, True = may attend.
        return_attention_scores: also return the weights. Defaults to `False`.
        training: whether dropout is active.
        use_causal_mask: whether query `i` may only attend to keys `0..i`. Defaults to `False`.

    Returns:
        `output (batch_size, T, dim)`, and with `return_attention_scores=True` the
        weights `(batch_size, num_query_heads, T, S)`.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    >>> layer = GroupedQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)
    >>> output, scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    >>> tuple(output.shape), tuple(scores.shape), tuple(layer.get_weights()[2].shape)
    ((2, 5, 8), (2, 4, 5, 5), (8, 2, 4))
    >>> keras_layer = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)
    >>> _ = keras_layer(x, x)
    >>> layer.set_weights(keras_layer.get_weights())
    >>> bool(np.allclose(layer(x, x, use_causal_mask=True), keras_layer(x, x, use_causal_mask=True), atol=1e-5))
    True
    """

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0, use_bias=True,
                 sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, use_gate=False,
                 seed=None, **kwargs):
        head_dim = check_positive_int(head_dim, "head_dim")
        num_query_heads = check_positive_int(num_query_heads, "num_query_heads")
        num_key_value_heads = check_positive_int(num_key_value_heads, "num_key_value_heads")
        if num_query_heads % num_key_value_heads:
            raise ValueError(message("num_key_value_heads", f"a divisor of `num_query_heads` ({num_query_heads})",
                                     num_key_value_heads))
        super().__init__(num_heads=num_query_heads, key_dim=head_dim, dropout=dropout, use_bias=use_bias,
                         sliding_window=sliding_window, flash_attention=flash_attention,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, use_gate=use_gate, seed=seed, **kwargs)
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads  # g, Keras's name
        self._return_attention_scores = False

    @property
    def sliding_window(self):
        return self._sliding_window

    @property
    def use_gate(self):
        return self._use_gate

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = self._check_shapes(query_shape, value_shape, key_shape)
        if len(query_shape) != 3:
            raise ValueError(f"`query` must have shape (batch_size, T, dim). Received: query_shape={query_shape}")
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if shape[-1] is None:
                raise ValueError(f"The last dimension of `{name}` must be known. Received: {name} with shape {shape}")
        self._axes, self._folded = (1,), False
        u, v, h = self.num_query_heads, self.num_key_value_heads, self.head_dim
        project = "abd,dnh->abnh"  # (B, T, dim) x (dim, heads, H) -> (B, T, heads, H)
        # Keras's order: query, key, gate, value, output; each kernel, then its bias.
        self._query_dense = self._add_projection("query", (query_shape[-1], u, h), project)
        self._key_dense = self._add_projection("key", (key_shape[-1], v, h), project)
        if self._use_gate:
            self._gate_dense = self._add_projection("gate", (query_shape[-1], u, h), project, ops.sigmoid)
        self._value_dense = self._add_projection("value", (value_shape[-1], v, h), project)
        # Merge the heads: (B, T, u, H) x (u, H, dim) -> (B, T, dim)
        self._output_dense = self._add_projection("output", (u, h, query_shape[-1]), "abnh,nho->abo")

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
        use_causal_mask = _flag(use_causal_mask, "use_causal_mask")
        self._return_attention_scores = _flag(return_attention_scores, "return_attention_scores")
        key = value if key is None else key
        self._check_inputs(query, value, key)
        query_heads = self._query_dense(query)  # (B, T, u, H)
        key_heads = self._key_dense(key)  # (B, S, v, H)
        value_heads = self._value_dense(value)  # (B, S, v, H)
        masks = [as_bool_mask(m, n) for m, n in ((query_mask, "query_mask"), (value_mask, "value_mask"),
                                                 (key_mask, "key_mask"))]
        attention_mask = as_bool_mask(attention_mask, "attention_mask")
        mask = self._compute_attention_mask(query_heads, value_heads, *masks, attention_mask, use_causal_mask)
        # Keras's call passes only these two by name (subclasses override this signature).
        heads, weights = self._compute_attention(query_heads, key_heads, value_heads, attention_mask=mask,
                                                 training=training)  # (B, T, u, H), (B, u, T, S)
        if self._use_gate:
            heads = heads * self._gate_dense(query)  # (B, T, u, H)
        output = self._output_dense(heads)  # (B, T, dim)
        if self._return_attention_scores:
            return output, weights
        return output

    def _compute_attention(self, query, key, value, attention_mask=None, training=None, use_causal_mask=False):
        """Attention of every query head on projected inputs (Keras's override point).

        `query (B, T, u, H)`, `key` and `value (B, S, v, H)` with `v` dividing `u`
        (Keras passes them repeated to `u` heads: then `g = 1`), mask broadcastable
        to `(B, u, T, S)`. Returns the heads `(B, T, u, H)` and the weights `(B, u, T, S)`."""
        if use_causal_mask:  # `call` has it in the mask already; direct callers may not
            attention_mask = combine_masks(attention_mask, causal_mask(ops.shape(query)[1], ops.shape(key)[1]))
        if attention_mask is not None and len(attention_mask.shape) == 3:
            attention_mask = ops.expand_dims(attention_mask, 1)  # (B, T, S) -> (B, 1, T, S)
        u, v = query.shape[2], key.shape[2]
        g = u // v
        if self._flash_attention:
            if self._return_attention_scores:
                raise ValueError("Returning attention scores is not supported when flash attention is "
                                 "enabled. Please disable flash attention to access attention scores.")
            key, value = ops.repeat(key, g, axis=2), ops.repeat(value, g, axis=2)  # (B, S, u, H)
            heads = ops.dot_product_attention(query, key, value, mask=attention_mask,
                                              scale=1 / math.sqrt(self.head_dim), flash_attention=True)
            return heads, None
        t, s = ops.shape(query)[1], ops.shape(key)[1]
        # Group the query heads: (B, T, u, H) -> (B, u, T, H) -> (B, v, g, T, H); head u = group u // g.
        grouped = ops.reshape(ops.transpose(query, (0, 2, 1, 3)), (-1, v, g, t, query.shape[-1]))
        key = ops.expand_dims(ops.transpose(key, (0, 2, 1, 3)), 2)  # (B, S, v, H) -> (B, v, 1, S, H)
        value = ops.expand_dims(ops.transpose(value, (0, 2, 1, 3)), 2)  # (B, v, 1, S, H)
        if attention_mask is not None:
            heads_axis = attention_mask.shape[-3] if len(attention_mask.shape) >= 3 else 1
            if heads_axis == 1:  # the same for every head: (..., 1, T, S) -> (..., 1, 1, T, S)
                attention_mask = ops.expand_dims(attention_mask, -3)
            else:  # one per head: (B, u, T, S) -> (B, v, g, T, S)
                attention_mask = ops.reshape(attention_mask, (-1, v, g, t, s))
        heads, weights = scaled_dot_product_attention(grouped, key, value, mask=attention_mask)
        # heads (B, v, g, T, H), weights (B, v, g, T, S)
        if self.dropout > 0 and training:
            heads = ops.matmul(self.dropout_layer(weights, training=training), value)
        heads = ops.transpose(ops.reshape(heads, (-1, u, t, heads.shape[-1])), (0, 2, 1, 3))  # (B, T, u, H)
        return heads, ops.reshape(weights, (-1, u, t, s))  # (B, u, T, S)

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        if query_shape[-1] != value_shape[-1]:  # as Keras checks
            raise ValueError(f"The last dimension of `query_shape` and `value_shape` must be equal, but are "
                             f"{query_shape[-1]}, {value_shape[-1]}. Received: query_shape={tuple(query_shape)}, "
                             f"value_shape={tuple(value_shape)}")
        return super().compute_output_shape(query_shape, value_shape, key_shape)

    def get_config(self):
        config = super().get_config()
        for name in ("num_heads", "key_dim", "value_dim", "output_shape", "attention_axes"):
            config.pop(name)
        return {**config, "head_dim": self.head_dim, "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads}
