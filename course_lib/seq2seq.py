"""The recurrent encoder-decoder (seq2seq), with and without attention.

Lesson 03 trains these pieces on a synthetic task and lesson 04 on real sentence pairs:

* `RNNEncoder`: token embedding + GRU (or LSTM), optionally bidirectional. Returns
  one output vector per source position and the final state. The padding mask of the
  source (token id 0 is padding) is attached to the outputs, so a layer that receives
  them gets it as its `<input>_mask` argument.
* `AttentionDecoder`: token embedding + GRU (or LSTM) started from the encoder's
  final state, then, if `attention` is set, attention over the encoder outputs with
  the decoder outputs as queries (`course_lib.layers.AdditiveAttention` or
  `LuongAttention`), then a softmax layer over the target vocabulary. Without
  attention the decoder sees the source only through the encoder's final state: one
  fixed-size vector however long the source is (the "bottleneck").
* `build_seq2seq`: a `keras.Model` `[source, target_in] -> logits` made of the two,
  trained with teacher forcing (`target_in` is the target shifted right, starting
  with START).
* `greedy_decode`: generation one token at a time, for any model: a seq2seq model of
  this module (fast path: the encoder runs once and the decoder carries its state), or
  any function `next_token_logits(source, prefix)` (for example a Transformer).
* `exact_match`: which generated sequences are exactly right (`.mean()`: accuracy).
* `attention_weights`: the teacher-forced attention weights of a model, for heatmaps.
* `LengthBucketedBatches`: teacher-forcing batches of similar lengths for `model.fit`,
  each trimmed to its longest sequence (a short batch costs a short RNN loop).

Where attention sits. Bahdanau et al. (2015) compute the attention *before* each
decoder step (the query is the previous decoder state) and feed the context into the
RNN, which needs a step loop even with teacher forcing. This module uses the global
attention of Luong et al. (2015) without "input feeding": the decoder RNN runs over
the whole target first, then every decoder output `h_t` attends over the encoder
outputs, and the prediction is made from `tanh(W_c [h_t; c_t])` (or, with
`combine_activation="linear"`, from `W_c [h_t; c_t]`). Under teacher
forcing this is fully parallel over target positions (fast on a CPU), and run one
token at a time it gives exactly the same numbers, because the RNN never sees the
context. The price: the RNN does not know where it attended at the previous step, so
on long sources with repeated symbols it can skip or repeat a stretch (lesson 03 shows
such errors at lengths 30-40); Bahdanau's placement, or Luong's "input feeding" (the
previous context fed to the RNN), gives it that memory at the cost of a step loop.
The scoring function is a separate choice: `attention="additive"` uses Bahdanau's
additive score `v^T tanh(W_q h_t + W_k s_j + b)`, `attention="luong"` Luong's
"general" score `h_t^T W s_j`.

Token ids follow `course_lib.datasets`: PAD = 0, START = 1, END = 2.
"""

import keras
import numpy as np
from keras import ops

from course_lib.datasets import END, PAD, START

