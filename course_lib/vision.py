"""The Vision Transformer (lesson 11): images as sequences of patch tokens.

* `PatchEmbedding`: cut an image into `p x p` patches and project each one linearly
  (the same as a convolution with kernel `p` and stride `p`).
* `ClassToken`: prepend one learned token that the classifier reads at the end.
* `PatchPositionEmbedding`: learned positions, one vector per token (`"1d"`) or a row
  vector plus a column vector per patch (`"2d"`).
* `build_vit`: patches -> class token -> positions -> encoder blocks
  (`course_lib.transformer.TransformerEncoderBlock`) -> class token -> classifier;
  `build_cnn`: the small convolutional baseline; `vit_attention_scores`: every
  layer's attention maps of a built ViT.
* `attention_rollout`, `mean_attention_distance`, `class_token_map`, `mass_on`: what
  the trained model attends to, as numbers; `plot_maps_over_images`: as pictures.

Shape letters: `B` batch, `H, W, C` image height, width, channels, `p` patch size,
`N = (H/p)(W/p)` patches, `T = N + 1` tokens, `D` width, `L` layers.
"""

import keras
import numpy as np
from keras import ops

from course_lib.checks import check_choice, check_number, check_positive_int, check_rate, check_shape_rank, message
from course_lib.positional import LearnedPositionalEmbedding
from course_lib.transformer import TransformerEncoderBlock

IMAGE_LAYOUT = "(batch_size, height, width, channels)"


