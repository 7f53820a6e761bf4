"""Exercises of lesson 03, "The seq2seq bottleneck".

03.1  which source position an output position of a reversal attends to (function);
03.2  the number of weights of a Keras GRU layer (function);
03.3  the exact-match accuracy of four given predictions (value);
03.4  how many numbers a decoder step can read, without and with attention (value);
03.5  an experiment: the model without attention with more units, and the source length
      at which its exact match falls below 0.5 (checked against the learner's own curve).

Expected results come from the rule of the task, from Keras itself (03.2, checked in
tests) and from `course_lib.decoding.exact_match`; 03.5 has no expected value of its
own, only consistency with the curve the learner measured.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, first_below, register

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


# 03.5 ------------------------------------------------------------------------------

LESSON_UNITS = 80  # the lesson's model without attention
LEVEL = 0.5


def _read_curve(lengths, accuracy):
    lengths = as_array(lengths, "the lengths (the second item)")
    accuracy = as_array(accuracy, "the accuracies (the third item)")
    if lengths.ndim != 1 or accuracy.ndim != 1 or lengths.shape != accuracy.shape or lengths.size < 2:
        raise AnswerError(
            "the lengths and the accuracies should be two 1-D arrays of the same size, one accuracy per "
            f"length (received shapes {lengths.shape} and {accuracy.shape})"
        )
    if not np.array_equal(lengths, np.round(lengths)) or (np.diff(lengths) <= 0).any():
        raise AnswerError("the lengths should be whole numbers in increasing order, as `test_lengths` is")
    if np.isnan(accuracy).any():
        raise AnswerError("the accuracies contain NaN: a length without test sequences?")
    if (accuracy < 0).any() or (accuracy > 1).any():
        raise AnswerError(
            "accuracies are fractions between 0 and 1"
            + (" (these look like percentages)" if accuracy.max() <= 100 and (accuracy >= 0).all() else "")
        )
    return lengths.astype(np.int64), accuracy.astype(float)


def _check_wider_bottleneck(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 4:
        raise AnswerError("give a tuple of 4 items: (units, test_lengths, accuracy, length)")
    units, lengths, accuracy, length = answer
    units = as_number(units, "the number of units (the first item)")
    if units != round(units):
        return "the number of units (the first item) should be a whole number"
    if units <= LESSON_UNITS:
        return (f"the first item should be the number of units of your wider model: more than the "
                f"lesson's {LESSON_UNITS}")
    lengths, accuracy = _read_curve(lengths, accuracy)
    if accuracy[0] < LEVEL:
        return ("your curve is below 0.5 already at its shortest length: did the model train? (the "
                "lesson's models get the short sources right)")
    first = first_below(lengths, accuracy, LEVEL)
    if first is None:
        return ("your curve never falls below 0.5 over the lengths you tested: test lengths up to 40, "
                "as section 7 does")
    length = as_number(length, "the length (the fourth item)")
    if length == first:
        return None
    if length == int(np.flatnonzero(lengths == first)[0]):
        return "that is a position in the array, not a source length: read the length from your lengths"
    if length not in lengths:
        return "that is not one of the lengths in your curve"
    at = accuracy[lengths == length][0]
    if at == LEVEL:
        return "your curve is exactly 0.5 at that length, and exactly 0.5 is not below 0.5"
    if at > LEVEL:
        before = lengths[lengths < first]
        if before.size and length == before[-1]:
            return "that is the last length at which your curve is still at or above 0.5; the question asks for the first one below"
        return "your curve is still above 0.5 at that length"
    return "your curve is below 0.5 there, but it already was at a shorter length: give the first one"


register(
    Exercise(
        key="03.5",
        question=(
            "Give the model without attention more units than the lesson's 80 (an even number: the "
            "encoder is bidirectional), train it with the lesson's `train` (same data and budget), "
            "measure its exact match with `accuracy_by_length`, and answer "
            "`(units, test_lengths, accuracy, length)`: your units, your curve, and the first source "
            "length at which your curve falls below 0.5."
        ),
        checker=_check_wider_bottleneck,
        solution=(
            "wide_units = 160                      # any even number above 80\n"
            "keras.utils.set_random_seed(0)\n"
            "wide_model = build_seq2seq(VOCAB_SIZE, VOCAB_SIZE, embedding_dim=16, units=wide_units,\n"
            "                           bidirectional=True)\n"
            "train(wide_model)\n"
            "wide_accuracy, _, _ = accuracy_by_length(wide_model)\n"
            "length = test_lengths[np.flatnonzero(wide_accuracy < 0.5)[0]]   # the first length below 0.5\n"
            "answer = (wide_units, test_lengths, wide_accuracy, length)\n"
            "\n"
            "In one run on the course's machine, 160 units (134,989 parameters, 3.5 times as many as\n"
            "the 80-unit model) fell below 0.5 at length 11, against length 9 for the 80-unit model in\n"
            "the run saved with the lesson: a wider state pushes the bottleneck back a little, it does\n"
            "not remove it. Your numbers depend on your machine and seed."
        ),
        hint=(
            "Your curve is `wide_accuracy` against `test_lengths`. Read it from the left: the answer is "
            "the first length whose accuracy is below 0.5 (exactly 0.5 is not below). "
            "`np.flatnonzero(wide_accuracy < 0.5)` gives the positions of those below; the length is "
            "`test_lengths` at the first of them."
        ),
    )
)