_CELLS = ("gru", "lstm")
_ATTENTIONS = (None, "additive", "luong")


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def _check_cell(cell):
    if cell not in _CELLS:
        raise ValueError(f"`cell` must be one of {_CELLS}. Received: cell={cell!r}")
    return cell


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
    """

    def __init__(self, vocab_size, embedding_dim, units, cell="gru", bidirectional=False, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = _check_positive_int(vocab_size, "vocab_size")
        self.embedding_dim = _check_positive_int(embedding_dim, "embedding_dim")
        self.units = _check_positive_int(units, "units")
        self.cell = _check_cell(cell)
        if not isinstance(bidirectional, bool):
            raise TypeError(f"`bidirectional` must be True or False. Received: bidirectional={bidirectional!r}")
        if bidirectional and units % 2:
            raise ValueError(
                "`units` must be even with `bidirectional=True` (each direction gets "
                f"units // 2). Received: units={units}"
            )
        self.bidirectional = bidirectional
        self.supports_masking = True

    def build(self, source_tokens_shape):
        if len(source_tokens_shape) != 2:
            raise ValueError(
                "`source_tokens` must have shape (batch_size, S). Received: "
                f"source_tokens with shape {tuple(source_tokens_shape)}"
            )
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

    Step 4 is Luong et al.'s global attention without input feeding: the RNN never
    sees the context, so the teacher-forced run is parallel over `T` and equal to the
    run one token at a time (`step`).

    Args:
        vocab_size: number of target token ids (id 0 is padding).
        embedding_dim: width of the target token embeddings.
        units: width of the decoder RNN; must equal the encoder's `units` (the
            encoder's final state is the decoder's initial state).
        attention: `None` (no attention, the bottleneck), `"additive"`
            (`course_lib.layers.AdditiveAttention`, Bahdanau's score) or `"luong"`
            (`course_lib.layers.LuongAttention`). Defaults to `None`.
        cell: `"gru"` or `"lstm"`, as in the encoder. Defaults to `"gru"`.
        attention_units: width of the hidden layer of the additive score (its cost
            grows as `batch_size * T * S * attention_units`); only with
            `attention="additive"`. `None` means `units`. Defaults to `None`.
        combine_activation: name of the Keras activation `f` of step 4 (only used
            with attention; the decoder without attention has no combine layer).
            `"linear"` makes `W_o W_c [h_t; c_t]` a product of two linear maps (the
            same parameters, no saturation): the gradient reaches the attention and
            the RNN undamped by `tanh'`, which can train much faster on a small
            budget. Defaults to `"tanh"`.
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
    """

    def __init__(
        self,
        vocab_size,
        embedding_dim,
        units,
        attention=None,
        cell="gru",
        attention_units=None,
        combine_activation="tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = _check_positive_int(vocab_size, "vocab_size")
        self.embedding_dim = _check_positive_int(embedding_dim, "embedding_dim")
        self.units = _check_positive_int(units, "units")
        if attention not in _ATTENTIONS:
            raise ValueError(f"`attention` must be one of {_ATTENTIONS}. Received: attention={attention!r}")
        self.attention = attention
        if attention_units is not None:
            _check_positive_int(attention_units, "attention_units")
            if attention != "additive":
                raise ValueError(
                    "`attention_units` is only used by attention='additive'. Received: "
                    f"attention_units={attention_units!r} with attention={attention!r}"
                )
        self.attention_units = attention_units
        try:
            keras.activations.get(combine_activation)
            valid = isinstance(combine_activation, str)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ValueError(
                "`combine_activation` must be the name of a Keras activation, such as "
                f"'tanh' or 'linear'. Received: combine_activation={combine_activation!r}"
            )
        self.combine_activation = combine_activation
        self.cell = _check_cell(cell)
        self.supports_masking = True

    def build(self, target_tokens_shape, encoder_outputs_shape=None, initial_state_shape=None):
        if len(target_tokens_shape) != 2:
            raise ValueError(
                "`target_tokens` must have shape (batch_size, T). Received: "
                f"target_tokens with shape {tuple(target_tokens_shape)}"
            )
        if encoder_outputs_shape is None or len(encoder_outputs_shape) != 3:
            raise ValueError(
                "`encoder_outputs` must have shape (batch_size, S, dv). Received: "
                f"encoder_outputs with shape {encoder_outputs_shape}"
            )
        batch_size, length = target_tokens_shape
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim, mask_zero=True, name="embedding", dtype=self.dtype_policy
        )
        self.embedding.build(target_tokens_shape)
        self.rnn = _make_rnn(self.cell, self.units, "rnn")
        self.rnn.build((batch_size, length, self.embedding_dim))
        hidden_shape = (batch_size, length, self.units)
        if self.attention is not None:
            from course_lib import layers

            if self.attention == "additive":
                self.attention_layer = layers.AdditiveAttention(
                    self.attention_units or self.units, name="attention", dtype=self.dtype_policy
                )
            else:
                self.attention_layer = layers.LuongAttention("general", name="attention", dtype=self.dtype_policy)
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
            hidden,
            encoder_outputs,
            query_mask=target_mask,
            value_mask=encoder_outputs_mask,
            return_attention_scores=True,
            training=training,
        )  # context: (batch, T, dv), weights: (batch, T, S)
        combined = self.combine(ops.concatenate([hidden, context], axis=-1))  # (batch, T, units)
        return self.output_projection(combined), weights, state

    def call(
        self,
        target_tokens,
        encoder_outputs,
        initial_state,
        encoder_outputs_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        if return_attention_scores and self.attention is None:
            raise ValueError(
                "`return_attention_scores=True` needs a decoder with attention. "
                f"Received: return_attention_scores=True with attention={self.attention!r}"
            )
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
        if len(tokens.shape) != 1:
            raise ValueError(
                f"`tokens` must have shape (batch_size,). Received: tokens with shape {tuple(tokens.shape)}"
            )
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
        self,
        target_tokens,
        encoder_outputs,
        initial_state,
        encoder_outputs_mask=None,
        return_attention_scores=False,
        training=None,
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
    source_vocab_size,
    target_vocab_size,
    embedding_dim,
    units,
    attention=None,
    cell="gru",
    bidirectional=False,
    attention_units=None,
    combine_activation="tanh",
    name="seq2seq",
):
    """A `keras.Model` `[source, target_in] -> logits`: `RNNEncoder` + `AttentionDecoder`.

    The layers are named `"encoder"` and `"decoder"` (`model.get_layer("decoder")`),
    which `greedy_decode` and `attention_weights` use.

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
    """
    encoder = RNNEncoder(source_vocab_size, embedding_dim, units, cell=cell, bidirectional=bidirectional, name="encoder")
    decoder = AttentionDecoder(
        target_vocab_size,
        embedding_dim,
        units,
        attention=attention,
        cell=cell,
        attention_units=attention_units,
        combine_activation=combine_activation,
        name="decoder",
    )
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    encoder_outputs, state = encoder(source)
    logits = decoder(target_in, encoder_outputs, state)
    return keras.Model([source, target_in], logits, name=name)