def _grid(image_shape, patch_size, name="inputs"):
    """`(rows, cols)` of the patch grid of an image `(H, W, C)`, checked."""
    height, width = image_shape[0], image_shape[1]
    for size, what in ((height, "height"), (width, "width")):
        if size is not None and size % patch_size:
            raise ValueError(
                f"`patch_size` must divide the image {what} of `{name}` ({size}). "
                f"Received: patch_size={patch_size} for {name} of image shape {tuple(image_shape)}")
    return (None if height is None else height // patch_size, None if width is None else width // patch_size)


@keras.saving.register_keras_serializable(package="course_lib")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into non-overlapping patches and embeds each patch linearly.

    1. The image `(H, W, C)` is cut into `N = (H / p) * (W / p)` patches of `p x p`
       pixels, read row by row (left to right, top to bottom);
    2. each patch is flattened to `p * p * C` numbers, in `(row, column, channel)`
       order;
    3. `token = patch @ kernel + bias`, with `kernel` of shape `(p * p * C, D)`.

    This is a convolution with `D` filters of size `p x p` and stride `p`:
    `kernel.reshape(p, p, C, D)` is the kernel of the equivalent
    `keras.layers.Conv2D(D, p, strides=p)`.

    Args:
        patch_size: the side `p` of a square patch, in pixels; must divide the image
            height and width.
        embed_dim: the width `D` of a token.
        kernel_initializer: initializer of the kernel. Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the bias. Defaults to `"zeros"`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: images of shape `(batch_size, H, W, C)`.

    Returns:
        Tokens of shape `(batch_size, N, D)`.

    Example:

    >>> layer = PatchEmbedding(patch_size=7, embed_dim=8)
    >>> tuple(layer(np.zeros((2, 28, 28, 1))).shape)
    (2, 16, 8)
    >>> try:  # Keras may wrap the message in "Exception encountered when calling ..."
    ...     layer(np.zeros((2, 30, 30, 1)))
    ... except ValueError as error:
    ...     print("`patch_size` must divide the image height of `inputs` (30)" in str(error))
    True
    """

    def __init__(self, patch_size, embed_dim, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.patch_size = check_positive_int(patch_size, "patch_size")
        self.embed_dim = check_positive_int(embed_dim, "embed_dim")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _check(self, input_shape):
        shape = check_shape_rank(input_shape, "inputs", 4, IMAGE_LAYOUT)
        if shape[-1] is None:
            raise ValueError(f"The number of channels of `inputs` must be known. Received: inputs with shape {shape}")
        return shape, _grid(shape[1:], self.patch_size)

    def build(self, input_shape):
        shape, _ = self._check(input_shape)
        self.kernel = self.add_weight(name="kernel", shape=(self.patch_size ** 2 * shape[-1], self.embed_dim),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.embed_dim,), initializer=self.bias_initializer)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        (_, height, width, channels), (rows, cols) = self._check(inputs.shape)
        p = self.patch_size
        x = ops.reshape(inputs, (-1, rows, p, cols, p, channels))  # (B, H/p, p, W/p, p, C)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, H/p, W/p, p, p, C)
        x = ops.reshape(x, (-1, rows * cols, p * p * channels))  # (B, N, p*p*C)
        return ops.matmul(x, self.kernel) + self.bias  # (B, N, D)

    def compute_output_shape(self, input_shape):
        shape, (rows, cols) = self._check(input_shape)
        return (shape[0], None if rows is None or cols is None else rows * cols, self.embed_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="course_lib")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token to every sequence: `(B, N, D) -> (B, N + 1, D)`.

    The token starts equal for every image; through self-attention it gathers what
    the classifier needs, and the classifier reads only it (BERT's `[CLS]`, ViT's
    class token).

    Args:
        initializer: initializer of the token. Defaults to `"zeros"`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tokens of shape `(batch_size, N, D)`.

    Returns:
        `(batch_size, N + 1, D)`, the class token first.

    Example:

    >>> tuple(ClassToken()(np.ones((2, 16, 8))).shape)
    (2, 17, 8)
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        shape = check_shape_rank(input_shape, "inputs", 3, "(batch_size, N, D)")
        self.token = self.add_weight(name="token", shape=(1, 1, shape[-1]), initializer=self.initializer)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        check_shape_rank(inputs.shape, "inputs", 3, "(batch_size, N, D)")
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype), (ops.shape(inputs)[0], 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)  # (B, 1 + N, D)

    def compute_output_shape(self, input_shape):
        shape = check_shape_rank(input_shape, "inputs", 3, "(batch_size, N, D)")
        return (shape[0], None if shape[1] is None else shape[1] + 1, shape[2])

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="course_lib")
class PatchPositionEmbedding(keras.layers.Layer):
    """Adds learned positions to a class token and a `rows x cols` grid of patches.

    * `mode="1d"`: one free vector per token, `T = 1 + rows * cols` of them (as in
      the ViT paper): nothing says that patch 5 sits below patch 1; the model must
      learn the grid.
    * `mode="2d"`: the patch in row `r`, column `c` gets `R[r] + K[c]` (a row table
      `R` of shape `(rows, D)`, a column table `K` of shape `(cols, D)`), the class
      token its own vector: the grid is built in, with `rows + cols + 1` vectors.

    Args:
        grid_size: `(rows, cols)` of the patch grid.
        mode: `"1d"` or `"2d"`. Defaults to `"1d"`.
        initializer: initializer of the tables. Defaults to
            `RandomNormal(stddev=0.02)`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tokens of shape `(batch_size, 1 + rows * cols, D)`, class token first.

    Returns:
        `inputs + positions`, of the same shape.

    Example:

    >>> layer = PatchPositionEmbedding((4, 4), mode="2d")
    >>> tuple(layer(np.zeros((2, 17, 8))).shape), tuple(layer.positions().shape)
    ((2, 17, 8), (17, 8))
    """

    def __init__(self, grid_size, mode="1d", initializer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(grid_size, (tuple, list)) or len(grid_size) != 2:
            raise TypeError(message("grid_size", "a pair (rows, cols)", grid_size))
        self.grid_size = (check_positive_int(grid_size[0], "grid_size[0]"),
                          check_positive_int(grid_size[1], "grid_size[1]"))
        self.mode = check_choice(mode, "mode", ("1d", "2d"))
        self.initializer = keras.initializers.get(initializer or keras.initializers.RandomNormal(stddev=0.02))

    def _check(self, input_shape):
        shape = check_shape_rank(input_shape, "inputs", 3, "(batch_size, 1 + rows * cols, D)")
        tokens = 1 + self.grid_size[0] * self.grid_size[1]
        if shape[1] is not None and shape[1] != tokens:
            raise ValueError(f"`inputs` must hold {tokens} tokens (a class token and a {self.grid_size} grid). "
                             f"Received: inputs with shape {shape}")
        return shape

    def build(self, input_shape):
        depth = self._check(input_shape)[-1]
        rows, cols = self.grid_size
        if self.mode == "1d":
            self.table = LearnedPositionalEmbedding(1 + rows * cols, initializer=self.initializer,
                                                    dtype=self.dtype_policy, name="table")
            self.table.build((None, 1 + rows * cols, depth))
        else:
            add = lambda name, n: self.add_weight(name=name, shape=(n, depth), initializer=self.initializer)  # noqa: E731
            self.class_position, self.row_table, self.col_table = add("class", 1), add("rows", rows), add("cols", cols)

    def positions(self):
        """The `(1 + rows * cols, D)` vectors added, class token first (needs `build`)."""
        if self.mode == "1d":
            return ops.convert_to_tensor(self.table.embeddings)
        rows, cols = self.grid_size
        grid = self.row_table[:, None, :] + self.col_table[None, :, :]  # (rows, cols, D)
        return ops.concatenate([self.class_position, ops.reshape(grid, (rows * cols, -1))], axis=0)  # (T, D)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        self._check(inputs.shape)
        if self.mode == "1d":
            return self.table(inputs)
        return inputs + ops.cast(self.positions(), inputs.dtype)[None]  # (B, T, D)

    def compute_output_shape(self, input_shape):
        return self._check(input_shape)

    def get_config(self):
        return {**super().get_config(), "grid_size": list(self.grid_size), "mode": self.mode,
                "initializer": keras.initializers.serialize(self.initializer)}


def build_vit(image_shape=(28, 28, 1), num_classes=10, patch_size=4, width=64, num_layers=4, num_heads=4,
              intermediate_dim=128, dropout=0.0, positions="1d", name="vit"):
    """A Vision Transformer (Dosovitskiy et al., 2021), pre-norm, for small images.

    `images (B, H, W, C) -> PatchEmbedding (B, N, D) -> ClassToken (B, T, D) ->
    PatchPositionEmbedding -> num_layers x TransformerEncoderBlock(normalize_first=True,
    activation="gelu") -> LayerNormalization -> the class token (B, D) -> Dense(num_classes)`
    (logits). Layers are named `patch_embedding`, `class_token`, `positions`,
    `encoder_block_0` ..., `final_norm`, `head`; pixels are used as given (scale
    them to [0, 1] first).

    Example:

    >>> model = build_vit(patch_size=7, width=16, num_layers=1, num_heads=2, intermediate_dim=32)
    >>> model.output_shape, model.count_params()
    ((None, 10), 3514)
    """
    image_shape = check_shape_rank(image_shape, "image_shape", 3, "(height, width, channels)")
    patch_size = check_positive_int(patch_size, "patch_size")
    grid = _grid(image_shape, patch_size, "image_shape")
    num_layers = check_positive_int(num_layers, "num_layers")
    check_rate(dropout, "dropout")
    images = keras.Input(image_shape, name="images")
    x = PatchEmbedding(patch_size, width, name="patch_embedding")(images)
    x = ClassToken(name="class_token")(x)
    x = PatchPositionEmbedding(grid, mode=positions, name="positions")(x)
    for i in range(num_layers):
        x = TransformerEncoderBlock(intermediate_dim, num_heads, dropout=dropout, activation="gelu",
                                    normalize_first=True, name=f"encoder_block_{i}")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = keras.layers.Lambda(lambda t: t[:, 0], output_shape=(width,), name="take_class_token")(x)  # (B, D)
    return keras.Model(images, keras.layers.Dense(num_classes, name="head")(x), name=name)


def build_cnn(image_shape=(28, 28, 1), num_classes=10, filters=(32, 64, 128), dense=0, name="cnn"):
    """The small convolutional baseline: per stage `Conv2D(f, 3, "same", relu)` then
    `MaxPooling2D(2)`, global average pooling, an optional hidden `Dense(dense)`, and
    `Dense(num_classes)` (logits).

    Example:

    >>> build_cnn(filters=(8, 16)).count_params()
    1418
    """
    image_shape = check_shape_rank(image_shape, "image_shape", 3, "(height, width, channels)")
    images = keras.Input(image_shape, name="images")
    x = images
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(check_positive_int(f, "filters"), 3, padding="same", activation="relu",
                                name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dense:
        x = keras.layers.Dense(dense, activation="relu", name="hidden")(x)
    return keras.Model(images, keras.layers.Dense(num_classes, name="head")(x), name=name)


def vit_attention_scores(model, images, batch_size=256):
    """Every encoder block's attention of a `build_vit` model on `images`.

    Returns a list, first layer to last, of numpy arrays `(B, heads, T, T)`
    (query token, key token; token 0 is the class token)."""
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)]
    start = [model.get_layer(n) for n in ("patch_embedding", "class_token", "positions")]
    scores = [[] for _ in blocks]
    for first in range(0, len(images), batch_size):
        x = ops.convert_to_tensor(np.asarray(images[first:first + batch_size], "float32"))
        for layer in start:
            x = layer(x)
        for i, block in enumerate(blocks):
            x, s = block(x, return_attention_scores=True)
            scores[i].append(ops.convert_to_numpy(s))
    return [np.concatenate(s) for s in scores]


def attention_rollout(attention_scores, residual_weight=0.5):
    """Attention rollout (Abnar and Zuidema, 2020): how much each output token draws
    on each input token, through all layers.

    1. Each layer's maps are averaged over the heads: `A_l` of shape `(B, T, T)`;
    2. the residual connection is added: `residual_weight * I + (1 - residual_weight) * A_l`,
       and each row renormalised to sum to 1;
    3. the layers are multiplied: `A_L @ ... @ A_2 @ A_1`.

    Args:
        attention_scores: a list, first layer to last, of arrays `(B, heads, T, T)`.
        residual_weight: the weight of the identity, in `[0, 1]`. Defaults to `0.5`.

    Returns:
        A numpy array `(B, T, T)`; row `i` sums to 1 (token `i`'s mixture of inputs).

    Example:

    >>> a = np.full((1, 1, 2, 2), 0.5)
    >>> attention_rollout([a, a])[0]
    array([[0.625, 0.375],
           [0.375, 0.625]])
    """
    residual_weight = check_number(residual_weight, "residual_weight", minimum=0, maximum=1)
    if not isinstance(attention_scores, (list, tuple)) or not attention_scores:
        raise TypeError(message("attention_scores", "a non-empty list of arrays (batch, heads, T, T)",
                                attention_scores))
    rollout = None
    for i, scores in enumerate(attention_scores):
        scores = np.asarray(ops.convert_to_numpy(scores), dtype="float64")
        if scores.ndim != 4 or scores.shape[-1] != scores.shape[-2]:
            raise ValueError(f"`attention_scores[{i}]` must have shape (batch, heads, T, T). "
                             f"Received: attention_scores[{i}] with shape {scores.shape}")
        a = residual_weight * np.eye(scores.shape[-1]) + (1 - residual_weight) * scores.mean(axis=1)  # (B, T, T)
        a = a / a.sum(axis=-1, keepdims=True)
        if rollout is not None and rollout.shape != a.shape:
            raise ValueError(f"`attention_scores[{i}]` must have the shape of the layers before it. "
                             f"Received: attention_scores[{i}] with shape {scores.shape}")
        rollout = a if rollout is None else a @ rollout  # A_l @ (A_{l-1} ... A_1)
    return rollout


def patch_centres(grid_size, patch_size):
    """`(N, 2)` centres `(row, col)` in pixels of the patches, row by row."""
    rows, cols = grid_size
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (np.stack([r.ravel(), c.ravel()], axis=1) + 0.5) * patch_size


def mean_attention_distance(attention_scores, grid_size, patch_size):
    """The mean attention distance (ViT paper, Figure 7) of each layer and head.

    For each patch query, the attention over the patches (class token left out,
    renormalised to sum to 1) weights the distance in pixels between the patches'
    centres; averaged over queries and images. Returns a `(layers, heads)` array."""
    centres = patch_centres(grid_size, patch_size)
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)  # (N, N)
    result = []
    for scores in attention_scores:
        a = np.asarray(scores, "float64")[:, :, 1:, 1:]  # (B, heads, N, N): patches to patches
        a = a / a.sum(axis=-1, keepdims=True)
        result.append((a * distance).sum(axis=-1).mean(axis=(0, 2)))  # (heads,)
    return np.array(result)


def class_token_map(maps, grid_size, patch_size):
    """What the class token draws on, as pixel maps: row 0 of `(B, T, T)` maps over the
    patches, renormalised to sum to 1, each patch's share spread evenly over its
    pixels. Returns `(B, rows * p, cols * p)`, each map summing to 1."""
    rows, cols = grid_size
    weights = np.asarray(maps, "float64")[:, 0, 1:]  # (B, N)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    pixels = np.repeat(np.repeat(weights.reshape(-1, rows, cols), patch_size, 1), patch_size, 2)
    return pixels / patch_size ** 2  # (B, H, W)


def mass_on(pixel_maps, masks):
    """The share of each map `(B, H, W)` (summing to 1) that lies where `masks` is True."""
    return (np.asarray(pixel_maps) * np.asarray(masks, bool)).sum(axis=(1, 2))


def garment_masks(images, threshold=0.1):
    """Where the garment is: pixels brighter than `threshold` (images scaled to [0, 1];
    Fashion-MNIST's background is 0). `(B, H, W[, 1])` -> boolean `(B, H, W)`."""
    images = np.asarray(images)
    return (images[..., 0] if images.ndim == 4 else images) > threshold


def rollout_check(model, images, residual_weight=0.5, threshold=0.1, batch_size=256):
    """How much of the class token's rollout lies on the garment, against a uniform map.

    For each image `(H, W, 1)` in [0, 1]: the rollout (`attention_rollout`) of a
    `build_vit` model, the class token's row as a pixel map (`class_token_map`), its
    mass on the garment's pixels (`garment_masks`), and the share of garment pixels
    (the mass a uniform map would put there). Returns `{"mass": (B,), "uniform": (B,)}`."""
    scores = vit_attention_scores(model, images, batch_size)
    grid = model.get_layer("positions").grid_size
    maps = class_token_map(attention_rollout(scores, residual_weight), grid,
                           model.get_layer("patch_embedding").patch_size)
    masks = garment_masks(images, threshold)
    return {"mass": mass_on(maps, masks), "uniform": masks.mean(axis=(1, 2))}


def plot_maps_over_images(images, maps, titles=None, axes=None, alpha=0.6):
    """Each map drawn over its grey image, on a 0-1 scale (each map divided by its
    maximum). `images` `(B, H, W)`, `maps` `(B, H, W)`. Returns the axes."""
    import matplotlib.pyplot as plt

    images, maps = np.asarray(images), np.asarray(maps, "float64")
    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9), squeeze=False)
        axes = axes[0]
    for i, ax in enumerate(axes):
        ax.imshow(images[i], cmap="gray")
        shown = ax.imshow(maps[i] / maps[i].max(), cmap="inferno", alpha=alpha, vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    ax.figure.colorbar(shown, ax=list(axes), shrink=0.8, label="attention / its maximum")
    return axes
