"""Translating a test set and scoring it: the helpers of lessons 04, 09 and 12.

* `translate(model, source_ids, target_vectorizer, max_length)`: greedy translations
  (`course_lib.decoding.greedy_decode`) of many source sentences, in batches, as text.
* `corpus_scores(hypotheses, references)`: corpus BLEU and chrF (`sacrebleu`).

Score texts in one form: `course_lib.text.normalize` puts a reference (or a source
sentence, for the copy baseline) in the form `TextVectorizer.decode` writes. The copy
baseline, which "translates" by copying the source sentence unchanged, is the score a
model must beat: chrF is not 0 for it, since names, numbers and cognates share
characters across languages.
"""

import numpy as np

from course_lib.checks import check_positive_int, message
from course_lib.decoding import greedy_decode
from course_lib.tokens import PAD


def _batch_of_ids(rows):
    """A list of 1-D id sequences as one right-padded int32 array."""
    width = max(1, max(len(row) for row in rows))
    batch = np.full((len(rows), width), PAD, dtype="int32")
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch


def translate(model, source_ids, target_vectorizer, max_length, batch_size=512):
    """Greedy translations of many source sentences, in batches, as text.

    Each batch of `batch_size` sources goes through `greedy_decode(model, batch,
    max_length=max_length)`, and its tokens through `target_vectorizer.decode`.

    Args:
        model: anything `greedy_decode` accepts with sources: a model from
            `course_lib.seq2seq.build_seq2seq` (or any model with a registered
            next-token provider), or a function `next_token_logits(source, prefix)`.
        source_ids: the source token ids: an integer array `(num_sentences, S)`
            padded with 0, or a list of 1-D id sequences (each batch is then padded
            to its longest).
        target_vectorizer: a `course_lib.text.TextVectorizer` (anything with a
            `decode(ids_2d) -> list of str`) of the target language.
        max_length: the most tokens to generate per sentence (END included).
        batch_size: sentences decoded at once. Defaults to `512`.

    Returns:
        `(texts, tokens, weights)`, three lists with one entry per sentence: the
        translation as text, its generated ids (a 1-D int32 array, the width of its
        batch), and its attention weights `(L, S)` (`None` when the model gives none).

    Example:

    >>> from course_lib.text import TextVectorizer
    >>> german = TextVectorizer(vocabulary=["ja", "nein"])  # ids 4 and 5
    >>> def always_ja(source, prefix):  # "ja", then END
    ...     token = 4 if prefix.shape[1] == 1 else 2
    ...     return np.eye(6, dtype="float32")[[token] * len(source)]
    >>> texts, tokens, weights = translate(always_ja, np.array([[7, 8], [9, 0], [7, 0]]),
    ...                                    german, max_length=5, batch_size=2)
    >>> texts, tokens[0].tolist(), weights[0]
    (['ja', 'ja', 'ja'], [4, 2], None)
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not hasattr(target_vectorizer, "decode"):
        raise TypeError(message("target_vectorizer", "a TextVectorizer (with a `decode` method)", target_vectorizer))
    array = source_ids if isinstance(source_ids, np.ndarray) else None
    if array is not None and array.ndim != 2:
        raise ValueError(message("source_ids", "an integer array (num_sentences, S) or a list of id sequences", array))
    texts, rows, weights = [], [], []
    for start in range(0, len(source_ids), batch_size):
        if array is not None:
            batch = array[start : start + batch_size]
        else:
            batch = _batch_of_ids([np.asarray(row) for row in source_ids[start : start + batch_size]])
        tokens, step_weights = greedy_decode(model, batch, max_length=max_length)
        texts.extend(target_vectorizer.decode(tokens))
        rows.extend(tokens)
        weights.extend(step_weights if step_weights is not None else [None] * len(tokens))
    return texts, rows, weights


def _check_texts(texts, name):
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise TypeError(message(name, "a list of str", texts))
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(message(f"{name}[{index}]", "a str", text))
    return texts


def corpus_scores(hypotheses, references):
    """Corpus BLEU and chrF of translations against one reference each, with sacrebleu.

    * BLEU (Papineni et al., 2002): the geometric mean of the clipped n-gram
      precisions, n = 1..4, times a brevity penalty (`sacrebleu.corpus_bleu`).
    * chrF (Popović, 2015): an F-score over character n-grams up to 6, which gives
      partial credit for a right stem with a wrong ending (`sacrebleu.corpus_chrf`).

    Both are 0 to 100, higher is better. The texts are compared as given: put both
    sides in one form first (`course_lib.text.normalize`).

    Args:
        hypotheses: list of str, the translations.
        references: list of str of the same length, one reference translation each.

    Returns:
        `{"BLEU": float, "chrF": float}`.

    Example:

    >>> references = ["das ist gut.", "ich bin hier."]
    >>> {name: round(score, 1) for name, score in corpus_scores(references, references).items()}
    {'BLEU': 100.0, 'chrF': 100.0}
    >>> corpus_scores(["nein.", "nein."], references)["chrF"] < 10
    True
    """
    hypotheses, references = _check_texts(hypotheses, "hypotheses"), _check_texts(references, "references")
    if len(hypotheses) != len(references) or not references:
        raise ValueError(
            "`hypotheses` and `references` must be non-empty lists of the same length. Received: "
            f"{len(hypotheses)} hypotheses and {len(references)} references"
        )
    try:
        import sacrebleu  # only here: the rest of course_lib does not need it
    except ImportError as error:
        raise ImportError(
            "`corpus_scores` needs the package sacrebleu: `pip install sacrebleu` "
            "(`python3 course.py setup` installs it)."
        ) from error
    return {
        "BLEU": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
        "chrF": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
    }
