"""The encoder-decoder Transformer for translation, and its cached greedy decoding (lesson 09).

* `TransformerEmbedding`: token embeddings scaled by `sqrt(width)`, plus positions
  (`course_lib.positional`); called with `reverse=True` it is the output projection,
  tied to the same table.
* `build_transformer`: the model `[source, target_in] -> logits` (like
  `course_lib.seq2seq.build_seq2seq` for RNNs): embeddings, a stack of
  `TransformerEncoderBlock`, a stack of `TransformerDecoderBlock`, the output
  projection. The logits carry the target padding mask, so the loss ignores padding.
* `next_token_function`: its step function for `course_lib.decoding.greedy_decode`
  (registered: `greedy_decode(model, source_tokens, max_length=...)` works). The
  encoder runs once; each step embeds one token, runs the decoder blocks on their
  key/value caches (O(t) work for token t, not the whole prefix again), and is
  compiled once (`tf.function` or `jax.jit`), not retraced per token.
* `cross_attention_weights`: the teacher-forced cross-attention of every layer and head.

Shape letters: `B` batch, `S` source length, `T` target length, `C` width, `V`
vocabulary size, `N` heads, `H = C // N`, `K` layers, `L` the decoding buffer length.
"""

import collections
import functools
import math
import weakref

import keras
import numpy as np
from keras import ops

from course_lib.checks import check_bool, check_choice, check_positive_int, check_rate, message
from course_lib.decoding import NextTokenFunction, register_next_token_provider
from course_lib.positional import LearnedPositionalEmbedding, SinusoidalPositionalEmbedding, sinusoidal_encoding
from course_lib.tokens import PAD
from course_lib.transformer import TransformerDecoderBlock, TransformerEncoderBlock

_POSITIONS = ("sinusoidal", "learned")


