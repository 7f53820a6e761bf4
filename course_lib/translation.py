"""Translating a test set and scoring it: the helpers of lessons 04, 09 and 12.

* `translation_vectorizer()`: the course's translation vocabulary, one SentencePiece
  BPE vocabulary shared by English and German, learned from the training sentences
  of `course_lib.datasets.load_de_en_pairs` (deterministic: the same pieces and
  `fingerprint()` on every machine). Lessons 04 and 09, `python -m course_lib.train`
  and `course_lib.pretrained` all use it.
* `translate(model, source_ids, target_vectorizer, max_length)`: greedy translations
  (`course_lib.decoding.greedy_decode`; `beam_width=k` for `beam_search`) of many
  source sentences, in batches, as text.
  A `build_seq2seq` model decodes with a compiled step (`rnn_next_token_function`);
  `source_width` pads every batch to one shape, so a compiled step is traced once.
* `corpus_scores(hypotheses, references)`: corpus BLEU and chrF (`sacrebleu`).

Score texts in one form: `course_lib.text.normalize` puts a reference (or a source
sentence, for the copy baseline) in the form `TextVectorizer.decode` writes; a
`SubwordVectorizer` keeps case and spacing, so its outputs are scored against the raw
references (cased BLEU and chrF, as published systems are). The copy baseline, which
"translates" by copying the source sentence unchanged, is the score a model must beat:
chrF is not 0 for it, since names, numbers and cognates share characters across
languages.
"""

import functools
import weakref

import numpy as np

from course_lib.checks import check_positive_int, message
from course_lib.decoding import NextTokenFunction, beam_search, greedy_decode
from course_lib.tokens import PAD

VOCABULARY_SIZE = 6000  # pieces of the course's translation vocabulary, reserved ids included


@functools.lru_cache(maxsize=4)
def _vocabulary_model(vocabulary_size):
    from course_lib.datasets import load_de_en_pairs
    from course_lib.subwords import SubwordVectorizer

    (english, german), _, _ = load_de_en_pairs()
    vectorizer = SubwordVectorizer(vocabulary_size=vocabulary_size)
    vectorizer.adapt(english + german)
    return vectorizer.get_config()


def translation_vectorizer(vocabulary_size=VOCABULARY_SIZE, sentences=None):
    """The course's translation vocabulary: one SentencePiece BPE model for both languages.

    Learned from the training sentences of `load_de_en_pairs()`, English and German
    together (a joint vocabulary, so a Transformer can share one embedding table and
    names and numbers keep their pieces across the languages), in about a second. The
    training is deterministic: every call, on every machine, gives the same pieces, and
    `fingerprint()` identifies them (`course_lib.pretrained` checks it when it loads
    weights). Neither the validation nor the test sentences, nor the lexicon, take part.

    Args:
        vocabulary_size: number of pieces, the 4 reserved ids included. Defaults to
            `VOCABULARY_SIZE` (6000).
        sentences: a list of str to learn the pieces from instead (for experiments
            and tests). Defaults to `None` (the training sentences, both languages).

    Returns:
        A new `course_lib.subwords.SubwordVectorizer` (the training is cached: later
        calls with the same size cost milliseconds).

    Example:

    >>> vectorizer = translation_vectorizer(30, sentences=["the cat sat", "die Katze saß"] * 10)
    >>> vectorizer.vocabulary_size(), vectorizer.decode(vectorizer.encode(["die cat"])[0])
    (30, 'die cat')
    """
    from course_lib.subwords import SubwordVectorizer

    vocabulary_size = check_positive_int(vocabulary_size, "vocabulary_size")
    if sentences is not None:
        vectorizer = SubwordVectorizer(vocabulary_size=vocabulary_size)
        vectorizer.adapt(sentences)
        return vectorizer
    return SubwordVectorizer.from_config(_vocabulary_model(vocabulary_size))


_COMPILED_RNN_STEPS = weakref.WeakKeyDictionary()  # model -> (compiled encoder, compiled step)


def _rnn_parts(model):
    from course_lib.seq2seq import _seq2seq_parts

    return _seq2seq_parts(model)


