"""The recurrent encoder-decoder of lessons 03-04: shapes, masks, one-step decoding
equal to teacher forcing, save and load, errors, and its greedy decoding."""

import keras
import numpy as np
import pytest

from course_lib.decoding import NextTokenFunction, greedy_decode
from course_lib.rnn import AttentionDecoder, RNNEncoder
from course_lib.seq2seq import attention_weights, build_seq2seq, next_token_function
from course_lib.tokens import END, PAD, START
from tests.helpers import error_case, raises_naming, to_numpy
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


def step_by_step(model, source, target_in):
    """The model's next-token function fed `target_in` one token at a time (the one
    step-by-step loop of these tests): logits `(batch, T, vocab)` and the weights of
    each step (a list of `None` without attention)."""
    function = next_token_function(model, source)
    state, logits, weights = function.initial_state, [], []
    for index in range(target_in.shape[1]):
        step_logits, step_weights, state = function.step(target_in, state, np.int32(index))
        assert step_logits.shape == (len(source), model.get_layer("decoder").vocab_size)
        logits.append(to_numpy(step_logits))
        weights.append(None if step_weights is None else to_numpy(step_weights))
    return np.stack(logits, axis=1), weights


# Shapes and masks ---------------------------------------------------------------------


@pytest.mark.parametrize("cell, state_count", [("gru", 1), ("lstm", 2)])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_encoder_shapes_and_padding_changes_nothing(cell, state_count, bidirectional):
    encoder = RNNEncoder(12, 4, 6, cell=cell, bidirectional=bidirectional)
    outputs, state = encoder(SOURCE)
    states = state if cell == "lstm" else [state]
    assert outputs.shape == (3, 5, 6)
    assert len(states) == state_count and all(s.shape == (3, 6) for s in states)
    np.testing.assert_array_equal(to_numpy(outputs._keras_mask), SOURCE != PAD)
    # The same sentence without padding gives the same outputs and final state.
    short_outputs, short_state = encoder(SOURCE[:1, :3])
    np.testing.assert_allclose(to_numpy(outputs)[:1, :3], to_numpy(short_outputs), atol=1e-6)
    for padded, short in zip(states, short_state if cell == "lstm" else [short_state]):
        np.testing.assert_allclose(to_numpy(padded)[:1], to_numpy(short), atol=1e-6)
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
    assert to_numpy(weights)[SOURCE[:, None, :].repeat(6, 1) == PAD].max() < 1e-6


# One step at a time equals teacher forcing ----------------------------------------------


@pytest.mark.parametrize("attention, cell, bidirectional", VARIANTS)
def test_shapes_and_step_by_step_equals_teacher_forcing(attention, cell, bidirectional):
    model = small_model(attention, cell, bidirectional)
    logits = model([SOURCE, TARGET_IN])
    assert logits.shape == (3, 6, 13)
    np.testing.assert_array_equal(to_numpy(logits._keras_mask), TARGET_IN != PAD)  # for the loss
    step_logits, step_weights = step_by_step(model, SOURCE, TARGET_IN)
    real = TARGET_IN != PAD
    np.testing.assert_allclose(step_logits[real], to_numpy(logits)[real], atol=1e-5)
    if attention is None:
        assert all(w is None for w in step_weights)
    else:
        teacher_forced = attention_weights(model, SOURCE, TARGET_IN)
        np.testing.assert_allclose(np.stack(step_weights, 1)[real], teacher_forced[real], atol=1e-5)


def test_decoder_step_matches_the_call_on_one_token():
    model = small_model("luong", "lstm")
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    encoder_outputs, state = encoder(SOURCE)
    logits, new_state, weights = decoder.step(TARGET_IN[:, 0], state, encoder_outputs, SOURCE != PAD)
    full, full_weights = decoder(TARGET_IN[:, :1], encoder_outputs, state, SOURCE != PAD, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(logits), to_numpy(full)[:, 0], atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights), to_numpy(full_weights)[:, 0], atol=1e-6)
    assert len(new_state) == 2 and all(tuple(s.shape) == (3, 6) for s in new_state)  # [h, c]


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
    assert model.get_layer("decoder").combine.activation is keras.activations.linear
    full = to_numpy(model([SOURCE, TARGET_IN]))
    step_logits, _ = step_by_step(model, SOURCE, TARGET_IN)
    real = TARGET_IN != PAD
    np.testing.assert_allclose(step_logits[real], full[real], atol=1e-5)


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
    np.testing.assert_allclose(to_numpy(loaded([SOURCE, TARGET_IN])), to_numpy(model([SOURCE, TARGET_IN])), atol=1e-6)
    tokens, _ = greedy_decode(model, SOURCE, 7)
    loaded_tokens, _ = greedy_decode(loaded, SOURCE, 7)
    np.testing.assert_array_equal(tokens, loaded_tokens)


def test_loss_ignores_padded_target_positions():
    model = small_model()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = to_numpy(model([SOURCE, TARGET_IN]))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, TARGET_OUT[..., None], -1)[..., 0]
    real = TARGET_IN != PAD
    assert model.evaluate([SOURCE, TARGET_IN], TARGET_OUT, verbose=0) == pytest.approx(
        cross_entropy[real].mean(), rel=1e-5
    )


# Errors name the argument ----------------------------------------------------------------

ENCODER_OUTPUTS = np.zeros((3, 5, 6), "float32")


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("vocab_size", lambda: RNNEncoder(0, 4, 6), ValueError, "vocab_size"),
        error_case("embedding_dim-float", lambda: RNNEncoder(12, 4.5, 6), TypeError, "embedding_dim"),
        error_case("units-numpy-float", lambda: RNNEncoder(12, 4, np.float32(6)), TypeError, "units"),
        error_case("cell", lambda: RNNEncoder(12, 4, 6, cell="rnn"), ValueError, "cell"),
        error_case("odd-units-bidirectional", lambda: RNNEncoder(12, 4, 7, bidirectional=True), ValueError, "units"),
        error_case("bidirectional-str", lambda: RNNEncoder(12, 4, 6, bidirectional="yes"), TypeError, "bidirectional"),
        error_case("units-bool", lambda: AttentionDecoder(12, 4, True), TypeError, "units"),
        error_case("attention", lambda: AttentionDecoder(12, 4, 6, attention="dot"), ValueError, "attention"),
        error_case(
            "attention_units-luong",
            lambda: AttentionDecoder(12, 4, 6, attention="luong", attention_units=8),
            ValueError,
            "attention_units",
        ),
        error_case(
            "attention_units-0",
            lambda: AttentionDecoder(12, 4, 6, attention="additive", attention_units=0),
            ValueError,
            "attention_units",
        ),
        error_case("builder-cell", lambda: build_seq2seq(12, 12, 4, 6, cell="lstmm"), ValueError, "cell"),
        error_case(
            "combine_activation-unknown",
            lambda: AttentionDecoder(12, 4, 6, attention="luong", combine_activation="tanhh"),
            ValueError,
            "combine_activation",
        ),
        error_case(
            "builder-combine_activation-None",
            lambda: build_seq2seq(12, 12, 4, 6, attention="additive", combine_activation=None),
            TypeError,
            "combine_activation",
        ),
        error_case(
            "return_attention_scores-without-attention",
            lambda: AttentionDecoder(13, 4, 6)(TARGET_IN, ENCODER_OUTPUTS, np.zeros((3, 6), "float32"), return_attention_scores=True),
            ValueError,
            "return_attention_scores",
        ),
        error_case(
            "initial_state-width",
            lambda: AttentionDecoder(13, 4, 6)(TARGET_IN, ENCODER_OUTPUTS, np.zeros((3, 5), "float32")),
            ValueError,
            "initial_state",
        ),
        error_case(
            "target_tokens-1d",
            lambda: AttentionDecoder(13, 4, 6)(TARGET_IN[0], ENCODER_OUTPUTS, np.zeros((3, 6), "float32")),
            ValueError,
            "target_tokens",
        ),
        error_case("source_tokens-1d", lambda: RNNEncoder(12, 4, 6)(SOURCE[0]), ValueError, "source_tokens"),
        error_case(
            "step-tokens-2d",
            lambda: AttentionDecoder(13, 4, 6).step(TARGET_IN, np.zeros((3, 6), "float32"), ENCODER_OUTPUTS),
            ValueError,
            "tokens",
        ),
        error_case("next_token_function-model", lambda: next_token_function(keras.Sequential([keras.layers.Dense(2)]), SOURCE), ValueError, "model"),
        error_case("next_token_function-float-source", lambda: next_token_function(small_model(), SOURCE * 1.0), ValueError, "source_tokens"),
        error_case("attention_weights-1d-target", lambda: attention_weights(small_model(), SOURCE, TARGET_IN[0]), ValueError, "target_in"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_numpy_integers_are_accepted_and_stored_as_int():
    decoder = AttentionDecoder(np.int64(13), np.int32(4), np.int64(6), attention="additive", attention_units=np.int64(5))
    config = decoder.get_config()
    assert [type(config[k]) for k in ("vocab_size", "embedding_dim", "units", "attention_units")] == [int] * 4


# Greedy decoding of the model (the loop itself: tests/test_decoding.py) --------------------


@pytest.mark.parametrize("attention", [None, "additive"])
def test_greedy_decode_of_a_model_agrees_with_teacher_forcing_on_its_own_output(attention):
    model = small_model(attention)
    tokens, weights = greedy_decode(model, SOURCE, max_length=8)
    assert tokens.shape[0] == 3 and tokens.shape[1] <= 8
    assert (weights is None) == (attention is None)
    target_in = np.concatenate([np.full((3, 1), START), tokens[:, :-1]], axis=1)
    argmax = to_numpy(model([SOURCE, target_in])).argmax(-1)
    up_to_end = np.cumsum(tokens == END, axis=1) - (tokens == END) == 0  # tokens until the first END
    np.testing.assert_array_equal(argmax[up_to_end], tokens[up_to_end])
    if attention:
        assert weights.shape == (3, tokens.shape[1], 5)
        assert weights[..., 3:][0].max() < 1e-6  # padding of the first source


def test_the_model_and_its_next_token_function_decode_alike():
    model = small_model("luong", "lstm", bidirectional=True)
    function = next_token_function(model, SOURCE)
    assert isinstance(function, NextTokenFunction) and function.batch_size == 3
    by_model, model_weights = greedy_decode(model, SOURCE, max_length=6)
    by_function, function_weights = greedy_decode(function, max_length=6)
    np.testing.assert_array_equal(by_model, by_function)
    np.testing.assert_allclose(model_weights, function_weights, atol=1e-6)


def test_exercise_03_2_counts_are_those_of_keras():
    from course_lib import exercises

    for case in exercises.get("03.2").cases:
        gru = keras.layers.GRU(case.args[1])
        gru.build((None, None, case.args[0]))
        assert gru.count_params() == case.expected, case.description
