"""A sequence classifier in one call: tokens in, class probabilities out (lessons 07, 10, 12).

    tokens (B, T) -> Embedding (B, T, C) [+ positions] -> body (B, T, C) x num_layers
                  -> pooling over the real tokens (B, C) -> [dropout] -> Dense softmax (B, classes)

Lesson 07 builds this model inline with one self-attention layer, mean pooling and a
sigmoid; `build_classifier` is that model with the parts made choosable, so that two
models that differ in one part only (a GRU body against a self-attention body, at
nearly the same number of parameters) are one argument apart:

* `body`: `"gru"` and `"lstm"` (Keras's recurrent layers, `units = width`), `"self_attention"`
  (the course's `MultiHeadAttention` of lesson 08 on its own: no residual connection, no
  normalisation, no feed-forward network, as in lesson 07), `"transformer"` (the
  `TransformerEncoderBlock` of lesson 09: self-attention and a feed-forward network, each
  with a residual connection and layer normalisation);
* `positions`: `"none"`, `"sinusoidal"` or `"learned"` (`course_lib.positional`), added to
  the embeddings; by default none for a recurrent body (the recurrence reads the order)
  and sinusoidal for an attention body (attention alone cannot, lesson 07);
* `pooling`: `"mean"` (the average of the real tokens), `"last"` (the last real token: a
  recurrent layer's final state), `"first"` (position 0, where a `[CLS]` token goes),
  `"attention"` (one learned query attends over the real tokens:
  `course_lib.attention_pooling.AttentionPooling`, lesson 12).

Padding: token id `PAD` (0) marks padding. The padding mask (True = real token) is made
once by `PaddingMask` and handed to every part explicitly: a recurrent layer skips
padded steps, attention never attends to a padded key, pooling never reads a padded
position. So padding on the right never changes a prediction (tests/test_classifier.py).

`count_parameters(model)` gives the parameters of each part (embedding, positions,
body, pooling, head) and the total, the numbers a parameter-matched comparison quotes.

Adding a part: a body is a function `(h, mask, index, options) -> h` in `BODIES` that
makes and calls layer number `index` (named `body_{index}`); a pooling is a function
`(options) -> layer` in `POOLINGS`, the layer called as `layer(h, padding_mask=mask)` and named
`pooling`. `options` holds the arguments of `build_classifier`. Lesson 12 adds its
attention-pooling head this way.

Shape letters: `B` batch size, `T` length, `C` width (`d_model`).

Example:

>>> import numpy as np
>>> model = build_classifier(vocab_size=20, num_classes=3, width=8, body="gru", pooling="last")
>>> tokens = np.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])  # (B, T), 0 = padding
>>> tuple(model(tokens).shape)  # one probability per class
(2, 3)
>>> count_parameters(model)
{'embedding': 160, 'positions': 0, 'body': 432, 'pooling': 0, 'head': 27, 'total': 619}
"""

import keras
from keras import ops

from course_lib.checks import (
    check_bool,
    check_choice,
    check_int,
    check_positive_int,
    check_rate,
    message,
)
from course_lib.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEmbedding,
)
from course_lib.tokens import PAD

RECURRENT_BODIES = ("gru", "lstm")
ATTENTION_BODIES = ("self_attention", "transformer")
POSITIONS = ("none", "sinusoidal", "learned")
PARTS = ("embedding", "positions", "body", "pooling", "head")  # the keys of `count_parameters`


