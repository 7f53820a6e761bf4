"""course_lib.text: tokenizer, vocabulary order, padding, teacher-forcing pairs,
decoding, saving and errors."""

import json

import numpy as np
import pytest

from course_lib import text, tokens
from course_lib.text import TextVectorizer
from course_lib.tokens import END, OOV, PAD, START
from tests.helpers import error_case, raises_naming

GERMAN = [
    "Ich weiß nicht, wo er ist.",
    "Das Mädchen isst einen Apfel.",
    "Wir fahren morgen nach München.",
    "Ist das dein Hund?",
    "Die Straße ist sehr groß.",
]


@pytest.fixture
def vectorizer():
    v = TextVectorizer(max_tokens=1000)
    v.adapt(GERMAN)
    return v


def test_reserved_tokens_come_first_at_their_ids(vectorizer):
    vocabulary = vectorizer.get_vocabulary()
    assert vocabulary[:4] == ["", "[start]", "[end]", "[UNK]"] == list(tokens.RESERVED_TOKENS)
    assert (PAD, START, END, OOV) == (0, 1, 2, 3)
    assert [vocabulary[i] for i in (PAD, START, END, OOV)] == [
        tokens.PAD_TOKEN, tokens.START_TOKEN, tokens.END_TOKEN, tokens.OOV_TOKEN
    ]


def test_normalize_is_the_form_decode_writes(vectorizer):
    sentence = "Ist  das   DEIN Hund ?"
    assert text.normalize(sentence) == "ist das dein hund?"
    assert vectorizer.decode(vectorizer.encode([sentence])[0]) == text.normalize(sentence)


@pytest.mark.parametrize(
    "sentence, tokens",
    [
        ("Die Straße ist GROSS.", ["die", "straße", "ist", "gross", "."]),
        ("Über Äpfel, Öl und Ärger!", ["über", "äpfel", ",", "öl", "und", "ärger", "!"]),
        ("Don't use e-mail?", ["don't", "use", "e-mail", "?"]),
        ("I don\u2019t know.", ["i", "don't", "know", "."]),
        ("Es kostet 3,50 Euro um 10:30.", ["es", "kostet", "3,50", "euro", "um", "10:30", "."]),
        ("  spaces\tand\nnewlines ", ["spaces", "and", "newlines"]),
        ("", []),
    ],
    ids=["eszett", "umlauts-comma", "apostrophe-hyphen", "typographic-apostrophe", "numbers", "whitespace", "empty"],
)
def test_tokenize(sentence, tokens):
    assert text.tokenize(sentence) == tokens


def test_standardize_composes_unicode():
    decomposed = "Mu\u0308de"  # u + combining diaeresis
    assert text.standardize(decomposed) == "müde"
    assert text.tokenize(decomposed) == ["müde"]


@pytest.mark.parametrize("sentence", GERMAN, ids=[f"de{i}" for i in range(len(GERMAN))])
def test_round_trip_text_ids_text(vectorizer, sentence):
    ids = vectorizer.encode([sentence])
    assert OOV not in ids
    assert vectorizer.decode(ids[0]) == sentence.lower()


def test_round_trip_of_a_padded_batch(vectorizer):
    ids = vectorizer.encode(GERMAN)
    assert vectorizer.decode(ids) == [s.lower() for s in GERMAN]


def test_vocabulary_order_is_frequency_then_alphabetical():
    v = TextVectorizer()
    v.adapt(["b a c a", "c b a", "d"])
    # a: 3, b: 2, c: 2, d: 1 -> ties b/c in alphabetical order
    assert v.get_vocabulary()[4:] == ["a", "b", "c", "d"]


def test_vocabulary_is_deterministic_and_order_independent():
    first, second = TextVectorizer(max_tokens=20), TextVectorizer(max_tokens=20)
    first.adapt(GERMAN)
    second.adapt(list(reversed(GERMAN)))
    assert first.get_vocabulary() == second.get_vocabulary()


def test_max_tokens_caps_the_vocabulary_and_unknown_words_map_to_oov():
    v = TextVectorizer(max_tokens=6)
    v.adapt(["a a a b b c", "a b c d"])
    assert v.get_vocabulary() == ["", "[start]", "[end]", "[UNK]", "a", "b"]
    assert v.vocabulary_size() == 6
    assert v.encode(["a c zebra b"]).tolist() == [[4, OOV, OOV, 5]]
    assert v.decode([4, OOV, 5]) == "a [UNK] b"


def test_encode_pads_with_pad_to_the_longest_or_to_sequence_length(vectorizer):
    ids = vectorizer.encode(["Ist das dein Hund?", "Ich weiß"])
    assert ids.shape == (2, 5) and ids.dtype == np.int32
    assert ids[1, 2:].tolist() == [PAD] * 3
    assert START not in ids and END not in ids
    fixed = vectorizer.encode(["Ist das dein Hund?", "Ich weiß"], sequence_length=7)
    assert fixed.shape == (2, 7)
    np.testing.assert_array_equal(fixed[:, :5], ids)
    cut = vectorizer.encode(["Ist das dein Hund?"], sequence_length=2)
    np.testing.assert_array_equal(cut, ids[:1, :2])


