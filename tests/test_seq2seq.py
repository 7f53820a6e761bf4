"""The recurrent encoder-decoder of lessons 03-04: shapes, masks, one-step decoding
equal to teacher forcing, save and load, errors, greedy decoding and exact match."""

import keras
import numpy as np
import pytest

from course_lib.datasets import make_reversal_task
from course_lib.seq2seq import (
    END,
    PAD,
    START,
    AttentionDecoder,
    LengthBucketedBatches,
    RNNEncoder,
    attention_weights,
    build_seq2seq,
    exact_match,
    greedy_decode,
)
from tests.layer_checks import check_layer

SOURCE = np.array([[3, 4, 5, 0, 0], [5, 6, 7, 8, 9], [4, 0, 0, 0, 0]], dtype="int32")
TARGET_IN = np.array([[START, 5, 4, 3, END, 0], [START, 9, 8, 7, 6, 5], [START, 4, END, 0, 0, 0]], dtype="int32")
TARGET_OUT = np.array([[5, 4, 3, END, 0, 0], [9, 8, 7, 6, 5, END], [4, END, 0, 0, 0, 0]], dtype="int32")
VARIANTS = [  # every attention, every cell, both encoder directions, in six models
    pytest.param(attention, cell, bidirectional, id=f"{attention}-{cell}{'-bi' if bidirectional else ''}")
    for attention, cell, bidirectional in [
        (None, "gru", False),
        (None, "lstm", True),
        ("additive", "gru", False),
        ("additive", "lstm", True),
        ("luong", "gru", True),
        ("luong", "lstm", False),
    ]
]


@pytest.fixture(autouse=True)
def seed():
    keras.utils.set_random_seed(0)


def small_model(attention="additive", cell="gru", bidirectional=False):
    return build_seq2seq(12, 13, embedding_dim=8, units=6, attention=attention, cell=cell, bidirectional=bidirectional)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


# Shapes and masks ---------------------------------------------------------------------


@pytest.mark.parametrize("cell, state_count", [("gru", 1), ("lstm", 2)])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_encoder_shapes_and_padding_changes_nothing(cell, state_count, bidirectional):
    encoder = RNNEncoder(12, 4, 6, cell=cell, bidirectional=bidirectional)
    outputs, state = encoder(SOURCE)
    states = state if cell == "lstm" else [state]
    assert outputs.shape == (3, 5, 6)
    assert len(states) == state_count and all(s.shape == (3, 6) for s in states)
    np.testing.assert_array_equal(numpy(outputs._keras_mask), SOURCE != PAD)
    # The same sentence without padding gives the same outputs and final state.
    short_outputs, short_state = encoder(SOURCE[:1, :3])
    np.testing.assert_allclose(numpy(outputs)[:1, :3], numpy(short_outputs), atol=1e-6)
    for padded, short in zip(states, short_state if cell == "lstm" else [short_state]):
        np.testing.assert_allclose(numpy(padded)[:1], numpy(short), atol=1e-6)
    assert encoder.compute_output_shape((3, 5))[0] == (3, 5, 6)


@pytest.mark.parametrize("attention", ["additive", "luong"])
def test_padded_source_positions_get_zero_attention(attention):
    model = small_model(attention)
    weights = attention_weights(model, SOURCE, TARGET_IN)
    assert weights.shape == (3, 6, 5)
    source_padding = np.broadcast_to((SOURCE == PAD)[:, None, :], weights.shape)
    assert weights[source_padding].max() < 1e-6
    real_queries = TARGET_IN != PAD
    np.testing.assert_allclose(weights.sum(-1)[real_queries], 1.0, atol=1e-5)
    assert not np.isnan(weights).any()


def test_decoder_gets_the_source_mask_from_the_encoder_outputs():
    encoder = RNNEncoder(12, 8, 6, name="encoder")
    decoder = AttentionDecoder(13, 8, 6, attention="additive", name="decoder")
    source = keras.Input((None,), dtype="int32")
    target_in = keras.Input((None,), dtype="int32")
    encoder_outputs, state = encoder(source)
    logits, weights = decoder(target_in, encoder_outputs, state, return_attention_scores=True)
    assert tuple(weights.shape) == (None, None, None)
    model = keras.Model([source, target_in], [logits, weights])
    _, weights = model([SOURCE, TARGET_IN])
    assert numpy(weights)[SOURCE[:, None, :].repeat(6, 1) == PAD].max() < 1e-6


# One step at a time equals teacher forcing ----------------------------------------------


