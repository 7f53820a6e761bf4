"""Property tests (hypothesis) of course_lib's MultiHeadAttention.

Over random shapes, head counts, masks (fully masked rows included), score ranges
(kernels scaled up to give very large and very negative scores) and float16/float32:

* it matches `keras.layers.MultiHeadAttention` holding the same weights: everywhere
  on Keras's path that returns the scores, and on Keras's default (fused) path for
  the rows that may attend to something (Keras's fused path averages the values for
  a fully masked row, ours gives zero weights: the documented difference; ours has
  one path, whether it returns the scores or not);
* its weights are a distribution over the allowed keys: masked keys exactly 0, rows
  summing to 1, rows with nothing allowed exactly 0, no NaN, whatever the scores, and
  equal to a float64 numpy reference;
* attention over the axes of rank-4 inputs matches Keras's.

Deterministic (`derandomize=True`) and fast (a few dozen examples each).
"""

import dataclasses

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.multihead import MultiHeadAttention
from tests.helpers import assert_attention_weights, numpy_softmax, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")  # S = 1
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
MASKS = ["none", "random", "empty_rows", "per_head", "padding", "causal", "causal_and_random", "mask_2d"]
# On JAX, Keras's fused path (jax.nn.dot_product_attention) refuses value_dim != key_dim.
KERAS_FUSED_NEEDS_EQUAL_DIMS = keras.backend.backend() == "jax"


@dataclasses.dataclass
class Case:
    batch: int
    t: int
    s: int
    self_attention: bool
    num_heads: int
    key_dim: int
    value_dim: int
    dim_q: int
    dim_v: int
    dtype: str
    mask: str
    score_scale: float
    seed: int


