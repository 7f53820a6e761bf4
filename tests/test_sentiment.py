"""Tests of lesson 12's library pieces: `course_lib.attention_pooling` (the layer and the
attention-pooling classifier) and `course_lib.faithfulness` (attention weights, gradient
attributions, erasure curves, rank correlation).

Masks are respected: padded positions never receive weight or attribution and never
change a prediction; attention pooling equals the numpy formula; the erasure curve of a
model that ignores its input is flat, and removing the words a model reads does change
its prediction; bad inputs get errors that name them."""

import keras
import numpy as np
import pytest

from course_lib import faithfulness as fa
from course_lib.attention_pooling import AttentionPooling, build_attention_pooling_classifier
from course_lib.classifier import build_classifier, count_parameters
from tests.helpers import error_case, numpy_softmax, raises_naming, to_numpy
from tests.layer_checks import check_layer

VOCAB, WIDTH = 13, 8
TOKENS = np.array([[1, 5, 6, 7, 8, 9], [1, 10, 11, 12, 0, 0], [1, 3, 4, 0, 0, 0]], np.int32)  # (B, T), 0 = PAD
LENGTHS = (TOKENS != 0).sum(axis=1)


def randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.7, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def models():
    keras.utils.set_random_seed(0)
    return {
        "attention_pooling": randomize(build_attention_pooling_classifier(VOCAB, 2, width=WIDTH)),
        "transformer_cls": randomize(build_classifier(VOCAB, 2, width=WIDTH, body="transformer", num_heads=2,
                                                      pooling="first")),
        "transformer_attention_pooling": randomize(build_classifier(VOCAB, 2, width=WIDTH, body="transformer",
                                                                    num_heads=2, pooling="attention")),
    }


MODELS = models()
NAMES = [pytest.param(name, id=name) for name in MODELS]


# ----------------------------------------------------------------------------- the layer


def test_attention_pooling_is_the_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = TOKENS != 0
    layer = AttentionPooling(query_initializer=keras.initializers.RandomNormal(seed=1))
    pooled, weights = to_numpy(layer(x, padding_mask=mask, return_attention_scores=True))
    q = to_numpy(layer.query).astype("float64")
    expected = numpy_softmax(x @ q / 2.0, mask=mask)  # sqrt(C) = 2
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    np.testing.assert_allclose(pooled, np.einsum("bt,btc->bc", expected, x), atol=1e-5)
    assert np.all(weights[~mask] == 0.0)


def test_attention_pooling_without_real_tokens_gives_zeros():
    x = np.ones((2, 3, 4), "float32")
    pooled, weights = to_numpy(AttentionPooling()(x, padding_mask=np.zeros((2, 3), bool), return_attention_scores=True))
    assert np.array_equal(pooled, np.zeros((2, 4))) and np.array_equal(weights, np.zeros((2, 3)))