@pytest.mark.parametrize("attention, cell, bidirectional", VARIANTS)
def test_shapes_and_step_by_step_equals_teacher_forcing(attention, cell, bidirectional):
    model = small_model(attention, cell, bidirectional)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    logits = model([SOURCE, TARGET_IN])
    assert logits.shape == (3, 6, 13)
    np.testing.assert_array_equal(numpy(logits._keras_mask), TARGET_IN != PAD)  # for the loss
    full = numpy(logits)
    encoder_outputs, state = encoder(SOURCE)
    step_logits, step_weights = [], []
    for t in range(TARGET_IN.shape[1]):
        logits, state, weights = decoder.step(TARGET_IN[:, t], state, encoder_outputs, SOURCE != PAD)
        assert logits.shape == (3, 13)
        step_logits.append(numpy(logits))
        step_weights.append(weights)
    real = TARGET_IN != PAD
    np.testing.assert_allclose(np.stack(step_logits, 1)[real], full[real], atol=1e-5)
    if attention is None:
        assert all(w is None for w in step_weights)
    else:
        teacher_forced = attention_weights(model, SOURCE, TARGET_IN)
        np.testing.assert_allclose(np.stack([numpy(w) for w in step_weights], 1)[real], teacher_forced[real], atol=1e-5)


# Standard layer checks and save/load ------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_encoder_layer_checks(bidirectional, tmp_path):
    check_layer(lambda: RNNEncoder(12, 4, 6, bidirectional=bidirectional), [SOURCE], tmp_path=tmp_path)


@pytest.mark.parametrize("attention", [None, "additive", "luong"])
def test_decoder_layer_checks(attention, tmp_path):
    encoder_outputs = np.random.default_rng(0).normal(size=(3, 5, 6)).astype("float32")
    state = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    call_kwargs = {"return_attention_scores": True} if attention else {}
    check_layer(
        lambda: AttentionDecoder(13, 4, 6, attention=attention),
        [TARGET_IN, encoder_outputs, state],
        call_kwargs=call_kwargs,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("attention", ["additive", "luong"])
def test_linear_combine_config_round_trip_and_step_by_step(attention, tmp_path):
    decoder = AttentionDecoder(13, 4, 6, attention=attention, combine_activation="linear")
    assert decoder.get_config()["combine_activation"] == "linear"
    assert AttentionDecoder.from_config(decoder.get_config()).combine_activation == "linear"
    encoder_outputs = np.random.default_rng(0).normal(size=(3, 5, 6)).astype("float32")
    state = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    check_layer(
        lambda: AttentionDecoder(13, 4, 6, attention=attention, combine_activation="linear"),
        [TARGET_IN, encoder_outputs, state],
        call_kwargs={"return_attention_scores": True},
        tmp_path=tmp_path,
    )
    keras.utils.set_random_seed(0)
    model = build_seq2seq(12, 13, 4, 6, attention=attention, combine_activation="linear")
    decoder = model.get_layer("decoder")
    assert decoder.combine.activation is keras.activations.linear
    full = numpy(model([SOURCE, TARGET_IN]))
    encoder_outputs, state = model.get_layer("encoder")(SOURCE)
    step_logits = []
    for t in range(TARGET_IN.shape[1]):
        logits, state, _ = decoder.step(TARGET_IN[:, t], state, encoder_outputs, SOURCE != PAD)
        step_logits.append(numpy(logits))
    real = TARGET_IN != PAD
    np.testing.assert_allclose(np.stack(step_logits, 1)[real], full[real], atol=1e-5)


def test_default_combine_is_tanh():
    model = build_seq2seq(12, 13, 4, 6, attention="luong")
    assert model.get_layer("decoder").combine_activation == "tanh"
    assert model.get_layer("decoder").combine.activation is keras.activations.tanh


@pytest.mark.parametrize("attention, cell", [(None, "lstm"), ("additive", "gru")])
def test_whole_model_keras_save_and_load(attention, cell, tmp_path):
    model = small_model(attention, cell, bidirectional=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(numpy(loaded([SOURCE, TARGET_IN])), numpy(model([SOURCE, TARGET_IN])), atol=1e-6)
    tokens, _ = greedy_decode(model, SOURCE, 7)
    loaded_tokens, _ = greedy_decode(loaded, SOURCE, 7)
    np.testing.assert_array_equal(tokens, loaded_tokens)


def test_loss_ignores_padded_target_positions():
    model = small_model()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = numpy(model([SOURCE, TARGET_IN]))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, TARGET_OUT[..., None], -1)[..., 0]
    real = TARGET_IN != PAD
    assert model.evaluate([SOURCE, TARGET_IN], TARGET_OUT, verbose=0) == pytest.approx(
        cross_entropy[real].mean(), rel=1e-5
    )


# Errors name the argument ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RNNEncoder(0, 4, 6), "vocab_size=0"),
        (lambda: RNNEncoder(12, 4.5, 6), "embedding_dim=4.5"),
        (lambda: RNNEncoder(12, 4, 6, cell="rnn"), "cell='rnn'"),
        (lambda: RNNEncoder(12, 4, 7, bidirectional=True), "units=7"),
        (lambda: RNNEncoder(12, 4, 6, bidirectional="yes"), "bidirectional='yes'"),
        (lambda: AttentionDecoder(12, 4, True), "units=True"),
        (lambda: AttentionDecoder(12, 4, 6, attention="dot"), "attention='dot'"),
        (lambda: AttentionDecoder(12, 4, 6, attention="luong", attention_units=8), "attention_units=8"),
        (lambda: AttentionDecoder(12, 4, 6, attention="additive", attention_units=0), "attention_units=0"),
        (lambda: build_seq2seq(12, 12, 4, 6, cell="lstmm"), "cell='lstmm'"),
        (lambda: AttentionDecoder(12, 4, 6, attention="luong", combine_activation="tanhh"), "combine_activation='tanhh'"),
        (lambda: build_seq2seq(12, 12, 4, 6, attention="additive", combine_activation=None), "combine_activation=None"),
    ],
    ids=["vocab_size", "embedding_dim", "cell", "odd-units-bidirectional", "bidirectional", "units", "attention", "attention_units-luong", "attention_units", "builder-cell", "combine_activation", "builder-combine_activation"],
)
def test_bad_constructor_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_call_arguments_are_named():
    decoder = AttentionDecoder(13, 4, 6)
    encoder_outputs = np.zeros((3, 5, 6), "float32")
    with pytest.raises(ValueError, match="return_attention_scores=True with attention=None"):
        decoder(TARGET_IN, encoder_outputs, np.zeros((3, 6), "float32"), return_attention_scores=True)
    with pytest.raises(ValueError, match="initial_state"):
        decoder(TARGET_IN, encoder_outputs, np.zeros((3, 5), "float32"))
    with pytest.raises(ValueError, match="target_tokens"):
        AttentionDecoder(13, 4, 6)(TARGET_IN[0], encoder_outputs, np.zeros((3, 6), "float32"))
    with pytest.raises(ValueError, match="source_tokens"):
        RNNEncoder(12, 4, 6)(SOURCE[0])
    with pytest.raises(ValueError, match="tokens"):
        decoder.step(TARGET_IN, np.zeros((3, 6), "float32"), encoder_outputs)


