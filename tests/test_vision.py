"""Tests of course_lib.vision (lesson 11): PatchEmbedding, ClassToken,
PatchPositionEmbedding, the ViT and CNN builders, the attention read-outs
(attention_rollout against a direct numpy computation, mean attention distance,
class-token maps) and course_lib.train_vision (the script on a tiny budget, the
committed weights load into today's builder)."""

import json

import keras
import numpy as np
import pytest

from course_lib import train_vision
from course_lib.layers import ClassToken, PatchEmbedding, PatchPositionEmbedding, TransformerEncoderBlock
from course_lib.vision import (
    attention_rollout, build_cnn, build_vit, class_token_map, mass_on, mean_attention_distance, patch_centres,
    vit_attention_scores,
)
from tests.helpers import error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 8, 12, 3)).astype("float32")  # (B, H, W, C): a 2 x 3 grid of 4 x 4 patches


# ----------------------------------------------------------------------------- the layers

def test_patch_embedding_passes_the_layer_checks(tmp_path):
    check_layer(lambda: PatchEmbedding(4, 6), [IMAGES], tmp_path=tmp_path)


def test_class_token_passes_the_layer_checks(tmp_path):
    check_layer(lambda: ClassToken(initializer="random_normal"), [RNG.normal(size=(2, 6, 5)).astype("float32")],
                tmp_path=tmp_path)


@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_patch_positions_pass_the_layer_checks(mode, tmp_path):
    check_layer(lambda: PatchPositionEmbedding((2, 3), mode=mode), [RNG.normal(size=(2, 7, 4)).astype("float32")],
                tmp_path=tmp_path)


def test_patch_embedding_is_a_linear_map_of_each_patch_read_row_by_row():
    layer = PatchEmbedding(4, 6, bias_initializer="random_normal")
    tokens = to_numpy(layer(IMAGES))
    kernel, bias = to_numpy(layer.kernel), to_numpy(layer.bias)
    assert tokens.shape == (2, 6, 6)
    for n, (r, c) in enumerate([(r, c) for r in range(2) for c in range(3)]):
        patch = IMAGES[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4, :].reshape(2, -1)  # (B, p*p*C) in (row, col, channel)
        np.testing.assert_allclose(tokens[:, n], patch @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_patch_embedding_equals_a_strided_convolution():
    layer = PatchEmbedding(4, 6, bias_initializer="random_normal")
    tokens = to_numpy(layer(IMAGES))
    conv = keras.layers.Conv2D(6, 4, strides=4)
    conv.build(IMAGES.shape)
    conv.set_weights([to_numpy(layer.kernel).reshape(4, 4, 3, 6), to_numpy(layer.bias)])
    feature_map = to_numpy(conv(IMAGES))  # (B, 2, 3, D)
    np.testing.assert_allclose(tokens, feature_map.reshape(2, 6, 6), rtol=1e-5, atol=1e-5)


def test_class_token_comes_first_and_is_the_same_for_every_image():
    layer = ClassToken(initializer="random_normal")
    x = RNG.normal(size=(3, 4, 5)).astype("float32")
    out = to_numpy(layer(x))
    assert out.shape == (3, 5, 5)
    np.testing.assert_allclose(out[:, 1:], x)
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(to_numpy(layer.token)[0], (3, 5)))


def test_2d_positions_are_a_row_vector_plus_a_column_vector():
    layer = PatchPositionEmbedding((2, 3), mode="2d")
    x = np.zeros((1, 7, 4), "float32")
    out = to_numpy(layer(x))[0]
    rows, cols, first = to_numpy(layer.row_table), to_numpy(layer.col_table), to_numpy(layer.class_position)
    np.testing.assert_allclose(out[0], first[0])
    np.testing.assert_allclose(out[1 + 3 * 1 + 2], rows[1] + cols[2], rtol=1e-6)  # row 1, column 2
    np.testing.assert_allclose(to_numpy(layer.positions()), out, rtol=1e-6)
    assert layer.count_params() == (1 + 2 + 3) * 4


def test_1d_positions_are_one_free_vector_per_token():
    layer = PatchPositionEmbedding((2, 3), mode="1d")
    x = RNG.normal(size=(2, 7, 4)).astype("float32")
    np.testing.assert_allclose(to_numpy(layer(x)), x + to_numpy(layer.positions())[None], rtol=1e-6)
    assert layer.count_params() == 7 * 4


