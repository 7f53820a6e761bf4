"""Tests of the Transformer's layers (lesson 09): course_lib.feedforward.FeedForward,
course_lib.kv_cache.CachedMultiHeadAttention, course_lib.transformer's
TransformerEncoderBlock and TransformerDecoderBlock.

The standard layer checks, a numpy reference of each block (which also pins the order
of the weights), masks that leak nothing, the key/value cache equal to recomputing at
every position (eager and compiled), pre-norm against post-norm, and the argument
errors. The comparison with keras-hub is in tests/test_transformer_peer.py."""

import keras
import numpy as np
import pytest

from course_lib.layers import (
    CachedMultiHeadAttention, FeedForward, MultiHeadAttention, TransformerDecoderBlock, TransformerEncoderBlock,
)
from tests.helpers import assert_attention_weights, compiled, error_case, numpy_softmax, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(0)
B, T, S, C, N, FF = 2, 5, 6, 8, 2, 16  # batch, target length, source length, width, heads, hidden width
H = C // N
X = RNG.normal(size=(B, T, C)).astype("float32")  # decoder / encoder input (B, T, C)
SOURCE = RNG.normal(size=(B, S, 12)).astype("float32")  # encoder outputs of another width (B, S, 12)
PADDING = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)  # (B, T), True = real token
SOURCE_PADDING = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], bool)  # (B, S)
ATTENTION = RNG.random((B, T, T)) > 0.3  # (B, T, T)
ATTENTION[:, np.arange(T), np.arange(T)] = True  # every position may attend to itself
NORMS = [pytest.param(False, id="post_norm"), pytest.param(True, id="pre_norm")]


def randomize(layer, seed=1):
    """Random weights everywhere (layer-norm gains and biases too), so that every weight matters."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    return layer


# ----------------------------------------------------------------------------- numpy reference

def np_layer_norm(x, gamma, beta, epsilon=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def np_attention(weights, query, value, mask):
    """Multi-head attention from its 8 weights; mask (B, T, S) or None. Returns output, scores."""
    qk, qb, kk, kb, vk, vb, ok, ob = weights
    q = np.einsum("btd,dnh->btnh", query, qk) + qb  # (B, T, N, H)
    k = np.einsum("bsd,dnh->bsnh", value, kk) + kb  # (B, S, N, H)
    v = np.einsum("bsd,dnh->bsnh", value, vk) + vb  # (B, S, N, H)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])  # (B, N, T, S)
    weights = numpy_softmax(scores, mask=None if mask is None else mask[:, None])
    heads = np.einsum("bnts,bsnh->btnh", weights, v)  # (B, T, N, H)
    return np.einsum("btnh,nhd->btd", heads, ok) + ob, weights


def np_feedforward(x, w1, b1, w2, b2):
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def np_sublayer(x, normalize_first, gamma_beta, f):
    if normalize_first:
        return x + f(np_layer_norm(x, *gamma_beta))
    return np_layer_norm(x + f(x), *gamma_beta)


def np_encoder(w, x, mask, normalize_first):
    """keras-hub's weight order: attention (8), its norm (2), feed-forward norm (2), feed-forward (4)."""
    x = np_sublayer(x, normalize_first, w[8:10], lambda h: np_attention(w[:8], h, h, mask)[0])
    return np_sublayer(x, normalize_first, w[10:12], lambda h: np_feedforward(h, *w[12:16]))


def np_decoder(w, x, source, self_mask, cross_mask, normalize_first):
    """Self-attention (8), its norm (2), [cross-attention (8), its norm (2)], feed-forward (4), its norm (2)."""
    x = np_sublayer(x, normalize_first, w[8:10], lambda h: np_attention(w[:8], h, h, self_mask)[0])
    if source is not None:
        x = np_sublayer(x, normalize_first, w[18:20], lambda h: np_attention(w[10:18], h, source, cross_mask)[0])
    w = w[20:] if source is not None else w[10:]
    return np_sublayer(x, normalize_first, w[4:6], lambda h: np_feedforward(h, *w[:4]))