@keras.saving.register_keras_serializable(package="course_lib")
class TransformerEmbedding(keras.layers.Layer):
    """Token embedding scaled by `sqrt(width)`, plus position encodings; reversed, the logits.

    1. `x = E[token_ids] * sqrt(width)`, with `E` of shape `(vocab_size, width)`
       initialised with standard deviation `width ** -0.5` (so `x` has unit scale);
    2. `x = x + P[:T]`, sinusoidal (`SinusoidalPositionalEmbedding`) or learned
       (`LearnedPositionalEmbedding`), then dropout (training);
    3. `layer(h, reverse=True)` gives the logits `h @ E^T` `(batch_size, T, vocab_size)`:
       the output projection tied to the embedding (Press and Wolf, 2017).

    Token id 0 (PAD) is masked: the outputs carry the mask `token_ids != 0`; in
    reverse, the mask of `h` passes through.

    Args:
        vocab_size: number of token ids (0 = PAD).
        width: width of the embeddings `C`.
        sequence_length: the most positions (learned positions have a row each).
        positions: `"sinusoidal"` or `"learned"`. Defaults to `"sinusoidal"`.
        dropout: dropout rate on the embeddings (training). Defaults to `0.0`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: integer tensor `(batch_size, T)`, or with `reverse=True` a float
            tensor `(batch_size, T, width)`.
        reverse: compute the logits instead. Defaults to `False`.
        training: whether dropout is active.

    Returns:
        `(batch_size, T, width)`, or with `reverse=True` `(batch_size, T, vocab_size)`.

    Example:

    >>> embedding = TransformerEmbedding(vocab_size=10, width=4, sequence_length=6)
    >>> x = embedding(np.array([[5, 6, 0]]))
    >>> tuple(x.shape), ops.convert_to_numpy(embedding.compute_mask(np.array([[5, 6, 0]]))).tolist()
    ((1, 3, 4), [[True, True, False]])
    >>> tuple(embedding(x, reverse=True).shape)  # (batch, T, vocab_size)
    (1, 3, 10)
    """

    def __init__(self, vocab_size, width, sequence_length, positions="sinusoidal", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.width = check_positive_int(width, "width")
        self.sequence_length = check_positive_int(sequence_length, "sequence_length")
        self.positions = check_choice(positions, "positions", _POSITIONS)
        self.dropout = check_rate(dropout, "dropout")
        if self.positions == "learned":
            self._positions = LearnedPositionalEmbedding(self.sequence_length, dtype=self.dtype_policy,
                                                         name="positions")
        else:
            self._positions = SinusoidalPositionalEmbedding(dtype=self.dtype_policy, name="positions")
        self._dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, inputs_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.vocab_size, self.width),
            initializer=keras.initializers.RandomNormal(stddev=self.width ** -0.5))
        self._positions.build((None, self.sequence_length, self.width))

    def call(self, inputs, reverse=False, training=None):
        if reverse:  # (B, T, C) x (C, V) -> (B, T, V)
            return ops.matmul(inputs, ops.transpose(ops.cast(self.embeddings, inputs.dtype)))
        length = inputs.shape[1]
        if length is not None and length > self.sequence_length:
            raise ValueError(message("inputs", f"at most sequence_length={self.sequence_length} tokens long", inputs))
        x = ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0) * math.sqrt(self.width)  # (B, T, C)
        return self._dropout_layer(self._positions(x), training=training)  # (B, T, C)

    def embed_at(self, token_ids, start):
        """The embeddings of `token_ids (B, T)` placed at positions `start .. start + T - 1`
        (`start` an int or a scalar int tensor), without dropout: a decoding step."""
        table = (self._positions.embeddings if self.positions == "learned" else
                 sinusoidal_encoding(self.sequence_length, self.width, self._positions.max_wavelength))
        positions = ops.slice(ops.cast(table, self.compute_dtype), [start, 0], [token_ids.shape[1], self.width])
        x = ops.take(self.embeddings, ops.cast(token_ids, "int32"), axis=0) * math.sqrt(self.width)  # (B, T, C)
        return x + positions[None]  # (B, T, C)

    def compute_mask(self, inputs, mask=None):
        if keras.backend.is_int_dtype(inputs.dtype):
            return ops.not_equal(inputs, PAD)  # (B, T)
        return mask  # reverse: the mask of the hidden states

    def compute_output_spec(self, inputs, reverse=False, training=None):
        width = self.vocab_size if reverse else self.width
        return keras.KerasTensor((*inputs.shape[:2], width), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "width": self.width,
                "sequence_length": self.sequence_length, "positions": self.positions, "dropout": self.dropout}