@keras.saving.register_keras_serializable(package="course_lib")
class PaddingMask(keras.layers.Layer):
    """The padding mask of a batch of token ids: True where the token is not `pad_id`.

    Args:
        pad_id: the id of padding. Defaults to `0` (`course_lib.tokens.PAD`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: integer tensor `(batch_size, T)`.

    Returns:
        A boolean tensor `(batch_size, T)`, True = real token.

    Example:

    >>> import numpy as np
    >>> ops.convert_to_numpy(PaddingMask()(np.array([[4, 5, 0]]))).tolist()
    [[True, True, False]]
    """

    def __init__(self, pad_id=PAD, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = check_int(pad_id, "pad_id", minimum=0)

    def call(self, inputs):
        return ops.not_equal(inputs, ops.cast(self.pad_id, inputs.dtype))  # (B, T)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package="course_lib")
class SequencePooling(keras.layers.Layer):
    """One vector per sequence from the vectors of its real tokens.

    * `"mean"`: `sum_t mask_t x_t / sum_t mask_t`, the average over the real tokens;
    * `"last"`: `x_t` at the last real token (for a recurrent layer, its final state);
    * `"first"`: `x_0`, the first position (a `[CLS]` token's place).

    A sequence without a single real token gets zeros. Without a mask every position
    counts as real.

    Args:
        mode: `"mean"`, `"last"` or `"first"`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor `(batch_size, T, C)`.
        padding_mask: optional boolean tensor `(batch_size, T)`, True = real token.

    Returns:
        A tensor `(batch_size, C)`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(2, 3, 2)  # (B, T, C)
    >>> mask = np.array([[True, True, False], [True, True, True]])
    >>> ops.convert_to_numpy(SequencePooling("last")(x, padding_mask=mask)).tolist()
    [[2.0, 3.0], [10.0, 11.0]]
    >>> ops.convert_to_numpy(SequencePooling("mean")(x, padding_mask=mask)).tolist()
    [[1.0, 2.0], [8.0, 9.0]]
    """

    MODES = ("mean", "last", "first")

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice(mode, "mode", self.MODES)
        self.supports_masking = True  # a mask attached to `inputs` is accepted (and `padding_mask` used)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per sequence: nothing left to mask

    def call(self, inputs, padding_mask=None):
        x = inputs  # (B, T, C)
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        real = ops.cast(padding_mask, x.dtype)  # (B, T)
        if self.mode == "first":
            return x[:, 0, :] * real[:, :1]  # (B, C)
        if self.mode == "mean":
            total = ops.sum(x * real[:, :, None], axis=1)  # (B, C)
            return total / ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0)
        # "last": the real token with the largest position (position t weighs t + 1).
        length = ops.shape(x)[1]
        ranks = real * ops.cast(ops.arange(1, length + 1), x.dtype)[None, :]  # (B, T)
        last = ops.argmax(ranks, axis=1)  # (B,)
        picked = ops.take_along_axis(x, ops.reshape(last, (-1, 1, 1)), axis=1)[:, 0, :]  # (B, C)
        return picked * ops.max(real, axis=1, keepdims=True)  # zeros where nothing is real

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


# The bodies ---------------------------------------------------------------------------


def _recurrent(layer_class):
    def body(h, mask, index, options):
        layer = layer_class(options["width"], return_sequences=True, name=f"body_{index}")
        return layer(h, mask=mask)  # padded steps are skipped: the state is carried over them

    return body


