"""Is attention an explanation? Attention weights, gradient attributions and erasure (lesson 12).

A heatmap of attention over a sentence looks like an explanation. Whether it is one is
a measurable question (Jain and Wallace, 2019, "Attention is not Explanation";
Wiegreffe and Pinter, 2019, "Attention is not not Explanation"): if the words with the
most attention are the words the prediction rests on, removing them should change the
prediction more than removing random words. This module holds the pieces of that test,
for the classifiers of `course_lib.classifier` and `course_lib.attention_pooling`
(layers named `padding_mask`, `embedding`, `body_0 ...`, `pooling`, `head`):

* `attention_weights(model, tokens)`: one weight per token `(B, T)`: the weights of an
  attention-pooling layer, or the `[CLS]` row (position 0) of the last encoder block's
  attention, averaged over the heads; `encoder_attention` gives every block's maps.
* `gradient_times_input(model, tokens)`: the attribution `sum_c e_tc * dp/de_tc` of the
  predicted class's probability `p` to each token's embedding `e_t` (a first-order
  estimate of what removing the token would change).
* `remove_tokens` and `erasure_curve(model, tokens, scores, ks)`: delete the `k` tokens
  with the highest scores from every sentence and measure the mean drop of the
  probability of the class predicted on the whole sentence, for each `k`;
  `random_scores` gives the chance baseline.
* `rank_correlation(a, b, candidates)`: Spearman's rank correlation of two scorings,
  sentence by sentence, over the candidate positions.

Removing a token deletes it (the tokens after it move one position to the left), so a
sentence with `k` words removed is the sentence a reader would write without them.
`candidates` (boolean `(B, T)`, by default the real tokens) says which positions may be
removed: a `[CLS]` token at position 0 is not a word and stays.

Shape letters: `B` sentences, `T` length, `N` heads, `C` width.
"""

import numpy as np

import keras
from keras import ops

from course_lib.checks import check_int, check_seed, message
from course_lib.tokens import PAD


def _tokens(tokens):
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(message("tokens", "an integer array (batch_size, T)", tokens))
    return tokens.astype("int32")


def _candidates(candidates, tokens):
    if candidates is None:
        return tokens != PAD
    candidates = np.asarray(candidates, dtype=bool)
    if candidates.shape != tokens.shape:
        raise ValueError(f"`candidates` must have the shape of `tokens` {tokens.shape}. "
                         f"Received: candidates with shape {candidates.shape}")
    return candidates & (tokens != PAD)


def _scores(scores, tokens, name="scores"):
    scores = np.asarray(ops.convert_to_numpy(scores), dtype="float64")
    if scores.shape != tokens.shape:
        raise ValueError(f"`{name}` must have the shape of `tokens` {tokens.shape}. "
                         f"Received: {name} with shape {scores.shape}")
    return scores


def predict_probabilities(model, tokens, batch_size=256):
    """The model's class probabilities `(B, classes)` as numpy, batch by batch (inference mode)."""
    tokens = _tokens(tokens)
    parts = [ops.convert_to_numpy(model(tokens[i : i + batch_size], training=False))
             for i in range(0, len(tokens), batch_size)]
    return np.concatenate(parts).astype("float64")


def _inputs_of(model, name):
    """The symbolic inputs `(h, mask)` that layer `name` of `model` was called with."""
    inputs = model.get_layer(name).input
    h = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    return h, model.get_layer("padding_mask").output


def encoder_attention(model, tokens):
    """The attention maps of every encoder block of a Transformer classifier.

    Returns:
        A list, first block to last, of numpy arrays `(B, N, T, T)`: row `i` is what
        position `i` attends to; padded keys get exactly 0.
    """
    tokens = _tokens(tokens)
    names = [layer.name for layer in model.layers if layer.name.startswith("body_")]
    if not names or not hasattr(model.get_layer(names[0]), "intermediate_dim"):
        raise ValueError(message("model", "a classifier with Transformer blocks (body='transformer')", model.name))
    maps = []
    for name in names:
        h, mask = _inputs_of(model, name)
        h, mask = keras.Model(model.input, [h, mask])(tokens, training=False)
        _, scores = model.get_layer(name)(h, padding_mask=mask, return_attention_scores=True, training=False)
        maps.append(ops.convert_to_numpy(scores).astype("float64"))  # (B, N, T, T)
    return maps


def attention_weights(model, tokens):
    """One attention weight per token `(B, T)`, numpy.

    * A model whose `pooling` layer is an `AttentionPooling`: its weights (they sum to
      1 over the real tokens).
    * A Transformer classifier: the last block's attention from position 0 (the
      `[CLS]` token's row), averaged over the heads.
    """
    from course_lib.attention_pooling import AttentionPooling

    tokens = _tokens(tokens)
    pooling = model.get_layer("pooling")
    if isinstance(pooling, AttentionPooling):
        h, mask = keras.Model(model.input, list(_inputs_of(model, "pooling")))(tokens, training=False)
        _, weights = pooling(h, padding_mask=mask, return_attention_scores=True)
        return ops.convert_to_numpy(weights).astype("float64")  # (B, T)
    return encoder_attention(model, tokens)[-1][:, :, 0, :].mean(axis=1)  # (B, N, T, T) -> (B, T)


