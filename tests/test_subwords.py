"""Unit tests of `course_lib.subwords.SubwordVectorizer` (SentencePiece BPE)."""

import base64
import json

import numpy as np
import pytest

from course_lib.subwords import SubwordVectorizer
from course_lib.tokens import END, OOV, PAD, START
from tests.helpers import error_case, raises_naming

SENTENCES = [
    "Der Hund schläft im Garten.", "The dog sleeps in the garden.",
    "Die Katze sitzt auf der Matte.", "The cat sits on the mat.",
    "Ich gehe morgen früh nach Hause.", "I am going home early tomorrow.",
] * 10


@pytest.fixture(scope="module")
def vectorizer():
    vectorizer = SubwordVectorizer(vocabulary_size=120)
    vectorizer.adapt(SENTENCES)
    return vectorizer


def test_reserved_ids_are_the_course_ids(vectorizer):
    vocabulary = vectorizer.get_vocabulary()
    assert len(vocabulary) == vectorizer.vocabulary_size() == 120
    assert vocabulary[START] == "[start]" and vocabulary[END] == "[end]" and vocabulary[OOV] == "[UNK]"
    ids = vectorizer.encode(SENTENCES[:4])
    assert ids.min() >= 0 and not np.isin(ids[ids != PAD], [PAD, START, END]).any()


def test_round_trip_restores_the_text_exactly(vectorizer):
    for sentence in SENTENCES[:6]:
        assert vectorizer.decode(vectorizer.encode([sentence])[0]) == sentence


def test_unseen_words_are_written_in_pieces_not_unknown(vectorizer):
    ids = vectorizer.token_ids("The garden cat dogs.")
    assert OOV not in ids
    assert vectorizer.decode(ids) == "The garden cat dogs."
    assert len(vectorizer.pieces("Gartenkatze")) > 1


def test_target_pair_and_decoding_stop_at_end(vectorizer):
    target_in, target_out = vectorizer.target_pair(["Der Hund schläft."], sequence_length=20)
    n = len(vectorizer.token_ids("Der Hund schläft."))
    assert target_in[0, 0] == START and target_out[0, n] == END
    assert (target_in[0, 1 : n + 1] == target_out[0, :n]).all()
    assert vectorizer.decode(target_out[0]) == "Der Hund schläft."
    assert vectorizer.decode(np.stack([target_out[0], target_out[0]])) == ["Der Hund schläft."] * 2


def test_training_is_deterministic_and_fingerprinted(vectorizer):
    again = SubwordVectorizer(vocabulary_size=120)
    again.adapt(SENTENCES)
    assert again.get_vocabulary() == vectorizer.get_vocabulary()
    assert again.fingerprint() == vectorizer.fingerprint()
    other = SubwordVectorizer(vocabulary_size=100)
    other.adapt(SENTENCES)
    assert other.fingerprint() != vectorizer.fingerprint()


def test_config_round_trip_through_json(vectorizer):
    config = json.loads(json.dumps(vectorizer.get_config()))
    revived = SubwordVectorizer.from_config(config)
    assert revived.fingerprint() == vectorizer.fingerprint()
    np.testing.assert_array_equal(revived.encode(SENTENCES[:3]), vectorizer.encode(SENTENCES[:3]))


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("size-float", lambda: SubwordVectorizer(vocabulary_size=100.5), TypeError, "vocabulary_size"),
        error_case("size-too-small", lambda: SubwordVectorizer(vocabulary_size=4), ValueError, "vocabulary_size"),
        error_case("model-type", lambda: SubwordVectorizer(model_type="word"), ValueError, "model_type"),
        error_case("model-str", lambda: SubwordVectorizer(model="not bytes"), TypeError, "model"),
        error_case("one-string", lambda: SubwordVectorizer(30).adapt("the cat"), TypeError, "sentences"),
    ],
)
def test_bad_arguments_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_a_model_of_another_size_or_no_model_is_refused(vectorizer):
    model = base64.b64decode(vectorizer.get_config()["model"])
    with raises_naming(ValueError, "model"):
        SubwordVectorizer(vocabulary_size=99, model=model)
    with raises_naming(ValueError, "model"):
        SubwordVectorizer(vocabulary_size=120, model=b"not a model")


def test_using_it_before_adapt_says_what_to_do():
    with pytest.raises(ValueError, match="adapt"):
        SubwordVectorizer(50).encode(["the cat"])