@st.composite
def cases(draw, score_scales, smallest_head=1):
    self_attention = draw(st.booleans())
    t = draw(st.integers(1, 6))
    dim_q = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from(["float32", "float16"]))
    return Case(
        batch=draw(st.integers(1, 3)),
        t=t,
        s=t if self_attention else draw(st.integers(1, 6)),
        self_attention=self_attention,
        num_heads=draw(st.integers(1, 4)),
        key_dim=draw(st.integers(smallest_head, 5)),
        value_dim=draw(st.sampled_from([None, smallest_head, 3, 6])),
        dim_q=dim_q,
        dim_v=dim_q if self_attention else draw(st.integers(1, 8)),
        dtype=dtype,
        mask=draw(st.sampled_from(MASKS)),
        score_scale=draw(st.sampled_from(score_scales[dtype])),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def masks_for(case, rng):
    """(our call arguments, Keras's call arguments, allowed (B, N or 1, T, S))."""
    b, n, t, s = case.batch, case.num_heads, case.t, case.s
    allowed = np.ones((b, 1, t, s), bool)
    ours, theirs = {}, {}
    if case.mask in ("random", "empty_rows", "causal_and_random", "mask_2d"):
        mask = rng.random((t, s) if case.mask == "mask_2d" else (b, t, s)) > 0.4
        if case.mask == "empty_rows":
            mask[..., rng.integers(t), :] = False  # a query that may attend to nothing
        ours["attention_mask"] = theirs["attention_mask"] = mask
        allowed = allowed & (mask if mask.ndim == 2 else mask[:, None])
    if case.mask == "per_head":
        mask = rng.random((b, n, t, s)) > 0.4
        ours["attention_mask"] = theirs["attention_mask"] = mask
        allowed = allowed & mask
    if case.mask == "padding":  # ours takes the padding masks; Keras the mask they make
        query_mask = np.arange(t)[None] < rng.integers(0, t + 1, size=(b, 1))  # (B, T)
        value_mask = np.arange(s)[None] < rng.integers(1, s + 1, size=(b, 1))  # (B, S)
        ours.update(query_mask=query_mask, value_mask=value_mask)
        theirs["attention_mask"] = query_mask[:, :, None] & value_mask[:, None, :]
        allowed = allowed & theirs["attention_mask"][:, None]
    if case.mask in ("causal", "causal_and_random"):
        ours["use_causal_mask"] = theirs["use_causal_mask"] = True
        allowed = allowed & np.tril(np.ones((t, s), bool))
    return ours, theirs, allowed


def make_pair(case):
    """Keras's layer and ours with the same weights (query and key kernels scaled so that
    the scores are `score_scale` times larger), the inputs and the masks."""
    rng = np.random.default_rng(case.seed)
    query = rng.normal(size=(case.batch, case.t, case.dim_q)).astype(case.dtype)
    value = query if case.self_attention else rng.normal(size=(case.batch, case.s, case.dim_v)).astype(case.dtype)
    config = dict(num_heads=case.num_heads, key_dim=case.key_dim, value_dim=case.value_dim, dtype=case.dtype,
                  kernel_initializer="zeros")  # the weights come from `rng` (quicker on JAX)
    theirs, ours = keras.layers.MultiHeadAttention(**config), MultiHeadAttention(**config)
    theirs.build(query.shape, value.shape)
    ours.build(query.shape, value.shape)
    weights = [rng.normal(size=w.shape) / np.sqrt(w.shape[0]) for w in theirs.get_weights()]
    for i in (0, 1, 2, 3):  # query kernel and bias, key kernel and bias
        weights[i] = weights[i] * np.sqrt(case.score_scale)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return theirs, ours, query, value, *masks_for(case, rng)


def tolerance(case):
    return dict(atol=3e-2, rtol=3e-2) if case.dtype == "float16" else dict(atol=1e-4, rtol=1e-4)


# Heads of size 1 are left to the numpy reference below: there Keras 3.15 on TensorFlow
# adds the (N, 1) biases along the wrong axis when the length equals N (its
# `keras.ops.add` turns them into a `bias_add` over axis 1).
@SETTINGS
@given(cases({"float32": [0.1, 1.0, 10.0], "float16": [0.1, 1.0, 4.0]}, smallest_head=2))
def test_matches_keras(case):
    theirs, ours, query, value, our_masks, their_masks, allowed = make_pair(case)
    out_ours, weights_ours = ours(query, value, **our_masks, return_attention_scores=True)
    out_theirs, weights_theirs = theirs(query, value, **their_masks, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(out_ours).astype(float), to_numpy(out_theirs), **tolerance(case))
    np.testing.assert_allclose(to_numpy(weights_ours).astype(float), to_numpy(weights_theirs), **tolerance(case))
    assert_attention_weights(to_numpy(weights_ours).astype(np.float64), allowed, atol=tolerance(case)["atol"])
    if KERAS_FUSED_NEEDS_EQUAL_DIMS and (case.value_dim or case.key_dim) != case.key_dim:
        return
    rows = allowed.any(-1).all(1)  # (B, T): queries with an allowed key in every head
    fused = to_numpy(theirs(query, value, **their_masks))  # Keras's default path
    np.testing.assert_allclose(to_numpy(out_ours)[rows].astype(float), fused[rows], **tolerance(case))


def numpy_reference(layer, query, value, allowed):
    """The layer's formula in float64: (output, weights)."""
    wq, bq, wk, bk, wv, bv, wo, bo = [to_numpy(w).astype(np.float64) for w in layer.weights]
    query, value = query.astype(np.float64), value.astype(np.float64)
    q = np.einsum("btd,dnh->bnth", query, wq) + bq[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    k = np.einsum("bsd,dnh->bnsh", value, wk) + bk[None, :, None, :]  # (N, H) -> (1, N, 1, H)
    v = np.einsum("bsd,dnh->bnsh", value, wv) + bv[None, :, None, :]  # (N, Hv) -> (1, N, 1, Hv)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (B, N, T, S)
    weights = numpy_softmax(scores, mask=np.broadcast_to(allowed, scores.shape))
    return np.einsum("bnth,nho->bto", weights @ v, wo) + bo, weights, np.abs(scores).max()


@SETTINGS
@given(cases({"float32": [1e2, 1e4, 1e6], "float16": [10.0, 30.0]}))
def test_exact_masking_whatever_the_scores(case):
    _, ours, query, value, our_masks, _, allowed = make_pair(case)
    output, weights = ours(query, value, **our_masks, return_attention_scores=True)
    output, weights = to_numpy(output).astype(np.float64), to_numpy(weights).astype(np.float64)
    assert np.isfinite(output).all()
    assert_attention_weights(weights, allowed, atol=2e-3 if case.dtype == "float16" else 1e-5)
    expected_output, expected_weights, largest_score = numpy_reference(ours, query, value, allowed)
    # The scores are rounded to the dtype, so nearly tied keys may swap a little weight.
    atol = (2e-2 if case.dtype == "float16" else 1e-5) + np.finfo(case.dtype).eps * largest_score
    atol = min(atol, 5e-2 if case.dtype == "float16" else 1e-3)
    np.testing.assert_allclose(weights, expected_weights, atol=atol)
    np.testing.assert_allclose(output, expected_output, atol=10 * atol * (1 + np.abs(expected_output).max()))


AXES = [None, (1,), (2,), (-2,), (1, 2), (2, 1)]


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    axes=st.sampled_from(AXES),
    sizes=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5)),
    value_sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    num_heads=st.integers(1, 3),
    key_dim=st.integers(1, 4),
    causal=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_attention_axes_of_rank_4_inputs_match_keras(axes, sizes, value_sizes, num_heads, key_dim, causal, seed):
    batch, d1, d2, dim = sizes
    attention = {1, 2} if axes is None else {a % 4 for a in axes}  # input axes 1 and 2 (-2 is 2)
    # Value axes may differ from the query's only where attention runs over them.
    v1, v2 = (value_sizes[0] if 1 in attention else d1), (value_sizes[1] if 2 in attention else d2)
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, d1, d2, dim)).astype("float32")
    value = rng.normal(size=(batch, v1, v2, dim)).astype("float32")
    theirs = keras.layers.MultiHeadAttention(num_heads, key_dim, attention_axes=axes, kernel_initializer="zeros")
    ours = MultiHeadAttention(num_heads, key_dim, attention_axes=axes, kernel_initializer="zeros")
    theirs.build(query.shape, value.shape)
    ours.build(query.shape, value.shape)
    weights = [rng.normal(size=w.shape) / np.sqrt(w.shape[0]) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    # Keras's causal mask is defined along axis 1 only when that is the one attention axis.
    kwargs = {"use_causal_mask": True} if causal and axes == (1,) else {}
    out_theirs, scores_theirs = theirs(query, value, return_attention_scores=True, **kwargs)
    out_ours, scores_ours = ours(query, value, return_attention_scores=True, **kwargs)
    assert scores_ours.shape == scores_theirs.shape
    np.testing.assert_allclose(to_numpy(out_ours), to_numpy(out_theirs), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(scores_ours), to_numpy(scores_theirs), atol=1e-5)
