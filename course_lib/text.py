"""Text vectorisation for translation: sentences to padded ids and back.

A small word-level vocabulary in plain Python, so that every step can be read and
every run gives the same ids (no hashing, no backend, no file):

1. `standardize`: Unicode NFC, typographic apostrophes (`’`) to `'`, lowercase
   (German umlauts and `ß` are kept as letters).
2. `tokenize`: numbers (`3,5`, `10:30`), words (letters and digits, with inner `-`
   or `'`, as in `e-mail`, `don't`) and single punctuation marks become tokens.
3. `TextVectorizer.adapt`: count tokens; the vocabulary is the reserved tokens, then
   the most frequent tokens, ties broken alphabetically, up to `max_tokens` in all.
4. `TextVectorizer.encode` / `target_pair`: ids, padded with `PAD` to one length; a
   target sentence gives `target_in = [START, w1, ..., wn]` (what the decoder reads,
   teacher forcing) and `target_out = [w1, ..., wn, END]` (what it must predict).
5. `TextVectorizer.decode`: ids back to text, stopping at the first `END`;
   `normalize(sentence)` puts a reference sentence in the same form.

Reserved ids and strings come from `course_lib.tokens`: `PAD = 0`, `START = 1`,
`END = 2`, and `OOV = 3` for every token outside the vocabulary.
"""

import re
import unicodedata
from collections import Counter

import numpy as np

from course_lib.checks import check_int, check_positive_int, message
from course_lib.tokens import END, OOV, PAD, RESERVED_TOKENS, START