CAUSAL = np.tril(np.ones((T, T), bool))[None]  # (1, T, T)


# ----------------------------------------------------------------------------- FeedForward

def test_feedforward_layer_checks(tmp_path):
    check_layer(lambda: FeedForward(16, dropout=0.1), [X], tmp_path=tmp_path)


def test_feedforward_matches_numpy_and_drops_out_only_when_training():
    layer = FeedForward(FF, dropout=0.5)
    layer(X)
    randomize(layer)
    np.testing.assert_allclose(to_numpy(layer(X)), np_feedforward(X, *layer.get_weights()), atol=1e-5)
    assert not np.allclose(to_numpy(layer(X, training=True)), to_numpy(layer(X)))


def test_feedforward_is_position_wise():
    layer = FeedForward(FF)
    changed = X.copy()
    changed[:, 2] += 1.0
    same = [0, 1, 3, 4]
    np.testing.assert_allclose(to_numpy(layer(changed))[:, same], to_numpy(layer(X))[:, same], atol=1e-6)


# ----------------------------------------------------------------------------- layer checks

@pytest.mark.parametrize("normalize_first", NORMS)
def test_encoder_layer_checks(normalize_first, tmp_path):
    make = lambda: TransformerEncoderBlock(FF, N, dropout=0.1, normalize_first=normalize_first)  # noqa: E731
    check_layer(make, {"inputs": X, "padding_mask": PADDING}, tmp_path=tmp_path)
    check_layer(make, [X], {"return_attention_scores": True})


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("with_encoder", [pytest.param(True, id="encoder_decoder"),
                                          pytest.param(False, id="decoder_only")])
def test_decoder_layer_checks(normalize_first, with_encoder, tmp_path):
    make = lambda: TransformerDecoderBlock(FF, N, dropout=0.1, normalize_first=normalize_first)  # noqa: E731
    inputs = {"decoder_sequence": X, "decoder_padding_mask": PADDING}
    if with_encoder:
        inputs.update(encoder_sequence=SOURCE, encoder_padding_mask=SOURCE_PADDING)
    check_layer(make, inputs, tmp_path=tmp_path)


def test_cached_attention_layer_checks(tmp_path):
    check_layer(lambda: CachedMultiHeadAttention(N, H), {"query": X, "value": SOURCE}, tmp_path=tmp_path)


# ----------------------------------------------------------------------------- numpy reference

@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("masks", ["none", "padding", "attention", "padding_and_attention"])
def test_encoder_matches_numpy(normalize_first, masks):
    block = TransformerEncoderBlock(FF, N, normalize_first=normalize_first)
    block(X)
    randomize(block)
    kwargs, mask = {}, np.ones((B, T, T), bool)
    if "padding" in masks:
        kwargs["padding_mask"], mask = PADDING, mask & PADDING[:, None, :]
    if "attention" in masks:
        kwargs["attention_mask"], mask = ATTENTION, mask & ATTENTION
    expected = np_encoder(block.get_weights(), X, mask, normalize_first)
    np.testing.assert_allclose(to_numpy(block(X, **kwargs)), expected, atol=1e-4)


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("with_encoder", [pytest.param(True, id="encoder_decoder"),
                                          pytest.param(False, id="decoder_only")])
@pytest.mark.parametrize("causal", [pytest.param(True, id="causal"), pytest.param(False, id="not_causal")])
def test_decoder_matches_numpy(normalize_first, with_encoder, causal):
    block = TransformerDecoderBlock(FF, N, normalize_first=normalize_first)
    args = (X, SOURCE) if with_encoder else (X,)
    block(*args)
    randomize(block)
    kwargs = dict(decoder_padding_mask=PADDING, use_causal_mask=causal)
    self_mask = PADDING[:, None, :] & (CAUSAL if causal else True)
    if with_encoder:
        kwargs["encoder_padding_mask"] = SOURCE_PADDING
    expected = np_decoder(block.get_weights(), X, SOURCE if with_encoder else None, self_mask,
                          SOURCE_PADDING[:, None, :], normalize_first)
    np.testing.assert_allclose(to_numpy(block(*args, **kwargs)), expected, atol=1e-4)


