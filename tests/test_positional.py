"""Tests for course_lib.positional: sinusoidal, learned and rotary positions."""

import keras
import numpy as np
import pytest

from course_lib.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEmbedding,
    sinusoidal_encoding,
)
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(2, 6, 8)).astype("float32")  # (batch, T, d)
X4 = RNG.normal(size=(2, 6, 3, 8)).astype("float32")  # (batch, T, heads, d)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


# --- the standard layer checks ------------------------------------------------------


@pytest.mark.parametrize(
    "make_layer, inputs",
    [
        (lambda: SinusoidalPositionalEmbedding(), X3),
        (lambda: SinusoidalPositionalEmbedding(max_wavelength=100), X3),
        (lambda: LearnedPositionalEmbedding(sequence_length=10), X3),
        (lambda: RotaryEmbedding(), X3),
        (lambda: RotaryEmbedding(max_wavelength=500), X4),
    ],
    ids=["sinusoidal", "sinusoidal-wavelength-100", "learned", "rotary-3d", "rotary-4d-heads"],
)
def test_check_layer(make_layer, inputs, tmp_path):
    outputs = check_layer(make_layer, [inputs], tmp_path=tmp_path)
    assert numpy(outputs).shape == inputs.shape


@pytest.mark.parametrize(
    "layer",
    [SinusoidalPositionalEmbedding(), LearnedPositionalEmbedding(12), RotaryEmbedding()],
    ids=["sinusoidal", "learned", "rotary"],
)
def test_mask_passes_through(layer):
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    positioned = layer(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(positioned)  # uses the mask
    model = keras.Model(inputs, [positioned, pooled])
    full, average = (numpy(t) for t in model(tokens))
    expected = np.stack([full[0, :3].mean(0), full[1, :2].mean(0)])
    np.testing.assert_allclose(average, expected, atol=1e-6)
    mask = layer.compute_mask(embedded, keras.ops.not_equal(inputs, 0))
    assert mask is not None


@pytest.mark.parametrize(
    "layer", [SinusoidalPositionalEmbedding(), LearnedPositionalEmbedding(12), RotaryEmbedding()],
    ids=["sinusoidal", "learned", "rotary"],
)
def test_output_shape_without_batch_or_length(layer):
    inputs = keras.Input((None, 8))
    assert tuple(layer(inputs).shape) == (None, None, 8)
    assert layer.compute_output_shape((None, 6, 8)) == (None, 6, 8)


# --- sinusoidal ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [8, 7], ids=["even-d", "odd-d"])
def test_sinusoidal_matches_the_closed_formula(depth):
    length = 50
    table = numpy(sinusoidal_encoding(length, depth))
    assert table.shape == (length, depth)
    for pos in (0, 1, 7, 49):
        for j in range(depth):
            angle = pos / 10000 ** (2 * (j // 2) / depth)
            expected = np.sin(angle) if j % 2 == 0 else np.cos(angle)
            assert table[pos, j] == pytest.approx(expected, abs=1e-5), (pos, j)


def test_sinusoidal_layer_adds_the_encoding_to_every_sequence():
    layer = SinusoidalPositionalEmbedding(max_wavelength=100)
    outputs = numpy(layer(X3))
    expected = X3 + numpy(sinusoidal_encoding(6, 8, max_wavelength=100))[None]
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert layer.weights == []


def test_sinusoidal_prefix_is_the_same_for_any_length():
    short, long = numpy(sinusoidal_encoding(5, 8)), numpy(sinusoidal_encoding(20, 8))
    np.testing.assert_allclose(short, long[:5], atol=1e-7)


# --- learned ------------------------------------------------------------------------


def test_learned_table_shape_trainable_and_added():
    layer = LearnedPositionalEmbedding(sequence_length=10)
    outputs = numpy(layer(X3))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(10, 8)]
    table = numpy(layer.embeddings)
    np.testing.assert_allclose(outputs, X3 + table[None, :6], atol=1e-6)


def test_learned_too_long_input_names_length():
    layer = LearnedPositionalEmbedding(sequence_length=4)
    with pytest.raises(ValueError, match=r"T=6.*sequence_length|sequence_length=4.*T=6"):
        layer(X3)


# --- rotary -------------------------------------------------------------------------


def rotate(x, max_wavelength=10000):
    return numpy(RotaryEmbedding(max_wavelength=max_wavelength)(x))


@pytest.mark.parametrize("x", [X3, X4], ids=["3d", "4d-heads"])
def test_rotary_preserves_norms_and_leaves_position_zero(x):
    rotated = rotate(x)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(rotated[:, 0], x[:, 0], atol=1e-6)
    assert not np.allclose(rotated[:, 1:], x[:, 1:])


def test_rotary_rotates_the_first_pair_by_the_position():
    x = np.zeros((1, 4, 2), "float32")
    x[..., 0] = 1.0  # the unit vector (1, 0) at every position
    rotated = rotate(x)
    positions = np.arange(4)
    expected = np.stack([np.cos(positions), np.sin(positions)], axis=-1)  # theta_0 = 1
    np.testing.assert_allclose(rotated[0], expected, atol=1e-6)


def test_rotary_scores_depend_only_on_relative_position():
    # The same query vector q at every position and the same key vector k at every
    # position: after rotation the score (m, n) must depend only on m - n.
    q, k = RNG.normal(size=(2, 16)).astype("float32")
    length = 12
    queries = rotate(np.tile(q, (1, length, 1)))[0]  # (T, d)
    keys = rotate(np.tile(k, (1, length, 1)))[0]  # (T, d)
    scores = queries @ keys.T  # (T, T)
    for shift in (1, 3, 7):
        # (m, n) and (m + shift, n + shift): same relative position, same score.
        np.testing.assert_allclose(scores[:-shift, :-shift], scores[shift:, shift:], atol=1e-4)
    assert not np.allclose(scores[0, 1], scores[1, 0], atol=1e-3)  # the sign of m - n matters


def test_rotary_heads_are_rotated_independently_by_the_same_angle():
    per_head = np.stack([rotate(X4[:, :, h]) for h in range(X4.shape[2])], axis=2)
    np.testing.assert_allclose(rotate(X4), per_head, atol=1e-6)


# --- errors name the argument -------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SinusoidalPositionalEmbedding(max_wavelength=0), "max_wavelength=0"),
        (lambda: RotaryEmbedding(max_wavelength="big"), "max_wavelength='big'"),
        (lambda: LearnedPositionalEmbedding(sequence_length=0), "sequence_length=0"),
        (lambda: LearnedPositionalEmbedding(sequence_length=2.5), "sequence_length=2.5"),
        (lambda: sinusoidal_encoding(5, 0), "depth=0"),
        (lambda: RotaryEmbedding()(np.zeros((2, 3, 5), "float32")), "d=5"),
        (lambda: SinusoidalPositionalEmbedding()(np.zeros((2, 3), "float32")), r"shape \(2, 3\)"),
        (lambda: RotaryEmbedding()(np.zeros((2, 3, 4, 5, 6), "float32")), r"shape \(2, 3, 4, 5, 6\)"),
    ],
    ids=[
        "sinusoidal-max_wavelength",
        "rotary-max_wavelength",
        "learned-sequence_length-zero",
        "learned-sequence_length-float",
        "encoding-depth",
        "rotary-odd-d",
        "sinusoidal-rank",
        "rotary-rank",
    ],
)
def test_errors_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()
