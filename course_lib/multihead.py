"""Multi-head attention: several scaled dot-product attentions side by side (lesson 08).

`MultiHeadAttention` is a drop-in replacement for `keras.layers.MultiHeadAttention`:
the same arguments and call, the same weights in the same order and shapes, so that
`ours.set_weights(keras_layer.get_weights())` gives the same outputs. It is written to
be read: one einsum per projection, one call to
`course_lib.attention.scaled_dot_product_attention` for all heads, the masks from
`course_lib.masks.compute_attention_mask`. Attention over several axes (the height and
width of an image) is the same computation: those axes are flattened into one sequence
axis and the other axes join the batch (`_fold`).

Shape letters: `B` batch size, `T` query length, `S` key/value length, `N` heads, `H`
key_dim, `Hv` value_dim, `dim` an input's width, `B'` the batch after folding.
"""

import math

import keras
from keras import ops

from course_lib.attention import scaled_dot_product_attention
from course_lib.checks import check_bool, check_positive_int, check_rate, check_seed, is_int, message
from course_lib.masks import as_bool_mask, causal_mask, combine_masks, compute_attention_mask


class _Projection:
    """One projection, `activation(einsum(equation, x, kernel) + bias)`. Not a layer: the
    kernel and bias are weights of the `MultiHeadAttention` itself (so their names and
    saved files stay those of lesson 08), gathered under the names of Keras's sublayers
    (`_query_dense.kernel`, ...). `regularize(output)` adds the activity regularizer's loss."""

    def __init__(self, equation, kernel, bias=None, activation=None, regularize=None):
        self.equation, self.kernel, self.bias = equation, kernel, bias
        self.activation, self.regularize = activation, regularize

    def __call__(self, x):
        x = ops.einsum(self.equation, x, self.kernel)
        if self.bias is not None:
            x = x + self.bias
        if self.activation is not None:
            x = self.activation(x)
        if self.regularize is not None:
            self.regularize(x)
        return x


def _flag(value, name):
    """A call flag: a bool, or 0/1 as Keras's own tests pass (`"False"` is a TypeError)."""
    if hasattr(value, "dtype") and len(getattr(value, "shape", (1,))) == 0:
        value = ops.convert_to_numpy(value).item()  # Keras hands numpy scalars to `call` as tensors
    return bool(value) if is_int(value) and value in (0, 1) else check_bool(value, name)


def _check_attention_axes(axes):
    axes = (axes,) if is_int(axes) else axes
    if axes is not None and not (isinstance(axes, (tuple, list)) and all(is_int(a) for a in axes)):
        raise TypeError(message("attention_axes", "an int, a tuple of ints or None", axes))
    return None if axes is None else tuple(int(a) for a in axes)


def _check_output_shape(output_shape):
    if not output_shape and not is_int(output_shape):  # None, () or []: the query's width
        return None
    sizes = (output_shape,) if is_int(output_shape) else output_shape
    if not isinstance(sizes, (tuple, list)) or not all(is_int(size) for size in sizes):
        raise TypeError(message("output_shape", "a positive integer, a tuple of them, or None", output_shape))
    return tuple(check_positive_int(size, "output_shape") for size in sizes)