def test_post_norm_outputs_are_normalised_and_pre_norm_outputs_are_not():
    post, pre = TransformerEncoderBlock(FF, N), TransformerEncoderBlock(FF, N, normalize_first=True)
    x = 3.0 * X + 1.0
    out_post, out_pre = to_numpy(post(x)), to_numpy(pre(x))
    np.testing.assert_allclose(out_post.mean(-1), 0.0, atol=1e-5)  # gamma 1, beta 0 at initialisation
    np.testing.assert_allclose(out_post.std(-1), 1.0, atol=1e-3)
    assert np.abs(out_pre.mean(-1)).max() > 0.1  # pre-norm: the residual stream is left as it is


# ----------------------------------------------------------------------------- masks

def perturbed(x, rows, positions):
    x = x.copy()
    x[rows, positions] += RNG.normal(size=x[rows, positions].shape).astype("float32") * 10
    return x


@pytest.mark.parametrize("normalize_first", NORMS)
def test_encoder_padded_tokens_leak_nothing(normalize_first):
    block = TransformerEncoderBlock(FF, N, normalize_first=normalize_first)
    before = to_numpy(block(X, padding_mask=PADDING))
    after = to_numpy(block(perturbed(X, 0, [3, 4]), padding_mask=PADDING))
    np.testing.assert_allclose(after[0, :3], before[0, :3], atol=1e-5)
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)


@pytest.mark.parametrize("normalize_first", NORMS)
def test_decoder_future_and_padded_source_tokens_leak_nothing(normalize_first):
    block = TransformerDecoderBlock(FF, N, normalize_first=normalize_first)
    before = to_numpy(block(X, SOURCE, encoder_padding_mask=SOURCE_PADDING))
    for t in range(T - 1):  # change every position after t: outputs at 0..t stay
        after = to_numpy(block(perturbed(X, slice(None), slice(t + 1, None)), SOURCE,
                               encoder_padding_mask=SOURCE_PADDING))
        np.testing.assert_allclose(after[:, : t + 1], before[:, : t + 1], atol=1e-5, err_msg=f"t={t}")
        assert not np.allclose(after[:, t + 1:], before[:, t + 1:])
    source = perturbed(perturbed(SOURCE, 0, [4, 5]), 1, [2, 3, 4, 5])
    after = to_numpy(block(X, source, encoder_padding_mask=SOURCE_PADDING))
    np.testing.assert_allclose(after, before, atol=1e-5)


def embedded(ids, width=C, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.layers.Embedding(20, width, mask_zero=True)(ids)


def test_keras_masks_from_mask_zero_embeddings_act_as_padding_masks():
    ids = np.where(PADDING, 1 + np.arange(T), 0)
    source_ids = np.where(SOURCE_PADDING, 2 + np.arange(S), 0)
    x, source = embedded(ids), embedded(source_ids, 12, seed=1)
    plain_x, plain_source = to_numpy(x), to_numpy(source)  # the same values, no mask attached
    encoder, decoder = TransformerEncoderBlock(FF, N), TransformerDecoderBlock(FF, N)
    masked = to_numpy(encoder(x))
    explicit = to_numpy(encoder(plain_x, padding_mask=PADDING))
    np.testing.assert_allclose(masked[PADDING], explicit[PADDING], atol=1e-5)  # padded rows: anything
    masked = to_numpy(decoder(x, source))
    explicit = to_numpy(decoder(plain_x, plain_source, decoder_padding_mask=PADDING,
                                encoder_padding_mask=SOURCE_PADDING))
    np.testing.assert_allclose(masked, explicit, atol=1e-5)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: TransformerEncoderBlock(FF, N), id="encoder"),
    pytest.param(lambda: TransformerDecoderBlock(FF, N), id="decoder"),
    pytest.param(lambda: FeedForward(FF), id="feedforward"),
])
def test_the_mask_of_the_inputs_passes_through(make):
    layer = make()
    ids = np.where(PADDING, 3, 0)
    x = embedded(ids)
    assert layer.compute_mask(x, PADDING) is PADDING
    # In a model, the next layer receives it: a masked mean over time ignores the padding.
    inputs = keras.Input((T,), dtype="int32")
    h = layer(keras.layers.Embedding(20, C, mask_zero=True)(inputs))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(h))
    full = keras.Model(inputs, h)
    expected = [to_numpy(full(ids))[i][PADDING[i]].mean(0) for i in range(B)]
    np.testing.assert_allclose(to_numpy(model(ids)), np.stack(expected), atol=1e-5)


