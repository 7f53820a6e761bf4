"""The recurrent encoder-decoder (seq2seq) as a model, and decoding with it (lessons 03, 04).

* `build_seq2seq`: the model `[source, target_in] -> logits` made of the layers of
  `course_lib.rnn` (`RNNEncoder`, `AttentionDecoder`), trained with teacher forcing.
* `attention_weights`: its teacher-forced attention weights, for heatmaps.
* `next_token_function`: its step function for `course_lib.decoding` (registered, so
  `greedy_decode(model, source_tokens, ...)` works): the encoder runs once, the
  decoder carries its RNN state from one token to the next.

`course_lib.transformer_model` does the same for the Transformer.
"""

import keras
import numpy as np
from keras import ops

from course_lib.checks import message
from course_lib.decoding import NextTokenFunction, register_next_token_provider
from course_lib.rnn import AttentionDecoder, RNNEncoder
from course_lib.tokens import PAD


def build_seq2seq(
    source_vocab_size, target_vocab_size, embedding_dim, units, attention=None, cell="gru",
    bidirectional=False, attention_units=None, combine_activation="tanh", name="seq2seq",
):
    """A `keras.Model` `[source, target_in] -> logits`: `RNNEncoder` + `AttentionDecoder`.

    The layers are named `"encoder"` and `"decoder"` (`model.get_layer("decoder")`),
    which `next_token_function` and `attention_weights` use.

    Args:
        source_vocab_size: number of source token ids (0 = PAD).
        target_vocab_size: number of target token ids (0 = PAD).
        embedding_dim: width of the token embeddings (encoder and decoder).
        units: width of the encoder and decoder RNNs.
        attention: `None`, `"additive"` or `"luong"` (see `AttentionDecoder`).
        cell: `"gru"` or `"lstm"`. Defaults to `"gru"`.
        bidirectional: bidirectional encoder. Defaults to `False`.
        attention_units: hidden width of the additive score (see
            `AttentionDecoder`). Defaults to `None` (`units`).
        combine_activation: activation of the decoder's combine layer with
            attention (see `AttentionDecoder`). Defaults to `"tanh"`.
        name: the model's name. Defaults to `"seq2seq"`.

    Returns:
        A `keras.Model` with inputs `source (batch_size, S)` and
        `target_in (batch_size, T)` (integer tokens, 0-padded) and output logits
        `(batch_size, T, target_vocab_size)`, which carry the target padding mask.

    Example:

    >>> model = build_seq2seq(12, 9, embedding_dim=4, units=6, attention="additive")
    >>> tuple(model([np.array([[3, 4, 5]]), np.array([[1, 7, 8, 2]])]).shape)
    (1, 4, 9)
    """
    encoder = RNNEncoder(source_vocab_size, embedding_dim, units, cell=cell, bidirectional=bidirectional, name="encoder")
    decoder = AttentionDecoder(
        target_vocab_size, embedding_dim, units, attention=attention, cell=cell,
        attention_units=attention_units, combine_activation=combine_activation, name="decoder",
    )
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    encoder_outputs, state = encoder(source)
    logits = decoder(target_in, encoder_outputs, state)
    return keras.Model([source, target_in], logits, name=name)


def _seq2seq_parts(model):
    """The encoder and decoder of a `build_seq2seq` model, or `None` for another model."""
    if not isinstance(model, keras.Model):
        return None
    try:
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError:
        return None
    if isinstance(encoder, RNNEncoder) and isinstance(decoder, AttentionDecoder):
        return encoder, decoder
    return None


def _checked_parts(model):
    parts = _seq2seq_parts(model)
    if parts is None:
        raise ValueError(message("model", "a model from `build_seq2seq` (layers 'encoder' and 'decoder')", model))
    return parts


def _tokens(array, name):
    array = np.asarray(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(message(name, "an integer array of shape (batch_size, length)", array))
    return ops.convert_to_tensor(array, dtype="int32")


def _encode(model, source_tokens):
    """Run the encoder of a `build_seq2seq` model once: the decoder, the encoder's
    outputs and final state, and the source padding mask."""
    encoder, decoder = _checked_parts(model)
    source = _tokens(source_tokens, "source_tokens")
    encoder_outputs, state = encoder(source)
    return decoder, encoder_outputs, state, ops.not_equal(source, PAD)


def attention_weights(model, source_tokens, target_in):
    """The teacher-forced attention weights of a `build_seq2seq` model with attention.

    Args:
        model: a model from `build_seq2seq` with `attention` set.
        source_tokens: integer array `(batch_size, S)`, padded with 0.
        target_in: integer array `(batch_size, T)`, the decoder's input (START first).

    Returns:
        A numpy array of shape `(batch_size, T, S)`; padded source positions get 0.

    Example:

    >>> model = build_seq2seq(12, 12, embedding_dim=4, units=6, attention="luong")
    >>> weights = attention_weights(model, np.array([[3, 4, 0]]), np.array([[1, 5]]))
    >>> weights.shape, bool(weights[0, :, 2].max() == 0.0)
    ((1, 2, 3), True)
    """
    decoder, encoder_outputs, state, mask = _encode(model, source_tokens)
    target_in = _tokens(target_in, "target_in")
    _, weights = decoder(target_in, encoder_outputs, state, encoder_outputs_mask=mask, return_attention_scores=True)
    return ops.convert_to_numpy(weights)


def next_token_function(model, source_tokens):
    """The step function of a `build_seq2seq` model, for `course_lib.decoding`.

    The encoder runs once, here; each step feeds the last token of the prefix,
    `prefix[:, index]`, to `AttentionDecoder.step` and carries the RNN state, so a
    step costs one RNN step whatever the length so far. The weights of each step are
    the attention weights `(batch_size, S)` (`None` without attention).
    `greedy_decode(model, source_tokens, ...)` calls this function itself.

    Args:
        model: a model from `build_seq2seq`.
        source_tokens: integer array `(batch_size, S)`, padded with 0.

    Returns:
        A `course_lib.decoding.NextTokenFunction`.

    Example:

    >>> from course_lib.decoding import greedy_decode
    >>> model = build_seq2seq(12, 12, embedding_dim=4, units=6, attention="additive")
    >>> function = next_token_function(model, np.array([[3, 4, 5], [6, 0, 0]]))
    >>> tokens, weights = greedy_decode(function, max_length=4)
    >>> tokens.shape[0], weights.shape[0], weights.shape[2]
    (2, 2, 3)
    """
    decoder, encoder_outputs, state, mask = _encode(model, source_tokens)

    def step(prefix, state, index):
        tokens = ops.convert_to_tensor(prefix[:, index], dtype="int32")  # (batch,)
        logits, state, weights = decoder.step(tokens, state, encoder_outputs, mask)
        return logits, weights, state

    return NextTokenFunction(step, batch_size=int(mask.shape[0]), initial_state=state)


@register_next_token_provider
def _provide_next_token_function(model, source_tokens):
    return next_token_function(model, source_tokens) if _seq2seq_parts(model) is not None else None