def rnn_next_token_function(model, source_tokens):
    """`course_lib.seq2seq.next_token_function`, with the encoder and the decoder step compiled.

    The same maths (`RNNEncoder`, then `AttentionDecoder.step` per token, the RNN state
    carried), run by a function compiled once per model (`tf.function` with a signature
    of free batch size and length on TensorFlow, `jax.jit` on JAX) instead of eagerly:
    several times faster per token, and the same tokens and weights.

    Args:
        model: a model from `course_lib.seq2seq.build_seq2seq`.
        source_tokens: integer array `(batch_size, S)`, padded with 0.

    Returns:
        A `course_lib.decoding.NextTokenFunction`.

    Example:

    >>> from course_lib.seq2seq import build_seq2seq
    >>> model = build_seq2seq(12, 12, embedding_dim=4, units=6, attention="luong")
    >>> sources = np.array([[3, 4, 5], [6, 0, 0]])
    >>> fast, _ = greedy_decode(rnn_next_token_function(model, sources), max_length=4)
    >>> bool((fast == greedy_decode(model, sources, max_length=4)[0]).all())
    True
    """
    import keras
    from keras import ops

    from course_lib.transformer_model import _compile

    parts = _rnn_parts(model)
    if parts is None:
        raise ValueError(message("model", "a model from `build_seq2seq`", model))
    encoder, decoder = parts
    source = np.asarray(source_tokens)
    if source.ndim != 2 or not np.issubdtype(source.dtype, np.integer):
        raise ValueError(message("source_tokens", "an integer array of shape (batch_size, S)", source))
    if model not in _COMPILED_RNN_STEPS:
        dtype, units = decoder.compute_dtype, decoder.units
        state = keras.KerasTensor((None, units), dtype)
        state = state if decoder.cell == "gru" else [state, keras.KerasTensor((None, units), dtype)]
        specs = [keras.KerasTensor((None,), "int32"), state, keras.KerasTensor((None, None, encoder.units), dtype),
                 keras.KerasTensor((None, None), "bool")]
        _COMPILED_RNN_STEPS[model] = (
            _compile(lambda tokens: encoder(tokens), model.variables, [keras.KerasTensor((None, None), "int32")]),
            _compile(decoder.step, model.variables, specs),
        )
    encode, decode_step = _COMPILED_RNN_STEPS[model]
    source = ops.convert_to_tensor(source, dtype="int32")
    encoder_outputs, state = encode(source)
    mask = ops.not_equal(source, PAD)

    def step(prefix, state, index):
        tokens = ops.convert_to_tensor(prefix[:, index], dtype="int32")  # (batch,)
        logits, state, weights = decode_step(tokens, state, encoder_outputs, mask)
        return logits, weights, state

    return NextTokenFunction(step, batch_size=int(mask.shape[0]), initial_state=state)


def _batch_of_ids(rows):
    """A list of 1-D id sequences as one right-padded int32 array."""
    width = max(1, max(len(row) for row in rows))
    batch = np.full((len(rows), width), PAD, dtype="int32")
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return batch


def _fixed_shape(batch, rows, width):
    """`batch` (n, S) padded with PAD to exactly `(rows, width)`; an error if S is too wide."""
    lengths = np.sum(batch != PAD, axis=1)
    if lengths.max(initial=0) > width:
        raise ValueError(message("source_width", f"at least the longest source ({int(lengths.max())} tokens)", width))
    fixed = np.full((rows, width), PAD, dtype="int32")
    cut = batch[:, :width]
    fixed[: len(batch), : cut.shape[1]] = cut
    return fixed


