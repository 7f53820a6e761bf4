"""Exercises of lesson 12, "Sentiment analysis with attention".

12.1  attention pooling's weights in numpy (function): one learned query, scaled scores,
      a softmax over the real tokens only;
12.2  how often does removing the most-attended word flip the prediction, against a
      random word? (experiment: the checker re-measures the learner's model on the
      learner's sentences).

Notation as in the lesson: `B` sentences, `T` length, `C` width, `q` the query `(C,)`,
`mask` True at real tokens.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, register

# 12.1 ------------------------------------------------------------------------------


def _pooling_weights(x, q, mask):
    x, q, mask = np.asarray(x, "float64"), np.asarray(q, "float64"), np.asarray(mask, bool)
    scores = np.where(mask, x @ q / np.sqrt(x.shape[-1]), -np.inf)  # (B, T)
    top = np.where(mask.any(axis=-1, keepdims=True), scores.max(axis=-1, keepdims=True), 0.0)
    e = np.where(mask, np.exp(scores - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def _unscaled(x, q, mask):
    return _pooling_weights(np.asarray(x, "float64") * np.sqrt(np.asarray(x).shape[-1]), q, mask)


def _unmasked(x, q, mask):
    return _pooling_weights(x, q, np.ones(np.asarray(mask).shape, bool))


def _case(seed, batch, length, width, lengths, description):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, length, width)).round(2)
    q = rng.normal(size=width).round(2) * 2
    mask = np.arange(length)[None, :] < np.asarray(lengths)[:, None]
    return Case(description, _pooling_weights(x, q, mask), args=(x, q, mask))


register(
    Exercise(
        key="12.1",
        question=(
            "Write `my_pooling_weights(x, q, mask)` in numpy: the weights of `AttentionPooling` for inputs "
            "`x` (B, T, C), a query `q` (C,) and a boolean `mask` (B, T), True at real tokens. Scores "
            "x_t . q / sqrt(C), a softmax over the real tokens of each sentence, exactly 0 at padding "
            "(and 0 everywhere in a sentence without a real token). Return an array (B, T)."
        ),
        cases=(
            _case(0, 2, 5, 4, [5, 3], "2 sentences of 5 positions, the second with 2 padded ones, C = 4"),
            _case(1, 3, 4, 9, [1, 4, 2], "3 sentences, one of a single real token, C = 9"),
            _case(2, 1, 6, 16, [6], "1 sentence without padding, C = 16, large scores"),
            _case(3, 2, 3, 4, [0, 3], "a sentence with no real token at all (first row), C = 4"),
        ),
        solution=_pooling_weights,
        hint=(
            "Compute the scores, set those of padded positions to -inf (their exp is exactly 0), subtract "
            "each row's largest allowed score before exp, and divide by the row's sum where it is not 0. "
            "`course_lib.attention_pooling.AttentionPooling` does the same in keras.ops."
        ),
        mistakes=(
            ("the scores are not divided by sqrt(C)", _unscaled),
            ("padded positions get weight: the softmax must run over the real tokens only", _unmasked),
        ),
    )
)


# 12.2 ------------------------------------------------------------------------------


def flips(model, tokens, scores, candidates=None):
    """How many sentences change their predicted class when the one candidate token with the
    highest score is removed."""
    from course_lib import faithfulness as fa

    tokens = np.asarray(tokens)
    candidates = (tokens != 0) if candidates is None else (np.asarray(candidates, bool) & (tokens != 0))
    before = fa.predict_probabilities(model, tokens).argmax(axis=1)
    after = fa.predict_probabilities(model, fa.remove_tokens(tokens, fa.top_k_positions(scores, 1, candidates)))
    return int((after.argmax(axis=1) != before).sum())


def _read_count(value, what, n):
    value = as_number(value, what)
    if 0 < value < 1 and n > 1:
        value = value * n  # a fraction of the sentences
    return value


def _check_flips(answer):
    import keras

    from course_lib import faithfulness as fa

    if not isinstance(answer, (tuple, list)) or len(answer) != 4:
        raise AnswerError("give a tuple of 4 items: (model, tokens, attention_flips, random_flips)")
    model, tokens, attention_flips, random_flips = answer
    if not isinstance(model, keras.Model):
        return "the first item should be your trained attention-pooling model"
    tokens = as_array(tokens, "the tokens (the second item)")
    if tokens.ndim != 2 or not np.all(tokens == np.round(tokens)):
        return "the tokens should be an integer array (sentences, T), as the lesson's `eval_tokens`"
    tokens = tokens.astype("int32")
    n = len(tokens)
    if n < 50:
        return f"use at least 50 sentences (you gave {n}): with fewer, the counts say little"
    attention = flips(model, tokens, fa.attention_weights(model, tokens))
    random = flips(model, tokens, fa.random_scores(tokens, seed=0))
    given_attention = _read_count(attention_flips, "the attention count (the third item)", n)
    given_random = _read_count(random_flips, "the random count (the fourth item)", n)
    if given_attention == random and given_random == attention and attention != random:
        return "the two counts are swapped: attention first, then random words"
    if given_attention != attention:
        return ("your attention count is not what your model gives on your tokens: remove each sentence's "
                "one most-attended word (`top_k_positions(fa.attention_weights(model, tokens), 1, tokens != 0)`) "
                "and count the sentences whose predicted class changes")
    if given_random != random:
        return ("your random count is not what your model gives on your tokens with "
                "`random_scores(tokens, seed=0)`: count the sentences whose predicted class changes")
    return None


register(
    Exercise(
        key="12.2",
        question=(
            "Does the most-attended word matter more than a random one? With the lesson's attention-pooling "
            "model and `eval_tokens`, remove from each sentence its one most-attended word and count the "
            "sentences whose predicted class flips; do the same with one random word "
            "(`random_scores(tokens, seed=0)`). Answer `(model, tokens, attention_flips, random_flips)`. "
            "The checker re-measures your model on your tokens."
        ),
        checker=_check_flips,
        solution=(
            "from course_lib.exercises.lesson12 import flips\n"
            "attention_flips = flips(ap_model, eval_tokens, fa.attention_weights(ap_model, eval_tokens))\n"
            "random_flips = flips(ap_model, eval_tokens, fa.random_scores(eval_tokens, seed=0))\n"
            "answer = (ap_model, eval_tokens, attention_flips, random_flips)\n"
            "\n"
            "Compare the two counts with the erasure curves of section 8 at k = 1: a flip is the\n"
            "largest drop there is, so the counts say how often one word decides the class."
        ),
        hint=(
            "`fa.predict_probabilities(model, tokens).argmax(axis=1)` before and after "
            "`fa.remove_tokens(tokens, fa.top_k_positions(scores, 1, tokens != 0))`; count where they differ."
        ),
    )
)