# Greedy decoding -------------------------------------------------------------------------


def scripted(scripts, vocab_size=10):
    """A next_token_logits function that emits each row's script, then token 7 forever."""
    calls = []

    def next_token_logits(source, prefix):
        calls.append(prefix.copy())
        t = prefix.shape[1] - 1
        tokens = [script[t] if t < len(script) else 7 for script in scripts]
        return np.eye(vocab_size, dtype="float32")[tokens]

    return next_token_logits, calls


def test_greedy_decode_stops_when_every_sequence_has_ended():
    fn, calls = scripted([[5, 6, END], [4, END]])
    tokens, weights = greedy_decode(fn, np.ones((2, 3), "int32"), max_length=10)
    np.testing.assert_array_equal(tokens, [[5, 6, END], [4, END, PAD]])
    assert weights is None
    assert len(calls) == 3  # stopped at the first step where all rows had ended
    np.testing.assert_array_equal(calls[0], [[START], [START]])
    np.testing.assert_array_equal(calls[2], [[START, 5, 6], [START, 4, END]])


def test_greedy_decode_respects_max_length():
    fn, calls = scripted([[5, END], [4, 4, 4, 4, 4, 4]])
    tokens, _ = greedy_decode(fn, np.ones((2, 3), "int32"), max_length=4)
    np.testing.assert_array_equal(tokens, [[5, END, PAD, PAD], [4, 4, 4, 4]])
    assert len(calls) == 4


def test_greedy_decode_collects_attention_weights_of_a_function():
    def fn(source, prefix):
        return np.eye(5, dtype="float32")[[END, END]], np.full((2, 3), 1 / 3, "float32")

    tokens, weights = greedy_decode(fn, np.ones((2, 3), "int32"), max_length=5)
    assert tokens.shape == (2, 1) and weights.shape == (2, 1, 3)