def translate(model, source_ids, target_vectorizer, max_length, batch_size=512, source_width=None, beam_width=None,
              length_penalty=0.6):
    """Greedy (or beam-search) translations of many source sentences, in batches, as text.

    Each batch of `batch_size` sources goes through `greedy_decode(model, batch,
    max_length=max_length)` (or `beam_search(model, batch, max_length, beam_width,
    length_penalty)` when `beam_width` is given), and its tokens through
    `target_vectorizer.decode`. A
    `build_seq2seq` model decodes through `rnn_next_token_function` (compiled; the same
    tokens as its eager step, several times faster).

    A compiled step is traced once per input shape on JAX (and a `jax.jit` trace costs
    seconds): `source_width` gives every batch one shape, `(batch_size, source_width)`,
    the last batch filled up with empty sources (whose outputs are dropped).

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
        source_width: pad every batch to `(batch_size, source_width)`; no source may be
            longer. Defaults to `None` (each batch as wide as its longest source, the
            last batch as long as what is left).
        beam_width: decode with `course_lib.decoding.beam_search` keeping this many
            beams per sentence (`batch_size * beam_width` sequences run at once).
            Defaults to `None` (greedy decoding).
        length_penalty: `beam_search`'s length penalty exponent (with `beam_width`
            only). Defaults to `0.6`.

    Returns:
        `(texts, tokens, weights)`, three lists with one entry per sentence: the
        translation as text, its generated ids (a 1-D int32 array, the width of its
        batch), and its attention weights `(L, S)` (`None` when the model gives none,
        and with beam search).

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
    source_width = check_positive_int(source_width, "source_width", allow_none=True)
    beam_width = check_positive_int(beam_width, "beam_width", allow_none=True)
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
        count = len(batch)
        if source_width is not None:
            batch = _fixed_shape(batch, batch_size, source_width)
        beam_sources = batch if beam_width is None else np.repeat(batch, beam_width, axis=0)  # one row per beam
        decoder = rnn_next_token_function(model, beam_sources) if _rnn_parts(model) is not None else model
        sources = None if decoder is not model else batch
        if beam_width is None:
            tokens, step_weights = greedy_decode(decoder, sources, max_length=max_length)
        else:
            tokens, _ = beam_search(decoder, sources, max_length=max_length, beam_width=beam_width,
                                    length_penalty=length_penalty)
            step_weights = None
        tokens = tokens[:count]
        step_weights = None if step_weights is None else step_weights[:count]
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


_PUNCTUATION = ".,;:!?\"'()[]{}«»„“”‚‘’…-–—/"


def piece_words(pieces):
    """Group SentencePiece pieces into words: `(word, [piece indices])` per word.

    A piece that starts with `▁` starts a word; the others continue it. The word is
    lowercased, without the `▁` and without punctuation at its ends (`"▁Haus" "."` is
    the word `haus`); a word left empty (a lone `"▁."`) is left out.

    Example:

    >>> piece_words(["▁Das", "▁Haus", "chen", ".", "▁?"])
    [('das', [0]), ('hauschen', [1, 2, 3])]
    """
    words = []
    for index, piece in enumerate(pieces):
        if piece.startswith("▁") or not words:
            words.append(["", []])
        words[-1][0] += piece.lstrip("▁")
        words[-1][1].append(index)
    cleaned = [(text.strip(_PUNCTUATION).lower(), indices) for text, indices in words]
    return [(text, indices) for text, indices in cleaned if text]


def lexical_alignment(weights, source_pieces, target_pieces, dictionary):
    """Does attention land on the source word that the dictionary says a generated word translates?

    For each generated target word that has exactly one dictionary translation among
    the source words, the attention weights are summed over each source word's pieces
    and averaged over the target word's pieces (steps); the step counts as a hit when
    the source word with the largest weight is that translation. Picking a source word
    at random would hit with probability `1 / (number of source words)`: the chance
    level, summed alongside.

    Args:
        weights: `(T, S)` attention weights of one sentence (generated piece `t`, source piece `s`).
        source_pieces: the `S` source pieces (str; padding left out).
        target_pieces: the generated pieces (str), at least the `T` rows of `weights` that are used.
        dictionary: a dict from a target word (lowercase) to a set of source words (lowercase).

    Returns:
        `(hits, counted, chance)`: the number of hits, of words counted, and the sum of
        their chance levels (`hits / counted` against `chance / counted`).

    Example:

    >>> weights = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    >>> lexical_alignment(weights, ["▁the", "▁house", "."], ["▁das", "▁Haus", "."],
    ...                   {"haus": {"house"}, "das": {"the", "that"}})
    (2, 2, 1.0)
    """
    weights = np.asarray(weights)
    source_words = piece_words(list(source_pieces))
    if not source_words:
        return 0, 0, 0.0
    # (T, S) -> (T, number of source words): the weight on each source word
    by_word = np.stack([weights[:, indices].sum(axis=1) for _, indices in source_words], axis=1)
    texts = [text for text, _ in source_words]
    hits = counted = 0
    chance = 0.0
    for word, steps in piece_words(list(target_pieces)[: len(weights)]):
        matches = [j for j, text in enumerate(texts) if text in dictionary.get(word, ())]
        if len(matches) != 1:
            continue
        counted += 1
        chance += 1.0 / len(texts)
        hits += int(np.argmax(by_word[steps].mean(axis=0)) == matches[0])
    return hits, counted, chance


def word_dictionary(source_words, target_words):
    """A dict from each one-word target entry (lowercase) to its one-word source
    translations: what `lexical_alignment` checks against. Entries of several words
    on either side are left out.

    Example:

    >>> word_dictionary(["house", "at home", "home"], ["Haus", "zu Hause", "Heim"])
    {'haus': {'house'}, 'heim': {'home'}}
    """
    dictionary = {}
    for source, target in zip(source_words, target_words):
        source, target = source.strip(_PUNCTUATION).lower(), target.strip(_PUNCTUATION).lower()
        if source and target and " " not in source and " " not in target:
            dictionary.setdefault(target, set()).add(source)
    return dictionary