def build_transformer(source_vocab_size, target_vocab_size, sequence_length, num_layers=2, width=128, num_heads=4,
                      intermediate_dim=None, dropout=0.1, normalize_first=False, positions="sinusoidal",
                      share_embeddings=False, tie_output=True, name="transformer"):
    """The encoder-decoder Transformer, a `keras.Model` `[source, target_in] -> logits`.

    source -> `TransformerEmbedding` -> `num_layers` x `TransformerEncoderBlock` ->
    encoded; target_in -> `TransformerEmbedding` -> `num_layers` x
    `TransformerDecoderBlock` (causal self-attention, cross-attention over encoded) ->
    output projection -> logits. With `normalize_first` (pre-norm) each stack ends
    with a `LayerNormalization` ("encoder_norm", "decoder_norm"), as pre-norm needs.

    Layers: `"source_embedding"` and `"target_embedding"` (one `"embedding"` with
    `share_embeddings`), `"encoder_0"` ..., `"decoder_0"` ..., and `"logits"` (a `Dense`)
    unless `tie_output`; `next_token_function` finds them by these names.

    Args:
        source_vocab_size, target_vocab_size: numbers of token ids (0 = PAD).
        sequence_length: the longest source or target sequence (positions).
        num_layers: blocks in the encoder and in the decoder. Defaults to `2`.
        width: the model width `C` (`d_model`). Defaults to `128`.
        num_heads: attention heads; must divide `width`. Defaults to `4`.
        intermediate_dim: feed-forward hidden width. `None` means `4 * width`.
        dropout: dropout rate everywhere (embeddings, attention, sublayers). Defaults to `0.1`.
        normalize_first: pre-norm (`True`) or post-norm blocks. Defaults to `False`.
        positions: `"sinusoidal"` or `"learned"`. Defaults to `"sinusoidal"`.
        share_embeddings: one embedding table for source and target (a joint
            vocabulary: the sizes must be equal). Defaults to `False`.
        tie_output: the output projection is the target embedding transposed.
            Defaults to `True`.
        name: the model's name. Defaults to `"transformer"`.

    Returns:
        A `keras.Model` with inputs `source (batch_size, S)` and `target_in (batch_size,
        T)` (integer tokens, 0-padded) and output logits `(batch_size, T,
        target_vocab_size)` carrying the target padding mask.

    Example:

    >>> model = build_transformer(12, 9, sequence_length=8, num_layers=1, width=8, num_heads=2)
    >>> tuple(model([np.array([[3, 4, 5]]), np.array([[1, 7, 8, 2]])]).shape)
    (1, 4, 9)
    """
    num_layers = check_positive_int(num_layers, "num_layers")
    width, num_heads = check_positive_int(width, "width"), check_positive_int(num_heads, "num_heads")
    if width % num_heads:
        raise ValueError(message("num_heads", f"a divisor of `width` ({width})", num_heads))
    intermediate_dim = 4 * width if intermediate_dim is None else intermediate_dim
    share_embeddings = check_bool(share_embeddings, "share_embeddings")
    tie_output = check_bool(tie_output, "tie_output")
    if share_embeddings and source_vocab_size != target_vocab_size:
        raise ValueError(message("target_vocab_size", f"equal to `source_vocab_size` ({source_vocab_size}) with "
                                 "`share_embeddings=True`", target_vocab_size))
    embedding = lambda size, name: TransformerEmbedding(  # noqa: E731
        size, width, sequence_length, positions=positions, dropout=dropout, name=name)
    block = dict(intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                 normalize_first=normalize_first)
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    source_embedding = embedding(source_vocab_size, "embedding" if share_embeddings else "source_embedding")
    target_embedding = source_embedding if share_embeddings else embedding(target_vocab_size, "target_embedding")

    encoded = source_embedding(source)  # (B, S, C), masked where source == PAD
    for i in range(num_layers):
        encoded = TransformerEncoderBlock(**block, name=f"encoder_{i}")(encoded)
    if normalize_first:
        encoded = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")(encoded)
    x = target_embedding(target_in)  # (B, T, C)
    for i in range(num_layers):
        x = TransformerDecoderBlock(**block, name=f"decoder_{i}")(x, encoded)
    if normalize_first:
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")(x)
    if tie_output:
        logits = target_embedding(x, reverse=True)  # x @ E^T
    else:
        logits = keras.layers.Dense(target_vocab_size, name="logits")(x)
    return keras.Model([source, target_in], logits, name=name)  # (B, T, V)


_Parts = collections.namedtuple(
    "_Parts", "source_embedding target_embedding encoders decoders encoder_norm decoder_norm output")


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _transformer_parts(model):
    """The layers of a `build_transformer` model by name, or `None` for another model."""
    if not isinstance(model, keras.Model):
        return None
    shared = _layer(model, "embedding")
    source_embedding = shared or _layer(model, "source_embedding")
    target_embedding = shared or _layer(model, "target_embedding")
    encoders, decoders = [], []
    while isinstance(_layer(model, f"encoder_{len(encoders)}"), TransformerEncoderBlock):
        encoders.append(model.get_layer(f"encoder_{len(encoders)}"))
    while isinstance(_layer(model, f"decoder_{len(decoders)}"), TransformerDecoderBlock):
        decoders.append(model.get_layer(f"decoder_{len(decoders)}"))
    if not (isinstance(source_embedding, TransformerEmbedding) and isinstance(target_embedding, TransformerEmbedding)
            and encoders and decoders):
        return None
    output = _layer(model, "logits") or (lambda x: target_embedding(x, reverse=True))
    return _Parts(source_embedding, target_embedding, encoders, decoders, _layer(model, "encoder_norm"),
                  _layer(model, "decoder_norm"), output)


def _checked_parts(model):
    parts = _transformer_parts(model)
    if parts is None:
        raise ValueError(message("model", "a model from `build_transformer`", model))
    return parts