def test_target_pair_is_shifted_by_one(vectorizer):
    target_in, target_out = vectorizer.target_pair(["Ist das dein Hund?", "Ich weiß"])
    words = vectorizer.encode(["Ist das dein Hund?", "Ich weiß"])
    assert target_in.shape == target_out.shape == (2, 6)
    assert target_in[:, 0].tolist() == [START, START]
    assert target_in[0, 1:].tolist() == words[0].tolist()
    assert target_out[0].tolist() == words[0].tolist() + [END]
    assert target_out[1].tolist() == words[1, :2].tolist() + [END, PAD, PAD, PAD]
    # teacher forcing: the input at step t+1 is the target at step t
    np.testing.assert_array_equal(target_in[0, 1:], target_out[0, :-1])


def test_decode_stops_at_end_and_skips_pad_and_start(vectorizer):
    ich, weiss = vectorizer.token_ids("ich weiß")
    assert vectorizer.decode([START, ich, weiss, END, ich, ich]) == "ich weiß"
    assert vectorizer.decode([ich, PAD, weiss]) == "ich weiß"
    assert vectorizer.decode([END, ich]) == ""
    assert vectorizer.decode(np.array([], dtype="int32")) == ""


def test_detokenize_inverts_tokenize_on_standard_text():
    sentence = "er sagte: (ja) 3,5%, oder? um 10:30."
    assert text.detokenize(text.tokenize(sentence)) == sentence


def test_config_round_trip_through_json(vectorizer):
    config = json.loads(json.dumps(vectorizer.get_config()))
    restored = TextVectorizer.from_config(config)
    assert restored.get_vocabulary() == vectorizer.get_vocabulary()
    assert restored.max_tokens == vectorizer.max_tokens
    np.testing.assert_array_equal(restored.encode(GERMAN), vectorizer.encode(GERMAN))


def test_vocabulary_argument_adds_reserved_tokens():
    v = TextVectorizer(vocabulary=["hallo", "welt"])
    assert v.get_vocabulary() == ["", "[start]", "[end]", "[UNK]", "hallo", "welt"]
    assert v.encode(["Hallo Welt!"]).tolist() == [[4, 5, OOV]]


V = TextVectorizer(vocabulary=["ich", "bin"])


@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("max_tokens-3", lambda: TextVectorizer(max_tokens=3), ValueError, "max_tokens"),
        error_case("max_tokens-0", lambda: TextVectorizer(max_tokens=0), ValueError, "max_tokens"),
        error_case("max_tokens-float", lambda: TextVectorizer(max_tokens=10.5), TypeError, "max_tokens"),
        error_case("max_tokens-bool", lambda: TextVectorizer(max_tokens=True), TypeError, "max_tokens"),
        error_case("duplicate-vocabulary", lambda: TextVectorizer(vocabulary=["a", "a"]), ValueError, "vocabulary"),
        error_case("vocabulary-too-big", lambda: TextVectorizer(max_tokens=5, vocabulary=["a", "b", "c"]), ValueError, "vocabulary"),
        error_case("empty-vocabulary", lambda: TextVectorizer(vocabulary=[]), ValueError, "vocabulary"),
        error_case("sequence_length-0", lambda: V.encode(["ich"], sequence_length=0), ValueError, "sequence_length"),
        error_case("sequence_length-float", lambda: V.target_pair(["ich"], sequence_length=2.0), TypeError, "sequence_length"),
        error_case("ids-out-of-range", lambda: V.decode([1, 10_000]), ValueError, "ids"),
        error_case("ids-float", lambda: V.decode([0.5, 1.5]), TypeError, "ids"),
        error_case("ids-3d", lambda: V.ids_to_tokens([[[4]]]), ValueError, "ids"),
        error_case("tokenize-bytes", lambda: text.tokenize(b"bytes"), TypeError, "sentence"),
        error_case("detokenize-str", lambda: text.detokenize("not a list"), TypeError, "tokens"),
        error_case("detokenize-item", lambda: text.detokenize(["a", 3]), TypeError, "tokens[1]"),
    ],
)
def test_errors_name_the_argument(make, exception, name):
    with raises_naming(exception, name):
        make()


@pytest.mark.parametrize(
    "sentences, exception, name",
    [
        ([], ValueError, "sentences"),
        ("just one string", TypeError, "sentences"),
        (["fine", 3], TypeError, "sentences[1]"),
        (None, TypeError, "sentences"),
    ],
    ids=["empty-list", "bare-str", "non-str-item", "none"],
)
def test_adapt_encode_and_target_pair_errors_name_the_argument(vectorizer, sentences, exception, name):
    for call in (TextVectorizer().adapt, vectorizer.encode, vectorizer.target_pair):
        with raises_naming(exception, name):
            call(sentences)


def test_a_vectorizer_without_vocabulary_says_to_adapt_it():
    with pytest.raises(ValueError, match=r"call `adapt\(sentences\)`"):
        TextVectorizer().encode(["no vocabulary yet"])
