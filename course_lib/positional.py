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
from keras import ops


def _check_max_wavelength(max_wavelength):
    if isinstance(max_wavelength, bool) or not isinstance(max_wavelength, (int, float)) or not max_wavelength > 1:
        raise ValueError(
            f"`max_wavelength` must be a number greater than 1. Received: max_wavelength={max_wavelength!r}"
        )


def _check_rank(input_shape, ranks, layer):
    if len(input_shape) not in ranks:
        expected = " or ".join(
            {3: "(batch_size, T, d)", 4: "(batch_size, T, num_heads, d)"}[r] for r in ranks
        )
        raise ValueError(
            f"{layer} expects inputs of shape {expected}. "
            f"Received: inputs with shape {tuple(input_shape)}"
        )


def sinusoidal_encoding(length, depth, max_wavelength=10000, dtype="float32"):
    """The sinusoidal position encoding of "Attention Is All You Need" (`keras.ops`).

    For position `pos` and feature `j`, with `i = j // 2` (features go in pairs):

    1. `angle(pos, i) = pos / max_wavelength ** (2 * i / depth)`;
    2. `PE[pos, 2i] = sin(angle(pos, i))` and `PE[pos, 2i + 1] = cos(angle(pos, i))`.

    An odd `depth` simply ends with a sine feature.

    Args:
        length: number of positions `T` (int, at least 1, or a scalar tensor).
        depth: number of features `d` (int, at least 1).
        max_wavelength: the longest wavelength, reached by the last pair of
            features. Defaults to `10000`.
        dtype: dtype of the result. Defaults to `"float32"`.

    Returns:
        A tensor of shape `(length, depth)`.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"`depth` must be a positive integer. Received: depth={depth!r}")
    if isinstance(length, int) and (isinstance(length, bool) or length < 1):
        raise ValueError(f"`length` must be a positive integer. Received: length={length!r}")
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
        inputs: float tensor of shape `(batch_size, T, d)`.

    Returns:
        `inputs + PE`, of shape `(batch_size, T, d)`.
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        _check_max_wavelength(max_wavelength)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def build(self, input_shape):
        _check_rank(input_shape, (3,), "SinusoidalPositionalEmbedding")
        if input_shape[-1] is None:
            raise ValueError(
                "The last dimension d of the inputs must be known. "
                f"Received: inputs with shape {tuple(input_shape)}"
            )

    def call(self, inputs):
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
    was not trained on: an input longer than `sequence_length` is an error. The
    Keras mask of `x` is passed through.

    Args:
        sequence_length: the largest `T` the layer accepts (positive int).
        initializer: initializer of the table. Defaults to `"glorot_uniform"`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: float tensor of shape `(batch_size, T, d)`.

    Returns:
        `inputs + P[:T]`, of shape `(batch_size, T, d)`.
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive integer. "
                f"Received: sequence_length={sequence_length!r}"
            )
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def _check_length(self, length):
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"The inputs are longer than `sequence_length={self.sequence_length}`: "
                f"received inputs of length T={length}. Create the layer with a larger "
                "`sequence_length`."
            )

    def build(self, input_shape):
        _check_rank(input_shape, (3,), "LearnedPositionalEmbedding")
        if input_shape[-1] is None:
            raise ValueError(
                "The last dimension d of the inputs must be known. "
                f"Received: inputs with shape {tuple(input_shape)}"
            )
        self._check_length(input_shape[1])
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
            trainable=True,
        )

    def call(self, inputs):
        self._check_length(inputs.shape[1])
        length = ops.shape(inputs)[1]
        positions = ops.slice(self.embeddings, (0, 0), (length, inputs.shape[-1]))  # (T, d)
        return inputs + ops.cast(positions, inputs.dtype)[None, :, :]  # (batch_size, T, d)

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape[1])
        return tuple(input_shape)

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
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        _check_max_wavelength(max_wavelength)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def build(self, input_shape):
        _check_rank(input_shape, (3, 4), "RotaryEmbedding")
        depth = input_shape[-1]
        if depth is None or depth % 2:
            raise ValueError(
                "RotaryEmbedding rotates pairs of features: the last dimension d of "
                f"the inputs must be known and even. Received: d={depth} "
                f"(inputs with shape {tuple(input_shape)})"
            )

    def call(self, inputs):
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
