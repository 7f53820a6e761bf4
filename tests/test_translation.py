"""course_lib.translation: `translate` in batches equals decoding every batch yourself,
and `corpus_scores` gives sacrebleu's corpus BLEU and chrF."""

import sys

import keras
import numpy as np
import pytest

from course_lib.decoding import beam_search, greedy_decode
from course_lib.seq2seq import build_seq2seq
from course_lib.text import TextVectorizer, normalize
from course_lib.tokens import END, PAD
from course_lib.translation import corpus_scores, rnn_next_token_function, translate, translation_vectorizer
from tests.helpers import error_case, raises_naming

GERMAN = TextVectorizer(vocabulary=["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht"])
SOURCES = np.array([[5, 6, 7], [8, 0, 0], [4, 4, 0], [9, 10, 11], [6, 0, 0]], dtype="int32")


def copy_source(source, prefix):
    """"Translates" source id k to target id k (END at the source's end)."""
    t = prefix.shape[1] - 1
    tokens = source[:, t] if t < source.shape[1] else np.full(len(source), END)
    return np.eye(12, dtype="float32")[np.where(tokens == PAD, END, tokens)]


def test_translate_gives_the_texts_ids_and_weights_of_each_sentence():
    texts, tokens, weights = translate(copy_source, SOURCES, GERMAN, max_length=6, batch_size=2)
    vocabulary = GERMAN.get_vocabulary()
    expected = [" ".join(vocabulary[i] for i in row if i != PAD) for row in SOURCES]
    assert texts == expected
    assert [t[t != PAD].tolist() for t in tokens] == [row[row != PAD].tolist() + [END] for row in SOURCES]
    assert weights == [None] * len(SOURCES)


def test_translate_accepts_a_list_of_id_sequences_of_any_lengths():
    ragged = [row[row != PAD] for row in SOURCES]
    assert translate(copy_source, ragged, GERMAN, max_length=6, batch_size=3)[0] == translate(
        copy_source, SOURCES, GERMAN, max_length=6
    )[0]


def test_translate_with_a_model_equals_greedy_decode_batch_by_batch():
    keras.utils.set_random_seed(0)
    model = build_seq2seq(12, GERMAN.vocabulary_size(), embedding_dim=4, units=6, attention="luong")
    texts, tokens, weights = translate(model, SOURCES, GERMAN, max_length=4, batch_size=3)
    for start in (0, 3):
        batch_tokens, batch_weights = greedy_decode(model, SOURCES[start : start + 3], max_length=4)
        assert texts[start : start + 3] == GERMAN.decode(batch_tokens)
        np.testing.assert_array_equal(np.stack(tokens[start : start + 3]), batch_tokens)
        np.testing.assert_allclose(np.stack(weights[start : start + 3]), batch_weights)
    assert weights[0].shape[1] == SOURCES.shape[1]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_compiled_rnn_step_gives_the_tokens_and_weights_of_the_eager_one(cell):
    keras.utils.set_random_seed(1)
    model = build_seq2seq(12, 12, embedding_dim=4, units=6, attention="additive", cell=cell, bidirectional=True)
    eager_tokens, eager_weights = greedy_decode(model, SOURCES, max_length=5)
    tokens, weights = greedy_decode(rnn_next_token_function(model, SOURCES), max_length=5)
    np.testing.assert_array_equal(tokens, eager_tokens)
    np.testing.assert_allclose(weights, eager_weights, atol=1e-6)
    shorter, _ = greedy_decode(rnn_next_token_function(model, SOURCES[:2, :1]), max_length=5)  # other shapes
    np.testing.assert_array_equal(shorter, greedy_decode(model, SOURCES[:2, :1], max_length=5)[0])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_translate_with_a_beam_runs_the_compiled_rnn_step_on_every_beam(cell):
    """The compiled RNN step, its state (one tensor, or two for an LSTM) reordered with
    the beams, gives the beams of the eager step; a beam of one gives the greedy texts."""
    keras.utils.set_random_seed(2)
    model = build_seq2seq(12, GERMAN.vocabulary_size(), embedding_dim=4, units=6, attention="luong", cell=cell)
    texts, tokens, weights = translate(model, SOURCES, GERMAN, max_length=5, batch_size=3, beam_width=3)
    for start in (0, 3):
        eager, _ = beam_search(model, SOURCES[start : start + 3], max_length=5, beam_width=3)
        np.testing.assert_array_equal(np.stack(tokens[start : start + 3])[:, : eager.shape[1]], eager)
        assert texts[start : start + 3] == GERMAN.decode(eager)
    assert weights == [None] * len(SOURCES)
    assert translate(model, SOURCES, GERMAN, max_length=5, beam_width=1)[0] == translate(
        model, SOURCES, GERMAN, max_length=5)[0]


