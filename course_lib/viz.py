"""Figures the lessons share: attention heatmaps and signed heatmaps.

* `plot_attention` draws attention weights on one fixed 0-1 colour scale, so that two
  panels can be compared by eye: a uniform head looks uniformly dark, not saturated.
* `plot_signed` draws numbers of either sign (scores, gradients, differences) on a
  diverging colour map centred at 0: white is 0, red positive, blue negative.

Both label their axes by role ("query (attending)", "key (attended to)" by default;
lessons pass "generated German token", "English source token" and the like).
"""

import numpy as np

from course_lib.checks import check_bool, check_number

QUERY_AXIS = "query (attending)"
KEY_AXIS = "key (attended to)"


def _as_matrix(weights):
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
    return weights


def _check_labels(labels, count, name, what):
    if labels is not None and len(labels) != count:
        raise ValueError(
            f"`{name}` must have one label per {what} ({count}). Received: "
            f"{len(labels)} labels, {name}={list(labels)!r}"
        )


def _new_axes(rows, cols):
    import matplotlib.pyplot as plt

    width = min(max(4.0, 1.5 + 0.6 * cols), 10)
    height = min(max(3.0, 1 + 0.45 * rows), 8)
    return plt.subplots(figsize=(width, height))[1]


def _decorate(ax, image, shape, x_labels, y_labels, x_label, y_label, title, colorbar_label):
    rows, cols = shape
    colorbar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if colorbar_label:
        colorbar.set_label(colorbar_label)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if x_labels is not None:
        x_text = [str(x) for x in x_labels]
        crowded = cols > 6 or max(map(len, x_text), default=0) > 6
        ax.set_xticks(range(cols), x_text, rotation=90 if crowded else 0)
    if y_labels is not None:
        ax.set_yticks(range(rows), [str(y) for y in y_labels])
    if title:
        ax.set_title(title)


def _annotate(ax, values, dark):
    """Write each value in its cell, black on light cells, white on dark ones."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if dark(values[i, j]) else "black")


def plot_attention(
    weights,
    x_labels=None,
    y_labels=None,
    ax=None,
    title=None,
    annotate=None,
    x_label=KEY_AXIS,
    y_label=QUERY_AXIS,
    vmax=1.0,
):
    """Draw attention weights as a heatmap: one row per query, one column per key.

    The colour scale runs from 0 to `vmax` (1 by default) for every panel, so that
    panels compare by eye; pass `vmax=None` to stretch the scale to this matrix's
    largest weight (the colour bar then says so).

    Args:
        weights: array-like of shape `(T, S)` or `(S,)` (a tensor is converted with
            numpy).
        x_labels: optional list of `S` tick labels for the keys (columns).
        y_labels: optional list of `T` tick labels for the queries (rows).
        ax: optional matplotlib `Axes` to draw on; a new figure is made if `None`.
        title: optional title.
        annotate: write each weight in its cell. `None` means "only when the matrix
            is at most 12 x 12". Defaults to `None`.
        x_label: the role of the columns. Defaults to `"key (attended to)"`.
        y_label: the role of the rows. Defaults to `"query (attending)"`.
        vmax: the weight drawn in the brightest colour, a number > 0, or `None` for
            this matrix's maximum. Defaults to `1.0`.

    Returns:
        The matplotlib `Axes`.

    Example:

    >>> ax = plot_attention([[0.7, 0.3], [0.5, 0.5]], x_labels=["the", "cat"])
    >>> ax.get_xlabel(), ax.get_images()[0].get_clim()
    ('key (attended to)', (0.0, 1.0))
    """
    weights = _as_matrix(weights)
    rows, cols = weights.shape
    _check_labels(x_labels, cols, "x_labels", "column")
    _check_labels(y_labels, rows, "y_labels", "row")
    if annotate is not None:
        annotate = check_bool(annotate, "annotate")
    colorbar_label = "attention weight"
    if vmax is None:
        vmax = max(1e-12, float(weights.max()))
        colorbar_label = "attention weight (scale: this panel's maximum)"
    else:
        vmax = check_number(vmax, "vmax", minimum=0.0, min_inclusive=False)
    ax = _new_axes(rows, cols) if ax is None else ax
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    _decorate(ax, image, weights.shape, x_labels, y_labels, x_label, y_label, title, colorbar_label)
    if annotate is None:
        annotate = rows <= 12 and cols <= 12
    if annotate:
        _annotate(ax, weights, dark=lambda w: w < vmax / 2)
    return ax


def plot_signed(
    values,
    x_labels=None,
    y_labels=None,
    ax=None,
    title=None,
    annotate=None,
    x_label=KEY_AXIS,
    y_label=QUERY_AXIS,
    limit=None,
    colorbar_label="value",
):
    """Draw a matrix of numbers of either sign on a diverging map centred at 0.

    White is 0, red positive, blue negative; the scale is symmetric, from `-limit`
    to `limit` (by default the largest absolute value), so that equal colours mean
    equal magnitudes. Use it for scores before the softmax, gradients, differences.

    Args:
        values: array-like of shape `(T, S)` or `(S,)`.
        x_labels, y_labels, ax, title, annotate, x_label, y_label: as in
            `plot_attention`.
        limit: the magnitude drawn in the strongest colour, a number > 0, or `None`
            for the largest absolute value. Defaults to `None`.
        colorbar_label: what the numbers are. Defaults to `"value"`.

    Returns:
        The matplotlib `Axes`.

    Example:

    >>> ax = plot_signed([[2.0, -1.0], [0.5, 0.0]], colorbar_label="score")
    >>> ax.get_images()[0].get_clim()
    (-2.0, 2.0)
    """
    values = _as_matrix(values)
    rows, cols = values.shape
    _check_labels(x_labels, cols, "x_labels", "column")
    _check_labels(y_labels, rows, "y_labels", "row")
    if annotate is not None:
        annotate = check_bool(annotate, "annotate")
    if limit is None:
        limit = max(1e-12, float(np.abs(values).max()))
    else:
        limit = check_number(limit, "limit", minimum=0.0, min_inclusive=False)
    ax = _new_axes(rows, cols) if ax is None else ax
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    _decorate(ax, image, values.shape, x_labels, y_labels, x_label, y_label, title, colorbar_label)
    if annotate is None:
        annotate = rows <= 12 and cols <= 12
    if annotate:
        _annotate(ax, values, dark=lambda v: abs(v) > 0.6 * limit)
    return ax
