"""Spatial attention over a CNN feature map (lesson 06, "show, attend and tell").

A convolutional network turns an image into a feature map `(batch_size, H, W, C)`:
one feature vector per location. Xu et al. (2015) caption an image by attending, at
each word, over those `H x W` vectors with an additive (MLP) score of the decoder
state and each location's features. `SpatialAttention` is that step: the `H x W`
locations become the `Tv = H * W` keys and values of `AdditiveAttention` (on the
single-head base `course_lib.attention.ScoredAttention`), and the weights come back
as a map `(batch_size, H, W)` that can be drawn over the image.

(`MultiHeadAttention(..., attention_axes=(1, 2))`, Keras's or the course's, attends
over the same two axes with scaled dot-product heads; lesson 06 shows both.)
"""

import keras
from keras import ops

from course_lib import checks
from course_lib.scoring import AdditiveAttention


@keras.saving.register_keras_serializable(package="course_lib")
class SpatialAttention(keras.layers.Layer):
    """Additive attention of one query over the `H x W` locations of a feature map.

    1. Flatten: `feature_map` `(batch_size, H, W, C)` becomes `(batch_size, H * W, C)`,
       the keys and values; `query` `(batch_size, dim_q)` one query per image.
    2. Attend: `AdditiveAttention(units)`: `scores[l] = v^T tanh(W_q q + W_k f_l + b)`,
       `weights = softmax(scores)` over the `H * W` locations,
       `output = sum_l weights[l] f_l`.
    3. Return the context vector `(batch_size, C)` and, if asked, the weights as a map
       `(batch_size, H, W)` summing to 1 over each image.

    Args:
        units: positive integer, the width of the additive score's hidden layer.
        dropout: fraction of the weights dropped in training, in `[0, 1)`.
            Defaults to `0.0`.
        seed: optional integer seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        feature_map: tensor `(batch_size, H, W, C)`.
        query: tensor `(batch_size, dim_q)` (for example a decoder state, or a
            summary of the whole map).
        return_attention_scores: if `True`, also return the weights
            `(batch_size, H, W)`. Defaults to `False`.
        training: Python bool, whether dropout is applied.

    Returns:
        `context` `(batch_size, C)`, and the weights map if `return_attention_scores`.

    Example:

    >>> import numpy as np
    >>> features = np.random.default_rng(0).normal(size=(2, 3, 4, 8)).astype("float32")
    >>> query = np.ones((2, 5), "float32")
    >>> context, weights = SpatialAttention(units=6)(features, query, return_attention_scores=True)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 8), (2, 3, 4))
    >>> print(np.round(ops.convert_to_numpy(weights).sum(axis=(1, 2)), 4))
    [1. 1.]
    """

    def __init__(self, units, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = checks.check_positive_int(units, "units")
        self.dropout = checks.check_rate(dropout, "dropout")
        self.seed = checks.check_seed(seed)
        self.attention = AdditiveAttention(self.units, dropout=self.dropout, seed=self.seed, name="attention")

    def _check_shapes(self, feature_map_shape, query_shape):
        feature_map_shape = checks.check_shape_rank(feature_map_shape, "feature_map", 4, "(batch_size, H, W, C)")
        query_shape = checks.check_shape_rank(query_shape, "query", 2, "(batch_size, dim_q)")
        if None not in (feature_map_shape[0], query_shape[0]) and feature_map_shape[0] != query_shape[0]:
            raise ValueError(f"`feature_map` and `query` must have the same batch size. Received: feature_map "
                             f"with shape {feature_map_shape} and query with shape {query_shape}")
        return feature_map_shape, query_shape

    def build(self, feature_map_shape, query_shape):
        feature_map_shape, query_shape = self._check_shapes(feature_map_shape, query_shape)
        _, height, width, channels = feature_map_shape
        locations = None if None in (height, width) else height * width
        self.attention.build((query_shape[0], 1, query_shape[-1]), (feature_map_shape[0], locations, channels))

    def call(self, feature_map, query, return_attention_scores=False, training=None):
        self._check_shapes(feature_map.shape, query.shape)
        shape = ops.shape(feature_map)
        flat = ops.reshape(feature_map, (shape[0], shape[1] * shape[2], shape[3]))  # (batch_size, H * W, C)
        context, weights = self.attention(
            ops.expand_dims(query, 1), flat, return_attention_scores=True, training=training
        )  # (batch_size, 1, C), (batch_size, 1, H * W)
        context = context[:, 0, :]  # (batch_size, C)
        if not return_attention_scores:
            return context
        return context, ops.reshape(weights, (shape[0], shape[1], shape[2]))  # (batch_size, H, W)

    def compute_output_shape(self, feature_map_shape, query_shape):
        feature_map_shape, _ = self._check_shapes(feature_map_shape, query_shape)
        return (feature_map_shape[0], feature_map_shape[-1])

    def compute_output_spec(self, feature_map, query, return_attention_scores=False, training=None):
        feature_map_shape, _ = self._check_shapes(feature_map.shape, query.shape)
        context = keras.KerasTensor((feature_map_shape[0], feature_map_shape[-1]), dtype=self.compute_dtype)
        if not return_attention_scores:
            return context
        return context, keras.KerasTensor(feature_map_shape[:3], dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout, "seed": self.seed}
