"""Tests of course_lib.transformer_model (lesson 09): TransformerEmbedding, the
encoder-decoder model of build_transformer, its cached greedy decoding step and
cross_attention_weights.

The cached step gives the logits of recomputing the whole prefix, at every step and
for every variant of the model (post/pre-norm, tied or not, shared embeddings, learned
positions), it is traced twice per model, not once per token, it follows new weights,
and a tiny model trained on a copy task decodes its training examples exactly."""

import keras
import numpy as np
import pytest

import course_lib.transformer_model as transformer_model
from course_lib.decoding import beam_search, greedy_decode
from course_lib.layers import TransformerEmbedding
from course_lib.positional import sinusoidal_encoding
from course_lib.transformer_model import build_transformer, cross_attention_weights, next_token_function
from tests.helpers import assert_attention_weights, error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

RNG = np.random.default_rng(3)
SOURCE = np.array([[5, 6, 7, 8, 0, 0], [9, 4, 0, 0, 0, 0]], "int32")  # (B, S), 0 = PAD
TARGET_IN = np.array([[1, 4, 5, 6, 7], [1, 8, 9, 0, 0]], "int32")  # (B, T), START first
VARIANTS = {
    "post_norm_tied": dict(),
    "pre_norm_untied": dict(normalize_first=True, tie_output=False),
    "shared_learned": dict(share_embeddings=True, positions="learned"),
}


def small_model(seed=0, **options):
    keras.utils.set_random_seed(seed)
    options = {"num_layers": 2, "width": 16, "num_heads": 2, "intermediate_dim": 32, "dropout": 0.0, **options}
    return build_transformer(12, 12, sequence_length=10, **options)


