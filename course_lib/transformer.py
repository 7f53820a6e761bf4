"""The Transformer's blocks: encoder block and decoder block (lesson 09).

* `FeedForward` (from `course_lib.feedforward`): the position-wise feed-forward
  network, `Dense(intermediate_dim, activation) -> dropout -> Dense(width)`.
* `TransformerEncoderBlock`: self-attention, then the feed-forward network, each
  wrapped in dropout, a residual connection and layer normalisation.
* `TransformerDecoderBlock`: causal self-attention, cross-attention over the encoder's
  outputs (optional), then the feed-forward network, wrapped likewise; with a
  key/value cache for decoding one token at a time (`course_lib.kv_cache`).

The blocks are drop-ins for `keras_hub.layers.TransformerEncoder` and
`TransformerDecoder`: the same arguments and calls, the same weights in the same order,
so that `ours.set_weights(keras_hub_layer.get_weights())` gives the same outputs. They
are built on `course_lib.multihead.MultiHeadAttention` (lesson 08) and its scaled
dot-product attention (lesson 05).

Post-norm or pre-norm (`normalize_first`). Each sublayer `f` (attention or
feed-forward) is used as `LayerNorm(x + dropout(f(x)))` (post-norm, as in "Attention Is
All You Need") or `x + dropout(f(LayerNorm(x)))` (pre-norm, as in GPT-2): in pre-norm
the residual path from input to output goes through no normalisation at all.

Shape letters: `B` batch size, `T` decoder (query) length, `S` encoder (source) length,
`C` width (`d_model`), `N` heads, `H = C // N` head size, `L` cache length.
"""

import keras
from keras import ops

from course_lib.checks import check_bool, check_number, check_positive_int, check_rate, check_shape_rank, message
from course_lib.feedforward import FeedForward, clone_initializer, get_activation
from course_lib.kv_cache import CachedMultiHeadAttention
from course_lib.masks import as_bool_mask, combine_masks
from course_lib.multihead import MultiHeadAttention


def _merge_masks(padding_mask, attention_mask, padding_name, attention_name):
    """keras-hub's rule: a padding mask `(B, S)` as `(B, 1, S)`, ANDed with an attention
    mask `(B, T, S)`; `None` when neither is given."""
    padding_mask = as_bool_mask(padding_mask, padding_name)
    attention_mask = as_bool_mask(attention_mask, attention_name)
    if padding_mask is not None:
        check_shape_rank(padding_mask.shape, padding_name, 2, "(batch_size, length)")
        padding_mask = ops.expand_dims(padding_mask, 1)  # (B, S) -> (B, 1, S)
    if attention_mask is not None:
        check_shape_rank(attention_mask.shape, attention_name, 3, "(batch_size, T, S)")
    return combine_masks(padding_mask, attention_mask)


def _with_cache(outputs):
    """`(output, scores, cache)` from a `CachedMultiHeadAttention`'s outputs; cache `None` if it had none."""
    return outputs if len(outputs) == 3 else (*outputs, None)


def _causal_mask(query_length, key_length, start):
    """`(1, T, L)`: query `i`, which sits at position `start + i`, may attend to keys
    `0 .. start + i` (with `start = 0` the usual lower triangle)."""
    rows = ops.arange(query_length, dtype="int32") + ops.cast(start, "int32")  # (T,)
    cols = ops.arange(key_length, dtype="int32")  # (L,)
    return ops.expand_dims(ops.expand_dims(rows, 1) >= ops.expand_dims(cols, 0), 0)  # (1, T, L)


