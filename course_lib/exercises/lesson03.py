"""Exercises of lesson 03, "The seq2seq bottleneck".

03.1  which source position an output position of a reversal attends to (function);
03.2  the number of weights of a Keras GRU layer (function);
03.3  the exact-match accuracy of four given predictions (value);
03.4  how many numbers a decoder step can read, without and with attention (value).

Expected results come from the rule of the task, from Keras itself (03.2, checked in
tests) and from `course_lib.seq2seq.exact_match`.
"""

import numpy as np

from course_lib.exercises import Case, Exercise, register

# 03.1 ------------------------------------------------------------------------------


def _aligned_source_position(i, length):
    # Output i of the reversal is the source token counted i from the end.
    return length - 1 - i


register(
    Exercise(
        key="03.1",
        question=(
            "In the reversal task, the target of a source of `length` tokens is the source "
            "backwards. Write `aligned_source_position(i, length)`: the source position "
            "(counted from 0) that output position `i` (counted from 0, START excluded) "
            "should attend to. Where does a perfect alignment heatmap put its bright cells?"
        ),
        cases=(
            Case("the first output of a length-5 source", 4, args=(0, 5)),
            Case("the last output of a length-5 source", 0, args=(4, 5)),
            Case("the middle of an odd length, i=3 of 7", 3, args=(3, 7)),
            Case("i=2 of a length-40 source", 37, args=(2, 40)),
            Case("a length-1 source", 0, args=(0, 1)),
        ),
        solution=_aligned_source_position,
        hint=(
            "Output 0 is the last source token, at position length - 1; each next output "
            "moves one position to the left. The bright cells lie on the anti-diagonal."
        ),
        mistakes=(
            ("that copies the source in order; the target is the source backwards", lambda i, length: i),
            (
                "off by one: positions count from 0, so the last source position is length - 1",
                lambda i, length: length - i,
            ),
            ("off by one: output i is the source token counted i from the end", lambda i, length: length - 2 - i),
        ),
    )
)


# 03.2 ------------------------------------------------------------------------------


def _gru_parameter_count(input_dim, units):
    # Three gates (update, reset, candidate), each with an input kernel
    # (input_dim, units), a recurrent kernel (units, units) and, with Keras's default
    # reset_after=True, two bias vectors (units,): one for the input, one for the state.
    return 3 * (input_dim * units + units * units + 2 * units)


register(
    Exercise(
        key="03.2",
        question=(
            "Write `gru_parameter_count(input_dim, units)`: the number of weights of "
            "`keras.layers.GRU(units)` reading vectors of width `input_dim` (Keras's "
            "defaults, `reset_after=True`). This is how the lesson matched the parameter "
            "counts of the two models."
        ),
        cases=(
            # Expected values are keras.layers.GRU(units).count_params() (see the tests).
            Case("input_dim=16, units=32", 4800, args=(16, 32)),
            Case("input_dim=16, units=64", 15744, args=(16, 64)),
            Case("input_dim=8, units=5", 225, args=(8, 5)),
            Case("input_dim=80, units=80", 38880, args=(80, 80)),
        ),
        solution=_gru_parameter_count,
        hint=(
            "A GRU has 3 gates. Each gate has a kernel for the input, a kernel for the "
            "previous state, and (with reset_after=True) two bias vectors of `units`."
        ),
        mistakes=(
            (
                "one bias per gate: with reset_after=True Keras keeps two, one for the input "
                "and one for the recurrent state",
                lambda input_dim, units: 3 * (input_dim * units + units * units + units),
            ),
            (
                "that is an LSTM's count (4 gates); a GRU has 3 gates",
                lambda input_dim, units: 4 * (input_dim * units + units * units + units),
            ),
            (
                "forgot the recurrent kernel (units, units) of each gate",
                lambda input_dim, units: 3 * (input_dim * units + 2 * units),
            ),
            (
                "forgot the biases",
                lambda input_dim, units: 3 * (input_dim * units + units * units),
            ),
            (
                "a GRU has 3 gates, each with its own kernels and biases",
                lambda input_dim, units: input_dim * units + units * units + 2 * units,
            ),
        ),
    )
)


# 03.3 ------------------------------------------------------------------------------

PAD, END = 0, 2
EXPECTED = np.array([[5, 4, 3, END], [6, 7, END, PAD], [3, END, PAD, PAD], [8, 8, 9, END]])
PREDICTED = np.array([[5, 4, 3, END], [6, 7, 7, END], [3, END, 5, 5], [8, 9, 8, END]])


def _exact_match_accuracy():
    from course_lib.decoding import exact_match

    # Row 0 is right; row 1 has an extra 7; row 2 is right (what follows END does not
    # count); row 3 swaps two tokens.
    return float(exact_match(PREDICTED, EXPECTED).mean())


register(
    Exercise(
        key="03.3",
        question=(
            "Exact match counts a generated sequence as right only if every token up to "
            "and including END is right (what comes after END is ignored). What is the "
            f"exact-match accuracy of the predictions\n{PREDICTED.tolist()}\nagainst the "
            f"expected targets\n{EXPECTED.tolist()}\n(END = 2, PAD = 0)? Give a number "
            "between 0 and 1."
        ),
        cases=(Case("exact-match accuracy of the four predictions", 0.5),),
        solution=_exact_match_accuracy,
        hint=(
            "Cut every row after its first END, then compare whole rows. One row has a "
            "token too many before END; one differs only after END."
        ),
        answer_is_function=False,
        mistakes=(
            (
                "a row that differs only after its END counts as right: what follows END is ignored",
                0.25,
            ),
            (
                "one of the rows you counted as right differs before its END: compare token by "
                "token, up to and including END",
                0.75,
            ),
            ("that is a number of rows: give the fraction of the four that are right", 2),
        ),
        diagnose=(
            lambda received, case: (
                "an accuracy is a fraction between 0 and 1, not a percentage" if received > 1 else None
            ),
        ),
    )
)


# 03.4 ------------------------------------------------------------------------------


def _numbers_diagnosis(received, case):
    without, with_ = received
    units, length = 64, 40
    if without == 1 or with_ in (1 + length, length, 1):
        return "count numbers, not vectors: each vector holds `units` numbers"
    if without in (length * units, units + length * units):
        return "(a) without attention, the decoder reads only the encoder's final state: one vector of `units`"
    if with_ == length * units:
        return "(b) leaves out the decoder's initial state (the encoder's final state): the question counts it"
    if with_ == units:
        return "(b) with attention, the decoder also reads every encoder output"
    return None


def _numbers_read():
    units, length = 64, 40
    without_attention = units  # the encoder's final state only
    with_attention = units + length * units  # the state, plus every encoder output
    return without_attention, with_attention


register(
    Exercise(
        key="03.4",
        question=(
            "An encoder with `units=64` reads a source of 40 tokens. How many numbers "
            "about the source can one decoder step use (a) without attention (the decoder "
            "starts from the encoder's final state) and (b) with attention (the final "
            "state, plus attention over every encoder output)? Answer with a tuple "
            "`(a, b)`."
        ),
        cases=(Case("(without attention, with attention) for units=64, 40 source tokens", (64, 64 + 40 * 64)),),
        solution=_numbers_read,
        hint="Without attention: one vector of `units`. With attention: add one vector of `units` per source token.",
        answer_is_function=False,
        parts=("(a) without attention", "(b) with attention"),
        diagnose=(_numbers_diagnosis,),
    )
)