_TOKEN = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:[-']\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}…")
_NO_SPACE_AFTER = set("([{¿¡")


def _check_sentence(sentence, name="sentence"):
    if not isinstance(sentence, str):
        raise TypeError(message(name, "a str", sentence))


def _check_sentences(sentences, name="sentences"):
    """`sentences` as a list of str, or an error naming the argument."""
    if isinstance(sentences, str) or not hasattr(sentences, "__iter__"):
        raise TypeError(message(name, "a list of str (not a single str)", sentences))
    sentences = list(sentences)
    if not sentences:
        raise ValueError(message(name, "a non-empty list of str", sentences))
    for index, sentence in enumerate(sentences):
        _check_sentence(sentence, f"{name}[{index}]")
    return sentences


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def standardize(sentence):
    """Unicode NFC, typographic apostrophes to `'`, lowercase.

    Example:

    >>> standardize("Ich Weiß"), standardize("Don’t")
    ('ich weiß', "don't")
    """
    _check_sentence(sentence)
    return unicodedata.normalize("NFC", sentence).translate(_APOSTROPHES).lower()


def tokenize(sentence):
    """Standardise `sentence` and split it into words and punctuation marks.

    Example:

    >>> tokenize("Wo ist's? Im E-Mail-Fach.")
    ['wo', "ist's", '?', 'im', 'e-mail-fach', '.']
    """
    return _TOKEN.findall(standardize(sentence))


def detokenize(tokens):
    """Join tokens into text: one space between words, none before `.,!?;:` and
    closing brackets, none after opening brackets. Inverse of `tokenize` on
    standardised, normally spaced text.

    Example:

    >>> detokenize(["wo", "ist's", "?", "(", "hier", ")"])
    "wo ist's? (hier)"
    """
    if isinstance(tokens, str) or not hasattr(tokens, "__iter__"):
        raise TypeError(message("tokens", "a list of str", tokens))
    text = ""
    for index, token in enumerate(tokens):
        _check_sentence(token, f"tokens[{index}]")
        if text and token not in _NO_SPACE_BEFORE and text[-1] not in _NO_SPACE_AFTER:
            text += " "
        text += token
    return text


def normalize(sentence):
    """`detokenize(tokenize(sentence))`: the form in which `TextVectorizer.decode` writes
    text (lowercase, normal spacing), so the form to score translations in.

    Example:

    >>> normalize("Das  ist   GUT !")
    'das ist gut!'
    """
    return detokenize(tokenize(sentence))


class Vectorizer:
    """What every vectorizer of the course shares: padding, teacher-forcing pairs, batches.

    A subclass defines `token_ids(sentence) -> list of int` (no START, END or padding),
    `ids_to_text(ids) -> str` for one 1-D id sequence (stopping at the first `END`),
    and `vocabulary_size()`; this class turns them into padded batches and back.
    """

    def _pad(self, rows, sequence_length, name):
        sequence_length = check_positive_int(sequence_length, name, allow_none=True)
        if sequence_length is None:
            sequence_length = max(len(row) for row in rows)
        ids = np.full((len(rows), sequence_length), PAD, dtype="int32")
        for i, row in enumerate(rows):
            row = row[:sequence_length]
            ids[i, : len(row)] = row
        return ids

    def encode(self, sentences, sequence_length=None):
        """Source ids: `(len(sentences), length)` int32, right-padded with `PAD`.

        `length` is `sequence_length`, or the longest sentence when it is `None`
        (longer sentences are cut). No START or END is added."""
        sentences = _check_sentences(sentences)
        return self._pad([self.token_ids(s) for s in sentences], sequence_length, "sequence_length")

    def __call__(self, sentences, sequence_length=None):
        return self.encode(sentences, sequence_length=sequence_length)

    def target_pair(self, sentences, sequence_length=None):
        """Teacher-forcing pair `(target_in, target_out)`, two int32 arrays of the
        same shape: `[START, w1, ..., wn]` and `[w1, ..., wn, END]`, right-padded
        with `PAD` to `n + 1` for the longest sentence, or to `sequence_length`."""
        sentences = _check_sentences(sentences)
        rows = [self.token_ids(s) for s in sentences]
        target_in = self._pad([[START] + row for row in rows], sequence_length, "sequence_length")
        target_out = self._pad([row + [END] for row in rows], sequence_length, "sequence_length")
        return target_in, target_out

    def _check_ids(self, ids):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(message("ids", "a 1-D sequence of integers", ids))
        if not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise TypeError(message("ids", "a 1-D sequence of integers", ids))
        size = self.vocabulary_size()
        if ids.size and (ids.min() < 0 or ids.max() >= size):
            raise ValueError(message("ids", f"integers in [0, {size - 1}]", ids.tolist()))
        return ids

    def decode(self, ids):
        """Text of one id sequence (1-D), or a list of texts for a batch (2-D)."""
        array = np.asarray(ids)
        if array.ndim == 2:
            return [self.ids_to_text(row) for row in array]
        return self.ids_to_text(array)


class TextVectorizer(Vectorizer):
    """Word-level vocabulary: sentences to padded id arrays and back.

    Steps:

    1. `adapt(sentences)` counts the tokens of `tokenize(sentence)` and keeps the
       `max_tokens - 4` most frequent, ties broken alphabetically, after the reserved
       tokens `["", "[start]", "[end]", "[UNK]"]` (ids `PAD, START, END, OOV`).
    2. `encode(sentences)` maps each token to its id (`OOV` if unknown) and pads with
       `PAD` on the right to the longest sentence, or to `sequence_length`
       (longer sentences are cut).
    3. `target_pair(sentences)` gives the decoder's input `[START, w1..wn]` and its
       target `[w1..wn, END]`, both of length `n + 1` before padding.
    4. `decode(ids)` maps ids back to text, skipping `PAD` and `START` and stopping
       at the first `END`.

    Args:
        max_tokens: largest vocabulary size, the 4 reserved tokens included, or `None`
            for no limit. Defaults to `None`.
        vocabulary: optional list of tokens to use instead of calling `adapt`;
            the reserved tokens are added in front if it does not start with them.
            Defaults to `None`.

    Example:

    >>> vectorizer = TextVectorizer(max_tokens=100)
    >>> vectorizer.adapt(["Ich bin müde.", "Ich bin hier."])
    >>> vectorizer.get_vocabulary()[4:]
    ['.', 'bin', 'ich', 'hier', 'müde']
    >>> vectorizer.encode(["ich bin hier."]).tolist()
    [[6, 5, 7, 4]]
    >>> vectorizer.decode([6, 5, 7, 4, 2, 0])
    'ich bin hier.'
    """

    def __init__(self, max_tokens=None, vocabulary=None):
        # At least the reserved tokens, which count in the vocabulary size.
        self.max_tokens = check_int(max_tokens, "max_tokens", minimum=len(RESERVED_TOKENS), allow_none=True)
        self._vocabulary = None
        self._index = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # --- vocabulary -------------------------------------------------------------
    def adapt(self, sentences):
        """Build the vocabulary from a list of sentences (replacing any previous one)."""
        sentences = _check_sentences(sentences)
        counts = Counter(token for sentence in sentences for token in tokenize(sentence))
        for token in RESERVED_TOKENS:
            counts.pop(token, None)
        ranked = sorted(counts, key=lambda token: (-counts[token], token))
        if self.max_tokens is not None:
            ranked = ranked[: self.max_tokens - len(RESERVED_TOKENS)]
        self._set(list(RESERVED_TOKENS) + ranked)

    def set_vocabulary(self, vocabulary):
        """Use `vocabulary` (a list of distinct str); reserved tokens are put first."""
        vocabulary = _check_sentences(vocabulary, "vocabulary")
        if tuple(vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            vocabulary = list(RESERVED_TOKENS) + [t for t in vocabulary if t not in RESERVED_TOKENS]
        duplicates = sorted(t for t, n in Counter(vocabulary).items() if n > 1)
        if duplicates:
            raise ValueError(
                f"`vocabulary` must not repeat tokens. Received: vocabulary with duplicates {duplicates[:10]}"
            )
        if self.max_tokens is not None and len(vocabulary) > self.max_tokens:
            raise ValueError(
                f"`vocabulary` must hold at most max_tokens={self.max_tokens} tokens, the reserved "
                f"ones included. Received: vocabulary with {len(vocabulary)} tokens"
            )
        self._set(vocabulary)

    def _set(self, vocabulary):
        self._vocabulary = list(vocabulary)
        self._index = {token: i for i, token in enumerate(self._vocabulary)}

    def _require_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                "This TextVectorizer has no vocabulary yet: call `adapt(sentences)` or "
                "pass `vocabulary=`."
            )

    def get_vocabulary(self):
        """The vocabulary as a list: `get_vocabulary()[i]` is the token of id `i`."""
        self._require_vocabulary()
        return list(self._vocabulary)

    def vocabulary_size(self):
        """Number of ids, reserved tokens included (the `input_dim` of an Embedding)."""
        self._require_vocabulary()
        return len(self._vocabulary)

    # --- text to ids ------------------------------------------------------------
    def token_ids(self, sentence):
        """The ids of one sentence's tokens, without padding, START or END."""
        self._require_vocabulary()
        return [self._index.get(token, OOV) for token in tokenize(sentence)]

    # --- ids to text ------------------------------------------------------------
    def ids_to_tokens(self, ids):
        """Tokens of one id sequence: `PAD` and `START` skipped, stop at the first `END`."""
        self._require_vocabulary()
        tokens = []
        for i in self._check_ids(ids).tolist():
            if i == END:
                break
            if i not in (PAD, START):
                tokens.append(self._vocabulary[i])
        return tokens

    def ids_to_text(self, ids):
        """Text of one id sequence: `detokenize(ids_to_tokens(ids))`."""
        return detokenize(self.ids_to_tokens(ids))

    # --- saving -----------------------------------------------------------------
    def get_config(self):
        """A JSON-friendly dict; `TextVectorizer.from_config(config)` rebuilds it."""
        vocabulary = None if self._vocabulary is None else list(self._vocabulary)
        return {"max_tokens": self.max_tokens, "vocabulary": vocabulary}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        size = "not adapted" if self._vocabulary is None else f"vocabulary_size={len(self._vocabulary)}"
        return f"TextVectorizer(max_tokens={self.max_tokens}, {size})"