@pytest.mark.parametrize("attention", [None, "additive"])
def test_greedy_decode_of_a_model_agrees_with_teacher_forcing_on_its_own_output(attention):
    model = small_model(attention)
    tokens, weights = greedy_decode(model, SOURCE, max_length=8)
    assert tokens.shape[0] == 3 and tokens.shape[1] <= 8
    assert (weights is None) == (attention is None)
    target_in = np.concatenate([np.full((3, 1), START), tokens[:, :-1]], axis=1)
    argmax = numpy(model([SOURCE, target_in])).argmax(-1)
    up_to_end = np.cumsum(tokens == END, axis=1) - (tokens == END) == 0  # tokens until the first END
    np.testing.assert_array_equal(argmax[up_to_end], tokens[up_to_end])
    if attention:
        assert weights.shape == (3, tokens.shape[1], 5)
        assert weights[..., 3:][0].max() < 1e-6  # padding of the first source


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_length": 0}, "max_length=0"),
        ({"source_tokens": np.ones((2, 3), "float32")}, "source_tokens"),
        ({"source_tokens": np.ones(3, "int32")}, "source_tokens"),
        ({"model": "model"}, "model='model'"),
        ({"model": keras.Sequential([keras.layers.Dense(2)])}, "model="),
    ],
    ids=["max_length", "float-source", "1d-source", "not-callable", "not-seq2seq"],
)
def test_greedy_decode_errors_name_the_argument(kwargs, match):
    arguments = {"model": scripted([[END]])[0], "source_tokens": np.ones((1, 3), "int32"), "max_length": 3}
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        greedy_decode(**arguments)


# Exact match -----------------------------------------------------------------------------


def test_exact_match_compares_up_to_end():
    expected = np.array([[5, 4, END, 0], [5, 4, END, 0], [5, 4, END, 0], [5, 4, END, 0]])
    predicted = np.array([[5, 4, END, 9], [5, 4, 4, END], [5, 4, 0, 0], [5, 3, END, 0]])
    np.testing.assert_array_equal(exact_match(predicted, expected), [True, False, False, False])
    assert exact_match(predicted[:1, :3], expected[:1]).all()  # different widths are fine
    with pytest.raises(ValueError, match="predicted"):
        exact_match(predicted[:2], expected)


def test_exercise_03_2_counts_are_those_of_keras():
    from course_lib import exercises

    for case in exercises.get("03.2").cases:
        gru = keras.layers.GRU(case.args[1])
        gru.build((None, None, case.args[0]))
        assert gru.count_params() == case.expected, case.description


# Length-bucketed batches -----------------------------------------------------------------


def test_length_bucketed_batches_cover_every_pair_once_trimmed():
    sources, targets = make_reversal_task(50, 2, 12, seed=3)
    batches = LengthBucketedBatches(sources, targets, batch_size=8, seed=1)
    assert len(batches) == 7
    seen = []
    for index in range(len(batches)):
        (source, target_in), target_out = batches[index]
        lengths = (source != PAD).sum(1)
        assert source.shape[1] == lengths.max()  # trimmed to its longest source
        assert target_in.shape == target_out.shape == (len(source), lengths.max() + 1)
        np.testing.assert_array_equal(target_in[:, 1:], target_out[:, :-1])
        assert lengths.max() - lengths.min() <= 3  # similar lengths together
        seen += [tuple(row[row != PAD]) for row in source]
    assert sorted(seen) == sorted(tuple(row[row != PAD]) for row in sources)  # each pair once
    first_widths = (batches[0][0][0].shape[1], batches[1][0][0].shape[1])
    assert first_widths[0] != first_widths[1]  # Keras leaves the length axis free
    order = batches._order.copy()
    batches.on_epoch_end()
    assert (batches._order != order).any()


def test_fit_on_length_bucketed_batches_of_several_widths():
    sources, targets = make_reversal_task(48, 2, 9, vocab_size=9, seed=3)  # ids up to 11
    model = small_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(LengthBucketedBatches(sources, targets, batch_size=8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_length_bucketed_batches_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch_size=0"):
        LengthBucketedBatches(SOURCE, TARGET_IN, batch_size=0)
    with pytest.raises(ValueError, match="sources"):
        LengthBucketedBatches(SOURCE[0], TARGET_IN, batch_size=2)
