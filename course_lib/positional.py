"""Positions for self-attention: sinusoidal, learned and rotary (lesson 07).

Self-attention treats its input as a set: permute the tokens and the outputs are
permuted the same way. The layers here give the model the order of the tokens.

* `SinusoidalPositionalEmbedding` adds the fixed sine/cosine encoding of
  "Attention Is All You Need" to its input (no weights);
* `LearnedPositionalEmbedding` adds a trainable table, one vector per position;
* `RotaryEmbedding` rotates the features of queries and keys by angles that grow
  with the position (RoFormer), so that `q_m . k_n` depends only on `m - n`.

The two embeddings return `inputs + positions`, so that they can be stacked like any
other layer; `sinusoidal_encoding` returns the encoding table itself. Every layer
passes the Keras mask of its input through unchanged. Shapes: `T` is the sequence
length (axis 1), `d` the feature width (last axis).
"""

import keras
import numpy as np
from keras import ops

from course_lib import checks


def _check_max_wavelength(max_wavelength):
    """The wavelength as given (an int stays an int in the config), if it is > 1."""
    checked = checks.check_number(max_wavelength, "max_wavelength", minimum=1, min_inclusive=False)
    return int(max_wavelength) if checks.is_int(max_wavelength) else checked


def _check_inputs_shape(input_shape, ranks=(3,)):
    layouts = {3: "(batch_size, T, d)", 4: "(batch_size, T, num_heads, d)"}
    shape = checks.check_shape_rank(input_shape, "inputs", ranks, " or ".join(layouts[r] for r in ranks))
    if shape[-1] is None:
        raise ValueError(f"The last dimension d of `inputs` must be known. Received: inputs with shape {shape}")
    return shape