def test_encoder_attention_scores_are_per_head_distributions_over_real_tokens():
    block = TransformerEncoderBlock(FF, N)
    _, scores = block(X, padding_mask=PADDING, attention_mask=ATTENTION, return_attention_scores=True)
    assert tuple(scores.shape) == (B, N, T, T)
    assert_attention_weights(scores, (PADDING[:, None, :] & ATTENTION)[:, None])


def test_decoder_attention_scores_self_causal_and_cross_over_real_source_tokens():
    block = TransformerDecoderBlock(FF, N)
    outputs, scores = block(X, SOURCE, encoder_padding_mask=SOURCE_PADDING, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(block(X, SOURCE, encoder_padding_mask=SOURCE_PADDING)))
    assert sorted(scores) == ["cross_attention", "self_attention"]
    assert_attention_weights(scores["self_attention"], CAUSAL[:, None])
    assert_attention_weights(scores["cross_attention"], SOURCE_PADDING[:, None, None, :])
    assert tuple(scores["cross_attention"].shape) == (B, N, T, S)


def test_decoder_cross_attention_scores_in_a_functional_model():
    target, source = keras.Input((T, C)), keras.Input((S, 12))
    block = TransformerDecoderBlock(FF, N)
    outputs, scores = block(target, source, return_attention_scores=True)
    model = keras.Model([target, source], [outputs, scores["cross_attention"]])
    eager_outputs, eager_scores = block(X, SOURCE, return_attention_scores=True)
    got_outputs, got_scores = model([X, SOURCE])
    np.testing.assert_allclose(to_numpy(got_scores), to_numpy(eager_scores["cross_attention"]), atol=1e-6)
    np.testing.assert_allclose(to_numpy(got_outputs), to_numpy(eager_outputs), atol=1e-6)


# ----------------------------------------------------------------------------- key/value cache

def decode_step_by_step(block, x, source=None, padding=None, step_fn=None):
    """Feed `x` one position at a time through the caches; returns (B, T, C)."""
    b, t, _ = x.shape
    cache = np.zeros((b, 2, t, N, H), "float32")
    cross = None if source is None else np.zeros((b, 2, source.shape[1], N, H), "float32")
    step_fn = step_fn or (lambda *args: run_step(block, *args))
    outputs = []
    for i in range(t):
        out, cache, cross = step_fn(x[:, i:i + 1], source, cache, cross, np.int32(i), padding)
        outputs.append(to_numpy(out)[:, 0])
    return np.stack(outputs, axis=1)


def run_step(block, token, source, cache, cross, index, padding):
    kwargs = dict(self_attention_cache=cache, self_attention_cache_update_index=index)
    if source is None:
        out, cache = block(token, **kwargs)
        return out, cache, None
    kwargs.update(cross_attention_cache=cross, encoder_padding_mask=padding,
                  cross_attention_cache_update_index=0 if int(index) == 0 else None)
    return block(token, source, **kwargs)


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("with_encoder", [pytest.param(True, id="encoder_decoder"),
                                          pytest.param(False, id="decoder_only")])