class _TransformerBlock(keras.layers.Layer):
    """What the encoder and decoder blocks share: arguments, sublayer wiring, config."""

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="relu", layer_norm_epsilon=1e-5,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", normalize_first=False, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = check_positive_int(intermediate_dim, "intermediate_dim")
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.dropout = check_rate(dropout, "dropout")
        self.activation = get_activation(activation)
        self.layer_norm_epsilon = check_number(layer_norm_epsilon, "layer_norm_epsilon", minimum=0)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.normalize_first = check_bool(normalize_first, "normalize_first")
        self.supports_masking = True

    def _head_size(self, shape, name):
        """`H = C // N` from an input shape `(B, T, C)`, with the checks."""
        shape = check_shape_rank(shape, name, 3, "(batch_size, length, width)")
        if shape[-1] is None:
            raise ValueError(f"The width of `{name}` must be known. Received: {name} with shape {shape}")
        if shape[-1] % self.num_heads:
            raise ValueError(message("num_heads", f"a divisor of the width of `{name}` ({shape[-1]})",
                                     self.num_heads))
        return shape[-1] // self.num_heads

    def _check_width(self, tensor, name, width):
        shape = check_shape_rank(tensor.shape, name, 3, "(batch_size, length, width)")
        if shape[-1] != width:
            raise ValueError(f"The width of `{name}` must be {width}, the one this layer was built for. "
                             f"Received: {name} with shape {shape}")

    def _attention(self, name, head_size, attention_class=MultiHeadAttention, **shapes):
        """An attention sublayer, its layer norm and its dropout, built."""
        attention = attention_class(
            num_heads=self.num_heads, key_dim=head_size, value_dim=head_size, dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer), dtype=self.dtype_policy, name=name)
        attention.build(**shapes)
        return attention, self._norm(f"{name}_layer_norm", shapes["query_shape"]), self._drop(f"{name}_dropout")

    def _norm(self, name, shape):
        norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)
        norm.build(shape)
        return norm

    def _drop(self, name):
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def _make_feedforward(self, shape):
        feedforward = FeedForward(  # no inner dropout: keras-hub drops out after the sublayer only
            self.intermediate_dim, activation=self.activation, kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer, dtype=self.dtype_policy, name="feedforward")
        feedforward.build(shape)
        return feedforward

    def _pre(self, x, norm):
        """A sublayer's input: normalised first in pre-norm, as is in post-norm."""
        return norm(x) if self.normalize_first else x

    def _add(self, y, residual, norm, dropout, training):
        """A sublayer's output `y`: dropout, residual sum, normalised after in post-norm."""
        x = dropout(y, training=training) + residual
        return x if self.normalize_first else norm(x)

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "normalize_first": self.normalize_first,
        }


