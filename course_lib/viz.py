"""Figures the lessons share: attention heatmaps."""

import numpy as np


def plot_attention(weights, x_labels=None, y_labels=None, ax=None, title=None, annotate=None):
    """Draw attention weights as a heatmap: one row per query, one column per key.

    Args:
        weights: array-like of shape `(T, S)` (a tensor is converted with numpy).
        x_labels: optional list of `S` labels for the keys (columns).
        y_labels: optional list of `T` labels for the queries (rows).
        ax: optional matplotlib `Axes` to draw on; a new figure is made if `None`.
        title: optional title.
        annotate: write each weight in its cell. `None` means "only when the matrix
            is at most 12 x 12". Defaults to `None`.

    Returns:
        The matplotlib `Axes`.
    """
    import matplotlib.pyplot as plt

    try:
        weights = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`weights` must be an array of numbers. Received: weights={weights!r}") from error
    if weights.ndim == 1:
        weights = weights[None, :]
    if weights.ndim != 2:
        raise ValueError(
            f"`weights` must have shape (T, S) or (S,). Received: weights with shape {weights.shape}"
        )
    rows, cols = weights.shape
    if x_labels is not None and len(x_labels) != cols:
        raise ValueError(
            f"`x_labels` must have one label per column ({cols}). Received: "
            f"{len(x_labels)} labels, x_labels={list(x_labels)!r}"
        )
    if y_labels is not None and len(y_labels) != rows:
        raise ValueError(
            f"`y_labels` must have one label per row ({rows}). Received: "
            f"{len(y_labels)} labels, y_labels={list(y_labels)!r}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(min(max(4.0, 1.5 + 0.6 * cols), 10), min(max(3.0, 1 + 0.45 * rows), 8)))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-12, float(weights.max())), aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if x_labels is not None:
        x_text = [str(x) for x in x_labels]
        crowded = cols > 6 or max(map(len, x_text), default=0) > 6
        ax.set_xticks(range(cols), x_text, rotation=90 if crowded else 0)
    if y_labels is not None:
        ax.set_yticks(range(rows), [str(y) for y in y_labels])
    if annotate is None:
        annotate = rows <= 12 and cols <= 12
    if annotate:
        threshold = weights.max() / 2
        for i in range(rows):
            for j in range(cols):
                ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if weights[i, j] > threshold else "white")
    if title:
        ax.set_title(title)
    return ax
