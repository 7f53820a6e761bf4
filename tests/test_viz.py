"""Unit tests of `course_lib.viz.plot_attention`, drawn with the Agg backend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from course_lib.viz import KEY_AXIS, QUERY_AXIS, plot_attention, plot_signed  # noqa: E402
from tests.helpers import error_case, raises_naming  # noqa: E402

WEIGHTS = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # (T=2 queries, S=3 keys)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def tick_texts(labels):
    return [label.get_text() for label in labels]


def test_returns_axes_with_the_weights_as_image():
    ax = plot_attention(WEIGHTS)
    assert isinstance(ax, Axes)
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), WEIGHTS)
    assert ax.get_xlabel() == KEY_AXIS and ax.get_ylabel() == QUERY_AXIS


def test_every_panel_shares_the_0_1_scale_by_default():
    uniform = plot_attention(np.full((2, 4), 0.25))
    assert uniform.get_images()[0].get_clim() == (0.0, 1.0)  # a uniform head is not drawn saturated
    stretched = plot_attention(np.full((2, 4), 0.25), vmax=None)
    assert stretched.get_images()[0].get_clim() == (0.0, 0.25)


def test_axis_roles_can_be_named():
    ax = plot_attention(WEIGHTS, x_label="English source token", y_label="generated German token")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("English source token", "generated German token")


def test_signed_values_use_a_symmetric_diverging_scale():
    ax = plot_signed(np.array([[3.0, -1.0], [0.0, 0.5]]))
    (image,) = ax.get_images()
    assert image.get_clim() == (-3.0, 3.0)
    assert image.get_cmap().name == "RdBu_r"
    assert plot_signed(np.zeros((2, 2)), limit=2).get_images()[0].get_clim() == (-2.0, 2.0)


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("vmax-zero", lambda: plot_attention(WEIGHTS, vmax=0), ValueError, "vmax"),
        error_case("vmax-string", lambda: plot_attention(WEIGHTS, vmax="1"), TypeError, "vmax"),
        error_case("annotate-int", lambda: plot_attention(WEIGHTS, annotate=1), TypeError, "annotate"),
        error_case("limit-negative", lambda: plot_signed(WEIGHTS, limit=-1.0), ValueError, "limit"),
        error_case("signed-x-labels", lambda: plot_signed(WEIGHTS, x_labels=["a"]), ValueError, "x_labels"),
    ],
)
def test_bad_options_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_labels_are_drawn_on_both_axes():
    ax = plot_attention(WEIGHTS, x_labels=["the", "cat", "sat"], y_labels=["q0", "q1"])
    assert tick_texts(ax.get_xticklabels()) == ["the", "cat", "sat"]
    assert tick_texts(ax.get_yticklabels()) == ["q0", "q1"]


def test_non_string_labels_are_converted():
    ax = plot_attention(WEIGHTS, x_labels=[10, 20, 30], y_labels=[0, 1])
    assert tick_texts(ax.get_xticklabels()) == ["10", "20", "30"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x_labels": ["a", "b"]}, r"`x_labels`.*\(3\).*2 labels.*x_labels=\['a', 'b'\]"),
        ({"x_labels": ["a", "b", "c", "d"]}, r"`x_labels`.*4 labels"),
        ({"y_labels": ["only one"]}, r"`y_labels`.*\(2\).*1 labels.*y_labels=\['only one'\]"),
        ({"y_labels": ["a", "b", "c"]}, r"`y_labels`.*3 labels"),
    ],
    ids=["too-few-x", "too-many-x", "too-few-y", "too-many-y"],
)
def test_label_count_mismatch_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_attention(WEIGHTS, **kwargs)


def test_one_dimensional_weights_are_one_row():
    ax = plot_attention(np.array([0.2, 0.3, 0.5]), x_labels=["a", "b", "c"], y_labels=["q"])
    (image,) = ax.get_images()
    assert image.get_array().shape == (1, 3)
    assert tick_texts(ax.get_yticklabels()) == ["q"]


def test_one_dimensional_weights_reject_two_y_labels():
    with pytest.raises(ValueError, match=r"`y_labels`.*\(1\)"):
        plot_attention([0.5, 0.5], y_labels=["q0", "q1"])


@pytest.mark.parametrize(
    "weights, error, match",
    [
        (np.zeros((2, 2, 2)), ValueError, r"`weights`.*Received: weights with shape \(2, 2, 2\)"),
        (np.float64(0.5), ValueError, r"`weights`.*Received: weights with shape \(\)"),
        ([["a", "b"]], TypeError, r"`weights`.*Received: weights=\[\['a', 'b'\]\]"),
    ],
    ids=["3-d", "scalar", "strings"],
)
def test_bad_weights_name_the_argument(weights, error, match):
    with pytest.raises(error, match=match):
        plot_attention(weights)


def test_draws_on_a_given_axes():
    figure, (left, right) = plt.subplots(1, 2)
    returned = plot_attention(WEIGHTS, ax=right, title="right panel")
    assert returned is right
    assert returned.figure is figure
    assert right.get_title() == "right panel"
    assert len(right.get_images()) == 1 and len(left.get_images()) == 0
    # Reusing the same figure for a second heatmap does not open a new figure.
    plot_attention(WEIGHTS.T, ax=left)
    assert plt.get_fignums() == [figure.number]
    assert len(left.get_images()) == 1


def test_annotations_small_matrix_only_by_default():
    small = plot_attention(WEIGHTS)
    assert [t.get_text() for t in small.texts] == ["0.70", "0.20", "0.10", "0.10", "0.10", "0.80"]
    large = plot_attention(np.full((13, 13), 1 / 13))
    assert len(large.texts) == 0
    forced = plot_attention(np.full((13, 13), 1 / 13), annotate=True)
    assert len(forced.texts) == 13 * 13


def test_accepts_a_keras_tensor():
    import keras

    ax = plot_attention(keras.ops.convert_to_tensor(WEIGHTS.astype("float32")))
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_array(), WEIGHTS, rtol=1e-6)