def test_cached_outputs_equal_recomputed_outputs_at_every_position(normalize_first, with_encoder):
    block = TransformerDecoderBlock(FF, N, normalize_first=normalize_first)
    source, padding = (SOURCE, SOURCE_PADDING) if with_encoder else (None, None)
    full = to_numpy(block(X, source, encoder_padding_mask=padding) if with_encoder else block(X))
    randomize(block)
    full = to_numpy(block(X, source, encoder_padding_mask=padding) if with_encoder else block(X))
    cached = decode_step_by_step(block, X, source, padding)
    for t in range(T):
        np.testing.assert_allclose(cached[:, t], full[:, t], atol=1e-5, err_msg=f"position {t}")


def test_the_cache_holds_the_keys_and_values_of_the_positions_done():
    block = TransformerDecoderBlock(FF, N)
    block(X)
    cache = np.zeros((B, 2, T, N, H), "float32")
    for i in range(3):
        _, cache = block(X[:, i:i + 1], self_attention_cache=cache, self_attention_cache_update_index=i)
    cache = to_numpy(cache)  # (B, 2, L, N, H): keys and values of positions 0, 1, 2 written, 3 and 4 not yet
    assert np.all(np.abs(cache[:, :, :3]).sum(axis=(0, 1, 3, 4)) > 0)
    assert np.all(cache[:, :, 3:] == 0)
    keys = np.einsum("btd,dnh->btnh", X[:, :3], block.get_weights()[2]) + block.get_weights()[3]
    np.testing.assert_allclose(cache[:, 0, :3], keys, atol=1e-5)  # post-norm: the raw inputs are projected


def test_a_compiled_cached_step_equals_recomputing():
    block = TransformerDecoderBlock(FF, N)
    full = to_numpy(block(X, SOURCE, encoder_padding_mask=SOURCE_PADDING))

    def step(token, source, cache, cross, index, padding):  # the index is a traced tensor here
        return block(token, source, self_attention_cache=cache, self_attention_cache_update_index=index,
                     cross_attention_cache=cross, cross_attention_cache_update_index=None,
                     encoder_padding_mask=padding)

    first = run_step(block, X[:, :1], SOURCE, np.zeros((B, 2, T, N, H), "float32"),
                     np.zeros((B, 2, S, N, H), "float32"), np.int32(0), SOURCE_PADDING)
    out, cache, cross = (to_numpy(t) for t in first)
    step = compiled(step)
    outputs = [out[:, 0]]
    for i in range(1, T):
        out, cache, cross = step(X[:, i:i + 1], SOURCE, cache, cross, np.int32(i), SOURCE_PADDING)
        outputs.append(to_numpy(out)[:, 0])
    np.testing.assert_allclose(np.stack(outputs, 1), full, atol=1e-5)


def test_cached_attention_without_cache_is_multi_head_attention():
    ours, plain = CachedMultiHeadAttention(N, H), MultiHeadAttention(N, H)
    ours(X, SOURCE), plain(X, SOURCE)
    plain.set_weights(ours.get_weights())
    mask = RNG.random((B, T, S)) > 0.3
    np.testing.assert_allclose(to_numpy(ours(X, SOURCE, attention_mask=mask)),
                               to_numpy(plain(X, SOURCE, attention_mask=mask)), atol=1e-6)


def test_cached_attention_with_a_fixed_cache_ignores_its_inputs():
    layer = CachedMultiHeadAttention(N, H)
    full = to_numpy(layer(X, SOURCE))
    cache = np.zeros((B, 2, S, N, H), "float32")
    _, cache = layer(X, SOURCE, cache=cache, cache_update_index=0)
    out, same = layer(X, np.zeros_like(SOURCE), cache=cache)
    np.testing.assert_allclose(to_numpy(out), full, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(same), to_numpy(cache))


# ----------------------------------------------------------------------------- errors

