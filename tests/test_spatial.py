"""Tests of lesson 06's location-based layers: course_lib.spatial.SpatialAttention and
course_lib.scoring.LocationAttention, and of the glimpse task (course_lib.glimpses)."""

import keras
import numpy as np
import pytest

from course_lib.glimpses import build_glimpse_model, coarse_view, grid_cells, hard_inference, inference_macs, \
    make_glimpse_task
from course_lib.hard_attention import HardAttention
from course_lib.multihead import MultiHeadAttention
from course_lib.scoring import AdditiveAttention, LocationAttention, LuongAttention
from course_lib.spatial import SpatialAttention
from tests.helpers import assert_attention_weights, error_case, numpy_softmax, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(2, 3, 4, 8)).astype("float32")  # (batch_size, H, W, C)
QUERY = RNG.normal(size=(2, 5)).astype("float32")  # (batch_size, dim_q)


def test_spatial_attention_standard_checks(tmp_path):
    check_layer(lambda: SpatialAttention(6), [FEATURES, QUERY], tmp_path=tmp_path, atol=1e-5)


def test_spatial_attention_is_additive_attention_over_the_flattened_locations():
    layer = SpatialAttention(6)
    context, weights = to_numpy(layer(FEATURES, QUERY, return_attention_scores=True))
    assert context.shape == (2, 8) and weights.shape == (2, 3, 4)
    np.testing.assert_allclose(weights.sum(axis=(1, 2)), 1.0, atol=1e-6)
    flat = FEATURES.reshape(2, 12, 8)  # location l = row * W + column
    plain = AdditiveAttention(6)
    plain(QUERY[:, None], flat)
    plain.set_weights(layer.get_weights())
    expected_context, expected_weights = to_numpy(plain(QUERY[:, None], flat, return_attention_scores=True))
    np.testing.assert_allclose(weights.reshape(2, 12), expected_weights[:, 0], atol=1e-6)
    np.testing.assert_allclose(context, expected_context[:, 0], atol=1e-6)


def test_spatial_attention_bad_inputs_name_the_argument():
    with raises_naming(ValueError, "feature_map"):
        SpatialAttention(4)(FEATURES[..., 0], QUERY)  # an image without channels
    with raises_naming(ValueError, "query"):
        SpatialAttention(4)(FEATURES, QUERY[:, None])
    with raises_naming(ValueError, "units"):
        SpatialAttention(0)
    with raises_naming(ValueError, "feature_map"):
        SpatialAttention(4)(FEATURES, QUERY[:1])


def test_multi_head_attention_over_two_axes_is_attention_over_the_flattened_locations():
    # A query per image (1 x 1 location) against the H x W locations, with attention_axes=(1, 2).
    query = QUERY[:, None, None, :4].repeat(2, axis=-1)  # (batch_size, 1, 1, 8)
    spatial = MultiHeadAttention(num_heads=2, key_dim=4, attention_axes=(1, 2))
    output, scores = to_numpy(spatial(query, FEATURES, return_attention_scores=True))
    assert scores.shape == (2, 2, 1, 1, 3, 4)  # (batch_size, heads, query axes, H, W)
    flat = MultiHeadAttention(num_heads=2, key_dim=4)
    flat(query[:, 0], FEATURES.reshape(2, 12, 8))
    flat.set_weights(spatial.get_weights())
    flat_output, flat_scores = to_numpy(flat(query[:, 0], FEATURES.reshape(2, 12, 8), return_attention_scores=True))
    np.testing.assert_allclose(scores.reshape(2, 2, 12), flat_scores[:, :, 0], atol=1e-6)
    np.testing.assert_allclose(output[:, 0], flat_output, atol=1e-5)


# LocationAttention ------------------------------------------------------------------------

LQUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
LVALUE = RNG.normal(size=(2, 5, 6)).astype("float32")