def _seq2seq_parts(model):
    try:
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError:
        encoder = decoder = None
    if not isinstance(encoder, RNNEncoder) or not isinstance(decoder, AttentionDecoder):
        raise ValueError(
            "`model` must be a model from `build_seq2seq` (layers named 'encoder' and "
            f"'decoder') or a function next_token_logits(source, prefix). Received: model={model!r}"
        )
    return encoder, decoder


def attention_weights(model, source_tokens, target_in):
    """The teacher-forced attention weights of a `build_seq2seq` model with attention.

    Returns a numpy array of shape `(batch_size, T, S)`."""
    encoder, decoder = _seq2seq_parts(model)
    source_tokens = ops.convert_to_tensor(np.asarray(source_tokens), dtype="int32")
    target_in = ops.convert_to_tensor(np.asarray(target_in), dtype="int32")
    encoder_outputs, state = encoder(source_tokens)
    mask = ops.not_equal(source_tokens, PAD)
    _, weights = decoder(target_in, encoder_outputs, state, encoder_outputs_mask=mask, return_attention_scores=True)
    return ops.convert_to_numpy(weights)


def _rnn_next_token_fn(model, source_tokens):
    """`next_token(prefix) -> (logits, weights)` for a seq2seq model, carrying the RNN
    state: the encoder runs once and each call feeds only the prefix's last token."""
    encoder, decoder = _seq2seq_parts(model)
    source = ops.convert_to_tensor(source_tokens, dtype="int32")
    encoder_outputs, state = encoder(source)
    mask = ops.not_equal(source, PAD)
    memory = {"state": state}

    def next_token(prefix):
        logits, memory["state"], weights = decoder.step(
            ops.convert_to_tensor(prefix[:, -1], dtype="int32"), memory["state"], encoder_outputs, mask
        )
        return logits, weights

    return next_token


def greedy_decode(model, source_tokens, max_length, start_id=START, end_id=END, pad_id=PAD):
    """Generate target sequences one token at a time, always taking the most likely token.

    Starting from `START`, the token with the largest logit is appended to the prefix
    until every sequence has produced `end_id` or `max_length` tokens were generated.
    After its END a sequence is filled with `pad_id`.

    Args:
        model: a model from `build_seq2seq` (the encoder runs once, the decoder carries
            its RNN state), or any function `next_token_logits(source, prefix)` that
            takes the source tokens `(batch_size, S)` and the prefix generated so far
            `(batch_size, t)` (starting with START) and returns the logits of the next
            token `(batch_size, vocab_size)`, or a pair `(logits, weights)` with
            attention weights `(batch_size, S)`.
        source_tokens: integer array of shape `(batch_size, S)`, padded with 0.
        max_length: the most tokens to generate (END included).
        start_id: the START token id. Defaults to `1`.
        end_id: the END token id. Defaults to `2`.
        pad_id: the id written after END. Defaults to `0`.

    Returns:
        `(tokens, weights)`: `tokens` a numpy int array of shape `(batch_size, L)` with
        `L <= max_length` (START not included, END included when produced);
        `weights` a numpy array `(batch_size, L, S)` of the attention weights at each
        step, or `None` when the model gives none.
    """
    source_tokens = np.asarray(source_tokens)
    if source_tokens.ndim != 2 or not np.issubdtype(source_tokens.dtype, np.integer):
        raise ValueError(
            "`source_tokens` must be an integer array of shape (batch_size, S). Received: "
            f"source_tokens with shape {source_tokens.shape} and dtype {source_tokens.dtype}"
        )
    max_length = _check_positive_int(max_length, "max_length")
    if isinstance(model, keras.Model):
        next_token = _rnn_next_token_fn(model, source_tokens)  # raises if not seq2seq
    elif callable(model):

        def next_token(prefix):
            return model(source_tokens, prefix)

    else:
        raise TypeError(
            "`model` must be a model from `build_seq2seq` or a function "
            f"next_token_logits(source, prefix). Received: model={model!r}"
        )

    batch_size = source_tokens.shape[0]
    prefix = np.full((batch_size, 1), start_id, dtype="int32")
    finished = np.zeros(batch_size, dtype=bool)
    steps_weights = []
    for _ in range(max_length):
        result = next_token(prefix)
        logits, weights = result if isinstance(result, tuple) else (result, None)
        logits = ops.convert_to_numpy(logits)
        if logits.ndim != 2 or logits.shape[0] != batch_size:
            raise ValueError(
                "The model must give next-token logits of shape (batch_size, vocab_size). "
                f"Received: logits with shape {logits.shape}"
            )
        tokens = np.argmax(logits, axis=-1).astype("int32")
        tokens = np.where(finished, pad_id, tokens)
        prefix = np.concatenate([prefix, tokens[:, None]], axis=1)
        if weights is not None:
            steps_weights.append(ops.convert_to_numpy(weights))
        finished |= tokens == end_id
        if finished.all():
            break
    weights = np.stack(steps_weights, axis=1) if steps_weights else None
    return prefix[:, 1:], weights


