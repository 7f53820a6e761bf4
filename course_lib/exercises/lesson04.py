"""Exercises of lesson 04, "Translation with attention".

04.1  build the teacher-forcing pair (target_in, target_out) of one sentence (function);
04.2  compute BLEU's clipped n-gram precision for one sentence pair (function);
04.3  build the attention mask that hides padded source positions (function);
04.4  compute BLEU's brevity penalty for a short hypothesis (value);
04.5  experiment: learn the vocabulary with another size and measure the pieces per
      German test word (checked by recomputing it, about a second);
04.6  experiment: train the lesson's Luong model for another number of epochs and score
      its test translations (checked against the learner's own translations: their chrF
      is recomputed, in about a second).

Expected results come from `course_lib.text` and from the definitions of BLEU
(Papineni et al., 2002) that `sacrebleu` implements.
"""

import math
from collections import Counter

import numpy as np

from course_lib.exercises import Case, Exercise, as_number, register
from course_lib.tokens import END, PAD, START

# 04.1 ------------------------------------------------------------------------------


def _teacher_forcing_pair(token_ids, length):
    target_in = [START] + list(token_ids)  # what the decoder reads
    target_out = list(token_ids) + [END]  # what it must predict, one step ahead
    pad = [PAD] * (length - len(target_in))
    return np.array(target_in + pad), np.array(target_out + pad)


def _pair_case(description, token_ids, length):
    return Case(description, _teacher_forcing_pair(token_ids, length), args=(token_ids, length))


def _left_padded_pair(token_ids, length):
    pad = [PAD] * (length - len(token_ids) - 1)
    return np.array(pad + [START] + list(token_ids)), np.array(pad + list(token_ids) + [END])


register(
    Exercise(
        key="04.1",
        question=(
            "Write `make_target_pair(token_ids, length)`: `token_ids` are the piece ids of "
            "one German sentence (no START, no END). Return `(target_in, target_out)`, two "
            "integer arrays of shape `(length,)`: `target_in` is START followed by the "
            "words, `target_out` is the words followed by END, both right-padded with "
            f"PAD. (PAD, START, END = {PAD}, {START}, {END}; `length` is always at least "
            "`len(token_ids) + 1`.)"
        ),
        cases=(
            _pair_case("three words [7, 8, 9], length 4: no padding", [7, 8, 9], 4),
            _pair_case("three words [7, 8, 9], length 6: padding needed", [7, 8, 9], 6),
            _pair_case("one word [42], length 3", [42], 3),
            _pair_case("an empty sentence [], length 2", [], 2),
            _pair_case("a repeated word [5, 5, 5, 5], length 5", [5, 5, 5, 5], 5),
        ),
        solution=_teacher_forcing_pair,
        hint=(
            "`target_in[t + 1] == target_out[t]`: the decoder reads the previous true word "
            "and predicts the next one. Build two lists, then pad both to `length`."
        ),
        parts=("target_in", "target_out"),
        mistakes=(
            (
                "target_in and target_out are swapped: target_in is what the decoder reads, "
                "starting with START",
                lambda token_ids, length: _teacher_forcing_pair(token_ids, length)[::-1],
            ),
            ("pad on the right: the PAD ids come after the words", _left_padded_pair),
        ),
    )
)


# 04.2 ------------------------------------------------------------------------------


def _clipped_precision(hypothesis, reference, n):
    def ngrams(tokens):
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))

    hyp, ref = ngrams(hypothesis), ngrams(reference)
    total = sum(hyp.values())
    if total == 0:
        return 0.0
    # each hypothesis n-gram counts at most as often as it occurs in the reference
    matches = sum(min(count, ref[gram]) for gram, count in hyp.items())
    return matches / total


_CAT = "the cat is on the mat".split()


