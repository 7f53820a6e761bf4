"""Lesson 04's experiment, 04.5: the course's vocabulary learned with another size, and its
pieces per German test word. The checker recomputes the number for the learner's size: it
accepts the right measurement in any valid form, names what is wrong with typical wrong
ones, and never prints the number it expected."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.exercises.lesson04 import _pieces_per_word

SIZE = 2000


@pytest.fixture(scope="module")
def measured():
    return {"german": _pieces_per_word(SIZE), "english": _pieces_per_word(SIZE, "english"),
            "lesson": _pieces_per_word(6000)}


def test_the_measurement_behaves_as_the_exercise_says(measured):
    # a smaller vocabulary has shorter pieces: more of them per word
    assert measured["german"] > measured["lesson"] > 1.0
    assert measured["german"] != pytest.approx(measured["english"], abs=0.02)


def _forms(value):
    return [
        pytest.param((SIZE, value), id="tuple"),
        pytest.param([np.int64(SIZE), np.float32(value)], id="numpy-list"),
        pytest.param((float(SIZE), keras.ops.convert_to_tensor(value)), id="tensor"),
        pytest.param((SIZE, round(value, 3)), id="rounded-by-hand"),
    ]


@pytest.mark.parametrize("form", range(4))
def test_the_right_measurement_passes_in_any_valid_form(measured, form):
    answer = _forms(measured["german"])[form].values[0]
    assert exercises.evaluate("04.5", answer) == ("correct", "your answer passes the check.")


def test_the_solution_measures_what_the_checker_accepts():
    from course_lib.datasets import load_de_en_pairs

    _, _, (_, de_test) = load_de_en_pairs()
    namespace = {"de_test": de_test}
    exec(exercises.get("04.5").solution, namespace)  # the text `solution()` prints
    assert exercises.evaluate("04.5", namespace["answer"])[0] == "correct"


@pytest.mark.parametrize(
    "make, words",
    [
        pytest.param(lambda m: (SIZE, m["english"]), ("English side",), id="english"),
        pytest.param(lambda m: (SIZE, m["lesson"]), ("lesson's vocabulary",), id="the-lesson's-size"),
        pytest.param(lambda m: (SIZE, 1 / m["german"]), ("fewer pieces than words",), id="inverted"),
        pytest.param(lambda m: (6000, m["lesson"]), ("change it",), id="unchanged-size"),
        pytest.param(lambda m: (100, m["german"]), ("whole number from 500",), id="size-out-of-range"),
        pytest.param(lambda m: (SIZE, m["german"] + 0.2), ("recomputed", "more"), id="off"),
        pytest.param(lambda m: m["german"], ("pair",), id="one-number"),
        pytest.param(lambda m: (SIZE, "1.5"), ("should be a number",), id="a-string"),
    ],
)
def test_wrong_measurements_get_specific_feedback_without_the_value(measured, make, words, capsys):
    answer = make(measured)
    exercises.check("04.5", answer)
    out = capsys.readouterr().out
    assert "[04.5] Not yet:" in out, out
    for word in words:
        assert word in out, out
    value = measured["german"]
    for shown in {f"{value:.{k}f}" for k in (2, 3, 4)} | {str(round(value, 2))}:
        assert shown not in out, (shown, out)


# 04.6: the learner's own translations, their chrF recomputed ---------------------------


@pytest.fixture(scope="module")
def test_split():
    from course_lib.datasets import load_de_en_pairs

    _, _, (english, german) = load_de_en_pairs()
    return english, german


@pytest.fixture(scope="module")
def own_run(test_split):
    """Stand-in translations (the first three words of each reference) and their scores."""
    from course_lib.translation import corpus_scores

    english, german = test_split
    texts = [" ".join(sentence.split()[:3]) for sentence in german]
    return texts, corpus_scores(texts, german), corpus_scores(english, german)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda texts, s: (1, texts, s["chrF"]), id="tuple"),
        pytest.param(lambda texts, s: [np.int64(5), tuple(texts), np.float32(s["chrF"])], id="numpy-list"),
        pytest.param(lambda texts, s: (5.0, texts, round(s["chrF"], 2)), id="rounded"),
        pytest.param(lambda texts, s: (3, np.array(texts), keras.ops.convert_to_tensor(s["chrF"])), id="tensor"),
    ],
)
def test_04_6_a_consistent_measurement_passes_in_any_valid_form(own_run, make):
    texts, scores, _ = own_run
    assert exercises.evaluate("04.6", make(texts, scores)) == ("correct", "your answer passes the check.")


@pytest.mark.parametrize(
    "make, words",
    [
        pytest.param(lambda t, s, c, sp: (2, t, s["chrF"]), ("lesson's own budget",), id="unchanged-budget"),
        pytest.param(lambda t, s, c, sp: (1, t, s["BLEU"]), ("BLEU",), id="bleu-not-chrf"),
        pytest.param(lambda t, s, c, sp: (1, t, c["chrF"]), ("copying",), id="copy-baseline-score"),
        pytest.param(lambda t, s, c, sp: (1, t, s["chrF"] + 1.0), ("not the chrF", "train again"), id="off"),
        pytest.param(lambda t, s, c, sp: (1, t, s["chrF"] / 100), ("0 to 100",), id="fraction"),
        pytest.param(lambda t, s, c, sp: (1, sp[0], 20.0), ("English sources",), id="sources"),
        pytest.param(lambda t, s, c, sp: (1, sp[1], 100.0), ("references",), id="references"),
        pytest.param(lambda t, s, c, sp: (1, t[:100], 20.0), ("whole test split",), id="subset"),
        pytest.param(lambda t, s, c, sp: (1, [[5, 6]] * len(t), 20.0), ("not token ids",), id="token-ids"),
        pytest.param(lambda t, s, c, sp: (2.5, t, s["chrF"]), ("whole number",), id="fractional-epochs"),
        pytest.param(lambda t, s, c, sp: (1, t), ("triple",), id="a-pair"),
    ],
)
def test_04_6_wrong_answers_get_specific_feedback_without_the_value(own_run, test_split, make, words, capsys):
    texts, scores, copy = own_run
    exercises.check("04.6", make(texts, scores, copy, test_split))
    out = capsys.readouterr().out
    assert "[04.6] Not yet:" in out, out
    for word in words:
        assert word in out, out
    for value in (scores["chrF"], scores["BLEU"]):
        for shown in {f"{value:.{k}f}" for k in (1, 2, 3, 4)}:
            assert shown not in out, (shown, out)


def test_04_6_solution_is_the_lesson_cell():
    text = exercises.get("04.6").solution
    for name in ("make_model(\"luong\")", "LengthBucketedBatches", "translate(", "corpus_scores("):
        assert name in text, name


# 04.4: the hint nudges without doing the arithmetic ------------------------------------


def test_04_4_hint_and_feedback_do_not_give_the_value(capsys):
    import math

    exercises.hint("04.4")
    for wrong in (0.7, 0.5, 1.0, math.exp(1 - 9 / 12), 9 / 12):
        exercises.check("04.4", wrong)
    out = capsys.readouterr().out
    value = math.exp(1 - 12 / 9)
    for shown in {f"{value:.{k}f}" for k in (2, 3, 4)} | {"1.333", "0.333", "-0.333", "exp(-1/3)"}:
        assert shown not in out, (shown, out)
