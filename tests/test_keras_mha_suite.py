"""Keras's own test suite for `MultiHeadAttention`, run against course_lib's layer.

The installed Keras ships `keras/src/layers/attention/multi_head_attention_test.py`.
Its test methods call `layers.MultiHeadAttention`, where `layers` is a global of
that module; `KerasSuiteOnOurLayer` below inherits every method and, around each
test, points that global at a namespace in which `MultiHeadAttention` is
`course_lib.layers.MultiHeadAttention` (every other layer stays Keras's).

Every Keras test is run unchanged, except those in `EXCLUDED` (features the course
layer leaves out, with the reason) and in `ADAPTED` (Keras's checks of its own error
messages, replaced here by the same bad values checked against course_lib's error
convention). `test_every_keras_test_is_run_excluded_or_adapted` fails when Keras
renames a test listed here or when a Keras test is shadowed by accident; a test that
a new Keras version adds runs automatically. Keras skips some tests itself on some
backends (the flash-attention tests on TensorFlow); those are skipped here too.
"""

import types
import unittest

import pytest

kt = pytest.importorskip("keras.src.layers.attention.multi_head_attention_test")

from course_lib.multihead import MultiHeadAttention  # noqa: E402

_SUBLAYERS = (
    "needs EinsumDense sublayers; ours holds its weights itself, so that their names and "
    "the saved files stay those of lesson 08"
)
EXCLUDED = {
    "test_lora": f"LoRA {_SUBLAYERS}",
    "test_quantize_int8": f"int8 quantisation {_SUBLAYERS}",
    "test_dtype_policy_map": f"quantized dtype policies per sublayer {_SUBLAYERS}",
}
ADAPTED = {
    "test_invalid_scalar_args_rejected": (
        "Keras expects a ValueError saying 'argument `num_heads`' for 1.5 too; the course "
        "raises a TypeError for a wrong type, with the message of course_lib.checks"
    ),
    "test_multi_head_attention_output_shape_error": (
        "Keras expects a ValueError 'Invalid `output_shape`' for 8.0; the course raises "
        "a TypeError naming `output_shape`"
    ),
}


class _OurLayers(types.ModuleType):
    """`keras.src.layers`, except that `MultiHeadAttention` is ours."""

    MultiHeadAttention = MultiHeadAttention

    def __getattr__(self, name):
        return getattr(kt_layers, name)


kt_layers = kt.layers


class KerasSuiteOnOurLayer(kt.MultiHeadAttentionTest):
    def setUp(self):
        super().setUp()
        kt.layers = _OurLayers("keras.src.layers")

    def tearDown(self):
        kt.layers = kt_layers
        super().tearDown()

    def test_invalid_scalar_args_rejected(self):
        """Keras's bad values: ValueError for 0 and -2, TypeError for 1.5 (course_lib.checks)."""
        for bad, error in ((0, ValueError), (-2, ValueError), (1.5, TypeError)):
            for name, kwargs in (
                ("num_heads", {"num_heads": bad, "key_dim": 4}),
                ("key_dim", {"num_heads": 4, "key_dim": bad}),
                ("value_dim", {"num_heads": 4, "key_dim": 4, "value_dim": bad}),
            ):
                with self.assertRaisesRegex(error, f"`{name}` must be .* Received: {name}={bad}"):
                    MultiHeadAttention(**kwargs)
        MultiHeadAttention(num_heads=4, key_dim=4, value_dim=None)

    def test_multi_head_attention_output_shape_error(self):
        with self.assertRaisesRegex(TypeError, r"`output_shape` must be .* Received: output_shape=8.0"):
            MultiHeadAttention(num_heads=2, key_dim=16, output_shape=8.0)


for _name, _reason in EXCLUDED.items():
    setattr(KerasSuiteOnOurLayer, _name, unittest.skip(f"excluded: {_reason}")(lambda self: None))


def keras_tests():
    return {n for n in dir(kt.MultiHeadAttentionTest) if n.startswith("test")}


def test_every_keras_test_is_run_excluded_or_adapted():
    listed = set(EXCLUDED) | set(ADAPTED)
    assert not set(EXCLUDED) & set(ADAPTED)
    assert listed <= keras_tests(), f"listed here but not in Keras: {listed - keras_tests()}"
    for name in keras_tests() - listed:  # run unchanged: the very method Keras wrote
        assert getattr(KerasSuiteOnOurLayer, name) is getattr(kt.MultiHeadAttentionTest, name), name
    for name in ADAPTED:
        assert getattr(KerasSuiteOnOurLayer, name) is not getattr(kt.MultiHeadAttentionTest, name), name


def test_the_suite_really_uses_our_layer():
    case = KerasSuiteOnOurLayer("test_multi_head_attention_output_shape_as_int")
    case.setUp()
    try:
        assert kt.layers.MultiHeadAttention is MultiHeadAttention
        assert kt.layers.Embedding is kt_layers.Embedding
    finally:
        case.tearDown()
    assert kt.layers is kt_layers