@keras.saving.register_keras_serializable(package="course_lib")
class TransformerEncoderBlock(_TransformerBlock):
    """Transformer encoder block ("Attention Is All You Need", Vaswani et al., 2017).

    1. Self-attention: every position attends to every (unpadded) position,
       `x = x + dropout(MultiHeadAttention(x, x))` with `N = num_heads` heads of size
       `C // N`, then layer normalisation (post-norm; pre-norm normalises first).
    2. Feed-forward: `x = x + dropout(FeedForward(x))`, then layer normalisation.

    A drop-in for `keras_hub.layers.TransformerEncoder`: the same arguments, call and
    weights (self-attention `query, key, value, output` kernels and biases, the two
    layer norms' `gamma, beta`, then the feed-forward kernels and biases), so
    `set_weights(keras_hub_layer.get_weights())` gives the same outputs. Masks as in
    keras-hub: `padding_mask` and a mask attached to `inputs` (by
    `Embedding(mask_zero=True)`) hide padded keys, `attention_mask` is ANDed in; the
    attached mask also hides padded queries (Keras's attention does so): such a query
    attends to nothing and gets attention output 0 here, where Keras averages the
    values (only padded positions differ). Also different: the width must be a
    multiple of `num_heads`, and wrong arguments raise errors that name them.

    Args:
        intermediate_dim: width of the feed-forward network's hidden layer.
        num_heads: number of attention heads; must divide the input width.
        dropout: dropout rate of the attention weights and of each sublayer's
            output (training). Defaults to `0.0`.
        activation: activation of the feed-forward network. Defaults to `"relu"`.
        layer_norm_epsilon: epsilon of the layer normalisations. Defaults to `1e-5`.
        kernel_initializer: initializer of the kernels. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        normalize_first: `True` for pre-norm (normalise each sublayer's input),
            `False` for post-norm (normalise after the residual sum, as in the
            paper). Defaults to `False`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor of shape `(batch_size, T, C)`.
        padding_mask: optional boolean tensor `(batch_size, T)`, True = real token.
        attention_mask: optional boolean tensor `(batch_size, T, T)`, True = may attend.
        training: whether dropout is active.
        return_attention_scores: also return the attention weights. Defaults to `False`.

    Returns:
        A tensor of shape `(batch_size, T, C)` (carrying the mask of `inputs`), and
        with `return_attention_scores=True` also the weights `(batch_size, N, T, T)`.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    >>> block = TransformerEncoderBlock(intermediate_dim=16, num_heads=2)
    >>> outputs, scores = block(x, padding_mask=[[1, 1, 1, 0, 0]] * 2, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 5, 8), (2, 2, 5, 5))
    >>> float(ops.max(scores[:, :, :, 3:]))  # nobody attends to the padding
    0.0
    """

    def build(self, inputs_shape):
        head_size = self._head_size(inputs_shape, "inputs")
        # keras-hub's order: attention, its layer norm, the feed-forward layer norm, feed-forward.
        self._self_attention_layer, self._self_attention_layer_norm, self._self_attention_dropout = (
            self._attention("self_attention_layer", head_size, query_shape=inputs_shape, value_shape=inputs_shape))
        self._feedforward_layer_norm = self._norm("feedforward_layer_norm", inputs_shape)
        self._feedforward = self._make_feedforward(inputs_shape)
        self._feedforward_dropout = self._drop("feedforward_dropout")

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False):
        self._check_width(inputs, "inputs", self._self_attention_layer._query_dense.kernel.shape[0])
        mask = _merge_masks(padding_mask, attention_mask, "padding_mask", "attention_mask")  # (B, 1 or T, T)
        x = inputs  # (B, T, C)
        h = self._pre(x, self._self_attention_layer_norm)
        # The mask attached to `h` (from `inputs`) reaches the attention as its `query_mask` and `value_mask`.
        h, scores = self._self_attention_layer(h, h, attention_mask=mask, training=training,
                                               return_attention_scores=True)  # (B, T, C), (B, N, T, T)
        x = self._add(h, x, self._self_attention_layer_norm, self._self_attention_dropout, training)
        h = self._feedforward(self._pre(x, self._feedforward_layer_norm), training=training)  # (B, T, C)
        x = self._add(h, x, self._feedforward_layer_norm, self._feedforward_dropout, training)
        return (x, scores) if return_attention_scores else x

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def compute_output_spec(self, inputs, padding_mask=None, attention_mask=None, training=None,
                            return_attention_scores=False):
        self._head_size(inputs.shape, "inputs")
        b, t, _ = inputs.shape
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        return outputs, keras.KerasTensor((b, self.num_heads, t, t), dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="course_lib")
class TransformerDecoderBlock(_TransformerBlock):
    """Transformer decoder block ("Attention Is All You Need", Vaswani et al., 2017).

    1. Causal self-attention: position `t` attends to positions `0..t` of the decoder
       sequence only, `x = x + dropout(MultiHeadAttention(x, x))`, then layer norm.
    2. Cross-attention (when called with `encoder_sequence`): every position attends
       to the encoder's outputs, `x = x + dropout(MultiHeadAttention(x, encoder))`,
       then layer norm. Without it the block is a GPT-style decoder-only block.
    3. Feed-forward: `x = x + dropout(FeedForward(x))`, then layer norm.
    (Pre-norm, `normalize_first=True`, normalises each sublayer's input instead.)

    A drop-in for `keras_hub.layers.TransformerDecoder`: the same arguments, call,
    caches and weights (self-attention, its layer norm, cross-attention, its layer norm,
    feed-forward, its layer norm), so `set_weights(keras_hub_layer.get_weights())` gives
    the same outputs. Whether there is cross-attention is fixed by the first call.
    Masks as in keras-hub: padding masks and the masks attached to the sequences (by
    `Embedding(mask_zero=True)`) hide padded keys (keras-hub lets an explicit padding
    mask replace an attached one; here both apply), attention masks are ANDed in,
    queries are not masked.

    Key/value cache, for generating one token at a time: the keys and values of the
    positions done so far are kept in `self_attention_cache (B, 2, L, N, H)` (zeros at
    first, `L` the most tokens generated), so step `i` projects only token `i`
    (`self_attention_cache_update_index=i`) and attends over the cache, instead of
    running the whole prefix through every layer again. Cross-attention keys and values are
    computed once (`cross_attention_cache_update_index=0`, a zero cache `(B, 2, S, N, H)`)
    and reused (`None`). The outputs equal the uncached ones at every position.

    Extension (not in keras-hub): `return_attention_scores=True` also returns the
    attention weights per head, `{"self_attention": (B, N, T, T or L),
    "cross_attention": (B, N, T, S)}` (lesson 09 draws the cross-attention maps).

    Args:
        intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon,
        kernel_initializer, bias_initializer, normalize_first: as in
        `TransformerEncoderBlock`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        decoder_sequence: tensor `(batch_size, T, C)`.
        encoder_sequence: optional tensor `(batch_size, S, C_enc)`.
        decoder_padding_mask: optional boolean `(batch_size, T)` (with a cache,
            `(batch_size, L)` over the cache's positions), True = real token.
        decoder_attention_mask: optional boolean `(batch_size, T, T or L)`.
        encoder_padding_mask: optional boolean `(batch_size, S)`.
        encoder_attention_mask: optional boolean `(batch_size, T, S)`.
        self_attention_cache: optional `(batch_size, 2, L, N, H)`.
        self_attention_cache_update_index: int or int tensor, where the new tokens go.
        cross_attention_cache: optional `(batch_size, 2, S, N, H)`; needed with a
            self-attention cache when there is cross-attention.
        cross_attention_cache_update_index: `0` to fill it, `None` to reuse it.
        use_causal_mask: whether position `t` only sees `0..t`. Defaults to `True`.
        training: whether dropout is active.
        return_attention_scores: also return the weights (see above). Defaults to `False`.

    Returns:
        `outputs (batch_size, T, C)`; with caches, `(outputs, self_attention_cache)` or
        (with cross-attention) `(outputs, self_attention_cache, cross_attention_cache)`,
        the caches updated; with `return_attention_scores=True` the scores dict last.

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> target, source = rng.normal(size=(2, 4, 8)), rng.normal(size=(2, 6, 8))
    >>> block = TransformerDecoderBlock(intermediate_dim=16, num_heads=2)
    >>> full = block(target, source)  # causal: position t sees 0..t
    >>> cache, cross = np.zeros((2, 2, 4, 2, 4)), np.zeros((2, 2, 6, 2, 4))
    >>> for t in range(4):  # one token at a time, the same outputs
    ...     step, cache, cross = block(target[:, t:t + 1], source, self_attention_cache=cache,
    ...         self_attention_cache_update_index=t, cross_attention_cache=cross,
    ...         cross_attention_cache_update_index=0 if t == 0 else None)
    ...     assert np.allclose(step[:, 0], full[:, t], atol=1e-5)
    >>> _, scores = block(target, source, return_attention_scores=True)
    >>> tuple(scores["cross_attention"].shape)  # (batch, heads, T, S)
    (2, 2, 4, 6)
    """

    def __init__(self, intermediate_dim, num_heads, dropout=0.0, activation="relu", layer_norm_epsilon=1e-5,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", normalize_first=False, **kwargs):
        # keras-hub's config holds the build shapes: accepted, so its configs load here too.
        shapes = kwargs.pop("decoder_sequence_shape", None), kwargs.pop("encoder_sequence_shape", None)
        super().__init__(intermediate_dim, num_heads, dropout, activation, layer_norm_epsilon, kernel_initializer,
                         bias_initializer, normalize_first, **kwargs)
        self._cross_attention = None
        if shapes[0]:
            self.build(*shapes)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        head_size = self._head_size(decoder_sequence_shape, "decoder_sequence")
        self._self_attention, self._self_attention_layer_norm, self._self_attention_dropout = self._attention(
            "self_attention", head_size, CachedMultiHeadAttention, query_shape=decoder_sequence_shape,
            value_shape=decoder_sequence_shape)
        if encoder_sequence_shape is not None:
            encoder_sequence_shape = check_shape_rank(encoder_sequence_shape, "encoder_sequence", 3,
                                                      "(batch_size, length, width)")
            self._cross_attention, self._cross_attention_layer_norm, self._cross_attention_dropout = (
                self._attention("cross_attention", head_size, CachedMultiHeadAttention,
                                query_shape=decoder_sequence_shape, value_shape=encoder_sequence_shape))
        self._feedforward = self._make_feedforward(decoder_sequence_shape)
        self._feedforward_layer_norm = self._norm("feedforward_layer_norm", decoder_sequence_shape)
        self._feedforward_dropout = self._drop("feedforward_dropout")
        self.built = True

    def _check_call(self, decoder_sequence, encoder_sequence, self_attention_cache, cross_attention_cache):
        self._check_width(decoder_sequence, "decoder_sequence", self._self_attention._query_dense.kernel.shape[0])
        if (self._cross_attention is None) != (encoder_sequence is None):
            expected = "None: this layer has no" if self._cross_attention is None else "a tensor: this layer has"
            raise ValueError(message("encoder_sequence", f"{expected} cross-attention (fixed by its first call)",
                                     encoder_sequence))
        if self._cross_attention is not None:
            self._check_width(encoder_sequence, "encoder_sequence", self._cross_attention._value_dense.kernel.shape[0])
            if (self_attention_cache is None) != (cross_attention_cache is None):
                raise ValueError(message("cross_attention_cache", "given exactly when `self_attention_cache` is",
                                         cross_attention_cache))

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None, decoder_attention_mask=None,
             encoder_padding_mask=None, encoder_attention_mask=None, self_attention_cache=None,
             self_attention_cache_update_index=None, cross_attention_cache=None,
             cross_attention_cache_update_index=None, use_causal_mask=True, training=None,
             return_attention_scores=False):
        self._check_call(decoder_sequence, encoder_sequence, self_attention_cache, cross_attention_cache)
        x = decoder_sequence  # (B, T, C)
        mask = _merge_masks(decoder_padding_mask, decoder_attention_mask, "decoder_padding_mask",
                            "decoder_attention_mask")  # (B, 1 or T, T or L)
        if check_bool(use_causal_mask, "use_causal_mask"):
            length = ops.shape(x)[1] if self_attention_cache is None else ops.shape(self_attention_cache)[2]
            start = 0 if self_attention_cache_update_index is None else self_attention_cache_update_index
            mask = combine_masks(mask, _causal_mask(ops.shape(x)[1], length, start))  # (B or 1, T, T or L)
        h = self._pre(x, self._self_attention_layer_norm)
        h, self_scores, self_attention_cache = _with_cache(self._self_attention(
            h, h, attention_mask=mask, cache=self_attention_cache, cache_update_index=self_attention_cache_update_index,
            return_attention_scores=True, training=training))  # (B, T, C), (B, N, T, T or L), cache or None
        x = self._add(h, x, self._self_attention_layer_norm, self._self_attention_dropout, training)
        scores = {"self_attention": self_scores}  # (B, N, T, T or L)
        if self._cross_attention is not None:
            mask = _merge_masks(encoder_padding_mask, encoder_attention_mask, "encoder_padding_mask",
                                "encoder_attention_mask")  # (B, 1 or T, S)
            h = self._pre(x, self._cross_attention_layer_norm)
            h, scores["cross_attention"], cross_attention_cache = _with_cache(self._cross_attention(
                h, encoder_sequence, attention_mask=mask, cache=cross_attention_cache,
                cache_update_index=cross_attention_cache_update_index, return_attention_scores=True,
                training=training))  # (B, T, C), (B, N, T, S), cache or None
            x = self._add(h, x, self._cross_attention_layer_norm, self._cross_attention_dropout, training)
        h = self._feedforward(self._pre(x, self._feedforward_layer_norm), training=training)  # (B, T, C)
        x = self._add(h, x, self._feedforward_layer_norm, self._feedforward_dropout, training)
        return self._outputs(x, self_attention_cache, cross_attention_cache, scores, return_attention_scores)

    def _outputs(self, x, self_attention_cache, cross_attention_cache, scores, return_attention_scores):
        """keras-hub's output structure, with the scores last when asked for."""
        outputs = (x,)
        if self_attention_cache is not None:
            outputs += (self_attention_cache,)
            if self._cross_attention is not None:
                outputs += (cross_attention_cache,)
        if return_attention_scores:
            outputs += (scores,)
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return tuple(decoder_sequence_shape)

    def compute_output_spec(self, decoder_sequence, encoder_sequence=None, self_attention_cache=None,
                            cross_attention_cache=None, return_attention_scores=False, **kwargs):
        spec = lambda shape: keras.KerasTensor(tuple(shape), dtype=self.compute_dtype)  # noqa: E731
        b, t, _ = decoder_sequence.shape
        length = t if self_attention_cache is None else self_attention_cache.shape[2]
        scores = {"self_attention": spec((b, self.num_heads, t, length))}
        if encoder_sequence is not None:
            scores["cross_attention"] = spec((b, self.num_heads, t, encoder_sequence.shape[1]))
        caches = [None if c is None else spec(c.shape) for c in (self_attention_cache, cross_attention_cache)]
        return self._outputs(spec(decoder_sequence.shape), *caches, scores, return_attention_scores)
