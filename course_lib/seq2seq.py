"""The recurrent encoder-decoder (seq2seq), with and without attention (lessons 03, 04).

* `RNNEncoder` and `AttentionDecoder`, the two layers; `build_seq2seq`, the model
  `[source, target_in] -> logits` made of them; `attention_weights`, its teacher-forced
  attention weights; `next_token_function`, its step function for
  `course_lib.decoding` (registered, so `greedy_decode(model, source_tokens, ...)` works).
* Without attention the decoder sees the source only through the encoder's final
  state: one fixed-size vector however long the source is (the "bottleneck").

Where attention sits. Bahdanau et al. (2015) attend *before* each decoder step (the
query is the previous state) and feed the context into the RNN: a step loop even under
teacher forcing. Here, as in Luong et al. (2015) without "input feeding", the RNN runs
over the whole target first, then each output `h_t` attends over the encoder outputs
and the prediction is made from `tanh(W_c [h_t; c_t])`: parallel over the target
positions under teacher forcing, and equal to the run one token at a time, since the
RNN never sees the context. The price: the RNN does not know where it attended before,
so on long sources with repeated symbols it can skip or repeat a stretch (lesson 03
shows such errors at lengths 30-40). The score is a separate choice: Bahdanau's
additive `v^T tanh(W_q h_t + W_k s_j + b)` or Luong's "general" `h_t^T W s_j`.
Token ids are those of `course_lib.tokens`.
"""

import keras
import numpy as np
from keras import ops

from course_lib.checks import (
    check_activation, check_bool, check_choice, check_positive_int, check_shape_rank, message,
)
from course_lib.decoding import NextTokenFunction, register_next_token_provider
from course_lib.scoring import AdditiveAttention, LuongAttention
from course_lib.tokens import PAD

_CELLS = ("gru", "lstm")
_ATTENTIONS = (None, "additive", "luong")


def _make_rnn(cell, units, name, go_backwards=False):
    layer = keras.layers.GRU if cell == "gru" else keras.layers.LSTM
    return layer(units, return_sequences=True, return_state=True, go_backwards=go_backwards, name=name)


def _state_list(state):
    """An RNN state as a list of tensors (a GRU has one, an LSTM two: `[h, c]`)."""
    return list(state) if isinstance(state, (list, tuple)) else [state]


