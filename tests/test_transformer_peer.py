"""The course's Transformer blocks against keras-hub's (a test-only peer).

`TransformerEncoderBlock`, `TransformerDecoderBlock` and `CachedMultiHeadAttention`
are drop-ins for `keras_hub.layers.TransformerEncoder`, `TransformerDecoder` and
`CachedMultiHeadAttention`: the same constructor arguments and configs, the same
weights (count, shapes, order), and after `ours.set_weights(theirs.get_weights())` the
same outputs: with padding masks, Keras masks from `mask_zero` embeddings, explicit
attention masks, causal masks, `normalize_first` both ways, with and without an
encoder sequence, and in cached decoding step by step.

Where a mask hides a whole query row (a padded position of the encoder under a Keras
mask), the two differ by design: Keras's attention averages the values there, the
course's gives 0 (see `course_lib.multihead`); those positions are compared nowhere.
"""

import keras
import numpy as np
import pytest

from course_lib.kv_cache import CachedMultiHeadAttention
from course_lib.transformer import TransformerDecoderBlock, TransformerEncoderBlock
from tests.helpers import to_numpy

keras_hub = pytest.importorskip("keras_hub")

RNG = np.random.default_rng(7)
B, T, S, C, N, FF = 2, 6, 5, 8, 2, 16
H = C // N
X = RNG.normal(size=(B, T, C)).astype("float32")  # (B, T, C)
SOURCE = RNG.normal(size=(B, S, 12)).astype("float32")  # (B, S, 12): the encoder may be wider
PADDING = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)  # (B, T)
SOURCE_PADDING = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)  # (B, S)
SELF_MASK = RNG.random((B, T, T)) > 0.3  # (B, T, T)
SELF_MASK[:, np.arange(T), np.arange(T)] = True
CROSS_MASK = RNG.random((B, T, S)) > 0.3  # (B, T, S)
CROSS_MASK[:, :, 0] = True
NORMS = [pytest.param(False, id="post_norm"), pytest.param(True, id="pre_norm")]
OPTIONS = {
    "defaults": {},
    "gelu_eps_1e-3": dict(activation="gelu", layer_norm_epsilon=1e-3),
    "dropout_0.1": dict(dropout=0.1),
    "he_normal_ones": dict(kernel_initializer="he_normal", bias_initializer="ones"),
}


