"""Tests of course_lib.classifier (lessons 07, 10, 12): the sequence-classifier builder,
its padding mask and pooling layers, and the parameter counts by part.

Every body and pooling gives class probabilities; padding on the right never changes a
prediction (padded positions are never read); "last" pooling of a GRU is its final
state; the parameter counts match the formulas of each part; models save and load;
bad arguments get errors that name them."""

import keras
import numpy as np
import pytest

from course_lib.classifier import (
    BODIES,
    POOLINGS,
    PaddingMask,
    SequencePooling,
    build_classifier,
    count_parameters,
)
from tests.helpers import error_case, raises_naming, to_numpy
from tests.layer_checks import check_layer

VOCAB, CLASSES, WIDTH = 13, 3, 8
TOKENS = np.array([[4, 5, 6, 7, 8, 9], [10, 11, 12, 0, 0, 0], [3, 0, 0, 0, 0, 0]], np.int32)  # (B, T), 0 = PAD
LENGTHS = (TOKENS != 0).sum(axis=1)
BODY_NAMES = [pytest.param(b, id=b) for b in BODIES]
POOLING_NAMES = [pytest.param(p, id=p) for p in POOLINGS]


def build(body, pooling="mean", **kwargs):
    keras.utils.set_random_seed(0)
    return build_classifier(VOCAB, CLASSES, width=WIDTH, body=body, num_heads=2, pooling=pooling, **kwargs)


