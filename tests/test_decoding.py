"""course_lib.decoding: the greedy loop on toy next-token functions whose answer is
known (always the same token, copy the source, a script per row), END handling,
padding after END, max_length, the fixed-shape prefix buffer, a carried state, a
compiled step traced once, providers, exact match, errors."""

import keras
import numpy as np
import pytest

from course_lib import decoding
from course_lib.decoding import NextTokenFunction, exact_match, greedy_decode, register_next_token_provider
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