def _gradient(function, x):
    """The gradient of `sum(function(x))` with respect to `x`, on TensorFlow or JAX."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(function(x))
        return tape.gradient(total, x)
    if backend == "jax":
        import jax

        return jax.grad(lambda v: function(v).sum())(x)
    raise NotImplementedError(f"gradient_times_input runs on TensorFlow and JAX. Received: backend={backend!r}")


def gradient_times_input(model, tokens, classes=None, batch_size=256):
    """Gradient-times-input attribution of each token `(B, T)`, numpy.

    For sentence `b` and class `c_b` (by default the class the model predicts),
    `attribution[b, t] = sum_C e_btC * d p(c_b) / d e_btC`, with `e` the output of
    the `embedding` layer (before positions are added). Positive: the token pushes
    the probability of `c_b` up. A token the model cannot see (padding, behind a mask)
    gets exactly 0.
    """
    tokens = _tokens(tokens)
    probabilities = predict_probabilities(model, tokens, batch_size)
    classes = probabilities.argmax(axis=1) if classes is None else np.asarray(classes)
    if classes.shape != (len(tokens),):
        raise ValueError(message("classes", f"one class per sentence, shape ({len(tokens)},)", classes))
    embedding, mask_layer = model.get_layer("embedding"), model.get_layer("padding_mask")
    from_embeddings = keras.Model([embedding.output, mask_layer.output], model.output)
    parts = []
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i : i + batch_size]
        e = embedding(batch)  # (b, T, C)
        mask = mask_layer(batch)  # (b, T)
        onehot = ops.one_hot(classes[i : i + batch_size], probabilities.shape[1])  # (b, classes)
        grad = _gradient(lambda v: from_embeddings([v, mask], training=False) * onehot, e)  # (b, T, C)
        parts.append(ops.convert_to_numpy(ops.sum(grad * e, axis=-1)))
    return np.concatenate(parts).astype("float64")


def random_scores(tokens, seed=0):
    """Uniform random scores `(B, T)`: ranking by them removes random words."""
    tokens = _tokens(tokens)
    return np.random.default_rng(check_seed(seed)).random(tokens.shape)


def top_k_positions(scores, k, candidates):
    """Boolean `(B, T)`: the `k` candidate positions with the highest scores in each row
    (all candidates of a row that has fewer; ties go to the earlier position)."""
    k = check_int(k, "k", minimum=0)
    order = np.argsort(-np.where(candidates, scores, -np.inf), axis=1, kind="stable")  # (B, T) best first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), axis=1)
    return candidates & (rank < k)


def remove_tokens(tokens, remove):
    """Delete the tokens where `remove` is True; the rest move left, padding fills the end.

    Example:

    >>> remove_tokens([[5, 6, 7, 0]], [[False, True, False, False]]).tolist()
    [[5, 7, 0, 0]]
    """
    tokens = _tokens(tokens)
    remove = np.asarray(remove, dtype=bool)
    if remove.shape != tokens.shape:
        raise ValueError(f"`remove` must have the shape of `tokens` {tokens.shape}. "
                         f"Received: remove with shape {remove.shape}")
    out = np.full_like(tokens, PAD)
    for row, (ids, gone) in enumerate(zip(tokens, remove)):
        kept = ids[~gone & (ids != PAD)]
        out[row, : len(kept)] = kept
    return out


def erasure_curve(model, tokens, scores, ks, candidates=None, batch_size=256):
    """Mean drop of the predicted class's probability when the `k` top-scored words go.

    For every `k` in `ks`: remove from each sentence its `k` candidate tokens with
    the highest `scores` (all of them if it has fewer), and average
    `p(c | sentence) - p(c | sentence without them)` over the sentences, with `c` the
    class predicted on the whole sentence. `k = 0` gives 0.

    Returns:
        A numpy array `(len(ks),)` of mean drops.
    """
    tokens = _tokens(tokens)
    scores = _scores(scores, tokens)
    candidates = _candidates(candidates, tokens)
    ks = [check_int(k, "ks", minimum=0) for k in ks]
    full = predict_probabilities(model, tokens, batch_size)
    predicted = full.argmax(axis=1)
    rows = np.arange(len(tokens))
    drops = []
    for k in ks:
        removed = remove_tokens(tokens, top_k_positions(scores, k, candidates))
        after = predict_probabilities(model, removed, batch_size)
        drops.append(float(np.mean(full[rows, predicted] - after[rows, predicted])))
    return np.array(drops)


def rank_correlation(a, b, candidates):
    """Spearman's rank correlation of two scorings, one per sentence, over its candidates.

    Returns:
        A numpy array `(B,)`; NaN for a sentence with fewer than 3 candidates or a
        constant scoring.
    """
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    candidates = np.asarray(candidates, dtype=bool)
    if not (a.shape == b.shape == candidates.shape):
        raise ValueError(f"`a`, `b` and `candidates` must have one shape. Received: shapes {a.shape}, "
                         f"{b.shape}, {candidates.shape}")
    out = np.full(len(a), np.nan)
    for row, keep in enumerate(candidates):
        x, y = a[row, keep], b[row, keep]
        if keep.sum() >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            out[row] = spearmanr(x, y).statistic
    return out