def randomize(model, seed=1, scale=0.3):
    """Large random weights, so that the logits of different prefixes differ clearly."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def last_logits(model):
    """The recomputing decoder: the whole prefix through the model, the logits of its last position."""
    return lambda source, prefix: to_numpy(model([source, prefix]))[:, -1]


# ----------------------------------------------------------------------------- TransformerEmbedding

@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_embedding_layer_checks(positions, tmp_path):
    check_layer(lambda: TransformerEmbedding(12, 8, 10, positions=positions, dropout=0.1), [SOURCE],
                tmp_path=tmp_path)


def test_embedding_scales_tokens_adds_positions_and_reverses_to_tied_logits():
    layer = TransformerEmbedding(12, 8, 10)
    x = to_numpy(layer(SOURCE))
    table = to_numpy(layer.embeddings)
    expected = table[SOURCE] * np.sqrt(8) + to_numpy(sinusoidal_encoding(6, 8))[None]
    np.testing.assert_allclose(x, expected, atol=1e-5)
    np.testing.assert_allclose(to_numpy(layer(x, reverse=True)), x @ table.T, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(SOURCE)), SOURCE != 0)
    assert 0.5 < np.std(table[SOURCE] * np.sqrt(8)) < 2.0  # token embeddings of unit scale


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_embed_at_places_tokens_at_their_positions(positions):
    layer = TransformerEmbedding(12, 8, 10, positions=positions)
    full = to_numpy(layer(SOURCE))
    for start in range(SOURCE.shape[1]):
        np.testing.assert_allclose(to_numpy(layer.embed_at(SOURCE[:, start:start + 1], start))[:, 0],
                                   full[:, start], atol=1e-5)


# ----------------------------------------------------------------------------- the model

@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_model_layers_shapes_and_names(options):
    model = small_model(**options)
    logits = model([SOURCE, TARGET_IN])
    assert tuple(logits.shape) == (2, 5, 12)
    names = {layer.name for layer in model.layers}
    assert {"encoder_0", "encoder_1", "decoder_0", "decoder_1"} <= names
    assert ("logits" in names) == (not options.get("tie_output", True))
    assert ({"encoder_norm", "decoder_norm"} <= names) == options.get("normalize_first", False)
    assert ("embedding" in names) == options.get("share_embeddings", False)


def test_the_logits_carry_the_target_padding_mask_and_the_loss_ignores_padding():
    model = randomize(small_model())
    pooled = keras.Model(model.inputs, keras.layers.GlobalAveragePooling1D()(model.outputs[0]))
    logits = to_numpy(model([SOURCE, TARGET_IN]))
    real = TARGET_IN != 0
    expected = np.stack([logits[i][real[i]].mean(0) for i in range(2)])
    np.testing.assert_allclose(to_numpy(pooled([SOURCE, TARGET_IN])), expected, atol=1e-5)
    targets = np.where(real, 3, 0)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.evaluate([SOURCE, TARGET_IN], targets, verbose=0)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[..., 3][real].mean(), rtol=1e-4)


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_padding_and_future_tokens_leak_nothing(options):
    model = randomize(small_model(**options))
    before = to_numpy(model([SOURCE, TARGET_IN]))
    more_padding = np.pad(SOURCE, ((0, 0), (0, 3)))  # three more PAD columns: nothing changes
    np.testing.assert_allclose(to_numpy(model([more_padding, TARGET_IN])), before, atol=1e-4)
    for t in range(TARGET_IN.shape[1] - 1):
        changed = TARGET_IN.copy()
        changed[:, t + 1:] = RNG.integers(3, 12, size=changed[:, t + 1:].shape)
        after = to_numpy(model([SOURCE, changed]))
        np.testing.assert_allclose(after[:, : t + 1], before[:, : t + 1], atol=1e-4, err_msg=f"t={t}")


def test_keras_save_and_load_keeps_outputs_and_decoding(tmp_path):
    model = randomize(small_model(share_embeddings=True, normalize_first=True))
    path = str(tmp_path / "transformer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded([SOURCE, TARGET_IN])), to_numpy(model([SOURCE, TARGET_IN])),
                               atol=1e-5)
    np.testing.assert_array_equal(greedy_decode(loaded, SOURCE, max_length=6)[0],
                                  greedy_decode(model, SOURCE, max_length=6)[0])


def test_cross_attention_weights_per_layer_and_head():
    model = randomize(small_model())
    weights = cross_attention_weights(model, SOURCE, TARGET_IN)
    assert weights.shape == (2, 2, 2, 5, 6)  # (B, layers, heads, T, S)
    assert_attention_weights(weights, (SOURCE != 0)[:, None, None, None, :])
    assert not np.allclose(weights[:, 0], weights[:, 1])


# ----------------------------------------------------------------------------- cached decoding

@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_cached_step_gives_the_logits_of_recomputing_the_prefix(options):
    model = randomize(small_model(**options))
    function = next_token_function(model, SOURCE)
    prefix = np.zeros((2, 8), "int32")  # a fixed buffer, as the decoding loop's
    prefix[:, 0] = 1
    prefix[:, 1:] = RNG.integers(3, 12, size=(2, 7))  # any tokens: not only the greedy ones
    state = function.initial_state
    recompute = last_logits(model)
    for index in range(7):
        logits, weights, state = function.step(prefix, state, np.int32(index))
        np.testing.assert_allclose(to_numpy(logits), recompute(SOURCE, prefix[:, : index + 1]), atol=1e-4,
                                   err_msg=f"step {index}")
        teacher_forced = cross_attention_weights(model, SOURCE, prefix[:, : index + 1])[:, :, :, -1]
        np.testing.assert_allclose(to_numpy(weights), teacher_forced, atol=1e-5)  # (B, layers, heads, S)


def test_cached_beam_search_reorders_the_caches_with_the_beams():
    """The caches (self- and cross-attention, batch first) follow their beams: the cached
    beam search gives the tokens and log-probabilities of recomputing every prefix."""
    model = randomize(small_model(normalize_first=True), scale=0.5)
    cached, cached_scores = beam_search(model, SOURCE, max_length=9, beam_width=3)
    recomputed, recomputed_scores = beam_search(last_logits(model), SOURCE, max_length=9, beam_width=3)
    np.testing.assert_array_equal(cached, recomputed)
    np.testing.assert_allclose(cached_scores, recomputed_scores, atol=1e-4)


@pytest.mark.parametrize("options", VARIANTS.values(), ids=VARIANTS.keys())
def test_cached_greedy_decoding_gives_the_tokens_of_recomputing(options):
    model = randomize(small_model(**options), scale=0.5)
    cached, weights = greedy_decode(model, SOURCE, max_length=9)
    recomputed, _ = greedy_decode(last_logits(model), SOURCE, max_length=9)
    np.testing.assert_array_equal(cached, recomputed)
    assert weights.shape == (2, cached.shape[1], 2, 2, 6)  # (B, steps, layers, heads, S)


def test_the_step_is_traced_twice_per_model_not_per_token(monkeypatch):
    traces = []
    original = transformer_model._decode_step
    monkeypatch.setattr(transformer_model, "_decode_step", lambda *a, **k: traces.append(1) or original(*a, **k))
    model = small_model(seed=5)
    greedy_decode(model, SOURCE, max_length=8)
    assert len(traces) == 2  # the first step (which fills the cross-attention caches), and the others
    greedy_decode(model, SOURCE, max_length=8)
    assert len(traces) == 2  # compiled once per model


def test_the_compiled_step_follows_new_weights():
    model = small_model(seed=6)
    greedy_decode(model, SOURCE, max_length=6)  # compiled with the first weights
    randomize(model, seed=7, scale=0.5)
    cached, _ = greedy_decode(model, SOURCE, max_length=6)
    np.testing.assert_array_equal(cached, greedy_decode(last_logits(model), SOURCE, max_length=6)[0])


def copy_task(n=32, length=5, seed=0):
    """Sources of 2-5 distinct symbols (3..9); targets: the same symbols, then END."""
    rng = np.random.default_rng(seed)
    source = np.zeros((n, length), "int32")
    target = np.zeros((n, length + 2), "int32")
    for i, size in enumerate(rng.integers(2, length + 1, n)):
        source[i, :size] = rng.choice(np.arange(3, 10), size, replace=False)
        target[i, 0], target[i, 1:size + 1], target[i, size + 1] = 1, source[i, :size], 2
    return source, target[:, :-1], target[:, 1:]


def test_a_tiny_model_trained_on_a_copy_task_decodes_its_training_examples():
    source, target_in, target_out = copy_task()
    keras.utils.set_random_seed(0)
    model = build_transformer(10, 10, sequence_length=8, num_layers=1, width=32, num_heads=2, intermediate_dim=64,
                              dropout=0.0, positions="learned", share_embeddings=True)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit([source, target_in], target_out, batch_size=32, epochs=80, verbose=0)  # 80 steps
    tokens, _ = greedy_decode(model, source, max_length=6)
    np.testing.assert_array_equal(tokens, target_out[:, : tokens.shape[1]])


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("make, exception, name", [
    error_case("heads_do_not_divide_width", lambda: build_transformer(9, 9, 8, width=10, num_heads=4), ValueError,
               "num_heads"),
    error_case("shared_vocab_sizes_differ", lambda: build_transformer(9, 8, 8, share_embeddings=True), ValueError,
               "target_vocab_size"),
    error_case("positions_unknown", lambda: build_transformer(9, 9, 8, positions="rotary"), ValueError, "positions"),
    error_case("num_layers_0", lambda: build_transformer(9, 9, 8, num_layers=0), ValueError, "num_layers"),
    error_case("tie_output_str", lambda: build_transformer(9, 9, 8, tie_output="yes"), TypeError, "tie_output"),
    error_case("vocab_size_0", lambda: TransformerEmbedding(0, 8, 10), ValueError, "vocab_size"),
    error_case("too_long", lambda: TransformerEmbedding(12, 8, 4)(SOURCE), ValueError, "inputs"),
    error_case("not_a_transformer", lambda: next_token_function(keras.Sequential([keras.layers.Dense(2)]), SOURCE),
               ValueError, "model"),
    error_case("source_rank_1", lambda: next_token_function(small_model(), SOURCE[0]), ValueError, "source_tokens"),
    error_case("max_length_too_long", lambda: greedy_decode(small_model(), SOURCE, max_length=11), ValueError,
               "max_length"),
])
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