@keras.saving.register_keras_serializable(package="course_lib")
class RNNEncoder(keras.layers.Layer):
    """Recurrent encoder: embedding, then a GRU or LSTM over the source tokens.

    1. `x_j = Embedding(source_j)`, with token id 0 (PAD) masked.
    2. `s_1 ... s_S, state = RNN(x_1 ... x_S)`, padded positions skipped: the state
       after the last real token is the final state.
    3. With `bidirectional=True`, a forward and a backward RNN of `units // 2` each;
       their outputs and final states are concatenated, so the widths stay `units`.

    The outputs carry the source padding mask (`True` = real token), which Keras then
    passes to the next layer as `<input>_mask` (for example `encoder_outputs_mask` of
    `AttentionDecoder`).

    Args:
        vocab_size: number of source token ids (id 0 is padding).
        embedding_dim: width of the token embeddings.
        units: width of the outputs and of the final state.
        cell: `"gru"` or `"lstm"`. Defaults to `"gru"`.
        bidirectional: read the source in both directions (then `units` must be
            even). Defaults to `False`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        source_tokens: integer tensor of shape `(batch_size, S)`, padded with 0.
        training: Python boolean, training or inference mode.

    Returns:
        `(outputs, state)`: `outputs` of shape `(batch_size, S, units)`; `state` of
        shape `(batch_size, units)` for a GRU, a list `[h, c]` of two such tensors for
        an LSTM (what `AttentionDecoder` takes as `initial_state`).

    Example:

    >>> encoder = RNNEncoder(vocab_size=12, embedding_dim=4, units=6, cell="lstm")
    >>> outputs, (h, c) = encoder(np.array([[3, 4, 5], [6, 0, 0]]))
    >>> tuple(outputs.shape), tuple(h.shape), tuple(c.shape)
    ((2, 3, 6), (2, 6), (2, 6))
    """

    def __init__(self, vocab_size, embedding_dim, units, cell="gru", bidirectional=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.units = check_positive_int(units, "units")
        self.cell = check_choice(cell, "cell", _CELLS)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        if self.bidirectional and self.units % 2:  # each direction gets units // 2
            raise ValueError(message("units", "even with `bidirectional=True`", units))
        self.supports_masking = True

    def build(self, source_tokens_shape):
        check_shape_rank(source_tokens_shape, "source_tokens", 2, "(batch_size, S)")
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, mask_zero=True, name="embedding", dtype=self.dtype_policy
        )
        self.embedding.build(source_tokens_shape)
        embedded_shape = (*source_tokens_shape, self.embedding_dim)
        if self.bidirectional:
            half = self.units // 2
            self.forward_rnn = _make_rnn(self.cell, half, "forward_rnn")
            self.backward_rnn = _make_rnn(self.cell, half, "backward_rnn", go_backwards=True)
            self.forward_rnn.build(embedded_shape)
            self.backward_rnn.build(embedded_shape)
        else:
            self.rnn = _make_rnn(self.cell, self.units, "rnn")
            self.rnn.build(embedded_shape)

    def call(self, source_tokens, training=None):
        mask = self.embedding.compute_mask(source_tokens)  # (batch, S), True = token
        x = self.embedding(source_tokens)  # (batch, S, embedding_dim)
        if not self.bidirectional:
            outputs, *state = self.rnn(x, mask=mask, training=training)
            return outputs, state[0] if self.cell == "gru" else state
        forward, *forward_state = self.forward_rnn(x, mask=mask, training=training)
        backward, *backward_state = self.backward_rnn(x, mask=mask, training=training)
        # go_backwards returns its outputs in reversed time order: flip them back.
        backward = ops.flip(backward, axis=1)  # (batch, S, units // 2)
        outputs = ops.concatenate([forward, backward], axis=-1)  # (batch, S, units)
        state = [ops.concatenate([f, b], axis=-1) for f, b in zip(forward_state, backward_state)]
        return outputs, state[0] if self.cell == "gru" else state

    def compute_mask(self, source_tokens, mask=None):
        return ops.not_equal(source_tokens, PAD)  # attached to `outputs` only

    def compute_output_shape(self, source_tokens_shape):
        batch_size, length = source_tokens_shape
        state_shape = (batch_size, self.units)
        state = state_shape if self.cell == "gru" else [state_shape, state_shape]
        return (batch_size, length, self.units), state

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
        }


