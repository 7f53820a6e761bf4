"""Helpers shared by the unit tests: one copy of each, imported by every test file.

* `to_numpy`: a tensor (or a list/tuple of tensors) as numpy array(s), any backend.
* `numpy_softmax`, `numpy_attention`: the numpy references the Keras code is
  compared with (masked entries get weight 0; a row with nothing allowed is all 0).
* `assert_attention_weights`: masked entries exactly 0, rows summing to 1 where
  something is allowed and to exactly 0 where nothing is, no NaN.
* `raises_naming` and `error_case`: the one style of error test: the call raises
  the expected exception type and the message names the argument in backquotes.
"""

import re

import keras
import numpy as np
import pytest


def to_numpy(x):
    """A tensor as a numpy array; a list or tuple of tensors as a list of arrays."""
    if isinstance(x, (list, tuple)):
        return [to_numpy(item) for item in x]
    return np.asarray(keras.ops.convert_to_numpy(x))


def numpy_softmax(scores, axis=-1, mask=None):
    """Reference softmax in float64; with `mask` (True = allowed), masked entries are
    0 and a row with nothing allowed is all 0."""
    scores = np.asarray(scores, dtype=np.float64)
    if mask is None:
        mask = np.ones(scores.shape, dtype=bool)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), scores.shape)
    filled = np.where(mask, scores, -np.inf)
    top = np.max(filled, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    exps = np.where(mask, np.exp(filled - top), 0.0)
    total = np.sum(exps, axis=axis, keepdims=True)
    return np.divide(exps, total, out=np.zeros_like(exps), where=total > 0)


def numpy_attention(query, key, value, mask=None, scale=None):
    """Reference scaled dot-product attention in float64: `(output, weights)`."""
    query, key, value = (np.asarray(a, dtype=np.float64) for a in (query, key, value))
    if scale is None:
        scale = 1.0 / np.sqrt(query.shape[-1])
    scores = query @ np.swapaxes(key, -1, -2) * scale
    weights = numpy_softmax(scores, mask=mask)
    return weights @ value, weights


def assert_attention_weights(weights, mask=None, atol=1e-5):
    """Attention weights are a distribution over the allowed keys of each row."""
    weights = to_numpy(weights)
    assert not np.isnan(weights).any(), "the weights contain NaN"
    assert (weights >= 0).all(), "negative weights"
    if mask is None:
        allowed = np.ones(weights.shape, dtype=bool)
    else:
        allowed = np.broadcast_to(to_numpy(mask).astype(bool), weights.shape)
        leaked = np.abs(weights[~allowed]).max(initial=0.0)
        assert leaked == 0.0, f"masked keys get weight up to {leaked}"
    sums = weights.sum(axis=-1)
    expected = allowed.any(axis=-1).astype(float)
    np.testing.assert_allclose(sums, expected, atol=atol, err_msg="row sums")
    assert (sums[expected == 0] == 0).all(), "rows with nothing allowed must be exactly 0"


def raises_naming(exception, name):
    """`pytest.raises(exception)` whose message must name `name` in backquotes."""
    return pytest.raises(exception, match=rf"`{re.escape(name)}`")


def error_case(case_id, make, exception, name):
    """One row of an error table: `pytest.param(make, exception, name, id=case_id)`.

    Use with::

        @pytest.mark.parametrize("make, exception, name", [error_case(...), ...])
        def test_errors_name_the_argument(make, exception, name):
            with raises_naming(exception, name):
                make()
    """
    return pytest.param(make, exception, name, id=case_id)


def gradients(loss_fn, *inputs):
    """The gradients of the scalar `loss_fn(*inputs)` with respect to each input, as
    numpy arrays, on TensorFlow (`GradientTape`) or JAX (`jax.grad`); other backends
    skip the test."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = loss_fn(*tensors)
        grads = tape.gradient(loss, tensors)
        return [np.zeros(t.shape) if g is None else np.asarray(g) for t, g in zip(tensors, grads)]
    if backend == "jax":
        import jax

        grads = jax.grad(loss_fn, argnums=tuple(range(len(inputs))))(*(jax.numpy.asarray(x) for x in inputs))
        return [np.asarray(g) for g in grads]
    pytest.skip(f"no gradient helper for the {backend} backend")


def compiled(fn):
    """`fn` compiled by the backend (`tf.function` or `jax.jit`): while it is traced,
    the values of its tensor arguments are unknown (only their shapes are)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"no compiled-function helper for the {backend} backend")
