"""Multi-head attention: several scaled dot-product attentions side by side (lesson 08).

`MultiHeadAttention` is a drop-in replacement for `keras.layers.MultiHeadAttention`
for the arguments the course uses: same constructor arguments, same call signature,
same weights in the same order and shapes, so that
`ours.set_weights(keras_layer.get_weights())` gives the same outputs. It is written
to be read: four projections held as plain weights, one call to
`course_lib.attention.scaled_dot_product_attention` for all heads at once, and the
masks built by `course_lib.masks.compute_attention_mask`.

Letters in the shape comments: `B` batch size, `T` query length, `S` key/value
length, `N` number of heads, `H` key_dim (per head), `Hv` value_dim (per head),
`dim` an input's feature size.
"""

import keras
from keras import ops

from course_lib.attention import scaled_dot_product_attention
from course_lib.masks import causal_mask, combine_masks, compute_attention_mask


def _positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = "a positive integer or `None`" if allow_none else "a positive integer"
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected {expected}. "
            f"Received: {name}={value!r}"
        )
    return value


def _clone(initializer):
    """A fresh copy of a Keras initializer, so that two weights never share a seed."""
    return initializer.__class__.from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="course_lib")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention ("Attention Is All You Need", Vaswani et al., 2017).

    With `N = num_heads` heads, for every head `i`:

    1. Project: `Q_i = query @ Wq_i + bq_i`, `K_i = key @ Wk_i + bk_i`,
       `V_i = value @ Wv_i + bv_i`, of widths `key_dim`, `key_dim`, `value_dim`.
    2. Attend: `head_i = softmax(Q_i K_i^T / sqrt(key_dim), masked) V_i`, the scaled
       dot-product attention of lesson 05, computed for all heads at once.
    3. Merge: concatenate `head_1 ... head_N` along the features, `(T, N * value_dim)`.
    4. Project back: `output = concat(heads) @ Wo + bo`, of width `output_shape`
       (by default the query's width).

    The weights have Keras's shapes and order: `query_kernel (dim_q, N, key_dim)`,
    `query_bias (N, key_dim)`, `key_kernel (dim_k, N, key_dim)`, `key_bias`,
    `value_kernel (dim_v, N, value_dim)`, `value_bias (N, value_dim)`,
    `output_kernel (N, value_dim, *output_shape)`, `output_bias (*output_shape)`
    (no biases with `use_bias=False`).

    Differences from `keras.layers.MultiHeadAttention` (Keras 3.15):

    * A query that may attend to nothing (a fully masked row, e.g. a padded query)
      gets all-zero attention weights, so its output is `output_bias`. Keras gives
      the same zeros when it returns the scores or applies dropout, but its default
      fused path (`ops.dot_product_attention`) averages all the values uniformly
      for such a row. Rows with at least one allowed key are identical.
    * An explicitly passed `query_mask` is used (Keras ignores it and only reads
      the mask attached to `query`). As in Keras, the output carries the mask
      attached to `query` (`supports_masking`), so padding keeps flowing downstream.
    * Only inputs of shape `(batch_size, length, dim)` are supported, with attention
      over the length axis. `attention_axes` (other than that axis),
      `flash_attention=True`, `sliding_window`, `use_gate=True` and
      `activity_regularizer` raise a `ValueError`; LoRA and quantisation of the
      projections are not available (there are no `EinsumDense` sublayers).

    Args:
        num_heads: number of attention heads `N`.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value. `None` means `key_dim`.
            Defaults to `None`.
        dropout: dropout rate applied to the attention weights during training.
            Defaults to `0.0`.
        use_bias: whether the four projections have biases. Defaults to `True`.
        output_shape: the output's feature shape, an int or a tuple. `None` means
            the query's last dimension. Defaults to `None`.
        attention_axes: only `None` (or the length axis, `1` / `-2`) is supported.
        flash_attention: only `None` or `False` is supported.
        kernel_initializer: initializer of the four kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the four biases. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer of the kernels.
        bias_regularizer: optional regularizer of the biases.
        activity_regularizer: only `None` is supported.
        kernel_constraint: optional constraint on the kernels.
        bias_constraint: optional constraint on the biases.
        sliding_window: only `None` is supported.
        use_gate: only `False` is supported.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        query: tensor of shape `(batch_size, T, dim_q)`.
        value: tensor of shape `(batch_size, S, dim_v)`.
        key: optional tensor of shape `(batch_size, S, dim_k)`; `None` means `value`.
        query_mask: optional boolean tensor `(batch_size, T)`, filled by Keras from
            the mask attached to `query` (e.g. `Embedding(mask_zero=True)`).
        value_mask: optional boolean tensor `(batch_size, S)`, filled likewise.
        key_mask: optional boolean tensor `(batch_size, S)`, filled likewise.
        attention_mask: optional boolean tensor of shape `(batch_size, T, S)`,
            `(T, S)` or `(batch_size, num_heads, T, S)`; True = may attend.
        return_attention_scores: also return the attention weights.
            Defaults to `False`.
        training: whether dropout is active. Defaults to Keras's training flag.
        use_causal_mask: whether query `i` may only attend to keys `0..i`.
            Defaults to `False`.

    Returns:
        `output` of shape `(batch_size, T, *output_shape)` (by default
        `(batch_size, T, dim_q)`), and with `return_attention_scores=True` also the
        attention weights of shape `(batch_size, num_heads, T, S)`.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        sliding_window=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        _positive_int(num_heads, "num_heads")
        _positive_int(key_dim, "key_dim")
        _positive_int(value_dim, "value_dim", allow_none=True)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                "Received an invalid value for argument `dropout`, expected a number in "
                f"[0, 1). Received: dropout={dropout!r}"
            )
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise ValueError(
                    f"Invalid `output_shape`: {output_shape}. When specified, the "
                    "`output_shape` should be of type tuple, list, or int."
                ) from None
            for size in output_shape:
                _positive_int(size, "output_shape")
        else:
            output_shape = None
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        if attention_axes is not None and tuple(attention_axes) not in ((1,), (-2,)):
            raise ValueError(
                "Only attention over the length axis of inputs of shape (batch_size, "
                "length, dim) is supported: `attention_axes` must be None, 1 or -2. "
                f"Received: attention_axes={attention_axes!r}"
            )
        unsupported = {
            "flash_attention": (flash_attention, (None, False)),
            "sliding_window": (sliding_window, (None,)),
            "use_gate": (use_gate, (False,)),
            "activity_regularizer": (activity_regularizer, (None,)),
        }
        for name, (value, allowed) in unsupported.items():
            if not any(value is a for a in allowed):
                raise ValueError(
                    f"`{name}` is not supported by course_lib's MultiHeadAttention "
                    f"(use keras.layers.MultiHeadAttention). Received: {name}={value!r}"
                )
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim else key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        # Named `_output_shape` as in Keras: `output_shape` would clash with the
        # attribute of that name that models read in `summary()`.
        self._output_shape = output_shape
        self.attention_axes = None if attention_axes is None else tuple(attention_axes)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = seed
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)

    def _projection(self, name, kernel_shape, bias_shape):
        """`{name}_kernel` and, with `use_bias`, `{name}_bias` (else `None`)."""
        kernel = self.add_weight(
            name=f"{name}_kernel",
            shape=kernel_shape,
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        bias = None
        if self.use_bias:
            bias = self.add_weight(
                name=f"{name}_bias",
                shape=bias_shape,
                initializer=_clone(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        return kernel, bias

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be "
                f"equal. Received: value_shape={value_shape} and key_shape={key_shape}"
            )
        for name, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"`{name}` must have shape (batch_size, length, dim); other ranks "
                    "(Keras's `attention_axes`) are not supported. Received: "
                    f"{name} with shape {tuple(shape)}"
                )
            if shape[-1] is None:
                raise ValueError(
                    f"The last dimension of `{name}` must be known. Received: "
                    f"{name} with shape {tuple(shape)}"
                )
        n, h, hv = self.num_heads, self.key_dim, self.value_dim
        output_shape = self._output_shape or (query_shape[-1],)
        # Keras's order: query, key, value, output; each kernel, then its bias.
        self.query_kernel, self.query_bias = self._projection("query", (query_shape[-1], n, h), (n, h))
        self.key_kernel, self.key_bias = self._projection("key", (key_shape[-1], n, h), (n, h))
        self.value_kernel, self.value_bias = self._projection(
            "value", (value_shape[-1], n, hv), (n, hv)
        )
        self.output_kernel, self.output_bias = self._projection(
            "output", (n, hv, *output_shape), output_shape
        )

    def _project(self, x, kernel, bias):
        # (B, L, dim) x (dim, N, H) -> (B, L, N, H): project and split into heads
        x = ops.einsum("bld,dnh->blnh", x, kernel)
        return x if bias is None else x + bias

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        if key is None:
            key = value
        self._check_inputs(query, value, key)
        attention_mask = self._compute_attention_mask(
            query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask
        )
        query_heads = self._project(query, self.query_kernel, self.query_bias)  # (B, T, N, H)
        key_heads = self._project(key, self.key_kernel, self.key_bias)  # (B, S, N, H)
        value_heads = self._project(value, self.value_kernel, self.value_bias)  # (B, S, N, Hv)
        heads, weights = self._compute_attention(
            query_heads, key_heads, value_heads, attention_mask, training, return_attention_scores
        )  # (B, T, N, Hv), (B, N, T, S)
        # Merge the heads and project back:
        # (B, T, N, Hv) x (N, Hv, *output_shape) -> (B, T, *output_shape)
        out = "opqrstuvwxyz"[: len(self.output_kernel.shape) - 2]
        output = ops.einsum(f"btnh,nh{out}->bt{out}", heads, self.output_kernel)
        if self.output_bias is not None:
            output = output + self.output_bias
        if return_attention_scores:
            return output, weights
        return output

    def _check_inputs(self, query, value, key):
        inputs = (("query", query, self.query_kernel), ("value", value, self.value_kernel),
                  ("key", key, self.key_kernel))
        batch_sizes = {tensor.shape[0] for _, tensor, _ in inputs} - {None}
        if len(batch_sizes) > 1:
            shapes = ", ".join(f"{name} with shape {tuple(tensor.shape)}" for name, tensor, _ in inputs)
            raise ValueError(
                f"`query`, `value` and `key` must have the same batch size. Received: {shapes}"
            )
        for name, tensor, kernel in inputs:
            if tensor.shape[-1] is not None and tensor.shape[-1] != kernel.shape[0]:
                raise ValueError(
                    f"The last dimension of `{name}` must be {kernel.shape[0]}, the size "
                    f"this layer was built for. Received: {name} with shape {tuple(tensor.shape)}"
                )

    def _compute_attention_mask(
        self,
        query,
        value,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
    ):
        """The mask of every source (`course_lib.masks`), broadcastable to (B, N, T, S)."""
        per_head_mask = None
        if attention_mask is not None and len(attention_mask.shape) == 4:
            # (B, N, T, S): one mask per head, ANDed in after the (B, T, S) rule.
            per_head_mask, attention_mask = attention_mask, None
        mask = compute_attention_mask(
            query,
            value,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            use_causal_mask=bool(use_causal_mask),
        )
        if mask is not None and len(mask.shape) == 3:
            mask = ops.expand_dims(mask, 1)  # (B, T, S) -> (B, 1, T, S): same for every head
        return combine_masks(mask, per_head_mask)

    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        """Attention of every head on projected inputs (Keras's override point).

        `query (B, T, N, H)`, `key (B, S, N, H)`, `value (B, S, N, Hv)`, mask
        broadcastable to `(B, N, T, S)` (a `(B, T, S)` mask applies to all heads).
        Returns the heads `(B, T, N, Hv)` and the weights `(B, N, T, S)`."""
        if use_causal_mask:
            attention_mask = combine_masks(
                attention_mask, causal_mask(ops.shape(query)[1], ops.shape(key)[1])
            )
        if attention_mask is not None and len(attention_mask.shape) == 3:
            attention_mask = ops.expand_dims(attention_mask, 1)  # (B, T, S) -> (B, 1, T, S)
        # Heads become a batch axis: (B, L, N, H) -> (B, N, L, H)
        query = ops.transpose(query, (0, 2, 1, 3))
        key = ops.transpose(key, (0, 2, 1, 3))
        value = ops.transpose(value, (0, 2, 1, 3))
        heads, weights = scaled_dot_product_attention(query, key, value, mask=attention_mask)
        # heads: (B, N, T, Hv), weights: (B, N, T, S)
        if self.dropout > 0 and training:
            # Dropout acts on the weights, so the heads are recomputed from them.
            heads = ops.matmul(self.dropout_layer(weights, training=training), value)
        heads = ops.transpose(heads, (0, 2, 1, 3))  # (B, N, T, Hv) -> (B, T, N, Hv)
        return heads, weights

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be "
                f"equal. Received: value_shape={value_shape} and key_shape={key_shape}"
            )
        if self._output_shape:
            return query_shape[:-1] + self._output_shape
        return query_shape

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        key_shape = None if key is None else key.shape
        output_shape = self.compute_output_shape(query.shape, value.shape, key_shape)
        output = keras.KerasTensor(output_shape, dtype=self.compute_dtype)
        if return_attention_scores:
            scores_shape = (query.shape[0], self.num_heads, query.shape[1], value.shape[1])
            return output, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)
        return output

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": False,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": None,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": None,
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "seed": self.seed,
        }
