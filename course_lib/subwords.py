"""A subword vocabulary learned with SentencePiece: almost nothing is out of vocabulary.

A word-level vocabulary of a few thousand words leaves many words of new sentences
unknown (lesson 04 measures 14-18% of the test tokens). Byte-pair encoding (BPE;
Sennrich et al., 2016) learns a vocabulary of *pieces* instead: start from single
characters, then repeatedly merge the most frequent adjacent pair into a new piece,
until the vocabulary has the size asked for. Frequent words end up as one piece,
rare words as a few (`▁Sä ug ling`), and any word can be written, at worst letter by
letter. `SubwordVectorizer` wraps Google's SentencePiece library (its BPE trainer),
with the course's reserved ids (`course_lib.tokens`: PAD 0, START 1, END 2, OOV 3),
and the interface of `course_lib.text.TextVectorizer` (`encode`, `target_pair`,
`decode`).

Training is deterministic: the same sentences and arguments give the same pieces on
every machine (`fingerprint()` says which vocabulary a model was trained with).
Case is kept, so translations are scored as published systems are (cased BLEU, chrF).
"""

import base64
import hashlib

from course_lib.checks import check_choice, check_int, message
from course_lib.text import Vectorizer, _check_sentences
from course_lib.tokens import END, OOV, PAD, RESERVED_TOKENS, START

MODEL_TYPES = ("bpe", "unigram")


def _sentencepiece():
    try:
        import sentencepiece
    except ImportError as error:  # pragma: no cover - installed by the course's set-up
        raise ImportError(
            "SubwordVectorizer needs the `sentencepiece` package: `pip install sentencepiece` "
            "(`python3 course.py setup` installs it)."
        ) from error
    return sentencepiece


class SubwordVectorizer(Vectorizer):
    """Subword vocabulary (SentencePiece BPE): sentences to padded id arrays and back.

    1. `adapt(sentences)` learns `vocabulary_size` pieces from the sentences (the
       reserved tokens included); spaces become the `▁` that starts a word's first
       piece, so that decoding restores them exactly.
    2. `encode`, `target_pair` and `decode` work as in `TextVectorizer`: ids
       right-padded with `PAD`, `[START, ...]` / `[..., END]` teacher-forcing pairs,
       text back from ids (stopping at the first `END`).

    Args:
        vocabulary_size: number of ids, the 4 reserved ones included. Defaults to
            `8000`.
        model_type: `"bpe"` (byte-pair encoding) or `"unigram"` (SentencePiece's
            unigram language model). Defaults to `"bpe"`.
        model: optional serialized SentencePiece model (bytes), as `get_config()`
            stores it, to use instead of calling `adapt`. Defaults to `None`.

    Example:

    >>> sentences = ["the cat sat on the mat", "the dog sat on the log"] * 20
    >>> vectorizer = SubwordVectorizer(vocabulary_size=30)
    >>> vectorizer.adapt(sentences)
    >>> vectorizer.vocabulary_size()
    30
    >>> ids = vectorizer.encode(["the cat sat"])
    >>> vectorizer.decode(ids[0])
    'the cat sat'
    >>> vectorizer.pieces("the cog")  # an unseen word, written in pieces
    ['▁the', '▁c', 'og']
    """

    def __init__(self, vocabulary_size=8000, model_type="bpe", model=None):
        self._size = check_int(vocabulary_size, "vocabulary_size", minimum=len(RESERVED_TOKENS) + 1)
        self.model_type = check_choice(model_type, "model_type", MODEL_TYPES)
        self._processor = None
        if model is not None:
            self._load(model)

    def adapt(self, sentences):
        """Learn the pieces from a list of sentences (replacing any previous vocabulary)."""
        import io

        sentences = _check_sentences(sentences)
        model = io.BytesIO()
        _sentencepiece().SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=self._size,
            model_type=self.model_type,
            character_coverage=1.0,  # every character of the training text gets an id
            pad_id=PAD, bos_id=START, eos_id=END, unk_id=OOV,
            pad_piece="<pad>", bos_piece=RESERVED_TOKENS[START], eos_piece=RESERVED_TOKENS[END],
            unk_piece=RESERVED_TOKENS[OOV],
            num_threads=1,
            minloglevel=2,  # no log lines
        )
        self._load(model.getvalue())

    def _load(self, model):
        if not isinstance(model, (bytes, bytearray)):
            raise TypeError(message("model", "a serialized SentencePiece model (bytes)", model))
        try:
            processor = _sentencepiece().SentencePieceProcessor(model_proto=bytes(model))
        except RuntimeError as error:
            raise ValueError(message("model", "a serialized SentencePiece model", model)) from error
        if processor.get_piece_size() != self._size:
            raise ValueError(
                f"`model` must have vocabulary_size={self._size} pieces. "
                f"Received: model with {processor.get_piece_size()} pieces"
            )
        self._processor = processor
        self._model = bytes(model)

    def _require_model(self):
        if self._processor is None:
            raise ValueError("This SubwordVectorizer has no vocabulary yet: call `adapt(sentences)` first.")
        return self._processor

    def vocabulary_size(self):
        """Number of ids, reserved tokens included (the `input_dim` of an Embedding)."""
        return self._require_model().get_piece_size()

    def get_vocabulary(self):
        """The pieces as a list: `get_vocabulary()[i]` is the piece of id `i`."""
        processor = self._require_model()
        return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]

    def fingerprint(self):
        """A short hash of the pieces, in order: equal fingerprints, equal vocabularies."""
        return hashlib.sha256("\n".join(self.get_vocabulary()).encode("utf-8")).hexdigest()[:16]

    def pieces(self, sentence):
        """The pieces of one sentence, as strings (`▁` marks the start of a word)."""
        _check_sentences([sentence], "sentence")
        return self._require_model().encode(sentence, out_type=str)

    def token_ids(self, sentence):
        """The ids of one sentence's pieces, without padding, START or END."""
        return list(self._require_model().encode(sentence))

    def ids_to_text(self, ids):
        """Text of one id sequence: `PAD` and `START` skipped, stop at the first `END`."""
        processor = self._require_model()
        kept = []
        for i in self._check_ids(ids).tolist():
            if i == END:
                break
            if i not in (PAD, START):
                kept.append(i)
        return processor.decode(kept)

    def get_config(self):
        """A JSON-friendly dict (the model as base64); `from_config` rebuilds it."""
        model = None if self._processor is None else base64.b64encode(self._model).decode("ascii")
        return {"vocabulary_size": self._size, "model_type": self.model_type, "model": model}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("model") is not None:
            config["model"] = base64.b64decode(config["model"])
        return cls(**config)

    def __repr__(self):
        state = "not adapted" if self._processor is None else f"fingerprint={self.fingerprint()}"
        return f"SubwordVectorizer(vocabulary_size={self._size}, {state})"