@keras.saving.register_keras_serializable(package="course_lib")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention ("Attention Is All You Need", Vaswani et al., 2017).

    With `N = num_heads` heads, for every head `i`:

    1. Project: `Q_i = query @ Wq_i + bq_i`, `K_i = key @ Wk_i + bk_i`,
       `V_i = value @ Wv_i + bv_i`, of widths `key_dim`, `key_dim`, `value_dim`.
    2. Attend: `head_i = softmax(Q_i K_i^T / sqrt(key_dim), masked) V_i`, the scaled
       dot-product attention of lesson 05, computed for all heads at once.
    3. Gate (only with `use_gate=True`): `head_i *= sigmoid(query @ Wg_i + bg_i)`.
    4. Merge and project back: `output = concat(head_1 ... head_N) @ Wo + bo`, of
       width `output_shape` (by default the query's width).

    Weights, in Keras's order and shapes: `query_kernel (dim_q, N, H)`, `query_bias (N, H)`,
    `key_kernel`, `key_bias`, (`gate_kernel (dim_q, N, Hv)`, `gate_bias`,) `value_kernel
    (dim_v, N, Hv)`, `value_bias`, `output_kernel (N, Hv, *output_shape)`, `output_bias`.

    Differences from `keras.layers.MultiHeadAttention` (Keras 3.15):

    * A query that may attend to nothing (a fully masked row) gets all-zero weights,
      so its output is `output_bias`; Keras's default fused path averages the values
      there (with `return_attention_scores=True` it gives zeros too).
    * An explicit `query_mask` is used (Keras reads only the one attached to `query`).
      Numeric masks must hold only 0 and 1 (`masks.as_bool_mask`); Keras casts any.
      With inputs of rank > 3, the masks attached to the inputs apply position by
      position, and with several attention axes the causal mask and `sliding_window`
      follow the positions row by row (Keras's are undefined there).
    * No `EinsumDense` sublayers (so no LoRA or quantisation): `_query_dense` and the
      others are einsums on the layer's own weights. Only `flash_attention=True`
      calls the backend's fused kernel.
    * Arguments are checked by `course_lib.checks`: numpy integers are accepted, a
      wrong type (`num_heads=1.5`) raises a `TypeError`.

    Args:
        num_heads: number of attention heads `N`.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value. `None` means `key_dim`.
        dropout: dropout rate of the attention weights (training). Defaults to `0.0`.
        use_bias: whether the projections have biases. Defaults to `True`.
        output_shape: the output's feature shape, an int or a tuple. `None` means
            the query's last dimension. Defaults to `None`.
        attention_axes: the axes attention runs over, an int or a tuple. `None`
            means every axis but the batch and the features. Defaults to `None`.
        sliding_window: optional positive int `w`: query `i` may only attend to
            keys `j` with `|i - j| < w` (with `use_causal_mask`, the `w - 1` before
            it and itself). Defaults to `None`.
        flash_attention: `True` computes the heads with the backend's fused
            kernel (`keras.ops.dot_product_attention`). Defaults to `None`.
        kernel_initializer: initializer of the kernels. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer: optional regularizers of the weights.
        activity_regularizer: optional regularizer of each projection's output.
        kernel_constraint, bias_constraint: optional constraints on the weights.
        use_gate: whether the heads are gated (Qiu et al., 2025). Defaults to `False`.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        query: tensor `(batch_size, T, dim_q)`, or `(batch_size, *axes, dim_q)`.
        value: tensor `(batch_size, S, dim_v)`, or `(batch_size, *axes, dim_v)`.
        key: optional tensor shaped like `value` but its width; `None` means `value`.
        query_mask, value_mask, key_mask: optional boolean tensors `(batch_size, T)`,
            `(batch_size, S)`, `(batch_size, S)`, filled by Keras from the masks
            attached to the inputs (e.g. by `Embedding(mask_zero=True)`).
        attention_mask: optional boolean tensor `(batch_size, T, S)`, `(T, S)` or
            `(batch_size, num_heads, T, S)`, True = may attend (1/0 as in Keras);
            with `attention_axes`, broadcastable to the scores as in Keras.
        return_attention_scores: also return the attention weights. Defaults to `False`.
        training: whether dropout is active. Defaults to Keras's training flag.
        use_causal_mask: whether query `i` may only attend to keys `0..i`. Defaults to `False`.

    Returns:
        `output` `(batch_size, T, *output_shape)` (by default the query's shape), and
        with `return_attention_scores=True` the weights `(batch_size, num_heads, T, S)`,
        or `(batch_size, *other axes, num_heads, *attention axes of query, *of value)`.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> output, scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    >>> tuple(output.shape), tuple(scores.shape)
    ((2, 5, 8), (2, 2, 5, 5))
    >>> keras_layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    >>> _ = keras_layer(x, x)
    >>> layer.set_weights(keras_layer.get_weights())
    >>> bool(np.allclose(layer(x, x), keras_layer(x, x), atol=1e-5))
    True
    >>> images = np.zeros((2, 4, 6, 3), "float32")  # (batch, height, width, channels)
    >>> spatial = MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(1, 2))
    >>> tuple(spatial(images, images, return_attention_scores=True)[1].shape)
    (2, 2, 4, 6, 4, 6)
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, use_gate=False, seed=None, **kwargs):
        flash_attention = flash_attention is not None and check_bool(flash_attention, "flash_attention")
        dropout = check_rate(dropout, "dropout")
        if flash_attention and dropout > 0:
            raise ValueError("Dropout is not supported when flash attention is enabled. `dropout` "
                             f"must be 0 with `flash_attention=True`. Received: dropout={dropout}")
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_positive_int(key_dim, "key_dim")
        self.value_dim = check_positive_int(value_dim, "value_dim", allow_none=True) or self.key_dim
        self.dropout = dropout
        self.use_bias = check_bool(use_bias, "use_bias")
        # `_output_shape` as in Keras: `output_shape` is an attribute models read in `summary()`.
        self._output_shape = _check_output_shape(output_shape)
        self.attention_axes = _check_attention_axes(attention_axes)
        self._sliding_window = check_positive_int(sliding_window, "sliding_window", allow_none=True)
        self._flash_attention = flash_attention
        self._use_gate = check_bool(use_gate, "use_gate")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self._activity_regularizer = keras.regularizers.get(activity_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = check_seed(seed)
        self.dropout_layer = keras.layers.Dropout(dropout, seed=self.seed, dtype=self.dtype_policy)

    def _add_projection(self, name, kernel_shape, equation, activation=None):
        """The weights `{name}_kernel` and (with `use_bias`) `{name}_bias`, and their einsum."""
        def weight(kind, shape, initializer, regularizer, constraint):
            # A fresh copy of the initializer for each weight, so that no two share a seed.
            initializer = initializer.__class__.from_config(initializer.get_config())
            return self.add_weight(name=f"{name}_{kind}", shape=shape, initializer=initializer,
                                   regularizer=regularizer, constraint=constraint)

        kernel = weight("kernel", kernel_shape, self.kernel_initializer, self.kernel_regularizer,
                        self.kernel_constraint)
        bias = None if not self.use_bias else weight(
            "bias", kernel_shape[2 if name == "output" else 1:], self.bias_initializer,
            self.bias_regularizer, self.bias_constraint)
        regularize = self._regularize_activity if self._activity_regularizer else None
        return _Projection(equation, kernel, bias, activation, regularize)

    def _regularize_activity(self, output):
        loss = self._activity_regularizer(output)  # per example, as Keras does for a layer's output
        self.add_loss(loss / ops.cast(ops.shape(output)[0], loss.dtype))

    def _axes_for(self, rank):
        """The attention axes for inputs of rank `rank`, as indices >= 0."""
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = tuple(axis + rank if axis < 0 else axis for axis in self.attention_axes)
        if len(set(axes)) != len(axes) or not all(1 <= axis <= rank - 2 for axis in axes):
            raise ValueError(message(
                "attention_axes", f"distinct axes of the inputs between the batch and the features "
                f"(1 to {rank - 2} or {1 - rank} to -2 for inputs of rank {rank})", self.attention_axes))
        return axes

    def _check_shapes(self, query_shape, value_shape, key_shape):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        received = f"Received: query_shape={query_shape}, value_shape={value_shape} and key_shape={key_shape}"
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(f"All dimensions of `value` and `key`, except the last one, must be equal. {received}")
        rank = len(query_shape)
        if rank < 3 or len(value_shape) != rank:
            raise ValueError("`query` and `value` must have the same rank, at least 3: (batch_size, length, "
                             f"dim) or (batch_size, *axes, dim). {received}")
        axes = self._axes_for(rank)
        for axis in set(range(1, rank - 1)) - set(axes):
            if None not in (query_shape[axis], value_shape[axis]) and query_shape[axis] != value_shape[axis]:
                raise ValueError(f"`query` and `value` must have the same size on axis {axis}, which is not "
                                 f"an attention axis. {received}")
        return query_shape, value_shape, key_shape

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = self._check_shapes(query_shape, value_shape, key_shape)
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if shape[-1] is None:
                raise ValueError(f"The last dimension of `{name}` must be known. Received: {name} with shape {shape}")
        self._axes = self._axes_for(len(query_shape))
        self._folded = len(query_shape) > 3  # else the attention axis is the length axis
        n, h, hv = self.num_heads, self.key_dim, self.value_dim
        output_shape = self._output_shape or (query_shape[-1],)
        # Explicit letters, not "...": Keras turns such einsums into matmuls on TensorFlow.
        lead = "abcefgijklm"[: len(query_shape) - 1]  # all axes but the features: "ab" for (B, T)
        project = f"{lead}d,dnh->{lead}nh"  # (B, T, dim) x (dim, N, H) -> (B, T, N, H): split into heads
        # Keras's order: query, key, gate, value, output; each kernel, then its bias.
        self._query_dense = self._add_projection("query", (query_shape[-1], n, h), project)
        self._key_dense = self._add_projection("key", (key_shape[-1], n, h), project)
        if self._use_gate:
            self._gate_dense = self._add_projection("gate", (query_shape[-1], n, hv), project, ops.sigmoid)
        self._value_dense = self._add_projection("value", (value_shape[-1], n, hv), project)
        # Merge the heads and project: (B, T, N, Hv) x (N, Hv, *output_shape) -> (B, T, *output_shape)
        out = "opqrstuvwxyz"[: len(output_shape)]
        self._output_dense = self._add_projection("output", (n, hv, *output_shape), f"{lead}nh,nh{out}->{lead}{out}")

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
        use_causal_mask = _flag(use_causal_mask, "use_causal_mask")
        return_attention_scores = _flag(return_attention_scores, "return_attention_scores")
        key = value if key is None else key
        self._check_inputs(query, value, key)
        query_heads = self._query_dense(query)  # (B, T, N, H)
        key_heads = self._key_dense(key)  # (B, S, N, H)
        value_heads = self._value_dense(value)  # (B, S, N, Hv)
        masks = [as_bool_mask(query_mask, "query_mask"), as_bool_mask(value_mask, "value_mask"),
                 as_bool_mask(key_mask, "key_mask")]  # lists, and 0/1 numbers as in Keras, are accepted
        attention_mask = as_bool_mask(attention_mask, "attention_mask")
        if self._folded:  # attention over several axes: fold them into one sequence axis
            if attention_mask is not None:
                attention_mask = self._fold_scores_mask(attention_mask, query, value)
            masks = [None if m is None else self._fold(m, features=0) for m in masks]
            query_heads, key_heads, value_heads = (self._fold(x) for x in (query_heads, key_heads, value_heads))
        # The masks need only the lengths T and S, on axis 1 of the (folded) heads.
        mask = self._compute_attention_mask(query_heads, value_heads, *masks, attention_mask, use_causal_mask)
        heads, weights = self._compute_attention(query_heads, key_heads, value_heads, mask, training,
                                                 return_attention_scores)  # (B, T, N, Hv), (B, N, T, S)
        if self._folded:
            heads, weights = self._unfold(heads, weights, query, value)  # (B, *axes, N, Hv)
        if self._use_gate:
            heads = heads * self._gate_dense(query)  # (B, T, N, Hv)
        output = self._output_dense(heads)  # (B, T, *output_shape)
        if return_attention_scores:
            return output, weights
        return output

    def _check_inputs(self, query, value, key):
        inputs = (("query", query, self._query_dense), ("value", value, self._value_dense),
                  ("key", key, self._key_dense))
        if len({tensor.shape[0] for _, tensor, _ in inputs} - {None}) > 1:
            shapes = ", ".join(f"{name} with shape {tuple(tensor.shape)}" for name, tensor, _ in inputs)
            raise ValueError(f"`query`, `value` and `key` must have the same batch size. Received: {shapes}")
        self._check_shapes(query.shape, value.shape, key.shape)
        for name, tensor, dense in inputs:
            if tensor.shape[-1] is not None and tensor.shape[-1] != dense.kernel.shape[0]:
                raise ValueError(f"The last dimension of `{name}` must be {dense.kernel.shape[0]}, the size this "
                                 f"layer was built for. Received: {name} with shape {tuple(tensor.shape)}")

    def _fold(self, x, features=2):
        """`(B, *axes, *f)` -> `(B', L, *f)` (`f`: the last `features` axes, here `N, H`):
        the attention axes, flattened, are the sequence axis of length `L`, the other
        axes join the batch (`B' = B * others`)."""
        rank = len(x.shape)
        others = [a for a in range(1, rank - features) if a not in self._axes]
        x = ops.transpose(x, (0, *others, *self._axes, *range(rank - features, rank)))
        shape = ops.shape(x)  # (B, *others, *attention, *f)
        length = math.prod(shape[1 + len(others): rank - features])
        return ops.reshape(x, (-1, length, *shape[rank - features:]))  # (B', L, *f)

    def _scores_shape(self, q, v, heads=None):
        """Keras's layout of the scores: `(B, *other axes, N, *attention axes of q, *of v)`."""
        axes = self._axes_for(len(q))
        others = [q[a] for a in range(1, len(q) - 1) if a not in axes]
        return (q[0], *others, heads or self.num_heads, *[q[a] for a in axes], *[v[a] for a in axes])

    def _fold_scores_mask(self, mask, query, value):
        """A mask broadcastable to the scores (axes missing before the heads are added, as
        Keras does) as `(B', N or 1, T, S)`."""
        rank = len(self._scores_shape(query.shape, value.shape))
        while len(mask.shape) < rank:
            mask = ops.expand_dims(mask, -2 * len(self._axes) - 1)
        heads = mask.shape[rank - 2 * len(self._axes) - 1]
        shape = self._scores_shape(ops.shape(query), ops.shape(value), heads)
        mask = ops.broadcast_to(mask, shape)  # (B, *others, N or 1, *attention_q, *attention_k)
        t, s = math.prod(shape[-2 * len(self._axes):-len(self._axes)]), math.prod(shape[-len(self._axes):])
        return ops.reshape(mask, (-1, heads, t, s))  # (B', N or 1, T, S)

    def _unfold(self, heads, weights, query, value):
        """The inverse of `_fold` for the heads, and the weights in Keras's layout."""
        rank, shape = len(query.shape), ops.shape(query)
        order = (0, *[a for a in range(1, rank - 1) if a not in self._axes], *self._axes)
        features = tuple(heads.shape[2:])
        heads = ops.reshape(heads, (-1, *[shape[a] for a in order[1:]], *features))  # (B, *others, *attention, N, Hv)
        inverse = sorted(range(rank - 1), key=order.__getitem__)
        heads = ops.transpose(heads, (*inverse, *range(rank - 1, rank - 1 + len(features))))  # (B, *axes, N, Hv)
        if weights is not None:  # (B', N, T, S) -> (B, *others, N, *attention_q, *attention_k)
            weights = ops.reshape(weights, (-1, *self._scores_shape(shape, ops.shape(value))[1:]))
        return heads, weights

    def _compute_attention_mask(self, query, value, query_mask=None, value_mask=None, key_mask=None,
                                attention_mask=None, use_causal_mask=False):
        """The mask of every source (`course_lib.masks`), broadcastable to (B, N, T, S)."""
        per_head_mask = None
        if attention_mask is not None and len(attention_mask.shape) == 4:
            # (B, N, T, S): one mask per head, ANDed in after the (B, T, S) rule.
            per_head_mask, attention_mask = attention_mask, None
        mask = compute_attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                      use_causal_mask)
        if self._sliding_window is not None:
            rows = ops.expand_dims(ops.arange(ops.shape(query)[1]), 1)  # (T, 1)
            cols = ops.expand_dims(ops.arange(ops.shape(value)[1]), 0)  # (1, S)
            mask = combine_masks(mask, ops.abs(rows - cols) < self._sliding_window)  # (T, S) band
        if mask is not None and len(mask.shape) == 3:
            mask = ops.expand_dims(mask, 1)  # (B, T, S) -> (B, 1, T, S): same for every head
        return combine_masks(mask, per_head_mask)

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        """Attention of every head on projected inputs (Keras's override point).

        `query (B, T, N, H)`, `key (B, S, N, H)`, `value (B, S, N, Hv)`, mask
        broadcastable to `(B, N, T, S)` (a `(B, T, S)` mask applies to all heads).
        Returns the heads `(B, T, N, Hv)` and the weights `(B, N, T, S)`."""
        if use_causal_mask:  # `call` has it in the mask already; direct callers may not
            attention_mask = combine_masks(attention_mask, causal_mask(ops.shape(query)[1], ops.shape(key)[1]))
        if attention_mask is not None and len(attention_mask.shape) == 3:
            attention_mask = ops.expand_dims(attention_mask, 1)  # (B, T, S) -> (B, 1, T, S)
        if self._flash_attention:
            if return_attention_scores:
                raise ValueError("Returning attention scores is not supported when flash attention is "
                                 "enabled. Please disable flash attention to access attention scores.")
            heads = ops.dot_product_attention(query, key, value, mask=attention_mask,
                                              scale=1 / math.sqrt(self.key_dim), flash_attention=True)
            return heads, None
        # Heads become a batch axis: (B, L, N, H) -> (B, N, L, H)
        query, key, value = (ops.transpose(x, (0, 2, 1, 3)) for x in (query, key, value))
        heads, weights = scaled_dot_product_attention(query, key, value, mask=attention_mask)
        # heads: (B, N, T, Hv), weights: (B, N, T, S)
        if self.dropout > 0 and training:
            # Dropout acts on the weights, so the heads are recomputed from them.
            heads = ops.matmul(self.dropout_layer(weights, training=training), value)
        heads = ops.transpose(heads, (0, 2, 1, 3))  # (B, N, T, Hv) -> (B, T, N, Hv)
        return heads, weights

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, _, _ = self._check_shapes(query_shape, value_shape, key_shape)
        return query_shape[:-1] + (self._output_shape or query_shape[-1:])

    def compute_output_spec(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
                            attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
        shape = self.compute_output_shape(query.shape, value.shape, None if key is None else key.shape)
        output = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        scores = keras.KerasTensor(self._scores_shape(query.shape, value.shape), dtype=self.compute_dtype)
        return output, scores

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self._use_gate,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": self._sliding_window,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self._activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }
