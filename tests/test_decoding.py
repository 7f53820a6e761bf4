"""course_lib.decoding: the greedy loop on toy next-token functions whose answer is
known (always the same token, copy the source, a script per row), END handling,
padding after END, max_length, the fixed-shape prefix buffer, a carried state, a
compiled step traced once, providers, exact match, errors; beam search against greedy
decoding (width 1) and against an exhaustive search of every sequence (a beam wide
enough to keep them all), with a carried state reordered along with the beams."""

import keras
import numpy as np
import pytest

from course_lib import decoding
from course_lib.decoding import (
    NextTokenFunction,
    beam_search,
    exact_match,
    greedy_decode,
    register_next_token_provider,
)
from course_lib.tokens import END, PAD, START
from tests.helpers import error_case, raises_naming

VOCAB = 10
SOURCE = np.array([[5, 6, 7], [8, 0, 0]], dtype="int32")


def one_hot(tokens):
    return np.eye(VOCAB, dtype="float32")[np.asarray(tokens)]


def always(token):
    """next_token_logits(source, prefix) that always predicts `token`."""
    return lambda source, prefix: one_hot([token] * len(source))


def copy_source(source, prefix):
    """Predicts the source token at the prefix's position, END at the source's end."""
    t = prefix.shape[1] - 1
    tokens = source[:, t] if t < source.shape[1] else np.full(len(source), END)
    return one_hot(np.where(tokens == PAD, END, tokens))


def scripted(scripts):
    """A step function that emits each row's script, then token 7 forever; records calls."""
    calls = []

    def step(prefix, state, index):
        calls.append((prefix.copy(), index))
        t = int(index)
        return one_hot([script[t] if t < len(script) else 7 for script in scripts]), None, state

    return NextTokenFunction(step, batch_size=len(scripts)), calls


# Known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", [4, 9], ids=["token-4", "token-9"])
def test_a_function_that_never_ends_runs_max_length_steps(token):
    tokens, weights = greedy_decode(always(token), SOURCE, max_length=5)
    np.testing.assert_array_equal(tokens, np.full((2, 5), token))
    assert tokens.dtype == np.int32 and weights is None


def test_a_function_that_always_ends_stops_after_one_step():
    tokens, _ = greedy_decode(always(END), SOURCE, max_length=5)
    np.testing.assert_array_equal(tokens, [[END], [END]])


def test_copying_the_source_gives_the_source_then_end_then_padding():
    tokens, _ = greedy_decode(copy_source, SOURCE, max_length=10)
    np.testing.assert_array_equal(tokens, [[5, 6, 7, END], [8, END, PAD, PAD]])
    cut, _ = greedy_decode(copy_source, SOURCE, max_length=2)  # max_length before END
    np.testing.assert_array_equal(cut, [[5, 6], [8, END]])


def test_stops_at_the_first_step_where_every_row_has_ended():
    function, calls = scripted([[5, 6, END], [4, END]])
    tokens, _ = greedy_decode(function, max_length=10)
    np.testing.assert_array_equal(tokens, [[5, 6, END], [4, END, PAD]])
    assert len(calls) == 3


def test_the_step_reads_a_fixed_shape_buffer_padded_after_end():
    function, calls = scripted([[5, 6, END], [4, END]])
    greedy_decode(function, max_length=4)
    assert [prefix.shape for prefix, _ in calls] == [(2, 5)] * 3  # max_length + 1, every step
    assert [(type(index), int(index)) for _, index in calls] == [(np.int32, 0), (np.int32, 1), (np.int32, 2)]
    np.testing.assert_array_equal(calls[0][0], [[START, PAD, PAD, PAD, PAD], [START, PAD, PAD, PAD, PAD]])
    # At the third step the second row has ended: it reads PAD after its END.
    np.testing.assert_array_equal(calls[2][0], [[START, 5, 6, PAD, PAD], [START, 4, END, PAD, PAD]])


def test_rows_that_have_ended_get_pad_whatever_the_function_predicts():
    function, _ = scripted([[END], [3, 3, END]])  # row 0 would go on with 7s
    tokens, _ = greedy_decode(function, max_length=5)
    np.testing.assert_array_equal(tokens, [[END, PAD, PAD], [3, 3, END]])


def test_custom_start_end_and_pad_ids():
    def step(prefix, state, index):
        assert prefix[0, 0] == 9 and (prefix[:, int(index) + 1 :] == 8).all()
        return one_hot([5, 4] if index == 0 else [7, 5]), None, state

    tokens, _ = greedy_decode(NextTokenFunction(step, 2), max_length=4, start_id=9, end_id=5, pad_id=8)
    np.testing.assert_array_equal(tokens, [[5, 8], [4, 5]])


def test_the_state_is_carried_from_the_initial_state_on():
    seen = []

    def step(prefix, state, index):
        seen.append(state)
        return one_hot([3, 3]), None, state + 1

    greedy_decode(NextTokenFunction(step, batch_size=2, initial_state=100), max_length=4)
    assert seen == [100, 101, 102, 103]


def test_weights_of_each_step_are_stacked():
    def step(prefix, state, index):
        weights = np.zeros((2, 3), "float32")
        weights[:, int(index) % 3] = 1.0  # step t attends to source position t
        return one_hot([4, 4] if index < 1 else [END, END]), weights, state

    tokens, weights = greedy_decode(NextTokenFunction(step, 2), max_length=5)
    assert tokens.shape == (2, 2) and weights.shape == (2, 2, 3)
    np.testing.assert_array_equal(weights[0], [[1, 0, 0], [0, 1, 0]])


def test_a_function_of_source_and_prefix_sees_the_prefix_so_far():
    widths = []

    def next_token_logits(source, prefix):
        widths.append(prefix.shape)
        np.testing.assert_array_equal(source, SOURCE)
        return one_hot([4, 4] if len(widths) < 3 else [END, END]), np.full((2, 3), 1 / 3, "float32")

    tokens, weights = greedy_decode(next_token_logits, SOURCE, max_length=6)
    assert widths == [(2, 1), (2, 2), (2, 3)]
    np.testing.assert_array_equal(tokens, [[4, 4, END], [4, 4, END]])
    assert weights.shape == (2, 3, 3)


# A compiled step is traced once ------------------------------------------------------------


def compile_once(function):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    if backend == "jax":
        import jax

        return jax.jit(function)
    pytest.skip(f"no compiler test for the {backend} backend")


def test_a_compiled_transformer_like_step_is_traced_once():
    traces = []
    embedding = np.random.default_rng(0).normal(size=(VOCAB, VOCAB)).astype("float32")

    def step(prefix, state, index):  # reads the whole buffer, as a Transformer does
        traces.append(1)  # runs only while tracing
        logits = keras.ops.take(keras.ops.convert_to_tensor(embedding), prefix, axis=0)  # (batch, L, vocab)
        return keras.ops.take(logits, index, axis=1), None, state  # (batch, vocab)

    compiled = compile_once(step)
    function = NextTokenFunction(lambda prefix, state, index: compiled(prefix, None, index), batch_size=2)
    tokens, _ = greedy_decode(function, max_length=6)
    eager, _ = greedy_decode(NextTokenFunction(step, batch_size=2), max_length=6)
    assert eager.shape[1] == 6 and len(traces) == 1 + 6  # one trace for the 6 compiled steps, 6 eager calls
    np.testing.assert_array_equal(tokens, eager)


# Providers ----------------------------------------------------------------------------------


class Echo:
    """A "model" of a kind greedy_decode knows only through a registered provider."""

    def __init__(self, token):
        self.token = token


def test_a_registered_provider_makes_greedy_decode_accept_its_models(monkeypatch):
    monkeypatch.setattr(decoding, "_PROVIDERS", list(decoding._PROVIDERS))

    @register_next_token_provider
    def provide(model, source_tokens):
        if not isinstance(model, Echo):
            return None
        return NextTokenFunction(lambda p, s, i: (one_hot([model.token] * len(source_tokens)), None, s), len(source_tokens))

    register_next_token_provider(provide)  # registering twice changes nothing
    assert decoding._PROVIDERS.count(provide) == 1
    tokens, _ = greedy_decode(Echo(END), SOURCE, max_length=3)
    np.testing.assert_array_equal(tokens, [[END], [END]])
    with raises_naming(TypeError, "model"):
        greedy_decode(object(), SOURCE, max_length=3)


# Beam search --------------------------------------------------------------------------------


def random_model(vocab=5, seed=0):
    """next_token_logits(source, prefix) drawn at random from each row's source and prefix:
    the same row always gets the same logits, different prefixes get unrelated ones."""

    def logits(source, prefix):
        return np.array([np.random.default_rng([seed, *s, 99, *p]).normal(scale=2.0, size=vocab)
                         for s, p in zip(np.asarray(source).tolist(), np.asarray(prefix).tolist())], "float32")

    return logits


def log_softmax(x):
    x = np.asarray(x, "float64") - np.max(x)
    return x - np.log(np.exp(x).sum())


def exhaustive_best(model, source_row, max_length, alpha):
    """The best of every possible sequence (ended by END or max_length long), by brute force:
    `(tokens, log-probability)`, ranked by log-probability / ((5 + length) / 6) ** alpha."""
    best = (-np.inf, None, None)

    def walk(prefix, log_probability):
        nonlocal best
        if len(prefix) > 1 and (prefix[-1] == END or len(prefix) - 1 == max_length):
            rank = log_probability / ((5 + len(prefix) - 1) / 6) ** alpha
            best = max(best, (rank, prefix[1:], log_probability), key=lambda entry: entry[0])
            return
        step = log_softmax(model(source_row[None], np.array([prefix]))[0])
        for token, value in enumerate(step):
            walk(prefix + [token], log_probability + value)

    walk([START], 0.0)
    return best[1], best[2]


def cut_after_end(row):
    row = list(row)
    return row[: row.index(END) + 1] if END in row else row


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_a_beam_of_width_one_gives_the_greedy_tokens(alpha):
    model = random_model(vocab=7)
    sources = np.array([[3, 4], [5, 0], [6, 6]], "int32")
    greedy, _ = greedy_decode(model, sources, max_length=6)
    beam, log_probabilities = beam_search(model, sources, max_length=6, beam_width=1, length_penalty=alpha)
    np.testing.assert_array_equal(beam, greedy)
    assert log_probabilities.shape == (3,) and (log_probabilities < 0).all()


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_beam_wide_enough_to_keep_every_prefix_finds_the_best_sequence(alpha):
    model = random_model(vocab=5)
    sources = np.array([[3, 4], [4, 0], [3, 3]], "int32")
    tokens, log_probabilities = beam_search(model, sources, max_length=3, beam_width=25, length_penalty=alpha)
    for row, source in enumerate(sources):  # 25 = 5 ** 2 beams: the search is exhaustive
        expected, expected_log_probability = exhaustive_best(model, source, 3, alpha)
        assert cut_after_end(tokens[row]) == expected, f"source {source.tolist()}"
        assert log_probabilities[row] == pytest.approx(expected_log_probability, abs=1e-9)


def test_a_beam_finds_a_more_likely_sequence_than_greedy_on_random_models():
    """Over random models, a beam of 4 never returns a less likely sequence than
    greedy decoding here, and a more likely one for some sentences."""
    sources = np.arange(3, 3 + 40, dtype="int32").reshape(20, 2) % 9 + 3
    model = random_model(vocab=6, seed=5)
    greedy, _ = greedy_decode(model, sources, max_length=5)
    _, beam = beam_search(model, sources, max_length=5, beam_width=4, length_penalty=0.0)
    _, greedy_log_probability = beam_search(NextTokenFunction(  # greedy's own log-probability: a beam of 1
        lambda prefix, state, index: (model(sources, prefix[:, : index + 1]), None, state), 20), max_length=5,
        beam_width=1, length_penalty=0.0)
    assert (beam >= greedy_log_probability - 1e-9).all()
    assert (beam > greedy_log_probability + 1e-6).sum() >= 3
    assert greedy.shape[0] == 20


def test_each_sentence_is_searched_on_its_own():
    model = random_model(vocab=6, seed=2)
    sources = np.array([[3, 4], [5, 0], [6, 7]], "int32")
    together, scores = beam_search(model, sources, max_length=5, beam_width=3)
    for row in range(3):
        alone, score = beam_search(model, sources[row : row + 1], max_length=5, beam_width=3)
        assert cut_after_end(together[row]) == cut_after_end(alone[0])
        assert scores[row] == pytest.approx(score[0])


def test_a_carried_state_follows_its_beam():
    """A step that reads only its state (the tokens so far, kept in the state) must give
    the tokens of the same model reading the prefix: the state is reordered with the beams."""
    model, sources = random_model(vocab=6, seed=3), np.array([[3, 4], [5, 6]], "int32")
    rows = np.repeat(sources, 3, axis=0)

    def step(prefix, state, index):
        state = state.copy()
        state[:, int(index)] = prefix[:, int(index)]  # the newest token only
        return model(rows, state[:, : int(index) + 1]), None, state

    carried = NextTokenFunction(step, batch_size=6, initial_state=np.zeros((6, 7), "int32"))
    with_state, _ = beam_search(carried, max_length=6, beam_width=3)
    from_prefix, _ = beam_search(model, sources, max_length=6, beam_width=3)
    np.testing.assert_array_equal(with_state, from_prefix)


def test_ended_beams_are_padded_and_the_search_stops_when_all_have_ended():
    tokens, _ = beam_search(always(END), SOURCE, max_length=5, beam_width=3)
    # step 1: the best beam ends, the two others take other tokens; step 2: they end too
    np.testing.assert_array_equal(tokens, [[END, PAD], [END, PAD]])
    model = random_model(vocab=6, seed=4)
    tokens, _ = beam_search(model, SOURCE, max_length=8, beam_width=2)
    for row in tokens.tolist():
        if END in row:
            assert set(row[row.index(END) + 1 :]) <= {PAD}


# Errors -------------------------------------------------------------------------------------


def bad_step(result):
    return NextTokenFunction(lambda prefix, state, index: result, batch_size=2)


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("max_length-0", lambda: greedy_decode(always(4), SOURCE, 0), ValueError, "max_length"),
        error_case("max_length-float", lambda: greedy_decode(always(4), SOURCE, 2.5), TypeError, "max_length"),
        error_case("max_length-missing", lambda: greedy_decode(always(4), SOURCE), TypeError, "max_length"),
        error_case("float-source", lambda: greedy_decode(always(4), SOURCE * 1.0, 3), ValueError, "source_tokens"),
        error_case("1d-source", lambda: greedy_decode(always(4), SOURCE[0], 3), ValueError, "source_tokens"),
        error_case("no-source", lambda: greedy_decode(always(4), max_length=3), ValueError, "source_tokens"),
        error_case("source-and-function", lambda: greedy_decode(bad_step(None), SOURCE, 3), ValueError, "source_tokens"),
        error_case("not-callable", lambda: greedy_decode("model", SOURCE, 3), TypeError, "model"),
        error_case(
            "keras-model-without-provider",
            lambda: greedy_decode(keras.Sequential([keras.layers.Dense(2)]), SOURCE, 3),
            TypeError,
            "model",
        ),
        error_case("step-returns-logits-only", lambda: greedy_decode(bad_step(one_hot([4, 4])), max_length=3), ValueError, "step"),
        error_case("negative-end_id", lambda: greedy_decode(always(4), SOURCE, 3, end_id=-1), ValueError, "end_id"),
        error_case("step-not-callable", lambda: NextTokenFunction("step", 2), TypeError, "step"),
        error_case("batch_size-0", lambda: NextTokenFunction(lambda p, s, i: None, 0), ValueError, "batch_size"),
        error_case("provider-not-callable", lambda: register_next_token_provider(3), TypeError, "provider"),
        error_case("exact_match-1d", lambda: exact_match([5, END], [[5, END]]), ValueError, "predicted"),
        error_case("beam_width-0", lambda: beam_search(always(4), SOURCE, 3, beam_width=0), ValueError, "beam_width"),
        error_case("beam_width-float", lambda: beam_search(always(4), SOURCE, 3, beam_width=2.0), TypeError, "beam_width"),
        error_case("length_penalty-negative", lambda: beam_search(always(4), SOURCE, 3, length_penalty=-1), ValueError,
                   "length_penalty"),
        error_case("beam-function-not-repeated", lambda: beam_search(bad_step(None), max_length=3, beam_width=4),
                   ValueError, "model"),
        error_case("beam-source-and-function", lambda: beam_search(bad_step(None), SOURCE, 3, beam_width=2), ValueError,
                   "source_tokens"),
        error_case("beam-max_length-0", lambda: beam_search(always(4), SOURCE, 0), ValueError, "max_length"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_logits_of_the_wrong_batch_size_are_an_error():
    with pytest.raises(ValueError, match=r"logits with shape \(3, 10\)"):
        greedy_decode(bad_step((one_hot([4, 4, 4]), None, None)), max_length=3)


# Exact match --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predicted, right",
    [
        ([5, 4, END, 9], True),  # what follows END does not count
        ([5, 4, END, PAD], True),
        ([5, 4, 4, END], False),  # a token too many
        ([5, 4, PAD, PAD], False),  # no END
        ([5, 3, END, PAD], False),  # a wrong token
    ],
    ids=["after-end-ignored", "same", "extra-token", "missing-end", "wrong-token"],
)
def test_exact_match_compares_up_to_end(predicted, right):
    assert exact_match([predicted], [[5, 4, END, PAD]]).tolist() == [right]


def test_exact_match_of_batches_of_other_widths():
    expected = np.array([[5, 4, END, PAD, PAD], [6, END, PAD, PAD, PAD]])
    assert exact_match(np.array([[5, 4, END], [6, 6, END]]), expected).tolist() == [True, False]
    with pytest.raises(ValueError, match="same number of sequences"):
        exact_match(expected[:1], expected)


def test_the_decoding_loop_knows_no_model_module():
    from tests.test_layers_namespace import MODULES, imported_modules

    assert imported_modules("course_lib.decoding") & set(MODULES) == {"course_lib.checks", "course_lib.tokens"}
