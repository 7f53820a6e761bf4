"""Attention pooling: one learned query attends over the tokens of a sequence (lesson 12).

The simplest attention model of a text classifier. Instead of averaging the vectors of
the real tokens (`course_lib.classifier.SequencePooling("mean")`), the model learns a
query vector `q` and lets it score every token:

1. scores   `s_t = x_t . q / sqrt(C)` for every position `t`;
2. weights  `a = masked_softmax(s, mask)`: padded positions get exactly 0, the real
   tokens' weights sum to 1;
3. output   `sum_t a_t x_t`, one vector `(C,)` per sequence.

With no context in `x_t` (the word embeddings alone) the weights `a_t` are one number
per word of the sentence, the most readable attention there is: how much each word
counts in the vector the classifier reads. Because the query is the same for every
sentence, a word's score does not depend on its neighbours; only the normalisation
does (the same word weighs less in a longer sentence).

It is the pooling `"attention"` of `course_lib.classifier.build_classifier`.

Shape letters: `B` batch size, `T` length, `C` width.

Example:

>>> import numpy as np
>>> layer = AttentionPooling()
>>> x = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]], "float32")  # (B, T, C)
>>> mask = np.array([[True, True, False]])  # the third position is padding
>>> pooled, weights = layer(x, padding_mask=mask, return_attention_scores=True)
>>> ops.convert_to_numpy(weights).tolist()  # a zero query at initialisation: uniform
[[0.5, 0.5, 0.0]]
>>> ops.convert_to_numpy(pooled).tolist()
[[0.5, 0.5]]
"""

import math

import keras
from keras import ops

from course_lib.attention import masked_softmax
from course_lib.checks import check_positive_int, check_rate, check_shape_rank, message


@keras.saving.register_keras_serializable(package="course_lib")
class AttentionPooling(keras.layers.Layer):
    """One vector per sequence: the attention-weighted sum of its tokens' vectors.

    A learned query `q` of width `C` scores every position, `s_t = x_t . q / sqrt(C)`;
    the weights are the softmax of the scores over the real tokens (padding gets
    exactly 0); the output is `sum_t a_t x_t`. A sequence without a single real token
    gets zeros.

    Args:
        query_initializer: initializer of the query `(C,)`. Defaults to `"zeros"`
            (uniform weights at the start: attention pooling starts as mean pooling).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor `(batch_size, T, C)`.
        padding_mask: optional boolean tensor `(batch_size, T)`, True = real token.
            Without it, every position counts as real.
        return_attention_scores: also return the weights. Defaults to `False`.

    Returns:
        A tensor `(batch_size, C)`, and with `return_attention_scores=True` the
        weights `(batch_size, T)` too (rows sum to 1 over the real tokens).
    """

    def __init__(self, query_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.query_initializer = keras.initializers.get(query_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        shape = check_shape_rank(input_shape, "inputs", 3, "(batch_size, length, width)")
        if shape[-1] is None:
            raise ValueError(f"The width of `inputs` must be known. Received: inputs with shape {shape}")
        self.query = self.add_weight(name="query", shape=(shape[-1],), initializer=self.query_initializer)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per sequence: nothing left to mask

    def call(self, inputs, padding_mask=None, return_attention_scores=False):
        x = inputs  # (B, T, C)
        scale = 1.0 / math.sqrt(x.shape[-1])
        scores = ops.einsum("btc,c->bt", x, ops.cast(self.query, x.dtype)) * scale  # (B, T)
        weights = masked_softmax(scores, padding_mask)  # (B, T): 0 at padding
        pooled = ops.einsum("bt,btc->bc", weights, x)  # (B, C)
        return (pooled, weights) if return_attention_scores else pooled

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_output_spec(self, inputs, padding_mask=None, return_attention_scores=False):
        pooled = keras.KerasTensor((inputs.shape[0], inputs.shape[-1]), dtype=inputs.dtype)
        if return_attention_scores:
            return pooled, keras.KerasTensor(inputs.shape[:2], dtype=inputs.dtype)
        return pooled

    def get_config(self):
        return {**super().get_config(), "query_initializer": keras.initializers.serialize(self.query_initializer)}


def build_attention_pooling_classifier(vocab_size, num_classes, width=32, dropout=0.0, name="attention_pooling"):
    """The simplest attention classifier: word embeddings, one learned query, softmax.

        tokens (B, T) -> Embedding (B, T, C) -> AttentionPooling (B, C) -> [dropout] -> Dense softmax

    No body and no positions: each word's weight depends on the word alone (and on the
    sentence's other words only through the normalisation). The layers are named as
    in `course_lib.classifier.build_classifier` (`padding_mask`, `embedding`,
    `pooling`, `dropout`, `head`), so `count_parameters` and
    `course_lib.faithfulness` read it the same way.

    Args:
        vocab_size: number of token ids, padding (0) included.
        num_classes: number of classes, >= 2.
        width: embedding width `C`. Defaults to `32`.
        dropout: dropout rate on the embeddings and on the pooled vector (training).
            Defaults to `0.0`.
        name: the model's name. Defaults to `"attention_pooling"`.

    Returns:
        A `keras.Model` from int token ids `(batch_size, T)` to class probabilities
        `(batch_size, num_classes)`, not compiled.

    Example:

    >>> model = build_attention_pooling_classifier(vocab_size=20, num_classes=2, width=4)
    >>> from course_lib.classifier import count_parameters
    >>> count_parameters(model)
    {'embedding': 80, 'positions': 0, 'body': 0, 'pooling': 4, 'head': 10, 'total': 94}
    """
    from course_lib.classifier import PaddingMask

    vocab_size = check_positive_int(vocab_size, "vocab_size")
    if vocab_size < 2:
        raise ValueError(message("vocab_size", "at least 2 (padding and one token)", vocab_size))
    num_classes = check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(message("num_classes", "at least 2", num_classes))
    width = check_positive_int(width, "width")
    dropout = check_rate(dropout, "dropout")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    mask = PaddingMask(name="padding_mask")(tokens)  # (B, T), True = real token
    h = keras.layers.Embedding(vocab_size, width, name="embedding")(tokens)  # (B, T, C)
    if dropout:
        h = keras.layers.Dropout(dropout, name="embedding_dropout")(h)
    pooled = AttentionPooling(name="pooling")(h, padding_mask=mask)  # (B, C)
    if dropout:
        pooled = keras.layers.Dropout(dropout, name="dropout")(pooled)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="head")(pooled)
    return keras.Model(tokens, probabilities, name=name)
