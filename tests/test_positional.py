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
from tests.helpers import compiled, error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(2, 6, 8)).astype("float32")  # (batch, T, d)
X4 = RNG.normal(size=(2, 6, 3, 8)).astype("float32")  # (batch, T, heads, d)


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
    assert to_numpy(outputs).shape == inputs.shape


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
    full, average = (to_numpy(t) for t in model(tokens))
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
    table = to_numpy(sinusoidal_encoding(length, depth))
    assert table.shape == (length, depth)
    for pos in (0, 1, 7, 49):
        for j in range(depth):
            angle = pos / 10000 ** (2 * (j // 2) / depth)
            expected = np.sin(angle) if j % 2 == 0 else np.cos(angle)
            assert table[pos, j] == pytest.approx(expected, abs=1e-5), (pos, j)


def test_sinusoidal_layer_adds_the_encoding_to_every_sequence():
    layer = SinusoidalPositionalEmbedding(max_wavelength=100)
    outputs = to_numpy(layer(X3))
    expected = X3 + to_numpy(sinusoidal_encoding(6, 8, max_wavelength=100))[None]
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert layer.weights == []


def test_sinusoidal_prefix_is_the_same_for_any_length():
    short, long = to_numpy(sinusoidal_encoding(5, 8)), to_numpy(sinusoidal_encoding(20, 8))
    np.testing.assert_allclose(short, long[:5], atol=1e-7)


# --- learned ------------------------------------------------------------------------


def test_learned_table_shape_trainable_and_added():
    layer = LearnedPositionalEmbedding(sequence_length=10)
    outputs = to_numpy(layer(X3))
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(10, 8)]
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(outputs, X3 + table[None, :6], atol=1e-6)


def test_learned_too_long_input_names_length():
    layer = LearnedPositionalEmbedding(sequence_length=4)
    with pytest.raises(ValueError, match=r"The inputs are longer than `sequence_length=4`: received inputs of length T=6\."):
        layer(X3)  # lesson 07 prints this sentence


def test_learned_too_long_input_in_a_compiled_function_of_known_length():
    layer = LearnedPositionalEmbedding(sequence_length=4)
    layer(X3[:, :4])
    with pytest.raises(ValueError, match=r"sequence_length=4.*T=6"):
        compiled(lambda x: layer(x))(X3)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="only TensorFlow traces unknown lengths")
def test_learned_too_long_input_of_unknown_length_stops_at_the_slice_as_documented():
    import tensorflow as tf

    layer = LearnedPositionalEmbedding(sequence_length=4)
    layer(X3[:, :4])
    add = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec((None, None, 8), tf.float32)])
    np.testing.assert_allclose(to_numpy(add(X3[:, :3])), X3[:, :3] + to_numpy(layer.embeddings)[None, :3], atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected size\[0\] in \[0, 4\], but got 6"):
        add(X3)
    assert "but got T" in LearnedPositionalEmbedding.__doc__


def test_learned_rejects_another_width_than_it_was_built_for():
    layer = LearnedPositionalEmbedding(sequence_length=10)
    layer(X3)  # d = 8
    with raises_naming(ValueError, "inputs") as error:
        layer(X3[..., :4])
    assert "d=8" in str(error.value)


def test_learned_works_in_a_compiled_training_step():
    tokens = keras.Input((6,), dtype="int32")
    h = LearnedPositionalEmbedding(6)(keras.layers.Embedding(10, 8)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h)))
    model.compile(optimizer="sgd", loss="mse")
    ids = np.random.default_rng(0).integers(0, 10, size=(8, 6))
    history = model.fit(ids, np.ones((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# --- integer inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: SinusoidalPositionalEmbedding(),
        lambda: LearnedPositionalEmbedding(6, initializer="random_normal"),
        lambda: RotaryEmbedding(),
    ],
    ids=["sinusoidal", "learned", "rotary"],
)
def test_integer_inputs_are_computed_in_floating_point(make_layer):
    # Rotary and learned used to cast their angles or table to the inputs' int dtype.
    ints = np.arange(2 * 6 * 8).reshape(2, 6, 8) % 7
    layer = make_layer()
    received = to_numpy(layer(ints.astype("int32")))
    expected = to_numpy(layer(ints.astype("float32")))
    assert received.dtype == np.float32
    np.testing.assert_allclose(received, expected, atol=1e-5)


# --- rotary -------------------------------------------------------------------------


def rotate(x, max_wavelength=10000):
    return to_numpy(RotaryEmbedding(max_wavelength=max_wavelength)(x))


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


ERRORS = [
    error_case("sinusoidal-max_wavelength", lambda: SinusoidalPositionalEmbedding(max_wavelength=0), ValueError,
               "max_wavelength"),
    error_case("rotary-max_wavelength", lambda: RotaryEmbedding(max_wavelength="big"), TypeError, "max_wavelength"),
    error_case("learned-sequence_length-zero", lambda: LearnedPositionalEmbedding(sequence_length=0), ValueError,
               "sequence_length"),
    error_case("learned-sequence_length-float", lambda: LearnedPositionalEmbedding(sequence_length=2.5), TypeError,
               "sequence_length"),
    error_case("encoding-depth", lambda: sinusoidal_encoding(5, 0), ValueError, "depth"),
    error_case("encoding-length-2.5", lambda: sinusoidal_encoding(2.5, 4), TypeError, "length"),
    error_case("encoding-length-negative", lambda: sinusoidal_encoding(-1, 4), ValueError, "length"),
    error_case("encoding-float-tensor-length", lambda: sinusoidal_encoding(keras.ops.convert_to_tensor(2.0), 4),
               TypeError, "length"),
    error_case("rotary-odd-d", lambda: RotaryEmbedding()(np.zeros((2, 3, 5), "float32")), ValueError, "inputs"),
    error_case("sinusoidal-rank", lambda: SinusoidalPositionalEmbedding()(np.zeros((2, 3), "float32")), ValueError,
               "inputs"),
    error_case("rotary-rank", lambda: RotaryEmbedding()(np.zeros((2, 3, 4, 5, 6), "float32")), ValueError, "inputs"),
    error_case("learned-unknown-d", lambda: LearnedPositionalEmbedding(4)(keras.Input((3, None))), ValueError,
               "inputs"),
]


@pytest.mark.parametrize("make, exception, name", ERRORS)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_sinusoidal_encoding_takes_numpy_and_tensor_lengths():
    expected = to_numpy(sinusoidal_encoding(3, 4))
    np.testing.assert_array_equal(to_numpy(sinusoidal_encoding(np.int64(3), np.int64(4))), expected)
    np.testing.assert_array_equal(to_numpy(sinusoidal_encoding(keras.ops.convert_to_tensor(3), 4)), expected)
    assert to_numpy(sinusoidal_encoding(0, 4)).shape == (0, 4)


def test_max_wavelength_stays_an_integer_in_the_config():
    assert SinusoidalPositionalEmbedding(max_wavelength=np.int64(100)).get_config()["max_wavelength"] == 100
    assert isinstance(RotaryEmbedding().get_config()["max_wavelength"], int)
    assert RotaryEmbedding(max_wavelength=500.5).get_config()["max_wavelength"] == 500.5