def _encode(parts, source_tokens):
    """Run the encoder once: `(encoded (B, S, C), source padding mask (B, S))`."""
    source = np.asarray(source_tokens)
    if source.ndim != 2 or not np.issubdtype(source.dtype, np.integer):
        raise ValueError(message("source_tokens", "an integer array of shape (batch_size, S)", source))
    source = ops.convert_to_tensor(source, dtype="int32")
    x = parts.source_embedding(source)  # (B, S, C), masked
    for block in parts.encoders:
        x = block(x)
    return (x if parts.encoder_norm is None else parts.encoder_norm(x)), ops.not_equal(source, PAD)


def cross_attention_weights(model, source_tokens, target_in):
    """The teacher-forced cross-attention weights of a `build_transformer` model.

    Args:
        model: a model from `build_transformer`.
        source_tokens: integer array `(batch_size, S)`, padded with 0.
        target_in: integer array `(batch_size, T)`, the decoder's input (START first).

    Returns:
        A numpy array `(batch_size, num_layers, num_heads, T, S)`: for each decoder
        layer and head, how much target position `t` attends to source position `s`
        (padded source positions get 0).

    Example:

    >>> model = build_transformer(12, 12, sequence_length=6, num_layers=2, width=8, num_heads=2)
    >>> cross_attention_weights(model, np.array([[3, 4, 0]]), np.array([[1, 5]])).shape
    (1, 2, 2, 2, 3)
    """
    parts = _checked_parts(model)
    encoded, source_mask = _encode(parts, source_tokens)
    x, weights = parts.target_embedding(ops.convert_to_tensor(np.asarray(target_in), dtype="int32")), []
    for block in parts.decoders:
        x, scores = block(x, encoded, encoder_padding_mask=source_mask, return_attention_scores=True)
        weights.append(scores["cross_attention"])  # (B, N, T, S)
    return ops.convert_to_numpy(ops.stack(weights, axis=1))  # (B, K, N, T, S)


def _decode_step(parts, token, index, caches, encoded, source_mask, fill_cross):
    """One token through the decoder: `token (B, 1)` at position `index`; `caches` a
    tuple, per layer, of `(self-attention cache (B, 2, L, N, H), cross cache (B, 2, S, N, H))`.
    Returns `logits (B, V)`, cross-attention weights `(B, K, N, S)` and the new caches."""
    x = parts.target_embedding.embed_at(token, index)  # (B, 1, C)
    new_caches, weights = [], []
    for block, (self_cache, cross_cache) in zip(parts.decoders, caches):
        x, self_cache, cross_cache, scores = block(
            x, encoded, encoder_padding_mask=source_mask, self_attention_cache=self_cache,
            self_attention_cache_update_index=index, cross_attention_cache=cross_cache,
            cross_attention_cache_update_index=0 if fill_cross else None, return_attention_scores=True)
        new_caches.append((self_cache, cross_cache))
        weights.append(scores["cross_attention"][:, :, 0])  # (B, N, S)
    x = x if parts.decoder_norm is None else parts.decoder_norm(x)
    return parts.output(x)[:, 0], ops.stack(weights, axis=1), tuple(new_caches)  # (B, V), (B, K, N, S)