def _self_attention(h, mask, index, options):
    width, num_heads = options["width"], options["num_heads"]
    layer = _multihead(num_heads, key_dim=width // num_heads, dropout=options["dropout"], name=f"body_{index}")
    return layer(h, h, value_mask=mask)  # (B, T, C): no padded key is attended to


def _transformer(h, mask, index, options):
    block = _encoder_block(
        intermediate_dim=options["intermediate_dim"], num_heads=options["num_heads"], dropout=options["dropout"],
        normalize_first=options["normalize_first"], name=f"body_{index}")
    return block(h, padding_mask=mask)  # (B, T, C)


def _multihead(*args, **kwargs):
    from course_lib.multihead import MultiHeadAttention

    return MultiHeadAttention(*args, **kwargs)


def _encoder_block(**kwargs):
    from course_lib.transformer import TransformerEncoderBlock

    return TransformerEncoderBlock(**kwargs)


BODIES = {
    "gru": _recurrent(keras.layers.GRU),
    "lstm": _recurrent(keras.layers.LSTM),
    "self_attention": _self_attention,
    "transformer": _transformer,
}

def _attention_pooling(options):
    from course_lib.attention_pooling import AttentionPooling

    return AttentionPooling(name="pooling")  # one learned query over the tokens (lesson 12)


POOLINGS = {mode: (lambda options, mode=mode: SequencePooling(mode, name="pooling")) for mode in SequencePooling.MODES}
POOLINGS["attention"] = _attention_pooling


def build_classifier(vocab_size, num_classes, width=32, body="self_attention", num_layers=1, num_heads=1,
                     intermediate_dim=None, positions=None, pooling="mean", sequence_length=None, dropout=0.0,
                     normalize_first=False, name=None):
    """A sequence classifier: embedding, positions, a body, masked pooling, softmax.

    See the module docstring for the parts. Every layer has a fixed name:
    `embedding`, `positions`, `body_0 ... body_{num_layers - 1}`, `pooling`,
    `dropout`, `head`.

    Args:
        vocab_size: number of token ids, padding (0) included.
        num_classes: number of classes, >= 2.
        width: embedding width `C`, also the width of every body layer (a recurrent
            layer's `units`). Defaults to `32`.
        body: `"gru"`, `"lstm"`, `"self_attention"` or `"transformer"` (see `BODIES`).
            Defaults to `"self_attention"`.
        num_layers: how many body layers are stacked. Defaults to `1`.
        num_heads: attention heads `h`; must divide `width` (attention bodies only).
            Defaults to `1`.
        intermediate_dim: hidden width of the feed-forward network (`"transformer"`
            only). `None` means `4 * width`, as in the paper.
        positions: `"none"`, `"sinusoidal"` or `"learned"`. `None` means `"none"` for
            a recurrent body and `"sinusoidal"` for an attention body.
        pooling: `"mean"`, `"last"`, `"first"` or `"attention"` (see `POOLINGS`).
            Defaults to `"mean"`.
        sequence_length: the length `T` of the inputs, or `None` for any length.
            Needed by learned positions (the longest length they accept).
        dropout: dropout rate on the pooled vector and inside attention bodies
            (training). Defaults to `0.0`.
        normalize_first: pre-norm (`True`) or post-norm Transformer blocks.
            Defaults to `False`.
        name: the model's name. `None` means `"{body}_classifier"`.

    Returns:
        A `keras.Model` from int token ids `(batch_size, T)` to class probabilities
        `(batch_size, num_classes)` (rows sum to 1), not compiled.
    """
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    if vocab_size < 2:
        raise ValueError(message("vocab_size", "at least 2 (padding and one token)", vocab_size))
    num_classes = check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(message("num_classes", "at least 2", num_classes))
    width = check_positive_int(width, "width")
    body = check_choice(body, "body", tuple(BODIES))
    num_layers = check_positive_int(num_layers, "num_layers")
    num_heads = check_positive_int(num_heads, "num_heads")
    if body in ATTENTION_BODIES and width % num_heads:
        raise ValueError(message("num_heads", f"a divisor of `width` ({width})", num_heads))
    intermediate_dim = check_positive_int(intermediate_dim, "intermediate_dim", allow_none=True) or 4 * width
    if positions is None:
        positions = "none" if body in RECURRENT_BODIES else "sinusoidal"
    positions = check_choice(positions, "positions", POSITIONS)
    pooling = check_choice(pooling, "pooling", tuple(POOLINGS))
    sequence_length = check_positive_int(sequence_length, "sequence_length", allow_none=True)
    if positions == "learned" and sequence_length is None:
        raise ValueError(message("sequence_length", "given with positions='learned' (the table's length)", None))
    dropout = check_rate(dropout, "dropout")
    normalize_first = check_bool(normalize_first, "normalize_first")
    options = {
        "vocab_size": vocab_size, "num_classes": num_classes, "width": width, "body": body, "num_layers": num_layers,
        "num_heads": num_heads, "intermediate_dim": intermediate_dim, "positions": positions, "pooling": pooling,
        "sequence_length": sequence_length, "dropout": dropout, "normalize_first": normalize_first,
    }

    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    mask = PaddingMask(name="padding_mask")(tokens)  # (B, T), True = real token
    h = keras.layers.Embedding(vocab_size, width, name="embedding")(tokens)  # (B, T, C)
    if positions == "sinusoidal":
        h = SinusoidalPositionalEmbedding(name="positions")(h)
    elif positions == "learned":
        h = LearnedPositionalEmbedding(sequence_length, name="positions")(h)
    for index in range(num_layers):
        h = BODIES[body](h, mask, index, options)  # (B, T, C)
    pooled = POOLINGS[pooling](options)(h, padding_mask=mask)  # (B, C)
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="dropout")(pooled)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="head")(pooled)
    return keras.Model(tokens, probabilities, name=name or f"{body}_classifier")


def count_parameters(model):
    """The parameters of each part of a `build_classifier` model, and the total.

    Returns:
        A dict `{"embedding", "positions", "body", "pooling", "head", "total"}` of
        ints; the parts add up to the total (`model.count_params()`). A layer whose
        name names no part (a model built otherwise) raises a `ValueError`.
    """
    counts = dict.fromkeys(PARTS, 0)
    for layer in model.layers:
        size = sum(int(ops.size(w)) for w in layer.weights)
        part = layer.name.split("_")[0] if layer.name.startswith("body_") else layer.name
        if part in counts:
            counts[part] += size
        elif size:
            raise ValueError(f"Layer {layer.name!r} belongs to no part of a `build_classifier` model "
                             f"({', '.join(PARTS)}). Received: model={model.name!r}")
    counts["total"] = int(model.count_params())
    return counts
