"""The position-wise feed-forward network of the Transformer (lesson 09).

Attention mixes information between positions; the feed-forward network then
transforms each position on its own, with the same two-layer MLP everywhere:
`Dense(intermediate_dim, activation) -> dropout -> Dense(width)`. It is one of the two
sublayers of every block of `course_lib.transformer` (and importable from there).

Shape letters: `B` batch size, `T` length, `C` width.
"""

import keras

from course_lib.checks import check_activation, check_positive_int, check_rate


def get_activation(value):
    """A Keras activation given by name (checked) or as a function."""
    if not callable(value):
        check_activation(value, "activation")
    return keras.activations.get(value)


def clone_initializer(initializer):
    """A fresh copy of an initializer, so that no two weights share one (as keras-hub does)."""
    return initializer.__class__.from_config(initializer.get_config())


@keras.saving.register_keras_serializable(package="course_lib")
class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward network: the same two-layer MLP at every position.

    `FFN(x) = Dense_C(dropout(activation(x @ W1 + b1)))`, with `W1` of shape
    `(C, intermediate_dim)` and the output as wide as the input (`C`). Positions never
    mix: attention moves information between positions, this network transforms
    each one (the paper's `intermediate_dim` is `4 * C`).

    Args:
        intermediate_dim: width of the hidden layer.
        activation: activation of the hidden layer (a Keras name such as `"relu"` or
            `"gelu"`, or a Keras activation function). Defaults to `"relu"`.
        dropout: dropout rate on the hidden layer (training). Defaults to `0.0`.
        kernel_initializer: initializer of the kernels. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: tensor of shape `(batch_size, ..., C)`.
        training: whether dropout is active.

    Returns:
        A tensor of the shape of `inputs`; a mask attached to `inputs` is kept.

    Example:

    >>> import numpy as np
    >>> ffn = FeedForward(intermediate_dim=32)
    >>> tuple(ffn(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    >>> [tuple(w.shape) for w in ffn.weights]
    [(8, 32), (32,), (32, 8), (8,)]
    """

    def __init__(self, intermediate_dim, activation="relu", dropout=0.0, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = check_positive_int(intermediate_dim, "intermediate_dim")
        self.activation = get_activation(activation)
        self.dropout = check_rate(dropout, "dropout")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        width = inputs_shape[-1]
        if len(inputs_shape) < 2 or width is None:
            raise ValueError(f"`inputs` must have shape (batch_size, ..., width) with a known width. "
                             f"Received: inputs with shape {tuple(inputs_shape)}")
        dense = dict(dtype=self.dtype_policy)
        self._intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, name="intermediate_dense",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer), **dense)
        self._intermediate_dense.build(inputs_shape)
        self._dropout_layer = keras.layers.Dropout(self.dropout, name="dropout", **dense)
        self._output_dense = keras.layers.Dense(
            width, kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer), name="output_dense", **dense)
        self._output_dense.build((*inputs_shape[:-1], self.intermediate_dim))

    def call(self, inputs, training=None):
        width = self._output_dense.units
        if len(inputs.shape) < 2 or inputs.shape[-1] != width:
            raise ValueError(f"`inputs` must have shape (batch_size, ..., {width}), the width this layer was "
                             f"built for. Received: inputs with shape {tuple(inputs.shape)}")
        hidden = self._intermediate_dense(inputs)  # (B, T, intermediate_dim)
        hidden = self._dropout_layer(hidden, training=training)
        return self._output_dense(hidden)  # (B, T, C)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
