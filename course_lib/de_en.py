"""English-German sentence pairs out of the TU Chemnitz dictionary's lines (lessons 04, 09).

`parse_de_en_lines` is the pure parser behind `course_lib.datasets.load_de_en_pairs`:
lines of text in, sorted unique `(english, german)` pairs out, no file and no network.
"""

import re

from course_lib.checks import message

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\([^()]*\)")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([.,!?:])")
_ENDS_SENTENCE = re.compile(r"[.!?]")
_PLACEHOLDER = re.compile(r"\b(?:sb|sth|jd|jdn|jdm|jds|etw)\.")
DE_EN_MIN_WORDS = 3
DE_EN_MAX_CHARS = 200


def _clean_de_en_text(text):
    text = _ANNOTATION.sub(" ", text)
    text = text.split(";")[0]  # the first of a `;` list of synonyms
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


def _looks_like_sentence(text):
    return (
        text[:1].isupper()
        and text[-1:] in (".", "!", "?")
        and len(text.split()) >= DE_EN_MIN_WORDS
        and len(text) <= DE_EN_MAX_CHARS
        and not any(c in text for c in "(){}[]<>")
        and not _PLACEHOLDER.search(text)
    )


def _aligned_alternatives(lines):
    """Steps 1-3 of `parse_de_en_lines`: for each usable line, its German and its
    English alternatives (two lists of str of the same length, not cleaned yet)."""
    if isinstance(lines, (str, bytes)):
        raise TypeError(message("lines", "an iterable of lines, not one string (use `text.splitlines()`)", lines))
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(message("line", "a str (every line)", line))
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sides = line.split(" :: ")
        if len(sides) != 2:
            continue
        german_alternatives, english_alternatives = (side.split(" | ") for side in sides)
        if len(german_alternatives) == len(english_alternatives):
            yield german_alternatives, english_alternatives


def parse_de_en_lines(lines):
    """English-German sentence pairs from lines of the TU Chemnitz dictionary.

    The dictionary's lines read `German :: English`; each side lists aligned
    alternatives separated by ` | `, each alternative may list synonyms separated by
    `;`, and annotations sit in `{}` (gender, word class), `[]` (field, register),
    `<>` (spelling variants) and `()` (optional words, glosses). The rule:

    1. Skip blank lines and lines starting with `#`.
    2. Split the line on ` :: `; skip it unless there are exactly two parts
       (German, English).
    3. Split both sides on ` | `; skip the line unless both sides have the same
       number of alternatives; pair the i-th German with the i-th English one.
    4. Clean each side: remove the `{...}`, `[...]`, `<...>` and `(...)` annotations,
       keep what comes before the first `;` (the first synonym), collapse
       whitespace, and remove a space before `.`, `,`, `!`, `?` or `:`.
    5. Keep the pair only if both sides look like sentences: they start with an
       uppercase letter, end in `.`, `!` or `?`, have at least `DE_EN_MIN_WORDS` (3)
       words and at most `DE_EN_MAX_CHARS` (200) characters, contain no bracket left
       over, and contain no dictionary placeholder (`sb.`, `sth.`, `jd.`, `jdn.`,
       `jdm.`, `jds.`, `etw.`).
    6. Keep each `(english, german)` pair once; sort the pairs.

    Args:
        lines: an iterable of str (e.g. an open text file), one dictionary line each.

    Returns:
        A sorted list of unique `(english, german)` tuples of str.

    Example:

    >>> parse_de_en_lines(["Er ist krank. [med.] | Haus {n} :: He is ill. | house"])
    [('He is ill.', 'Er ist krank.')]
    """
    pairs = set()
    for german_alternatives, english_alternatives in _aligned_alternatives(lines):
        for german, english in zip(german_alternatives, english_alternatives):
            if not (_ENDS_SENTENCE.search(german) and _ENDS_SENTENCE.search(english)):
                continue  # a shortcut: a sentence ends in . ! or ?, so holds one
            german, english = _clean_de_en_text(german), _clean_de_en_text(english)
            if _looks_like_sentence(german) and _looks_like_sentence(english):
                pairs.add((english, german))
    return sorted(pairs)


_INFINITIVE = re.compile(r"^to ")
DE_EN_LEXICON_MAX_WORDS = 4


def _clean_lexicon_text(text):
    text = _PLACEHOLDER.sub(" ", _clean_de_en_text(text))
    return " ".join(text.split()).strip(" ,;:/")


def parse_de_en_lexicon(lines, held_out=()):
    """Word and phrase pairs (the dictionary entries themselves) from the same lines.

    The dictionary's entries translate words and short phrases (`Haus {n} :: house`),
    which a translation model can learn as extra training pairs ("lexicon
    augmentation"). The rule, for lines read as in `parse_de_en_lines` (steps 1-3):

    1. Skip a whole line if any of its alternatives, cleaned as in
       `parse_de_en_lines`, is one of the sentences in `held_out` (pass the
       validation and test sentences, so that nothing of their lines is trained on).
    2. Clean both sides of each aligned alternative as `parse_de_en_lines` does, and
       also remove the placeholders (`sb.`, `sth.`, `etw.`, `jdn.`, ...) and an
       English infinitive's `to `.
    3. Keep the pair if both sides have 1 to `DE_EN_LEXICON_MAX_WORDS` (4) words, a
       letter, and do not end in `.`, `!` or `?` (sentences are
       `parse_de_en_lines`'s); keep each `(english, german)` pair once; sort them.

    Args:
        lines: an iterable of str, one dictionary line each.
        held_out: sentences (English or German) whose lines must be skipped.
            Defaults to `()`.

    Returns:
        A sorted list of unique `(english, german)` tuples of str.

    Example:

    >>> parse_de_en_lexicon(["Haus {n}; Gebäude {n} | Häuser {pl} :: house; building | houses"])
    [('house', 'Haus'), ('houses', 'Häuser')]
    >>> parse_de_en_lexicon(["krank {adj} | Er ist krank. :: ill | He is ill."], held_out={"He is ill."})
    []
    """
    held_out = frozenset(held_out)
    pairs = set()
    for german_alternatives, english_alternatives in _aligned_alternatives(lines):
        if held_out and any(_clean_de_en_text(a) in held_out for a in german_alternatives + english_alternatives):
            continue
        for german, english in zip(german_alternatives, english_alternatives):
            german, english = _clean_lexicon_text(german), _INFINITIVE.sub("", _clean_lexicon_text(english))
            if all(
                1 <= len(side.split()) <= DE_EN_LEXICON_MAX_WORDS
                and any(c.isalpha() for c in side)
                and side[-1] not in ".!?"  # a sentence (or an abbreviation such as `etc.`)
                for side in (german, english)
            ):
                pairs.add((english, german))
    return sorted(pairs)