def randomize(model, seed=1):
    """Random weights everywhere (biases and layer-norm gains too), so that every weight matters."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("pooling", POOLING_NAMES)
@pytest.mark.parametrize("body", BODY_NAMES)
def test_probabilities_for_every_body_and_pooling(body, pooling):
    probabilities = to_numpy(build(body, pooling)(TOKENS))
    assert probabilities.shape == (3, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(probabilities > 0)


@pytest.mark.parametrize("pooling", POOLING_NAMES)
@pytest.mark.parametrize("body, positions", [pytest.param(b, None, id=b) for b in BODIES]
                         + [pytest.param("self_attention", "none", id="self_attention-no-positions")])
def test_padding_never_changes_a_prediction(body, positions, pooling):
    # Each sequence alone and unpadded, against the padded batch: the same probabilities.
    model = randomize(build(body, pooling, positions=positions))
    padded = to_numpy(model(TOKENS))
    for row, length in enumerate(LENGTHS):
        alone = to_numpy(model(TOKENS[row : row + 1, :length]))
        np.testing.assert_allclose(alone[0], padded[row], atol=1e-5, err_msg=f"sequence {row}")
    more_padding = np.pad(TOKENS, ((0, 0), (0, 4)))  # (B, T + 4)
    np.testing.assert_allclose(to_numpy(model(more_padding)), padded, atol=1e-5)


@pytest.mark.parametrize("body", BODY_NAMES)
def test_a_real_token_does_change_the_prediction(body):
    # The counterpart of the padding test: the model is not blind to its input.
    model = randomize(build(body, "mean"))
    changed = TOKENS.copy()
    changed[0, 2] = 12
    assert not np.allclose(to_numpy(model(changed))[0], to_numpy(model(TOKENS))[0], atol=1e-4)


@pytest.mark.parametrize("layer_class", [keras.layers.GRU, keras.layers.LSTM], ids=["gru", "lstm"])
def test_last_pooling_of_a_recurrent_body_is_its_final_state(layer_class):
    body = layer_class.__name__.lower()
    model = randomize(build(body, "last"))
    pooled = keras.Model(model.input, model.get_layer("pooling").output)
    reference = layer_class(WIDTH)  # the same weights, run over each unpadded sequence
    embedding = model.get_layer("embedding")
    reference(embedding(TOKENS[:1]))
    reference.set_weights(model.get_layer("body_0").get_weights())
    for row, length in enumerate(LENGTHS):
        final_state = to_numpy(reference(embedding(TOKENS[row : row + 1, :length])))
        np.testing.assert_allclose(to_numpy(pooled(TOKENS))[row], final_state[0], atol=1e-5)


def test_positions_default_by_body_and_learned_positions():
    assert "positions" not in [layer.name for layer in build("gru").layers]  # the recurrence reads the order
    for body in ("self_attention", "transformer"):
        assert type(build(body).get_layer("positions")).__name__ == "SinusoidalPositionalEmbedding"
    model = build("self_attention", positions="learned", sequence_length=6)
    assert count_parameters(model)["positions"] == 6 * WIDTH
    assert to_numpy(model(TOKENS)).shape == (3, CLASSES)


def test_self_attention_without_positions_cannot_tell_orders_apart():
    # Lesson 07's blind spot, kept by the builder: mean pooling of bare self-attention
    # gives a sequence and its reverse the same prediction.
    model = randomize(build("self_attention", "mean", positions="none"))
    sequence = TOKENS[:1]
    np.testing.assert_allclose(to_numpy(model(sequence)), to_numpy(model(sequence[:, ::-1])), atol=1e-5)
    with_positions = randomize(build("self_attention", "mean", positions="sinusoidal"))
    assert not np.allclose(to_numpy(with_positions(sequence)), to_numpy(with_positions(sequence[:, ::-1])), atol=1e-4)


@pytest.mark.parametrize("body", BODY_NAMES)
def test_stacked_layers_and_dropout(body):
    model = build(body, num_layers=3, dropout=0.2)
    names = [layer.name for layer in model.layers]
    assert [n for n in names if n.startswith("body_")] == ["body_0", "body_1", "body_2"]
    assert "dropout" in names
    single = count_parameters(build(body))["body"]
    assert count_parameters(model)["body"] == 3 * single


# ----------------------------------------------------------------------------- parameter counts


def body_formula(body, width, intermediate_dim):
    w, f = width, intermediate_dim
    return {
        "gru": 3 * (w * w + w * w + 2 * w),  # three gates; Keras's reset_after=True has two biases per gate
        "lstm": 4 * (w * w + w * w + w),  # four gates
        "self_attention": 4 * (w * w + w),  # query, key, value, output projections
        "transformer": 4 * (w * w + w) + 2 * 2 * w + (w * f + f) + (f * w + w),  # + two layer norms + FFN
    }[body]


@pytest.mark.parametrize("body", BODY_NAMES)
def test_parameter_counts_by_part(body):
    model = build_classifier(VOCAB, CLASSES, width=WIDTH, body=body, intermediate_dim=20, pooling="last")
    counts = count_parameters(model)
    assert counts == {
        "embedding": VOCAB * WIDTH,
        "positions": 0,  # no weights in sinusoidal positions
        "body": body_formula(body, WIDTH, 20),
        "pooling": 0,
        "head": WIDTH * CLASSES + CLASSES,
        "total": model.count_params(),
    }
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


def test_count_parameters_refuses_a_model_it_does_not_know():
    tokens = keras.Input((4,), dtype="int32")
    other = keras.Model(tokens, keras.layers.Dense(2, name="mystery")(keras.layers.Embedding(5, 3)(tokens)))
    with pytest.raises(ValueError, match="no part"):
        count_parameters(other)


# ----------------------------------------------------------------------------- saving, training


@pytest.mark.parametrize("body", BODY_NAMES)
def test_save_and_load_gives_the_same_predictions(body, tmp_path):
    model = randomize(build(body, "last"))
    path = str(tmp_path / f"{body}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(TOKENS)), to_numpy(model(TOKENS)), atol=1e-6)


@pytest.mark.parametrize("body", BODY_NAMES)
def test_training_lowers_the_loss(body):
    model = build(body, "last")
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    labels = np.array([0, 1, 2])
    first = model.train_on_batch(TOKENS, labels)
    for _ in range(30):
        last = model.train_on_batch(TOKENS, labels)
    assert last < 0.5 * first


def test_padding_mask_and_pooling_layers_pass_the_layer_checks(tmp_path):
    check_layer(lambda: PaddingMask(pad_id=0), [TOKENS], tmp_path=tmp_path)
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    for mode in SequencePooling.MODES:
        check_layer(lambda: SequencePooling(mode), [x, TOKENS != 0], tmp_path=tmp_path)


def test_pooling_reads_only_real_tokens():
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")
    mask = TOKENS != 0
    for row, length in enumerate(LENGTHS):
        real = x[row, :length]
        expected = {"mean": real.mean(axis=0), "last": real[-1], "first": real[0]}
        for mode, value in expected.items():
            pooled = to_numpy(SequencePooling(mode)(x, padding_mask=mask))
            np.testing.assert_allclose(pooled[row], value, atol=1e-6, err_msg=mode)
    nothing = to_numpy(SequencePooling("last")(x, padding_mask=np.zeros((3, 6), bool)))
    assert np.array_equal(nothing, np.zeros((3, 4)))
    no_mask = to_numpy(SequencePooling("last")(x))
    np.testing.assert_allclose(no_mask, x[:, -1], atol=1e-6)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, exception, name", [
    error_case("body-unknown", lambda: build_classifier(VOCAB, 2, body="cnn"), ValueError, "body"),
    error_case("pooling-unknown", lambda: build_classifier(VOCAB, 2, pooling="sum"), ValueError, "pooling"),
    error_case("positions-rotary", lambda: build_classifier(VOCAB, 2, positions="rotary"), ValueError, "positions"),
    error_case("learned-without-length", lambda: build_classifier(VOCAB, 2, positions="learned"), ValueError,
               "sequence_length"),
    error_case("heads-not-dividing", lambda: build_classifier(VOCAB, 2, width=10, num_heads=3), ValueError,
               "num_heads"),
    error_case("one-class", lambda: build_classifier(VOCAB, 1), ValueError, "num_classes"),
    error_case("vocab-1", lambda: build_classifier(1, 2), ValueError, "vocab_size"),
    error_case("width-float", lambda: build_classifier(VOCAB, 2, width=8.0), TypeError, "width"),
    error_case("layers-0", lambda: build_classifier(VOCAB, 2, num_layers=0), ValueError, "num_layers"),
    error_case("dropout-1", lambda: build_classifier(VOCAB, 2, dropout=1.0), ValueError, "dropout"),
    error_case("normalize_first-int", lambda: build_classifier(VOCAB, 2, normalize_first=1), TypeError,
               "normalize_first"),
    error_case("pooling-mode", lambda: SequencePooling("max"), ValueError, "mode"),
    error_case("pad_id-negative", lambda: PaddingMask(pad_id=-1), ValueError, "pad_id"),
])
def test_bad_arguments_are_refused_with_their_name(make, exception, name):
    with raises_naming(exception, name):
        make()