@pytest.mark.parametrize("make, exception, name", [
    error_case("image-rank-3", lambda: PatchEmbedding(4, 6)(np.zeros((2, 8, 12))), ValueError, "inputs"),
    error_case("height-not-divisible", lambda: PatchEmbedding(3, 6)(np.zeros((2, 8, 9, 1))), ValueError,
               "patch_size"),
    error_case("width-not-divisible", lambda: PatchEmbedding(4, 6)(np.zeros((2, 8, 10, 1))), ValueError,
               "patch_size"),
    error_case("patch-size-zero", lambda: PatchEmbedding(0, 6), ValueError, "patch_size"),
    error_case("patch-size-float", lambda: PatchEmbedding(2.5, 6), TypeError, "patch_size"),
    error_case("embed-dim-zero", lambda: PatchEmbedding(4, 0), ValueError, "embed_dim"),
    error_case("class-token-rank", lambda: ClassToken()(np.zeros((2, 4))), ValueError, "inputs"),
    error_case("grid-not-a-pair", lambda: PatchPositionEmbedding(4), TypeError, "grid_size"),
    error_case("mode-unknown", lambda: PatchPositionEmbedding((2, 2), mode="3d"), ValueError, "mode"),
    error_case("tokens-not-grid", lambda: PatchPositionEmbedding((2, 2))(np.zeros((1, 4, 3))), ValueError,
               "inputs"),
    error_case("builder-image-rank", lambda: build_vit(image_shape=(28, 28)), ValueError, "image_shape"),
    error_case("builder-not-divisible", lambda: build_vit(patch_size=5), ValueError, "patch_size"),
    error_case("rollout-not-a-list", lambda: attention_rollout(np.zeros((1, 1, 2, 2))), TypeError,
               "attention_scores"),
    error_case("rollout-rank", lambda: attention_rollout([np.zeros((1, 2, 2))]), ValueError, "attention_scores[0]"),
    error_case("rollout-weight", lambda: attention_rollout([np.zeros((1, 1, 2, 2))], 1.5), ValueError,
               "residual_weight"),
])
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


# ----------------------------------------------------------------------------- the models

def test_vit_shapes_and_its_attention_maps():
    model = build_vit(image_shape=(8, 12, 3), patch_size=4, width=8, num_layers=2, num_heads=2, intermediate_dim=16)
    assert model.output_shape == (None, 10)
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)]
    assert len(blocks) == 2 and all(block.normalize_first for block in blocks)
    scores = vit_attention_scores(model, IMAGES, batch_size=1)
    assert [s.shape for s in scores] == [(2, 2, 7, 7)] * 2
    np.testing.assert_allclose(scores[0].sum(-1), 1, rtol=1e-5)


def test_vit_attention_scores_come_from_the_model_that_classifies():
    """The read-out replays the model's own layers: changing a block's weights changes both."""
    model = build_vit(image_shape=(8, 12, 3), patch_size=4, width=8, num_layers=1, num_heads=2, intermediate_dim=16)
    before = vit_attention_scores(model, IMAGES)[0]
    block = model.get_layer("encoder_block_0")
    block.set_weights([w + 0.5 for w in block.get_weights()])
    assert not np.allclose(before, vit_attention_scores(model, IMAGES)[0])


def test_cnn_builder():
    model = build_cnn(image_shape=(8, 12, 3), filters=(4, 8), dense=5)
    assert model.output_shape == (None, 10)
    assert model.count_params() == (27 * 4 + 4) + (36 * 8 + 8) + (8 * 5 + 5) + (5 * 10 + 10)


# ----------------------------------------------------------------------------- the read-outs

def numpy_rollout(scores, residual_weight):
    """The definition, written out with loops: average heads, add identity, renormalise, multiply."""
    batch, _, tokens, _ = scores[0].shape
    result = np.zeros((batch, tokens, tokens))
    for b in range(batch):
        product = np.eye(tokens)
        for layer in scores:
            a = residual_weight * np.eye(tokens) + (1 - residual_weight) * layer[b].mean(axis=0)
            a = a / a.sum(axis=1, keepdims=True)
            product = a @ product  # the later layer on the left
        result[b] = product
    return result


def random_attention(shape, rng):
    x = rng.random(shape) ** 3
    return x / x.sum(-1, keepdims=True)