def test_location_attention_standard_checks(tmp_path):
    check_layer(lambda: LocationAttention(5), {"query": LQUERY, "value": LVALUE}, tmp_path=tmp_path, atol=1e-5)


def test_location_scores_ignore_the_contents():
    layer = LocationAttention(7)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    output, weights = to_numpy(layer(LQUERY, LVALUE, value_mask=mask, return_attention_scores=True))
    kernel = to_numpy(layer.kernel)
    expected = numpy_softmax(LQUERY.astype("float64") @ kernel[:, :5], mask=mask[:, None, :])
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    np.testing.assert_allclose(output, expected @ LVALUE, atol=1e-5)
    assert_attention_weights(weights, mask[:, None, :], atol=1e-6)
    shuffled = to_numpy(layer(LQUERY, LVALUE[:, ::-1], value_mask=mask, return_attention_scores=True)[1])
    np.testing.assert_allclose(shuffled, weights, atol=1e-6)  # other contents, the same weights


def test_location_attention_errors_name_the_argument():
    with raises_naming(ValueError, "max_length"):
        LocationAttention(0)
    with raises_naming(TypeError, "max_length"):
        LocationAttention(2.5)
    with raises_naming(ValueError, "key"):
        LocationAttention(3)(LQUERY, LVALUE)  # 5 positions, room for 3


# The glimpse task ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    images = (np.random.default_rng(7).random((6, 28, 28)) * 255).astype(np.uint8)
    return (images, *make_glimpse_task(images, np.arange(6), grid=3, clutter=2, seed=1))


def test_the_item_sits_in_its_cell(task):
    images, canvases, labels, cells = task
    assert canvases.shape == (6, 84, 84) and cells.shape == (6,) and cells.max() < 9
    np.testing.assert_array_equal(labels, np.arange(6))
    pieces = grid_cells(canvases)
    assert pieces.shape == (6, 9, 784)
    for i in range(6):
        row, column = divmod(int(cells[i]), 3)
        np.testing.assert_array_equal(canvases[i, 28 * row:28 * row + 28, 28 * column:28 * column + 28], images[i])
        np.testing.assert_allclose(pieces[i, cells[i]], images[i].ravel() / 255, atol=1e-7)
        others = np.delete(pieces[i], cells[i], axis=0)
        assert others.sum() > 0 and others.sum(-1).max() < pieces[i, cells[i]].sum(), "clutter, less than the item"
    assert coarse_view(pieces).shape == (6, 9, 49)
    np.testing.assert_allclose(coarse_view(pieces).mean(-1), pieces.mean(-1), atol=1e-6)


def test_make_glimpse_task_rejects_images_of_the_wrong_rank():
    with raises_naming(ValueError, "images"):
        make_glimpse_task(np.zeros((4, 28 * 28), np.uint8), np.zeros(4))
    with raises_naming(ValueError, "grid"):
        make_glimpse_task(np.zeros((4, 28, 28), np.uint8), np.zeros(4), grid=0)


def test_hard_inference_encodes_one_cell_and_agrees_with_the_model(task):
    _, canvases, _, _ = task
    cells = grid_cells(canvases)
    coarse = coarse_view(cells)
    keras.utils.set_random_seed(0)
    model = build_glimpse_model(HardAttention(name="attention"))
    probabilities, weights, selection = to_numpy(model([coarse, cells]))
    fast, chosen = to_numpy(hard_inference(model, coarse, cells))
    np.testing.assert_array_equal(chosen, weights[:, 0].argmax(-1))
    np.testing.assert_allclose(fast, probabilities, atol=1e-5)
    soft = inference_macs(build_glimpse_model(LuongAttention("general", name="attention")), hard=False)
    hard = inference_macs(model, hard=True)
    assert soft["encoder"] == 9 * hard["encoder"] == 9 * (784 * 128 + 128 * 64)
    assert soft["scores"] == hard["scores"] and soft["total"] > 7 * hard["total"]