def test_translate_with_a_source_width_pads_every_batch_to_one_shape_and_drops_the_filling():
    widths = []

    def recording_copy(source, prefix):
        widths.append(source.shape)
        return copy_source(source, prefix)

    texts, tokens, _ = translate(recording_copy, SOURCES, GERMAN, max_length=6, batch_size=2, source_width=4)
    assert texts == translate(copy_source, SOURCES, GERMAN, max_length=6, batch_size=2)[0]
    assert len(tokens) == len(SOURCES)
    assert set(widths) == {(2, 4)}  # the last batch (one sentence) was filled up to two


def test_translate_with_a_too_narrow_source_width_says_so():
    with raises_naming(ValueError, "source_width"):
        translate(copy_source, SOURCES, GERMAN, max_length=6, source_width=2)


def test_translation_vectorizer_learns_the_same_pieces_every_time():
    sentences = ["the cat sat on the mat.", "die Katze saß auf der Matte."] * 20
    first, second = translation_vectorizer(40, sentences=sentences), translation_vectorizer(40, sentences=sentences)
    assert first.fingerprint() == second.fingerprint()
    assert first.get_vocabulary()[:4] == ["<pad>", "[start]", "[end]", "[UNK]"]
    assert first.decode(first.encode(["die cat"])[0]) == "die cat"


def test_the_course_vocabulary_covers_the_test_sentences_and_is_rebuilt_identically():
    from course_lib.datasets import load_de_en_pairs
    from course_lib.subwords import SubwordVectorizer
    from course_lib.tokens import OOV

    (en_train, de_train), _, (en_test, de_test) = load_de_en_pairs()
    vectorizer = translation_vectorizer()
    fresh = SubwordVectorizer(vocabulary_size=vectorizer.vocabulary_size())
    fresh.adapt(en_train + de_train)  # not through the cache
    assert fresh.fingerprint() == vectorizer.fingerprint()
    ids = np.concatenate([vectorizer.token_ids(s) for s in en_test[:300] + de_test[:300]])
    assert np.mean(ids == OOV) < 0.001


def test_corpus_scores_are_those_of_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    references = [normalize(s) for s in ["Das ist gut.", "Ich bin hier.", "Wo ist der Hund?"]]
    hypotheses = ["das ist gut.", "ich bin da.", "wo ist die katze?"]
    scores = corpus_scores(hypotheses, references)
    assert scores == {
        "BLEU": pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score),
        "chrF": pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score),
    }
    assert 0 < scores["chrF"] < 100
    assert corpus_scores(references, references) == {"BLEU": pytest.approx(100.0), "chrF": pytest.approx(100.0)}


def test_corpus_scores_without_sacrebleu_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # `import sacrebleu` fails
    with pytest.raises(ImportError, match="pip install sacrebleu"):
        corpus_scores(["a"], ["a"])


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("batch_size-0", lambda: translate(copy_source, SOURCES, GERMAN, 4, batch_size=0), ValueError, "batch_size"),
        error_case("max_length-float", lambda: translate(copy_source, SOURCES, GERMAN, 4.0), TypeError, "max_length"),
        error_case("1d-source_ids", lambda: translate(copy_source, SOURCES[0], GERMAN, 4), ValueError, "source_ids"),
        error_case("vectorizer", lambda: translate(copy_source, SOURCES, "german", 4), TypeError, "target_vectorizer"),
        error_case("beam_width-0", lambda: translate(copy_source, SOURCES, GERMAN, 4, beam_width=0), ValueError,
                   "beam_width"),
        error_case("hypotheses-str", lambda: corpus_scores("das", ["das"]), TypeError, "hypotheses"),
        error_case("references-item", lambda: corpus_scores(["das"], [3]), TypeError, "references[0]"),
        error_case("lengths-differ", lambda: corpus_scores(["a", "b"], ["a"]), ValueError, "hypotheses"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()