def _compile(fn, variables, specs):
    """`fn` compiled once by the backend, for arguments of the shapes and dtypes of
    `specs` (`keras.KerasTensor`s, `None` for a dimension that may vary). TensorFlow:
    `tf.function` with that signature, so one trace whatever the batch size or lengths;
    it reads the variables when it runs. JAX: `jax.jit` (one trace per shape) with the
    variables' values passed in, so new weights need no new trace. Others: `fn` itself."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        signature = keras.tree.map_structure(lambda spec: tf.TensorSpec(spec.shape, spec.dtype), specs)
        return tf.function(fn, input_signature=signature)
    if backend == "jax":
        import jax

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        jitted = jax.jit(stateless)
        return lambda *args: jitted([variable.value for variable in variables], *args)
    return fn


_COMPILED = weakref.WeakKeyDictionary()  # model -> (first step, later steps), compiled once per model


def _compiled_steps(model, parts):
    n, c, dtype = parts.decoders[0].num_heads, parts.target_embedding.width, parts.target_embedding.compute_dtype
    cache = keras.KerasTensor((None, 2, None, n, c // n), dtype)  # (B, 2, L or S, N, H)
    specs = [keras.KerasTensor((None, 1), "int32"), keras.KerasTensor((), "int32"),  # token (B, 1), index
             tuple((cache, cache) for _ in parts.decoders),  # the caches of every layer
             keras.KerasTensor((None, None, c), dtype), keras.KerasTensor((None, None), "bool")]  # encoded, mask
    if model not in _COMPILED:  # (a `partial`, not a lambda: TensorFlow counts the traces of each apart)
        _COMPILED[model] = tuple(_compile(functools.partial(_decode_step, parts, fill_cross=fill), model.variables,
                                          specs) for fill in (True, False))
    return _COMPILED[model]


def next_token_function(model, source_tokens):
    """The cached step function of a `build_transformer` model, for `course_lib.decoding`.

    The encoder runs once, here. At the first step the caches are made for the
    loop's buffer (`L = max_length + 1` positions; `max_length` at most the model's
    `sequence_length`) and the cross-attention keys and values are computed; each step
    then embeds `prefix[:, index]` at position `index`, writes its keys and values into
    every decoder layer's cache and attends over the cache: O(t) work for token `t`.
    The step is compiled once per model (`tf.function` / `jax.jit`; two functions: the
    first step and the others) with a fixed-shape cache, not retraced per token (on
    TensorFlow not even for new batch sizes or lengths; on JAX once per new shape). The
    weights of a step are the cross-attention weights of every layer and head,
    `(batch_size, num_layers, num_heads, S)`, so `greedy_decode` returns them as
    `(batch_size, steps, num_layers, num_heads, S)`.
    `greedy_decode(model, source_tokens, ...)` calls this function itself.

    Args:
        model: a model from `build_transformer`.
        source_tokens: integer array `(batch_size, S)`, padded with 0.

    Returns:
        A `course_lib.decoding.NextTokenFunction`.

    Example:

    >>> from course_lib.decoding import greedy_decode
    >>> model = build_transformer(12, 12, sequence_length=8, num_layers=1, width=8, num_heads=2)
    >>> tokens, weights = greedy_decode(next_token_function(model, np.array([[3, 4, 5], [6, 0, 0]])), max_length=4)
    >>> tokens.shape[0], weights.shape[0], weights.shape[2:]
    (2, 2, (1, 2, 3))
    """
    parts = _checked_parts(model)
    encoded, source_mask = _encode(parts, source_tokens)
    first_step, next_step = _compiled_steps(model, parts)
    batch, source_length = source_mask.shape
    n = parts.decoders[0].num_heads
    h = parts.target_embedding.width // n

    def step(prefix, state, index):
        if state is None:  # the first step: caches for the whole buffer
            if prefix.shape[1] - 1 > parts.target_embedding.sequence_length:  # positions 0 .. max_length - 1
                raise ValueError(message("max_length", "at most the model's sequence_length = "
                                         f"{parts.target_embedding.sequence_length}", prefix.shape[1] - 1))
            dtype = parts.target_embedding.compute_dtype
            state = tuple((ops.zeros((batch, 2, prefix.shape[1], n, h), dtype),  # self-attention (B, 2, L, N, H)
                           ops.zeros((batch, 2, source_length, n, h), dtype))  # cross-attention (B, 2, S, N, H)
                          for _ in parts.decoders)
        token = ops.convert_to_tensor(prefix[:, index:index + 1], dtype="int32")  # (B, 1)
        compiled = first_step if int(index) == 0 else next_step
        logits, weights, state = compiled(token, ops.convert_to_tensor(index, dtype="int32"), state, encoded,
                                          source_mask)
        return logits, weights, state

    return NextTokenFunction(step, batch_size=int(batch))


@register_next_token_provider
def _provide_next_token_function(model, source_tokens):
    return next_token_function(model, source_tokens) if _transformer_parts(model) is not None else None