def exact_match(predicted, expected, end_id=END, pad_id=PAD):
    """Per-sequence exact match: `True` where `predicted` equals `expected` up to END.

    Each sequence is cut after its first `end_id` (or at its first `pad_id`), then the
    two token lists must be identical: same tokens, same length. `mean()` of the
    result is the exact-match accuracy.

    Args:
        predicted: integer array `(batch_size, L1)`, e.g. from `greedy_decode`.
        expected: integer array `(batch_size, L2)`, e.g. the targets without START.
        end_id: the END token id. Defaults to `2`.
        pad_id: the padding id. Defaults to `0`.

    Returns:
        A boolean numpy array of shape `(batch_size,)`.
    """
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    for name, array in (("predicted", predicted), ("expected", expected)):
        if array.ndim != 2:
            raise ValueError(f"`{name}` must have shape (batch_size, length). Received: {name} with shape {array.shape}")
    if predicted.shape[0] != expected.shape[0]:
        raise ValueError(
            "`predicted` and `expected` must hold the same number of sequences. Received: "
            f"predicted with shape {predicted.shape} and expected with shape {expected.shape}"
        )
    return np.array([_cut(p, end_id, pad_id) == _cut(e, end_id, pad_id) for p, e in zip(predicted, expected)])


def _cut(tokens, end_id, pad_id):
    out = []
    for token in tokens.tolist():
        if token == pad_id:
            break
        out.append(token)
        if token == end_id:
            break
    return out


class LengthBucketedBatches(keras.utils.PyDataset):
    """Teacher-forcing batches of sequences of similar length, for `model.fit`.

    The pairs are sorted by source length (ties broken at random), cut into batches of
    `batch_size`, and each batch is trimmed to its own longest source and target: a
    batch of short sequences costs a short RNN loop instead of one over the longest
    sequence of the data set. The batch order is shuffled every epoch.

    Each item is `((source, target_in), target_out)` with `target_in = targets[:, :-1]`
    and `target_out = targets[:, 1:]`, as `build_seq2seq` models expect.

    Keras infers the input signature from the first two batches, leaving free only the
    axes whose sizes differ: the first two batches are therefore always of different
    lengths, so that the length axis stays free.

    Args:
        sources: integer array `(num_samples, S)`, right-padded with 0.
        targets: integer array `(num_samples, T + 1)`, `[START, ..., END, PAD...]`.
        batch_size: sequences per batch.
        seed: seed of the tie-breaking and of the batch order. Defaults to `0`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).
    """

    def __init__(self, sources, targets, batch_size, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.sources, self.targets = np.asarray(sources), np.asarray(targets)
        if self.sources.ndim != 2 or self.targets.ndim != 2 or len(self.sources) != len(self.targets):
            raise ValueError(
                "`sources` and `targets` must be 2-D arrays with the same number of rows. "
                f"Received: sources with shape {self.sources.shape} and targets with shape {self.targets.shape}"
            )
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        lengths = np.sum(self.sources != PAD, axis=1)
        order = np.lexsort((self._rng.random(len(lengths)), lengths))  # by length, ties at random
        self._batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        self._order = np.arange(len(self._batches))
        self.on_epoch_end()

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        rows = self._batches[self._order[index]]
        sources, targets = self.sources[rows], self.targets[rows]
        source_length = max(1, int(np.sum(sources != PAD, axis=1).max()))
        target_length = max(2, int(np.sum(targets != PAD, axis=1).max()))
        sources, targets = sources[:, :source_length], targets[:, :target_length]
        return (sources, targets[:, :-1]), targets[:, 1:]

    def on_epoch_end(self):
        self._rng.shuffle(self._order)
        if len(self._order) > 1:
            widths = [self[i][0][0].shape[1] for i in range(len(self._order))]
            first = next((i for i in range(1, len(widths)) if widths[i] != widths[0]), None)
            if first is not None:  # put a batch of another length second
                self._order[[1, first]] = self._order[[first, 1]]