def sinusoidal_encoding(length, depth, max_wavelength=10000, dtype="float32"):
    """The sinusoidal position encoding of "Attention Is All You Need" (`keras.ops`).

    For position `pos` and feature `j`, with `i = j // 2` (features go in pairs):

    1. `angle(pos, i) = pos / max_wavelength ** (2 * i / depth)`;
    2. `PE[pos, 2i] = sin(angle(pos, i))` and `PE[pos, 2i + 1] = cos(angle(pos, i))`.

    An odd `depth` simply ends with a sine feature.

    Args:
        length: number of positions `T` (an integer >= 0, or a scalar integer
            tensor such as `ops.shape(x)[1]` in a compiled function).
        depth: number of features `d` (int, at least 1).
        max_wavelength: the longest wavelength, reached by the last pair of
            features. Defaults to `10000`.
        dtype: dtype of the result. Defaults to `"float32"`.

    Returns:
        A tensor of shape `(length, depth)`.

    Example:

    >>> print(np.round(ops.convert_to_numpy(sinusoidal_encoding(3, 4)), 3))
    [[ 0.     1.     0.     1.   ]
     [ 0.841  0.54   0.01   1.   ]
     [ 0.909 -0.416  0.02   1.   ]]
    """
    depth = checks.check_positive_int(depth, "depth")
    if not hasattr(length, "shape") or isinstance(length, np.generic):
        length = checks.check_int(length, "length", minimum=0)
    elif len(length.shape) != 0 or not keras.backend.is_int_dtype(length.dtype):
        raise TypeError(checks.message("length", "an integer >= 0 or a scalar integer tensor", length))
    _check_max_wavelength(max_wavelength)
    positions = ops.cast(ops.arange(length), "float32")  # (T,)
    pair = ops.cast(ops.arange(depth) // 2, "float32")  # (d,): 0, 0, 1, 1, 2, ...
    inverse_wavelength = ops.power(float(max_wavelength), -2.0 * pair / depth)  # (d,)
    angles = positions[:, None] * inverse_wavelength[None, :]  # (T, d)
    is_cosine = ops.cast(ops.arange(depth) % 2, "float32")  # (d,): 0, 1, 0, 1, ...
    encoding = ops.sin(angles) * (1.0 - is_cosine) + ops.cos(angles) * is_cosine
    return ops.cast(encoding, dtype)


@keras.saving.register_keras_serializable(package="course_lib")
class SinusoidalPositionalEmbedding(keras.layers.Layer):
    """Adds the fixed sinusoidal position encoding of "Attention Is All You Need".

    For inputs `x` of shape `(batch_size, T, d)`:

    1. `PE = sinusoidal_encoding(T, d, max_wavelength)`, shape `(T, d)`: feature
       `2i` of position `pos` is `sin(pos / max_wavelength ** (2i / d))` and
       feature `2i + 1` is the cosine of the same angle;
    2. `output = x + PE`, the same encoding added to every sequence of the batch.

    The layer has no weights and works for any `T` (the encoding of a longer
    sequence starts with the encoding of a shorter one). An odd `d` ends with a
    sine feature. The Keras mask of `x` is passed through.

    Args:
        max_wavelength: the longest wavelength, reached by the last pair of
            features. Defaults to `10000`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor of shape `(batch_size, T, d)`.

    Returns:
        `inputs + PE`, of shape `(batch_size, T, d)`.

    Example:

    >>> x = np.zeros((2, 3, 4), "float32")  # (batch_size, T, d)
    >>> added = ops.convert_to_numpy(SinusoidalPositionalEmbedding()(x))
    >>> added.shape, bool(np.allclose(added[1], ops.convert_to_numpy(sinusoidal_encoding(3, 4))))
    ((2, 3, 4), True)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = _check_max_wavelength(max_wavelength)
        self.supports_masking = True

    def build(self, input_shape):
        _check_inputs_shape(input_shape)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)  # Keras casts only float inputs
        length, depth = ops.shape(inputs)[1], inputs.shape[-1]
        encoding = sinusoidal_encoding(length, depth, self.max_wavelength, self.compute_dtype)
        return inputs + encoding[None, :, :]  # (batch_size, T, d)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@keras.saving.register_keras_serializable(package="course_lib")
class LearnedPositionalEmbedding(keras.layers.Layer):
    """Adds a trainable vector to each position: a learned position embedding.

    For inputs `x` of shape `(batch_size, T, d)` with `T <= sequence_length`:

    1. `P` is a trainable table of shape `(sequence_length, d)`, one row per
       position, built on the first call;
    2. `output = x + P[:T]`, the first `T` rows added to every sequence.

    Unlike the sinusoidal encoding, the table knows nothing about positions it
    was not trained on: an input longer than `sequence_length` is an error, and so
    is an input of another width `d` than the one the table was built for. The
    Keras mask of `x` is passed through.

    The length is checked whenever it is known when the layer is called: always
    eagerly and on JAX, and in a compiled TensorFlow function whose inputs have a
    fixed length. In a TensorFlow function traced for any length
    (`keras.Input((None, d))`), it is known only when the function runs, and a
    sequence longer than `sequence_length` stops there with TensorFlow's error
    "Expected size[0] in [0, sequence_length], but got T" from this layer's `Slice`.

    Args:
        sequence_length: the largest `T` the layer accepts (positive int).
        initializer: initializer of the table. Defaults to `"glorot_uniform"`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor of shape `(batch_size, T, d)`.

    Returns:
        `inputs + P[:T]`, of shape `(batch_size, T, d)`.

    Example:

    >>> layer = LearnedPositionalEmbedding(sequence_length=10, initializer="ones")
    >>> print(ops.convert_to_numpy(layer(np.zeros((2, 3, 4)))).shape, layer.embeddings.shape)
    (2, 3, 4) (10, 4)
    >>> layer(np.zeros((2, 12, 4)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: ...The inputs are longer than `sequence_length=10`: received inputs of length T=12...
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = checks.check_positive_int(sequence_length, "sequence_length")
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def _check_inputs(self, input_shape):
        shape = _check_inputs_shape(input_shape)
        if shape[1] is not None and shape[1] > self.sequence_length:
            raise ValueError(
                f"The inputs are longer than `sequence_length={self.sequence_length}`: "
                f"received inputs of length T={shape[1]}. Create the layer with a larger "
                "`sequence_length`."
            )
        if self.built and shape[-1] != self.embeddings.shape[-1]:
            raise ValueError(
                f"LearnedPositionalEmbedding '{self.name}' was built for `inputs` of width "
                f"d={self.embeddings.shape[-1]}. Received: inputs with shape {shape}"
            )
        return shape

    def build(self, input_shape):
        depth = self._check_inputs(input_shape)[-1]
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, depth),
            initializer=self.initializer,
            trainable=True,
        )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)  # Keras casts only float inputs
        self._check_inputs(inputs.shape)
        table = ops.convert_to_tensor(self.embeddings)  # (sequence_length, d)
        positions = ops.slice(table, (0, 0), (ops.shape(inputs)[1], inputs.shape[-1]))  # (T, d)
        return inputs + ops.cast(positions, inputs.dtype)[None, :, :]  # (batch_size, T, d)

    def compute_output_shape(self, input_shape):
        return self._check_inputs(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="course_lib")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoFormer): rotates feature pairs by the position.

    Applied to queries and to keys (not to values) just before the attention
    scores. For inputs `x` of shape `(batch_size, T, d)` or
    `(batch_size, T, num_heads, d)`, with `d` even:

    1. the features go in pairs `(x[2i], x[2i + 1])`, `i = 0, ..., d/2 - 1`, each
       pair a 2-D vector;
    2. pair `i` of position `m` turns by the angle `m * theta_i`, with
       `theta_i = max_wavelength ** (-2i / d)`:
       `out[2i]     = x[2i] * cos(m theta_i) - x[2i + 1] * sin(m theta_i)`,
       `out[2i + 1] = x[2i] * sin(m theta_i) + x[2i + 1] * cos(m theta_i)`.

    A rotation keeps lengths, position 0 is left unchanged, and since rotating
    `q` by `m theta` and `k` by `n theta` changes their dot product only through
    `(m - n) theta`, the attention score of a rotated query and key depends on
    their relative position `m - n`, not on `m` and `n` themselves. The layer has
    no weights; the Keras mask of `x` is passed through.

    Args:
        max_wavelength: the longest wavelength, reached by the last pair of
            features. Defaults to `10000`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a query or key tensor of shape `(batch_size, T, d)` or
            `(batch_size, T, num_heads, d)`; positions run along axis 1.

    Returns:
        The rotated tensor, of the shape of `inputs`.

    Example:

    >>> x = np.zeros((1, 3, 2), "float32")
    >>> x[..., 0] = 1.0  # the vector (1, 0) at positions 0, 1, 2
    >>> print(np.round(ops.convert_to_numpy(RotaryEmbedding()(x))[0], 3))  # (cos m, sin m)
    [[ 1.     0.   ]
     [ 0.54   0.841]
     [-0.416  0.909]]
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = _check_max_wavelength(max_wavelength)
        self.supports_masking = True

    def build(self, input_shape):
        shape = _check_inputs_shape(input_shape, ranks=(3, 4))
        if shape[-1] % 2:
            raise ValueError(
                "RotaryEmbedding rotates pairs of features: the last dimension d of "
                f"`inputs` must be even. Received: d={shape[-1]} (inputs with shape {shape})"
            )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)  # Keras casts only float inputs
        depth = inputs.shape[-1]
        length = ops.shape(inputs)[1]
        positions = ops.cast(ops.arange(length), "float32")  # (T,)
        pair = ops.cast(ops.arange(depth // 2), "float32")  # (d/2,)
        theta = ops.power(float(self.max_wavelength), -2.0 * pair / depth)  # (d/2,)
        angles = positions[:, None] * theta[None, :]  # (T, d/2)
        # (T, d/2) -> (T, 1, d/2) for inputs with a heads axis (T, num_heads, d)
        angles = ops.reshape(angles, (length,) + (1,) * (len(inputs.shape) - 3) + (depth // 2,))
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        # (batch_size, T, [num_heads,] d) -> (batch_size, T, [num_heads,] d/2, 2)
        pairs = ops.reshape(inputs, ops.shape(inputs)[:-1] + (depth // 2, 2))
        even, odd = pairs[..., 0], pairs[..., 1]  # each (batch_size, T, [num_heads,] d/2)
        rotated = ops.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
        # (batch_size, T, [num_heads,] d/2, 2) -> (batch_size, T, [num_heads,] d)
        return ops.reshape(rotated, ops.shape(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}