def built_decoder(with_encoder=True):
    block = TransformerDecoderBlock(FF, N)
    block(X, SOURCE) if with_encoder else block(X)
    return block


@pytest.mark.parametrize("make, exception, name", [
    error_case("intermediate_dim_0", lambda: TransformerEncoderBlock(0, N), ValueError, "intermediate_dim"),
    error_case("intermediate_dim_float", lambda: TransformerDecoderBlock(1.5, N), TypeError, "intermediate_dim"),
    error_case("num_heads_0", lambda: TransformerEncoderBlock(FF, 0), ValueError, "num_heads"),
    error_case("dropout_1", lambda: TransformerEncoderBlock(FF, N, dropout=1.0), ValueError, "dropout"),
    error_case("activation_unknown", lambda: TransformerDecoderBlock(FF, N, activation="nope"), ValueError,
               "activation"),
    error_case("epsilon_negative", lambda: TransformerEncoderBlock(FF, N, layer_norm_epsilon=-1.0), ValueError,
               "layer_norm_epsilon"),
    error_case("normalize_first_str", lambda: TransformerEncoderBlock(FF, N, normalize_first="yes"), TypeError,
               "normalize_first"),
    error_case("width_not_divisible", lambda: TransformerEncoderBlock(FF, 3)(X), ValueError, "num_heads"),
    error_case("decoder_width_not_divisible", lambda: TransformerDecoderBlock(FF, 3)(X), ValueError, "num_heads"),
    error_case("encoder_rank_2", lambda: TransformerEncoderBlock(FF, N)(X[0]), ValueError, "inputs"),
    error_case("decoder_rank_2", lambda: TransformerDecoderBlock(FF, N)(X[0]), ValueError, "decoder_sequence"),
    error_case("encoder_sequence_rank_2", lambda: TransformerDecoderBlock(FF, N)(X, SOURCE[0]), ValueError,
               "encoder_sequence"),
    error_case("encoder_sequence_width", lambda: built_decoder()(X, SOURCE[..., :10]), ValueError,
               "encoder_sequence"),
    error_case("encoder_sequence_missing", lambda: built_decoder()(X), ValueError, "encoder_sequence"),
    error_case("encoder_sequence_unexpected", lambda: built_decoder(False)(X, SOURCE), ValueError,
               "encoder_sequence"),
    error_case("inputs_width", lambda: (lambda b: (b(X), b(X[..., :4])))(TransformerEncoderBlock(FF, 2)),
               ValueError, "inputs"),
    error_case("padding_mask_rank_3", lambda: TransformerEncoderBlock(FF, N)(X, padding_mask=ATTENTION),
               ValueError, "padding_mask"),
    error_case("attention_mask_rank_2", lambda: TransformerEncoderBlock(FF, N)(X, attention_mask=PADDING),
               ValueError, "attention_mask"),
    error_case("additive_mask", lambda: TransformerDecoderBlock(FF, N)(X, decoder_padding_mask=PADDING * -1e9),
               ValueError, "decoder_padding_mask"),
    error_case("cross_cache_missing", lambda: built_decoder()(
        X[:, :1], SOURCE, self_attention_cache=np.zeros((B, 2, T, N, H), "float32"),
        self_attention_cache_update_index=0), ValueError, "cross_attention_cache"),
    error_case("cache_index_without_cache", lambda: CachedMultiHeadAttention(N, H)(X, X, cache_update_index=0),
               ValueError, "cache_update_index"),
    error_case("cache_rank_4", lambda: CachedMultiHeadAttention(N, H)(X, X, cache=np.zeros((B, T, N, H))),
               ValueError, "cache"),
    error_case("feedforward_intermediate_dim", lambda: FeedForward(-1), ValueError, "intermediate_dim"),
    error_case("feedforward_activation_type", lambda: FeedForward(4, activation=3), TypeError, "activation"),
    error_case("feedforward_width", lambda: (lambda f: (f(X), f(SOURCE)))(FeedForward(4)), ValueError, "inputs"),
])
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