def _ngram_counts(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _precision_mistake(credit, denominator="hypothesis"):
    """A wrong clipped precision: `credit(hyp_counts, ref_counts)` over some total."""

    def precision(hypothesis, reference, n):
        hyp, ref = _ngram_counts(hypothesis, n), _ngram_counts(reference, n)
        total = sum((hyp if denominator == "hypothesis" else ref).values())
        return credit(hyp, ref) / total if total else 0.0

    return precision


def _precision_case(description, hypothesis, reference, n):
    return Case(
        description, _clipped_precision(hypothesis, reference, n), args=(hypothesis, reference, n)
    )


register(
    Exercise(
        key="04.2",
        question=(
            "Write `clipped_precision(hypothesis, reference, n)`: both are lists of tokens. "
            "Count the n-grams of the hypothesis; each one is credited at most as many "
            "times as it occurs in the reference ('clipping'); return credited / total "
            "hypothesis n-grams, or 0.0 when the hypothesis has no n-gram."
        ),
        cases=(
            _precision_case("identical sentences, n=1", _CAT, _CAT, 1),
            _precision_case(
                "'the' x 7 against 'the cat is on the mat', n=1: 'the' is clipped",
                ["the"] * 7, _CAT, 1,
            ),
            _precision_case(
                "'the cat the cat on the mat' against 'the cat is on the mat', n=2: "
                "'the cat' is clipped to 1",
                "the cat the cat on the mat".split(), _CAT, 2,
            ),
            _precision_case(
                "word order matters for n=2: 'mat the on is cat the'", _CAT[::-1], _CAT, 2
            ),
            _precision_case(
                "German with umlauts, n=1: 'ich bin sehr müde' against 'ich bin müde'",
                "ich bin sehr müde".split(), "ich bin müde".split(), 1,
            ),
            _precision_case("a 2-token hypothesis has no 3-gram", ["ich", "bin"], _CAT, 3),
        ),
        solution=_clipped_precision,
        hint=(
            "`collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))` "
            "counts n-grams; credit `min(hypothesis count, reference count)` for each."
        ),
        mistakes=(
            (
                "no clipping: an n-gram is credited at most as many times as it occurs in the reference",
                _precision_mistake(lambda hyp, ref: sum(c for gram, c in hyp.items() if gram in ref)),
            ),
            (
                "counted each distinct n-gram once: credit min(hypothesis count, reference count)",
                _precision_mistake(lambda hyp, ref: len(set(hyp) & set(ref))),
            ),
            (
                "divide by the number of hypothesis n-grams, not the reference's",
                _precision_mistake(lambda hyp, ref: sum((hyp & ref).values()), denominator="reference"),
            ),
            (
                "used single words whatever `n`: count the n-grams of n consecutive tokens",
                lambda hypothesis, reference, n: _clipped_precision(hypothesis, reference, 1),
            ),
        ),
    )
)


# 04.3 ------------------------------------------------------------------------------


def _attention_padding_mask(source_ids, target_length):
    source_ids = np.asarray(source_ids)
    keep = source_ids != PAD  # (batch, S): True on real tokens
    # (batch, S) -> (batch, 1, S) -> (batch, T, S): the same for every query
    return np.broadcast_to(keep[:, None, :], (len(source_ids), target_length, source_ids.shape[1]))


_BATCH = np.array([[5, 9, 4, 0, 0], [7, 7, 7, 7, 3], [6, 0, 0, 0, 0]])


def _mask_case(description, source_ids, target_length):
    return Case(
        description,
        _attention_padding_mask(source_ids, target_length),
        args=(source_ids, target_length),
    )


register(
    Exercise(
        key="04.3",
        question=(
            "Write `attention_padding_mask(source_ids, target_length)`: `source_ids` is a "
            "padded batch `(batch, S)` of integer ids (PAD = 0). Return a boolean mask of "
            "shape `(batch, target_length, S)` following Keras's convention: True where "
            "decoder step t may attend to source position s, False on padding."
        ),
        cases=(
            _mask_case("a batch of 3 sources with 2, 0 and 4 PAD, target_length=2", _BATCH, 2),
            _mask_case("the same batch, target_length=1", _BATCH, 1),
            _mask_case(
                "a batch without padding: everything True", np.array([[3, 4], [5, 6]]), 3
            ),
            _mask_case(
                "id 3 (OOV) is a real token, not padding", np.array([[3, 3, 0]]), 2
            ),
        ),
        solution=_attention_padding_mask,
        hint=(
            "`source_ids != 0` is the `(batch, S)` padding mask; add an axis for the "
            "queries (`[:, None, :]`) and repeat it `target_length` times "
            "(`np.broadcast_to` or `np.repeat`)."
        ),
        mistakes=(
            (
                "inverted: Keras's mask is True where attention is allowed, on the real tokens",
                lambda source_ids, target_length: ~_attention_padding_mask(source_ids, target_length),
            ),
            (
                "only PAD (id 0) is padding: every other id, OOV included, is a real token",
                lambda source_ids, target_length: _attention_padding_mask(
                    np.where(source_ids < 4, PAD, source_ids), target_length
                ),
            ),
        ),
    )
)


# 04.4 ------------------------------------------------------------------------------


def _brevity_penalty():
    hypothesis_length, reference_length = 9, 12
    # shorter than the reference: exp(1 - r / c); 1 when c >= r
    return math.exp(1 - reference_length / hypothesis_length)


register(
    Exercise(
        key="04.4",
        question=(
            "BLEU multiplies its n-gram precisions by a brevity penalty, `1` when the "
            "hypothesis has at least as many tokens `c` as the reference `r`, else "
            "`exp(1 - r / c)`. What is the penalty for a 9-token hypothesis against a "
            "12-token reference? Give a number."
        ),
        cases=(
            Case(
                "brevity penalty for c = 9 hypothesis tokens, r = 12 reference tokens",
                math.exp(1 - 12 / 9),
            ),
        ),
        solution=_brevity_penalty,
        hint=(
            "Which is shorter, the hypothesis or the reference? If it is the hypothesis, "
            "divide the reference length by the hypothesis length, then apply the formula."
        ),
        answer_is_function=False,
        rtol=0.0,
        atol=5e-3,  # an answer rounded by hand to two or three digits passes
        mistakes=(
            ("a penalty is never above 1: the ratio is r / c, reference over hypothesis", math.exp(1 - 9 / 12)),
            ("the hypothesis is shorter than the reference, so there is a penalty", 1.0),
            ("c / r is not the penalty: take exp(1 - r / c)", 9 / 12),
            ("the exponent is 1 - r / c", math.exp(-12 / 9)),
            ("forgot the exponential: the penalty is exp(1 - r / c)", 1 - 12 / 9),
        ),
    )
)


# 04.5 ------------------------------------------------------------------------------

SIZES = (500, 16000)  # the vocabulary sizes the experiment may try (the lesson's is 6000)


def _pieces_per_word(vocabulary_size, side="german"):
    """Pieces per word of the test sentences with the course's vocabulary of that size."""
    from course_lib.datasets import load_de_en_pairs
    from course_lib.translation import translation_vectorizer

    _, _, (english, german) = load_de_en_pairs()
    sentences = german if side == "german" else english
    vectorizer = translation_vectorizer(vocabulary_size)
    pieces = sum(len(vectorizer.token_ids(sentence)) for sentence in sentences)
    return pieces / sum(len(sentence.split()) for sentence in sentences)


def _check_pieces_per_word(answer):
    from course_lib.exercises import AnswerError

    try:
        size, measured = answer
    except (TypeError, ValueError):
        raise AnswerError("give a pair `(vocabulary_size, pieces_per_word)`") from None
    size, measured = as_number(size, "the vocabulary size"), as_number(measured, "the pieces per word")
    if size != int(size) or not SIZES[0] <= size <= SIZES[1]:
        return f"the vocabulary size should be a whole number from {SIZES[0]} to {SIZES[1]}"
    size = int(size)
    if size == 6000:
        return "6000 is the lesson's own size: change it (smaller or larger) and measure again"
    if measured < 1:
        return ("fewer pieces than words is impossible: every word has at least one piece. "
                "Divide the number of pieces by the number of words")
    reference = _pieces_per_word(size)
    if abs(measured - reference) <= 0.01:
        return None
    if abs(measured - _pieces_per_word(size, "english")) <= 0.01:
        return "that is the English side: the question asks for the German test sentences"
    if abs(measured - _pieces_per_word(6000)) <= 0.01:
        return "that is the lesson's vocabulary of 6000 pieces: measure with the one of your size"
    if abs(measured - 1 / reference) <= 0.01:
        return "inverted: divide the number of pieces by the number of words, not the other way round"
    trend = "smaller" if size < 6000 else "larger"
    return (f"recomputed with a vocabulary of {size} pieces, the German test sentences give another "
            f"number of pieces per word (with a {trend} vocabulary than the lesson's, words split into "
            f"{'more' if size < 6000 else 'fewer'} pieces): count `len(vectorizer.token_ids(s))` over "
            "`de_test` and divide by the words, `len(s.split())`")


_SOLUTION_04_5 = """\
from course_lib.translation import translation_vectorizer
size = 2000
small = translation_vectorizer(size)  # learned from the training sentences, about a second
pieces = sum(len(small.token_ids(s)) for s in de_test)
words = sum(len(s.split()) for s in de_test)
answer = (size, pieces / words)"""

register(
    Exercise(
        key="04.5",
        question=(
            "Experiment: learn the course's vocabulary with another number of pieces, "
            f"`translation_vectorizer(size)` for a size from {SIZES[0]} to {SIZES[1]} other than "
            "6000, and measure its pieces per word on the German test sentences `de_test`: "
            "the number of pieces (`len(vectorizer.token_ids(s))`, summed) over the number "
            "of words (`len(s.split())`, summed). Give `(size, pieces_per_word)`; the "
            "checker recomputes it for your size."
        ),
        checker=_check_pieces_per_word,
        solution=_SOLUTION_04_5,
        hint=(
            "A vectorizer of your size: `translation_vectorizer(size)`; then the same count "
            "as the lesson's pieces per word, on `de_test`. Fewer pieces in the vocabulary "
            "means shorter pieces, so more of them per word."
        ),
    )
)


# 04.6 ------------------------------------------------------------------------------

LESSON_EPOCHS = 2  # the lesson's budget (SETTINGS["epochs"])


def _test_split():
    from course_lib.datasets import load_de_en_pairs

    _, _, (english, german) = load_de_en_pairs()
    return english, german


def _check_epochs_experiment(answer):
    from course_lib.exercises import AnswerError
    from course_lib.translation import corpus_scores

    try:
        epochs, texts, measured = answer
    except (TypeError, ValueError):
        raise AnswerError("give a triple `(epochs, texts, chrF)`") from None
    epochs = as_number(epochs, "the number of epochs")
    if epochs != int(epochs) or not 1 <= epochs <= 30:
        return "the number of epochs should be a whole number from 1 to 30"
    if int(epochs) == LESSON_EPOCHS:
        return f"{LESSON_EPOCHS} epochs is the lesson's own budget: change it (fewer or more) and train again"
    english, german = _test_split()
    if isinstance(texts, str) or not hasattr(texts, "__len__"):
        return "`texts` should be your translations: a list of str, one per test sentence"
    texts = list(texts)
    if len(texts) != len(german):
        return (f"`texts` has {len(texts)} translations: translate the whole test split, "
                f"all {len(german)} sentences of `x_test`")
    if not all(isinstance(text, str) for text in texts):
        return "`texts` should hold str (the first output of `translate`), not token ids"
    if texts == list(english):
        return "these are the English sources (the copy baseline): give your model's translations"
    if texts == list(german):
        return "these are the German references: give your model's translations"
    measured = as_number(measured, "the chrF")
    if 0 < measured < 1 and corpus_scores(texts, german)["chrF"] >= 1:
        return "chrF is reported from 0 to 100 here, as `corpus_scores` gives it"
    scores = corpus_scores(texts, german)
    if abs(measured - scores["chrF"]) <= 0.05:
        return None
    if abs(measured - scores["BLEU"]) <= 0.05:
        return "that is the BLEU of your translations: the question asks for their chrF"
    if abs(measured - corpus_scores(english, german)["chrF"]) <= 0.05:
        return "that is the chrF of copying the English source, not of your translations"
    return ("that is not the chrF of these translations: score them with "
            "`corpus_scores(texts, de_test)[\"chrF\"]` (did you train again after changing the "
            "epochs, and translate with the new model?)")


_SOLUTION_04_6 = """\
epochs = 5
changed = make_model("luong")  # section 3: same seed, data, batches and optimiser
changed.fit(LengthBucketedBatches(x_train, y_train, SETTINGS["batch_size"], seed=0), epochs=epochs, verbose=0)
changed_texts = translate(changed, x_test, vectorizer, max_length=SETTINGS["max_length"])[0]
answer = (epochs, changed_texts, corpus_scores(changed_texts, de_test)["chrF"])"""

register(
    Exercise(
        key="04.6",
        question=(
            "Experiment: train the lesson's Luong model for another number of epochs than "
            f"its {LESSON_EPOCHS} (the same `make_model`, batches and data), translate the whole "
            "test split with `translate` and score it with `corpus_scores`. Give "
            "`(epochs, texts, chrF)`: your epochs, your translations (a list of str) and "
            "their chrF; the checker recomputes the chrF of your translations."
        ),
        checker=_check_epochs_experiment,
        solution=_SOLUTION_04_6,
        hint=(
            "The lesson's exercise cell does the training and the translation once `epochs` "
            "is set; `corpus_scores(changed_texts, de_test)` gives a dict with the chrF."
        ),
    )
)