@pytest.mark.parametrize("residual_weight", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("layers", [1, 3])
def test_rollout_matches_a_direct_numpy_computation(residual_weight, layers):
    rng = np.random.default_rng(layers)
    scores = [random_attention((2, 3, 5, 5), rng) for _ in range(layers)]
    rollout = attention_rollout(scores, residual_weight)
    assert rollout.shape == (2, 5, 5) and isinstance(rollout, np.ndarray)
    np.testing.assert_allclose(rollout, numpy_rollout(scores, residual_weight), rtol=1e-10)
    np.testing.assert_allclose(rollout.sum(-1), 1, rtol=1e-10)


def test_rollout_multiplies_later_layers_on_the_left():
    rng = np.random.default_rng(3)
    first, second = random_attention((1, 1, 4, 4), rng), random_attention((1, 1, 4, 4), rng)
    np.testing.assert_allclose(attention_rollout([first, second], 0.0)[0], second[0, 0] @ first[0, 0])
    assert not np.allclose(attention_rollout([first, second], 0.0), attention_rollout([second, first], 0.0))


def test_rollout_renormalises_rows_that_do_not_sum_to_one():
    scores = [np.full((1, 2, 3, 3), 0.5)]  # rows sum to 1.5
    np.testing.assert_allclose(attention_rollout(scores, 0.5).sum(-1), 1)


def test_mean_attention_distance_of_known_maps():
    grid, p = (2, 2), 4
    tokens = 5
    self_only = np.zeros((1, 1, tokens, tokens))
    self_only[0, 0, np.arange(tokens), np.arange(tokens)] = 1
    assert mean_attention_distance([self_only], grid, p)[0, 0] == 0
    to_first_patch = np.zeros((1, 1, tokens, tokens))
    to_first_patch[0, 0, :, 0] = 0.5  # the class token's share is left out
    to_first_patch[0, 0, :, 1] = 0.5
    distance = np.linalg.norm(patch_centres(grid, p) - patch_centres(grid, p)[0], axis=1)  # [0, 4, 4, 4*sqrt2]
    np.testing.assert_allclose(mean_attention_distance([to_first_patch], grid, p)[0, 0], distance.mean())


def test_class_token_map_spreads_each_patch_over_its_pixels():
    maps = np.zeros((1, 5, 5))
    maps[0, 0] = [0.6, 0.2, 0.0, 0.0, 0.2]  # class token: 0.6 on itself, 0.2 on patches 0 and 3
    pixels = class_token_map(maps, (2, 2), 3)
    assert pixels.shape == (1, 6, 6)
    np.testing.assert_allclose(pixels.sum(), 1)
    np.testing.assert_allclose(pixels[0, :3, :3], 0.5 / 9)
    np.testing.assert_allclose(pixels[0, 3:, 3:], 0.5 / 9)
    masks = np.zeros((1, 6, 6), bool)
    masks[0, :3, :] = True  # the top half
    np.testing.assert_allclose(mass_on(pixels, masks), [0.5])


# ----------------------------------------------------------------------------- train_vision

def test_random_shift_moves_the_image_within_the_limit():
    image = np.zeros((1, 6, 6, 1), "float32")
    image[0, 2, 3, 0] = 1
    shifted = train_vision.random_shift(np.repeat(image, 50, 0), 2, np.random.default_rng(0))
    assert shifted.shape == (50, 6, 6, 1)
    positions = np.argwhere(shifted[..., 0] == 1)[:, 1:]  # (50, 2): where the pixel went
    assert np.abs(positions - [2, 3]).max() <= 2 and len(np.unique(positions, axis=0)) > 5


def test_the_script_runs_on_a_tiny_budget_and_its_weights_load(tmp_path):
    metadata = train_vision.train(epochs=1, out=tmp_path, tiny=True)
    assert metadata["finished"] and metadata["training"]["tiny"]
    model, loaded = train_vision.load_trained_vit(tmp_path)
    assert loaded == json.loads(json.dumps(metadata))
    images = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    assert model.predict(images, verbose=0).shape == (4, 10)


def test_the_committed_weights_load_into_todays_builder():
    model, metadata = train_vision.load_trained_vit()
    assert not metadata["training"]["tiny"] and model.count_params() == metadata["parameters"]
    assert metadata["command"][:3] == ["python", "-m", "course_lib.train_vision"]
    assert metadata["train_seconds"] > 60 and {"platform", "cpu_count"} <= set(metadata["machine"])
    size = sum(path.stat().st_size for path in train_vision.WEIGHTS_DIR.glob(f"{train_vision.NAME}.*"))
    assert size < 3e6


def test_weights_of_another_architecture_are_refused(tmp_path):
    train_vision.train(epochs=1, out=tmp_path, tiny=True)
    path = tmp_path / f"{train_vision.NAME}.json"
    metadata = json.loads(path.read_text())
    metadata["model"]["num_layers"] = 2
    path.write_text(json.dumps(metadata))
    with raises_naming(ValueError, "directory"):
        train_vision.load_trained_vit(tmp_path)


def test_a_missing_model_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="course_lib.train_vision"):
        train_vision.load_trained_vit(tmp_path / "nothing")


def test_the_committed_weights_give_the_recorded_test_accuracy():
    from course_lib.datasets import load_fashion_mnist

    model, metadata = train_vision.load_trained_vit()
    _, _, (x_test, y_test) = load_fashion_mnist()
    measured = train_vision.accuracy(model, train_vision.scaled(x_test), y_test)
    assert measured == pytest.approx(metadata["test"]["accuracy"], abs=0.002)
