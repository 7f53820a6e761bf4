"""The recurrent layers of the encoder-decoder (seq2seq), with and without attention (lessons 03, 04).

* `RNNEncoder`: token embedding, then a GRU or LSTM (optionally bidirectional) over
  the source; its outputs carry the source padding mask.
* `AttentionDecoder`: token embedding, a GRU or LSTM started from the encoder's final
  state, optionally attention over the encoder outputs, then the next-token logits;
  `step` runs it one token at a time. Without attention the decoder sees the source
  only through the encoder's final state: one fixed-size vector however long the
  source is (the "bottleneck").

`course_lib.seq2seq` assembles the two into a model and decodes with it.

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
import numpy as np  # noqa: F401  (the examples below use it)
from keras import ops

from course_lib.checks import check_activation, check_bool, check_choice, check_positive_int, check_shape_rank, message
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
