"""Lesson 06's glimpse task: one image on a grid of cells, read through attention.

An image (a Fashion-MNIST item, 28 x 28) is placed in one random cell of a
`grid x grid` canvas; every other cell holds clutter, a few small patches cut from
other images. The class depends on one cell only. A model reads the canvas in two
ways, as the recurrent attention model of Mnih et al. (2014) does:

* a **coarse look** at every cell (its 4 x 4 block means, 7 x 7 values): cheap; the
  attention scores are computed from it;
* a **glimpse** of a cell at full resolution (784 pixels) through an encoder network:
  the expensive part. Soft attention averages the encodings of all cells, so it
  encodes every cell; hard attention reads one cell, and at inference encodes only
  that one (`hard_inference`).

`build_glimpse_model(attention)` builds the model around any attention layer with
the call of `ScoredAttention` (soft: `LuongAttention("general")`; hard:
`course_lib.hard_attention.HardAttention`), so the models differ in that layer only.
"""

import keras
import numpy as np
from keras import ops

from course_lib import checks
from course_lib.hard_attention import HardAttention

CELL = 28  # pixels per side of a cell (one Fashion-MNIST image)
COARSE = 4  # the coarse look averages blocks of COARSE x COARSE pixels


def make_glimpse_task(images, labels, grid=3, clutter=4, patch=10, seed=0):
    """Canvases with one item in a random cell and clutter in the others.

    Args:
        images: uint8 array `(n, 28, 28)`; labels: `(n,)`.
        grid: cells per side (the canvas is `28 * grid` pixels). Defaults to 3.
        clutter: patches of `patch x patch` pixels, cut at random from other images,
            pasted at random places in each other cell. Defaults to 4 and 10.
        seed: the seed of every random choice.

    Returns:
        `(canvases, labels, cells)`: uint8 `(n, 28 grid, 28 grid)`, the labels, and
        the index `row * grid + column` of the item's cell, int `(n,)`.
    """
    images = np.asarray(checks.check_array_like(images, "images"))
    checks.check_shape_rank(images.shape, "images", 3, "(n, 28, 28)")
    if images.shape[1:] != (CELL, CELL):
        raise ValueError(checks.message("images", "of shape (n, 28, 28)", images))
    grid = checks.check_int(grid, "grid", minimum=1)
    clutter = checks.check_int(clutter, "clutter", minimum=0)
    patch = checks.check_int(patch, "patch", minimum=1, maximum=CELL)
    rng = np.random.default_rng(checks.check_seed(seed))
    n, size = len(images), CELL * grid
    canvases = np.zeros((n, size, size), np.uint8)
    cells = rng.integers(0, grid * grid, size=n)
    for i in range(n):
        for cell in range(grid * grid):
            top, left = (cell // grid) * CELL, (cell % grid) * CELL
            if cell == cells[i]:
                canvases[i, top:top + CELL, left:left + CELL] = images[i]
                continue
            for _ in range(clutter):
                source = images[rng.integers(n)]
                y, x, v, u = rng.integers(0, CELL - patch + 1, size=4)
                region = canvases[i, top + v:top + v + patch, left + u:left + u + patch]
                np.maximum(region, source[y:y + patch, x:x + patch], out=region)
    return canvases, np.asarray(labels), cells


def grid_cells(canvases, grid=3):
    """The cells of each canvas, flattened: float32 `(n, grid * grid, 784)` in [0, 1]."""
    canvases = np.asarray(canvases)
    n = len(canvases)
    cells = canvases.reshape(n, grid, CELL, grid, CELL).transpose(0, 1, 3, 2, 4)  # (n, row, col, 28, 28)
    return cells.reshape(n, grid * grid, CELL * CELL).astype("float32") / 255.0


def coarse_view(cells):
    """The coarse look at each cell: means of 4 x 4 blocks, `(n, cells, 49)`."""
    n, s = cells.shape[:2]
    side = CELL // COARSE
    blocks = cells.reshape(n, s, side, COARSE, side, COARSE)
    return blocks.mean(axis=(3, 5)).reshape(n, s, side * side)


def build_glimpse_model(attention, num_classes=10, key_dim=16, hidden=128, width=64, num_cells=9):
    """The glimpse classifier around `attention`, a functional model.

    Inputs `[coarse (B, S, 49), cells (B, S, 784)]`; outputs
    `[probabilities (B, classes), weights (B, 1, S), selection (B, 1, S)]` (for soft
    attention the selection is the weights). Layers, by name: `keys` (Dense on the
    coarse look), `query` (Dense on the mean key), `attention`, `encoder_1`,
    `encoder_2` (the glimpse encoder, per cell), `classifier`.
    """
    coarse = keras.Input((num_cells, (CELL // COARSE) ** 2), name="coarse")
    cells = keras.Input((num_cells, CELL * CELL), name="cells")
    keys = keras.layers.Dense(key_dim, activation="tanh", name="keys")(coarse)  # (B, S, key_dim)
    summary = keras.layers.GlobalAveragePooling1D()(keys)  # (B, key_dim)
    query = keras.layers.Reshape((1, key_dim))(keras.layers.Dense(key_dim, name="query")(summary))  # (B, 1, key_dim)
    encoded = keras.layers.Dense(hidden, activation="relu", name="encoder_1")(cells)  # (B, S, hidden)
    encoded = keras.layers.Dense(width, activation="relu", name="encoder_2")(encoded)  # (B, S, width)
    if isinstance(attention, HardAttention):
        read, weights, selection = attention(query, encoded, key=keys, return_attention_scores=True,
                                             return_selection=True)
    else:
        read, weights = attention(query, encoded, key=keys, return_attention_scores=True)
        selection = weights
    read = keras.layers.Flatten()(read)  # (B, width)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(read)
    return keras.Model([coarse, cells], [probabilities, weights, selection])


def hard_inference(model, coarse, cells):
    """What a hard-attention glimpse model computes at inference, encoding one cell.

    The scores are computed from the coarse look as in the model; the one cell of
    the highest score is gathered and only it goes through the encoder. Returns the
    probabilities `(B, classes)` and the chosen cells `(B,)`: the same as
    `model([coarse, cells])` (which encodes every cell), for a fraction of the work.
    """
    keys = model.get_layer("keys")(coarse)  # (B, S, key_dim)
    query = ops.expand_dims(model.get_layer("query")(ops.mean(keys, axis=1)), 1)  # (B, 1, key_dim)
    scores = model.get_layer("attention").compute_scores(query, keys)[:, 0, :]  # (B, S)
    chosen = ops.argmax(scores, axis=-1)  # (B,)
    batch_size, num_cells = ops.shape(scores)
    flat = ops.reshape(ops.convert_to_tensor(cells), (-1, CELL * CELL))  # (B * S, 784)
    glimpse = ops.take(flat, ops.arange(batch_size) * num_cells + ops.cast(chosen, "int32"), axis=0)  # (B, 784)
    encoded = model.get_layer("encoder_2")(model.get_layer("encoder_1")(glimpse))  # (B, width)
    return model.get_layer("classifier")(encoded), chosen


def inference_macs(model, hard):
    """Multiply-adds of one canvas at inference: the coarse look and scores for every
    cell, the encoder for every cell (soft) or one (hard), the read and the classifier.

    Returns a dict of the parts and their `"total"`."""
    num_cells = model.input_shape[1][1]
    kernel = {name: model.get_layer(name).kernel.shape for name in ("keys", "query", "encoder_1", "encoder_2",
                                                                      "classifier")}
    key_dim, width = kernel["keys"][1], kernel["encoder_2"][1]
    encoded_cells = 1 if hard else num_cells
    parts = {
        "scores": num_cells * int(np.prod(kernel["keys"])) + int(np.prod(kernel["query"]))
        + key_dim * key_dim + num_cells * key_dim,  # keys, query, W q, q.k
        "encoder": encoded_cells * (int(np.prod(kernel["encoder_1"])) + int(np.prod(kernel["encoder_2"]))),
        "read": 0 if hard else num_cells * width,  # the weighted average (hard: a gather)
        "classifier": int(np.prod(kernel["classifier"])),
    }
    parts["total"] = sum(parts.values())
    return parts