@keras.saving.register_keras_serializable(package="course_lib")
class AttentionDecoder(keras.layers.Layer):
    """Recurrent decoder, optionally attending over the encoder outputs.

    Teacher forcing: the decoder reads the target shifted right (`START y_1 ...`) and
    predicts the next token at every position.

    1. `e_t = Embedding(target_t)`, with token id 0 (PAD) masked.
    2. `h_1 ... h_T = RNN(e_1 ... e_T)`, started from the encoder's final state.
    3. Without attention: `logits_t = W_o h_t`. The source reaches the decoder only
       through the initial state, one vector of `units` numbers.
    4. With attention: `c_t, a_t = Attention(query=h_t, value=s_1 ... s_S)` over the
       encoder outputs `s_j` (padded source positions get weight exactly 0), then
       `logits_t = W_o f(W_c [h_t; c_t])` with `f = combine_activation` (`tanh`
       by default, as in Luong et al.).

    Step 4 is Luong et al.'s global attention without input feeding (see the module's
    docstring): the teacher-forced run equals the run one token at a time (`step`).

    Args:
        vocab_size: number of target token ids (id 0 is padding).
        embedding_dim: width of the target token embeddings.
        units: width of the decoder RNN; must equal the encoder's `units` (the
            encoder's final state is the decoder's initial state).
        attention: `None` (no attention, the bottleneck), `"additive"`
            (`course_lib.scoring.AdditiveAttention`, Bahdanau's score) or `"luong"`
            (`course_lib.scoring.LuongAttention`, "general"). Defaults to `None`.
        cell: `"gru"` or `"lstm"`, as in the encoder. Defaults to `"gru"`.
        attention_units: width of the hidden layer of the additive score (its cost
            grows as `batch_size * T * S * attention_units`); only with
            `attention="additive"`. `None` means `units`. Defaults to `None`.
        combine_activation: name of the Keras activation `f` of step 4 (only with
            attention). `"linear"` makes `W_o W_c [h_t; c_t]` a product of two linear
            maps (no saturation): the gradient reaches the attention and the RNN
            undamped by `tanh'`, which can train much faster on a small budget.
            Defaults to `"tanh"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        target_tokens: integer tensor of shape `(batch_size, T)`, padded with 0.
        encoder_outputs: tensor of shape `(batch_size, S, dv)`, the encoder outputs
            (only used with attention, but always passed).
        initial_state: the encoder's final state: a tensor `(batch_size, units)` for
            a GRU, a list `[h, c]` for an LSTM.
        encoder_outputs_mask: optional boolean tensor `(batch_size, S)`, `True` for
            real source tokens. Filled in by Keras from the mask that `RNNEncoder`
            attaches to its outputs; pass it yourself otherwise.
        return_attention_scores: also return the attention weights (needs
            `attention`). Defaults to `False`.
        training: Python boolean, training or inference mode.

    Returns:
        `logits` of shape `(batch_size, T, vocab_size)` (before the softmax), and with
        `return_attention_scores=True` the tuple `(logits, weights)` with `weights`
        of shape `(batch_size, T, S)`. The logits carry the target padding mask, so
        Keras losses and metrics ignore padded positions.

    Example:

    >>> encoder_outputs, state = RNNEncoder(12, 4, 6)(np.array([[3, 4, 5], [6, 0, 0]]))
    >>> decoder = AttentionDecoder(vocab_size=9, embedding_dim=4, units=6, attention="luong")
    >>> logits, weights = decoder(np.array([[1, 7], [1, 8]]), encoder_outputs, state,
    ...                           return_attention_scores=True)
    >>> tuple(logits.shape), tuple(weights.shape)
    ((2, 2, 9), (2, 2, 3))
    """

    def __init__(
        self, vocab_size, embedding_dim, units, attention=None, cell="gru", attention_units=None,
        combine_activation="tanh", **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.units = check_positive_int(units, "units")
        self.attention = check_choice(attention, "attention", _ATTENTIONS)
        self.attention_units = check_positive_int(attention_units, "attention_units", allow_none=True)
        if attention_units is not None and self.attention != "additive":  # only it has a width
            raise ValueError(message("attention_units", f"None with attention={attention!r}", attention_units))
        self.combine_activation = check_activation(combine_activation, "combine_activation")
        self.cell = check_choice(cell, "cell", _CELLS)
        self.supports_masking = True

    def build(self, target_tokens_shape, encoder_outputs_shape=None, initial_state_shape=None):
        batch_size, length = check_shape_rank(target_tokens_shape, "target_tokens", 2, "(batch_size, T)")
        if encoder_outputs_shape is None:
            raise ValueError("`encoder_outputs` must have shape (batch_size, S, dv). Received: None")
        check_shape_rank(encoder_outputs_shape, "encoder_outputs", 3, "(batch_size, S, dv)")
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, mask_zero=True, name="embedding", dtype=self.dtype_policy
        )
        self.embedding.build(target_tokens_shape)
        self.rnn = _make_rnn(self.cell, self.units, "rnn")
        self.rnn.build((batch_size, length, self.embedding_dim))
        hidden_shape = (batch_size, length, self.units)
        if self.attention is not None:
            if self.attention == "additive":
                self.attention_layer = AdditiveAttention(
                    self.attention_units or self.units, name="attention", dtype=self.dtype_policy
                )
            else:
                self.attention_layer = LuongAttention("general", name="attention", dtype=self.dtype_policy)
            self.attention_layer.build(hidden_shape, encoder_outputs_shape)
            self.combine = keras.layers.Dense(
                self.units, activation=self.combine_activation, name="combine", dtype=self.dtype_policy
            )
            self.combine.build((batch_size, length, self.units + encoder_outputs_shape[-1]))
        self.output_projection = keras.layers.Dense(self.vocab_size, name="output_projection", dtype=self.dtype_policy)
        self.output_projection.build(hidden_shape)

    def _check_state(self, initial_state):
        state = _state_list(initial_state)
        expected = 1 if self.cell == "gru" else 2
        if len(state) != expected or any(len(s.shape) != 2 or s.shape[-1] != self.units for s in state):
            raise ValueError(
                f"`initial_state` must be {expected} tensor(s) of shape (batch_size, {self.units}) "
                f"for cell={self.cell!r}, units={self.units}. Received: initial_state with shapes "
                f"{[tuple(s.shape) for s in state]}"
            )
        return state

    def _decode(self, target_tokens, encoder_outputs, state, encoder_outputs_mask, training):
        """The decoder's maths, shared by `call` (whole target) and `step` (one token)."""
        target_mask = self.embedding.compute_mask(target_tokens)  # (batch, T)
        x = self.embedding(target_tokens)  # (batch, T, embedding_dim)
        hidden, *state = self.rnn(x, initial_state=state, mask=target_mask, training=training)
        # hidden: (batch, T, units)
        if self.attention is None:
            return self.output_projection(hidden), None, state
        context, weights = self.attention_layer(
            hidden, encoder_outputs, query_mask=target_mask, value_mask=encoder_outputs_mask,
            return_attention_scores=True, training=training,
        )  # context: (batch, T, dv), weights: (batch, T, S)
        combined = self.combine(ops.concatenate([hidden, context], axis=-1))  # (batch, T, units)
        return self.output_projection(combined), weights, state

    def call(
        self, target_tokens, encoder_outputs, initial_state, encoder_outputs_mask=None,
        return_attention_scores=False, training=None,
    ):
        if return_attention_scores and self.attention is None:  # no attention, no weights
            raise ValueError(message("return_attention_scores", "False with attention=None", True))
        state = self._check_state(initial_state)
        logits, weights, _ = self._decode(target_tokens, encoder_outputs, state, encoder_outputs_mask, training)
        return (logits, weights) if return_attention_scores else logits

    def step(self, tokens, state, encoder_outputs, encoder_outputs_mask=None):
        """One decoding step: the next-token logits after `tokens`, and the new state.

        Args:
            tokens: integer tensor of shape `(batch_size,)`, the last token of each
                prefix (START at the first step).
            state: the decoder state (the encoder's final state at the first step).
            encoder_outputs: tensor of shape `(batch_size, S, dv)`.
            encoder_outputs_mask: optional boolean tensor `(batch_size, S)`.

        Returns:
            `(logits, state, weights)`: logits `(batch_size, vocab_size)`, the new
            state (same structure as `state`), and the attention weights
            `(batch_size, S)` (`None` without attention).
        """
        tokens = ops.convert_to_tensor(tokens)
        check_shape_rank(tokens.shape, "tokens", 1, "(batch_size,)")
        checked = self._check_state(state)
        logits, weights, new_state = self._decode(
            tokens[:, None], encoder_outputs, checked, encoder_outputs_mask, training=False
        )  # logits: (batch, 1, vocab_size)
        new_state = new_state[0] if self.cell == "gru" else new_state
        return logits[:, 0], new_state, None if weights is None else weights[:, 0]

    def compute_mask(self, target_tokens, mask=None):
        return ops.not_equal(target_tokens, PAD)  # attached to the logits only

    def compute_output_shape(self, target_tokens_shape, encoder_outputs_shape=None, initial_state_shape=None):
        return (*target_tokens_shape, self.vocab_size)

    def compute_output_spec(
        self, target_tokens, encoder_outputs, initial_state, encoder_outputs_mask=None,
        return_attention_scores=False, training=None,
    ):
        logits = keras.KerasTensor((*target_tokens.shape, self.vocab_size), dtype=self.compute_dtype)
        if not return_attention_scores:
            return logits
        weights_shape = (*target_tokens.shape, encoder_outputs.shape[1])
        return logits, keras.KerasTensor(weights_shape, dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention": self.attention,
            "cell": self.cell,
            "attention_units": self.attention_units,
            "combine_activation": self.combine_activation,
        }


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
