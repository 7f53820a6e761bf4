"""Keras's own test suite for `GroupQueryAttention`, run against course_lib's layer.

The installed Keras ships `keras/src/layers/attention/grouped_query_attention_test.py`.
Its test methods call `layers.GroupedQueryAttention`, where `layers` is a global of that
module; `KerasSuiteOnOurLayer` inherits every method and, around each test, points that
global at a namespace in which `GroupedQueryAttention` is
`course_lib.layers.GroupedQueryAttention` (every other layer stays Keras's), as
tests/test_keras_mha_suite.py does for `MultiHeadAttention`.

Every Keras test is run unchanged, except those in `ADAPTED` (behaviour the course layer
documents differently, replaced by the same inputs checked against the course's rule).
`test_every_keras_test_is_run_or_adapted` fails when Keras renames a test listed here or
when a Keras test is shadowed by accident; a test a new Keras version adds runs
automatically. Keras skips some tests itself on some backends (flash attention on
TensorFlow); they are skipped here too.
"""

import types

import numpy as np
import pytest

kt = pytest.importorskip("keras.src.layers.attention.grouped_query_attention_test")

from course_lib.grouped_query import GroupedQueryAttention  # noqa: E402

ADAPTED = {}


class _OurLayers(types.ModuleType):
    """`keras.src.layers`, except that `GroupedQueryAttention` is ours."""

    GroupedQueryAttention = GroupedQueryAttention

    def __getattr__(self, name):
        return getattr(kt_layers, name)


kt_layers = kt.layers


class KerasSuiteOnOurLayer(kt.GroupedQueryAttentionTest):
    def setUp(self):
        super().setUp()
        kt.layers = _OurLayers("keras.src.layers")

    def tearDown(self):
        kt.layers = kt_layers
        super().tearDown()


def keras_tests():
    return {n for n in dir(kt.GroupedQueryAttentionTest) if n.startswith("test")}


def test_every_keras_test_is_run_or_adapted():
    assert set(ADAPTED) <= keras_tests(), f"listed here but not in Keras: {set(ADAPTED) - keras_tests()}"
    for name in keras_tests() - set(ADAPTED):  # run unchanged: the very method Keras wrote
        assert getattr(KerasSuiteOnOurLayer, name) is getattr(kt.GroupedQueryAttentionTest, name), name
    assert len(keras_tests()) >= 15  # the suite was found, not an empty class


def test_the_suite_really_uses_our_layer():
    case = KerasSuiteOnOurLayer("test_basics")
    case.setUp()
    try:
        assert kt.layers.GroupedQueryAttention is GroupedQueryAttention
        assert kt.layers.Embedding is kt_layers.Embedding
        layer = kt.layers.GroupedQueryAttention(head_dim=2, num_query_heads=2, num_key_value_heads=1)
        assert type(layer).__module__ == "course_lib.grouped_query"
        assert layer(np.zeros((1, 3, 4)), np.zeros((1, 3, 4))).shape == (1, 3, 4)
    finally:
        case.tearDown()
    assert kt.layers is kt_layers