def pair(ours_class, theirs_class, *inputs, randomize=True, **options):
    """keras-hub's layer and ours built on `inputs`, ours holding keras-hub's weights."""
    theirs, ours = theirs_class(FF, N, **options), ours_class(FF, N, **options)
    theirs(*inputs), ours(*inputs)
    if randomize:  # random weights everywhere, layer norms included, so that every one matters
        theirs.set_weights([RNG.normal(scale=0.5, size=w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def encoders(**options):
    return pair(TransformerEncoderBlock, keras_hub.layers.TransformerEncoder, X, **options)


def decoders(with_encoder=True, **options):
    inputs = (X, SOURCE) if with_encoder else (X,)
    return pair(TransformerDecoderBlock, keras_hub.layers.TransformerDecoder, *inputs, **options)


def assert_close(ours, theirs, where=None, atol=1e-5):
    ours, theirs = to_numpy(ours), to_numpy(theirs)
    assert ours.shape == theirs.shape
    if where is not None:
        ours, theirs = ours[where], theirs[where]
    np.testing.assert_allclose(ours, theirs, atol=atol)


# ----------------------------------------------------------------------------- arguments and weights

@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("kind", ["encoder", "decoder", "decoder_only"])
def test_same_arguments_config_and_weights(kind, options):
    theirs, ours = encoders(**options) if kind == "encoder" else decoders(kind == "decoder", **options)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    for key in ("decoder_sequence_shape", "encoder_sequence_shape"):
        theirs_config.pop(key, None)
    shared = set(theirs_config) - {"name"}
    assert shared <= set(ours_config)
    assert {k: ours_config[k] for k in shared} == {k: theirs_config[k] for k in shared}
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert len(ours.weights) == len(theirs.weights) == (16 if kind == "encoder" else 26 if kind == "decoder" else 16)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_a_keras_hub_config_builds_our_block(kind):
    theirs, _ = encoders() if kind == "encoder" else decoders()
    ours_class = TransformerEncoderBlock if kind == "encoder" else TransformerDecoderBlock
    ours = ours_class.from_config(theirs.get_config())
    if kind == "decoder":  # keras-hub's config carries the build shapes: built at once, as theirs
        assert ours.built and len(ours.weights) == len(theirs.weights)
        ours.set_weights(theirs.get_weights())
        assert_close(ours(X, SOURCE), theirs(X, SOURCE))
    else:
        ours(X)
        ours.set_weights(theirs.get_weights())
        assert_close(ours(X), theirs(X))


def test_deterministic_initializers_give_the_same_block_without_copying():
    options = dict(kernel_initializer=keras.initializers.Constant(0.05), bias_initializer="ones")
    theirs, ours = keras_hub.layers.TransformerDecoder(FF, N, **options), TransformerDecoderBlock(FF, N, **options)
    assert_close(ours(X, SOURCE), theirs(X, SOURCE))


# ----------------------------------------------------------------------------- encoder

ENCODER_CALLS = {
    "no_mask": lambda: {},
    "padding_mask": lambda: dict(padding_mask=PADDING),
    "attention_mask": lambda: dict(attention_mask=SELF_MASK),
    "padding_and_attention": lambda: dict(padding_mask=PADDING, attention_mask=SELF_MASK),
    "int_padding_mask": lambda: dict(padding_mask=PADDING.astype("int32")),
}


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("call", ENCODER_CALLS.values(), ids=ENCODER_CALLS.keys())
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_encoder_outputs_and_scores(normalize_first, call, options):
    theirs, ours = encoders(normalize_first=normalize_first, **options)
    assert_close(ours(X, **call()), theirs(X, **call()))
    ours_out, ours_scores = ours(X, **call(), return_attention_scores=True)
    theirs_out, theirs_scores = theirs(X, **call(), return_attention_scores=True)
    assert_close(ours_out, theirs_out)
    assert_close(ours_scores, theirs_scores)


def embedding_of(ids, width, seed):
    keras.utils.set_random_seed(seed)
    embedding = keras.layers.Embedding(20, width, mask_zero=True)
    return embedding(ids)


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("extra", [pytest.param({}, id="keras_mask"),
                                   pytest.param(dict(attention_mask=SELF_MASK), id="keras_mask_and_attention")])
def test_encoder_keras_masks_from_mask_zero_embeddings(normalize_first, extra):
    ids = np.where(PADDING, 1 + np.arange(T), 0)
    x = embedding_of(ids, C, seed=0)
    theirs, ours = encoders(normalize_first=normalize_first)
    assert_close(ours(x, **extra), theirs(x, **extra), where=PADDING)  # real tokens only (see the docstring)
    _, ours_scores = ours(x, **extra, return_attention_scores=True)
    _, theirs_scores = theirs(x, **extra, return_attention_scores=True)
    assert_close(ours_scores, theirs_scores)  # padded query rows: zeros in both


def test_encoder_keras_mask_in_a_functional_model_and_a_stack():
    ids = np.where(PADDING, 1 + np.arange(T), 0)
    inputs = keras.Input((T,), dtype="int32")
    keras.utils.set_random_seed(3)
    embedding = keras.layers.Embedding(20, C, mask_zero=True)
    stacks = []
    for block_class in (keras_hub.layers.TransformerEncoder, TransformerEncoderBlock):
        keras.utils.set_random_seed(4)
        h = embedding(inputs)
        for _ in range(2):
            h = block_class(FF, N)(h)
        stacks.append(keras.Model(inputs, h))
    theirs, ours = stacks
    ours.set_weights(theirs.get_weights())
    assert_close(ours(ids), theirs(ids), where=PADDING)


# ----------------------------------------------------------------------------- decoder

DECODER_CALLS = {
    "causal": lambda: {},
    "not_causal": lambda: dict(use_causal_mask=False),
    "decoder_padding": lambda: dict(decoder_padding_mask=PADDING),
    "decoder_attention": lambda: dict(decoder_attention_mask=SELF_MASK),
    "encoder_padding": lambda: dict(encoder_padding_mask=SOURCE_PADDING),
    "encoder_attention": lambda: dict(encoder_attention_mask=CROSS_MASK),
    "all_masks": lambda: dict(decoder_padding_mask=PADDING, decoder_attention_mask=SELF_MASK,
                              encoder_padding_mask=SOURCE_PADDING, encoder_attention_mask=CROSS_MASK),
    "all_masks_not_causal": lambda: dict(decoder_padding_mask=PADDING, encoder_padding_mask=SOURCE_PADDING,
                                         use_causal_mask=False),
}


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("call", DECODER_CALLS.values(), ids=DECODER_CALLS.keys())
def test_decoder_outputs(normalize_first, call):
    theirs, ours = decoders(normalize_first=normalize_first)
    assert_close(ours(X, SOURCE, **call()), theirs(X, SOURCE, **call()))


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("call", ["causal", "not_causal", "decoder_padding", "decoder_attention"])
@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_decoder_only_outputs(normalize_first, call, options):
    theirs, ours = decoders(with_encoder=False, normalize_first=normalize_first, **options)
    assert_close(ours(X, **DECODER_CALLS[call]()), theirs(X, **DECODER_CALLS[call]()))


@pytest.mark.parametrize("normalize_first", NORMS)
def test_decoder_keras_masks_from_mask_zero_embeddings(normalize_first):
    x = embedding_of(np.where(PADDING, 1 + np.arange(T), 0), C, seed=1)
    source = embedding_of(np.where(SOURCE_PADDING, 2 + np.arange(S), 0), 12, seed=2)
    theirs, ours = decoders(normalize_first=normalize_first)
    assert_close(ours(x, source), theirs(x, source))  # keras-hub's decoder masks no query row: all positions
    theirs, ours = decoders(with_encoder=False, normalize_first=normalize_first)
    assert_close(ours(x), theirs(x))


# ----------------------------------------------------------------------------- cached decoding

def cached_run(layer, x, source, source_padding, cache_length):
    """Decode `x` one position at a time through the caches: outputs (B, T, C) and the last caches."""
    cache = np.zeros((B, 2, cache_length, N, H), "float32")
    cross = np.zeros((B, 2, S, N, H), "float32")
    outputs = []
    for i in range(x.shape[1]):
        kwargs = dict(self_attention_cache=cache, self_attention_cache_update_index=i)
        if source is None:
            out, cache = layer(x[:, i:i + 1], **kwargs)
        else:
            out, cache, cross = layer(x[:, i:i + 1], source, cross_attention_cache=cross,
                                      cross_attention_cache_update_index=0 if i == 0 else None,
                                      encoder_padding_mask=source_padding, **kwargs)
        outputs.append(to_numpy(out)[:, 0])
    return np.stack(outputs, axis=1), to_numpy(cache), to_numpy(cross)


@pytest.mark.parametrize("normalize_first", NORMS)
@pytest.mark.parametrize("with_encoder", [pytest.param(True, id="encoder_decoder"),
                                          pytest.param(False, id="decoder_only")])
@pytest.mark.parametrize("cache_length", [pytest.param(T, id="cache_T"), pytest.param(T + 3, id="cache_longer")])
def test_cached_decoding_step_by_step(normalize_first, with_encoder, cache_length):
    theirs, ours = decoders(with_encoder, normalize_first=normalize_first)
    source, padding = (SOURCE, SOURCE_PADDING) if with_encoder else (None, None)
    ours_out, ours_cache, ours_cross = cached_run(ours, X, source, padding, cache_length)
    theirs_out, theirs_cache, theirs_cross = cached_run(theirs, X, source, padding, cache_length)
    for t in range(T):  # every position, against keras-hub's cached decoder
        np.testing.assert_allclose(ours_out[:, t], theirs_out[:, t], atol=1e-5, err_msg=f"position {t}")
    np.testing.assert_allclose(ours_cache, theirs_cache, atol=1e-5)
    np.testing.assert_allclose(ours_cross, theirs_cross, atol=1e-5)
    full = theirs(X, source, encoder_padding_mask=padding) if with_encoder else theirs(X)
    np.testing.assert_allclose(ours_out, to_numpy(full), atol=1e-5)  # and against keras-hub uncached


def test_cached_multi_head_attention_modes():
    theirs = keras_hub.layers.CachedMultiHeadAttention(num_heads=N, key_dim=H)
    ours = CachedMultiHeadAttention(num_heads=N, key_dim=H)
    theirs(X, SOURCE), ours(X, SOURCE)
    theirs.set_weights([RNG.normal(size=w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    assert_close(ours(X, SOURCE, attention_mask=CROSS_MASK), theirs(X, SOURCE, attention_mask=CROSS_MASK))
    ours_out, ours_scores = ours(X, SOURCE, return_attention_scores=True)
    theirs_out, theirs_scores = theirs(X, SOURCE, return_attention_scores=True)
    assert_close(ours_out, theirs_out)
    assert_close(ours_scores, theirs_scores)
    cache = RNG.normal(size=(B, 2, S + 2, N, H)).astype("float32")
    mask = np.ones((B, 1, S + 2), bool)
    for index in (0, 3):  # write two positions at `index`
        call = dict(attention_mask=mask, cache=cache, cache_update_index=index)
        ours_out, ours_cache = ours(X[:, :2], SOURCE[:, :2], **call)
        theirs_out, theirs_cache = theirs(X[:, :2], SOURCE[:, :2], **call)
        assert_close(ours_out, theirs_out)
        assert_close(ours_cache, theirs_cache)
    ours_out, ours_scores, ours_cache = ours(X, SOURCE, cache=cache, return_attention_scores=True)
    theirs_out, theirs_scores, theirs_cache = theirs(X, SOURCE, cache=cache, return_attention_scores=True)
    assert_close(ours_out, theirs_out)
    assert_close(ours_scores, theirs_scores)
    assert_close(ours_cache, cache)