def test_attention_pooling_passes_the_layer_checks(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    init = keras.initializers.RandomNormal(seed=2)
    check_layer(lambda: AttentionPooling(query_initializer=init), [x, TOKENS != 0], tmp_path=tmp_path)


def test_the_attention_pooling_classifier_counts_its_parts():
    model = build_attention_pooling_classifier(VOCAB, 3, width=WIDTH, dropout=0.2)
    assert count_parameters(model) == {"embedding": VOCAB * WIDTH, "positions": 0, "body": 0, "pooling": WIDTH,
                                       "head": WIDTH * 3 + 3, "total": VOCAB * WIDTH + WIDTH + WIDTH * 3 + 3}


# ----------------------------------------------------------------------------- masks respected


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_a_prediction(name):
    model = MODELS[name]
    padded = fa.predict_probabilities(model, TOKENS)
    for row, length in enumerate(LENGTHS):
        alone = fa.predict_probabilities(model, TOKENS[row : row + 1, :length])
        np.testing.assert_allclose(alone[0], padded[row], atol=1e-5, err_msg=f"sequence {row}")


@pytest.mark.parametrize("name", NAMES)
def test_padded_positions_get_no_attention_and_no_attribution(name):
    model = MODELS[name]
    weights = fa.attention_weights(model, TOKENS)
    attribution = fa.gradient_times_input(model, TOKENS)
    assert weights.shape == attribution.shape == TOKENS.shape
    assert np.all(weights[TOKENS == 0] == 0.0) and np.all(attribution[TOKENS == 0] == 0.0)
    assert np.all(weights[TOKENS != 0] > 0.0)
    assert np.all(np.abs(attribution[TOKENS != 0]).sum(axis=-1) > 0)


def test_attention_pooling_weights_sum_to_one_and_cls_rows_too():
    np.testing.assert_allclose(fa.attention_weights(MODELS["attention_pooling"], TOKENS).sum(axis=1), 1.0, atol=1e-6)
    maps = fa.encoder_attention(MODELS["transformer_cls"], TOKENS)
    assert len(maps) == 1 and maps[0].shape == (3, 2, 6, 6)
    np.testing.assert_allclose(maps[0].sum(axis=-1)[:, :, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(fa.attention_weights(MODELS["transformer_cls"], TOKENS), maps[0][:, :, 0].mean(1))


# ----------------------------------------------------------------------------- attribution


def test_gradient_times_input_is_a_first_order_estimate():
    # Scaling one token's embedding by (1 - eps) changes p by about -eps * attribution.
    model = MODELS["attention_pooling"]
    attribution = fa.gradient_times_input(model, TOKENS[:1])
    p = fa.predict_probabilities(model, TOKENS[:1])
    c = int(p.argmax())
    table = model.get_layer("embedding").embeddings
    original = to_numpy(table).copy()
    eps, token = 1e-3, 1
    scaled = original.copy()
    scaled[TOKENS[0, token]] *= 1 - eps
    table.assign(scaled)
    try:
        q = fa.predict_probabilities(model, TOKENS[:1])
    finally:
        table.assign(original)
    np.testing.assert_allclose((p - q)[0, c] / eps, attribution[0, token], rtol=2e-2, atol=1e-5)


# ----------------------------------------------------------------------------- erasure


def test_remove_tokens_deletes_and_repads():
    remove = np.zeros_like(TOKENS, dtype=bool)
    remove[0, [1, 3]] = True
    remove[1, 4] = True  # padding: nothing to remove
    out = fa.remove_tokens(TOKENS, remove)
    assert out.tolist() == [[1, 6, 8, 9, 0, 0], [1, 10, 11, 12, 0, 0], [1, 3, 4, 0, 0, 0]]


def test_top_k_takes_the_highest_candidates_and_at_most_what_is_there():
    scores = np.array([[9.0, 1, 5, 3, 4, 2], [9.0, 2, 8, 1, 7, 7], [9.0, 1, 2, 3, 3, 3]])
    candidates = (TOKENS != 0) & (np.arange(6) > 0)  # not the [CLS] token
    top = fa.top_k_positions(scores, 2, candidates)
    assert top.tolist()[0] == [False, False, True, False, True, False]
    assert top.tolist()[1] == [False, True, True, False, False, False]  # padding is no candidate
    assert top[2].sum() == 2 and not top[2, 0]


def test_the_erasure_curve_of_a_model_that_ignores_its_input_is_flat():
    blind = build_attention_pooling_classifier(VOCAB, 2, width=WIDTH)
    blind.get_layer("embedding").embeddings.assign(np.zeros((VOCAB, WIDTH), "float32"))  # every word the same: 0
    blind.get_layer("head").bias.assign(np.array([0.3, -0.2], "float32"))
    for scores in (fa.random_scores(TOKENS, seed=0), fa.attention_weights(blind, TOKENS)):
        np.testing.assert_allclose(fa.erasure_curve(blind, TOKENS, scores, [0, 1, 2, 3]), 0.0, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_removing_words_changes_a_model_that_reads_them(name):
    model = MODELS[name]
    candidates = (TOKENS != 0) & (np.arange(6) > 0)
    curve = fa.erasure_curve(model, TOKENS, fa.gradient_times_input(model, TOKENS), [0, 1, 5], candidates)
    assert curve[0] == 0.0 and abs(curve[1]) > 1e-4 and abs(curve[2]) > 1e-4
    # Everything removed but [CLS]: the drop is that of the empty sentence.
    empty = fa.predict_probabilities(model, np.array([[1, 0, 0, 0, 0, 0]] * 3, np.int32))
    full = fa.predict_probabilities(model, TOKENS)
    c = full.argmax(axis=1)
    np.testing.assert_allclose(curve[2], np.mean(full[np.arange(3), c] - empty[np.arange(3), c]), atol=1e-6)


def test_erasure_curve_ignores_extra_padding():
    model = MODELS["transformer_cls"]
    scores = fa.attention_weights(model, TOKENS)
    curve = fa.erasure_curve(model, TOKENS, scores, [1, 2])
    longer = np.pad(TOKENS, ((0, 0), (0, 3)))
    np.testing.assert_allclose(fa.erasure_curve(model, longer, np.pad(scores, ((0, 0), (0, 3))), [1, 2]), curve,
                               atol=1e-5)


def test_rank_correlation_per_sentence():
    a = np.array([[1.0, 2, 3, 4, 0, 0], [1.0, 2, 3, 4, 0, 0], [1.0, 1, 1, 1, 0, 0]])
    b = np.array([[10.0, 20, 30, 40, 0, 0], [4.0, 3, 2, 1, 9, 9], [1.0, 2, 3, 4, 0, 0]])
    candidates = np.arange(6)[None, :].repeat(3, 0) < 4
    np.testing.assert_allclose(fa.rank_correlation(a, b, candidates)[:2], [1.0, -1.0])
    assert np.isnan(fa.rank_correlation(a, b, candidates)[2])  # a constant scoring has no ranking


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, exception, name", [
    error_case("tokens-1d", lambda: fa.remove_tokens([1, 2, 3], [True, False, False]), ValueError, "tokens"),
    error_case("tokens-float", lambda: fa.random_scores(np.ones((2, 3))), ValueError, "tokens"),
    error_case("remove-shape", lambda: fa.remove_tokens(TOKENS, np.zeros((3, 5), bool)), ValueError, "remove"),
    error_case("scores-shape", lambda: fa.erasure_curve(MODELS["attention_pooling"], TOKENS, np.zeros((3, 5)), [1]),
               ValueError, "scores"),
    error_case("k-negative", lambda: fa.top_k_positions(np.zeros((3, 6)), -1, TOKENS != 0), ValueError, "k"),
    error_case("not-a-transformer", lambda: fa.encoder_attention(MODELS["attention_pooling"], TOKENS), ValueError,
               "model"),
    error_case("width-unknown", lambda: AttentionPooling().build((None, 4, None)), ValueError, "inputs"),
    error_case("width-rank", lambda: AttentionPooling().build((None, 4)), ValueError, "inputs"),
    error_case("dropout-1", lambda: build_attention_pooling_classifier(VOCAB, 2, dropout=1.0), ValueError, "dropout"),
    error_case("classes-1", lambda: build_attention_pooling_classifier(VOCAB, 1), ValueError, "num_classes"),
])
def test_bad_arguments_are_refused_with_their_name(make, exception, name):
    with raises_naming(exception, name):
        make()
