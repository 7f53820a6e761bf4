"""Exercises of lesson 05, "Scaled dot-product attention and masks".

05.1  build a causal mask for any query and key lengths (function);
05.2  combine padding and causal masks into a decoder's self-attention mask (function);
05.3  predict the variance of a score q.k, with and without the scaling (function);
05.4  fix an inverted mask in causal self-attention (function);
05.5  experiment: the smallest d_k at which the median gradient reaching unscaled scores
      falls below 1e-2 (checked against the learner's own curve, two points re-measured).

Expected results are computed here with plain numpy, independently of
`course_lib.masks` and `course_lib.attention`, which the reference solutions use.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, first_below, register

# 05.1 ------------------------------------------------------------------------------


def _causal_mask_solution(query_length, key_length):
    from keras import ops

    from course_lib.masks import causal_mask

    return ops.convert_to_numpy(causal_mask(query_length, key_length))


def _lower_triangle(t, s, k=0):
    """True where key j <= query i + k."""
    return np.array([[j <= i + k for j in range(s)] for i in range(t)], dtype=bool).reshape(t, s)


register(
    Exercise(
        key="05.1",
        question=(
            "Write `my_causal_mask(query_length, key_length)` returning a boolean array of "
            "shape (query_length, key_length) that is True where query i may attend to "
            "key j, i.e. j <= i (Keras's convention, the same as "
            "`keras.layers.MultiHeadAttention(...)(..., use_causal_mask=True)`, also when "
            "the two lengths differ)."
        ),
        cases=(
            Case("square, 4 queries and 4 keys", _lower_triangle(4, 4), args=(4, 4)),
            Case("one query, one key: it sees itself", _lower_triangle(1, 1), args=(1, 1)),
            Case("more keys than queries (2, 5): the triangle starts at the top left",
                 _lower_triangle(2, 5), args=(2, 5)),
            Case("more queries than keys (5, 2): the last queries see every key",
                 _lower_triangle(5, 2), args=(5, 2)),
        ),
        solution=_causal_mask_solution,
        hint=(
            "Compare row and column indices: `np.arange(T)[:, None] >= np.arange(S)[None, :]`, "
            "or `np.tril(np.ones((T, S), bool))`."
        ),
        mistakes=(
            (
                "inverted: that is the True = blocked convention (PyTorch's nn.MultiheadAttention); "
                "in Keras's, True means the query may attend to the key",
                lambda t, s: ~_lower_triangle(t, s),
            ),
            ("each query may attend to itself: include the diagonal (j <= i)", lambda t, s: _lower_triangle(t, s, -1)),
            (
                "query i must see the earlier keys j <= i, not the later ones",
                lambda t, s: ~_lower_triangle(t, s, -1),
            ),
            (
                "for different lengths Keras's causal mask starts at the top left: query i sees keys 0..i",
                lambda t, s: _lower_triangle(t, s, s - t),
            ),
            ("nothing is masked: query i must not see the keys j > i", lambda t, s: np.ones((t, s), bool)),
        ),
    )
)

# 05.2 ------------------------------------------------------------------------------


def _decoder_mask_solution(token_ids, pad_id=0):
    from keras import ops

    from course_lib import masks

    padding = masks.padding_mask(token_ids, pad_id=pad_id)  # (batch, T)
    causal = masks.causal_mask(padding.shape[1])  # (T, T)
    mask = masks.combine_masks(
        padding[:, :, None],  # (batch, T, 1): a padded query attends to nothing
        padding[:, None, :],  # (batch, 1, T): no query attends to a padded key
        causal[None],  # (1, T, T): no query attends to a later key
    )  # (batch, T, T)
    return ops.convert_to_numpy(mask)


def _decoder_mask_numpy(token_ids, pad_id=0, queries=True, keys=True, causal=True):
    """The decoder mask; the flags leave a part out, as typical mistakes do."""
    token_ids = np.asarray(token_ids)
    real = token_ids != pad_id  # (batch, T)
    t = token_ids.shape[1]
    mask = np.ones((len(token_ids), t, t), bool)
    if queries:
        mask &= real[:, :, None]  # (batch, T, 1)
    if keys:
        mask &= real[:, None, :]  # (batch, 1, T)
    if causal:
        mask &= np.tril(np.ones((t, t), bool))[None]  # (1, T, T)
    return mask


_IDS = (
    ("one sequence without padding", np.array([[4, 2, 7]]), 0),
    ("two sequences, the second padded with 0", np.array([[5, 1, 3, 2], [8, 6, 0, 0]]), 0),
    ("a sequence that is all padding attends to nothing", np.array([[3, 9, 0], [0, 0, 0]]), 0),
    ("padding id 9 instead of 0 (pad_id=9)", np.array([[1, 0, 9, 9]]), 9),
    ("padding on the left: a real token must not attend to the padding before it", np.array([[0, 0, 5, 6]]), 0),
)

register(
    Exercise(
        key="05.2",
        question=(
            "Write `my_decoder_mask(token_ids, pad_id=0)` for a decoder's self-attention: "
            "given token ids of shape (batch, T), return a boolean array of shape "
            "(batch, T, T) that is True at [b, i, j] exactly when token i and token j of "
            "sequence b are both real tokens (not `pad_id`) and j <= i."
        ),
        cases=tuple(
            Case(description, _decoder_mask_numpy(ids, pad), args=(ids,), kwargs={"pad_id": pad})
            for description, ids, pad in _IDS
        ),
        solution=_decoder_mask_solution,
        hint=(
            "Three masks, ANDed with broadcasting: the padding mask of the queries as "
            "(batch, T, 1), the padding mask of the keys as (batch, 1, T), and the causal "
            "mask as (1, T, T). `masks.compute_attention_mask` does exactly this."
        ),
        mistakes=(
            (
                "padding is not masked: padded tokens must neither attend nor be attended to",
                lambda ids, pad_id=0: _decoder_mask_numpy(ids, pad_id, queries=False, keys=False),
            ),
            (
                "a padded query attends to nothing: its whole row must be False",
                lambda ids, pad_id=0: _decoder_mask_numpy(ids, pad_id, queries=False),
            ),
            (
                "no query may attend to a padded key: mask the columns of the padding too",
                lambda ids, pad_id=0: _decoder_mask_numpy(ids, pad_id, keys=False),
            ),
            (
                "forgot the causal part: token i must not see the tokens j > i",
                lambda ids, pad_id=0: _decoder_mask_numpy(ids, pad_id, causal=False),
            ),
            ("use the `pad_id` argument, not 0", lambda ids, pad_id=0: _decoder_mask_numpy(ids, 0)),
            (
                "inverted: Keras's mask is True where attention is allowed",
                lambda ids, pad_id=0: ~_decoder_mask_numpy(ids, pad_id),
            ),
        ),
    )
)

# 05.3 ------------------------------------------------------------------------------


def _variance_solution(d_k, std=1.0, scaled=False):
    # Each product q_i * k_i has mean 0 and variance E[q_i^2] E[k_i^2] = std^2 * std^2;
    # the d_k products are independent, so their variances add up.
    variance = d_k * std**4
    return variance / d_k if scaled else variance


register(
    Exercise(
        key="05.3",
        question=(
            "The entries of a query q and a key k of width d_k are independent, with mean 0 "
            "and standard deviation `std`. Write `predicted_variance(d_k, std=1.0, "
            "scaled=False)` returning the variance of the score q.k, or of q.k / sqrt(d_k) "
            "when `scaled=True`."
        ),
        cases=(
            Case("d_k=64, std=1", 64.0, args=(64,)),
            Case("d_k=64, std=1, scaled", 1.0, args=(64,), kwargs={"scaled": True}),
            Case("d_k=16, std=2", 256.0, args=(16,), kwargs={"std": 2.0}),
            Case("d_k=16, std=2, scaled", 16.0, args=(16,), kwargs={"std": 2.0, "scaled": True}),
            Case("d_k=1, std=0.5", 0.0625, args=(1,), kwargs={"std": 0.5}),
        ),
        solution=_variance_solution,
        hint=(
            "Var(q_i k_i) = E[q_i^2] E[k_i^2] when the means are 0 and q_i, k_i are "
            "independent; the variance of a sum of independent terms is the sum of their "
            "variances; dividing by sqrt(d_k) divides the variance by d_k."
        ),
        mistakes=(
            (
                "each product q_i k_i has variance E[q_i^2] E[k_i^2]: both factors bring std**2",
                lambda d_k, std=1.0, scaled=False: d_k * std**2 / (d_k if scaled else 1),
            ),
            (
                "dividing q.k by sqrt(d_k) divides its variance by d_k, not by sqrt(d_k)",
                lambda d_k, std=1.0, scaled=False: d_k * std**4 / (np.sqrt(d_k) if scaled else 1),
            ),
            (
                "`scaled=True` divides q.k by sqrt(d_k), which changes its variance",
                lambda d_k, std=1.0, scaled=False: d_k * std**4,
            ),
            (
                "the d_k products are independent: their variances add up",
                lambda d_k, std=1.0, scaled=False: std**4 / (d_k if scaled else 1),
            ),
            (
                "that is a standard deviation; give the variance",
                lambda d_k, std=1.0, scaled=False: np.sqrt(_variance_solution(d_k, std, scaled)),
            ),
        ),
    )
)

# 05.4 ------------------------------------------------------------------------------


def _causal_self_attention_solution(x):
    from course_lib import masks
    from course_lib.attention import scaled_dot_product_attention

    t = x.shape[1]
    mask = masks.causal_mask(t)  # True on and below the diagonal: j <= i may be seen
    output, _ = scaled_dot_product_attention(x, x, x, mask=mask)
    return output


def _causal_self_attention_numpy(x, diagonal=0, inverted=False):
    """Self-attention in which token i sees tokens j <= i + diagonal (the opposite if
    `inverted`); a token that may see nothing gets a zero output, as in the course."""
    x = np.asarray(x, dtype=float)
    t, d = x.shape[1], x.shape[2]
    allowed = np.tril(np.ones((t, t), bool), k=diagonal)
    allowed = ~allowed if inverted else allowed
    scores = np.where(allowed, x @ np.swapaxes(x, 1, 2) / np.sqrt(d), -np.inf)  # (batch, T, T)
    top = scores.max(-1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return weights @ x  # (batch, T, d_model)


_X = tuple(
    np.random.default_rng(seed).normal(size=shape).astype("float32")
    for seed, shape in ((0, (1, 4, 3)), (1, (2, 5, 4)), (2, (1, 2, 3)))
)

register(
    Exercise(
        key="05.4",
        question=(
            "`causal_self_attention(x)` should be self-attention on x of shape "
            "(batch, T, d_model) in which token i sees tokens 0..i only, but its mask was "
            "written with the opposite convention (True = blocked, as in PyTorch's "
            "`nn.MultiheadAttention`). Fix it so that it follows Keras's convention."
        ),
        cases=(
            Case("one sequence of 4 tokens", _causal_self_attention_numpy(_X[0]), args=(_X[0],)),
            Case("two sequences of 5 tokens", _causal_self_attention_numpy(_X[1]), args=(_X[1],)),
            Case(
                "two tokens: the first one sees only itself",
                _causal_self_attention_numpy(_X[2]),
                args=(_X[2],),
            ),
        ),
        solution=_causal_self_attention_solution,
        hint=(
            "With the buggy mask, token 0 sees every later token and the last token sees "
            "nothing (its output is all zeros). Keras's masks are True where attention is "
            "allowed: the lower triangle, diagonal included."
        ),
        atol=1e-5,
        mistakes=(
            (
                "the mask is still the True = blocked one: Keras's mask is True where the token may attend",
                lambda x: _causal_self_attention_numpy(x, diagonal=0, inverted=True),
            ),
            (
                "each token must see itself: allow the diagonal",
                lambda x: _causal_self_attention_numpy(x, diagonal=-1),
            ),
            (
                "token i sees the later tokens and not the earlier ones: allow j <= i",
                lambda x: _causal_self_attention_numpy(x, diagonal=-1, inverted=True),
            ),
            (
                "token i still sees later tokens: the causal mask is missing",
                lambda x: _causal_self_attention_numpy(x, diagonal=x.shape[1]),
            ),
        ),
    )
)

# 05.5 ------------------------------------------------------------------------------

LEVEL = 1e-2  # the median gradient to fall below
SPACING = 32  # the largest gap allowed between the crossing and the grid point before it
FACTOR = 1.5  # how far a learner's median may be from the re-measured one
MAX_D_K = 8192


def score_gradient_norms_numpy(d_k, scale, n=2000, n_keys=16, value_dim=8, seed=2):
    """Lesson 05's measurement in numpy (float64): per query, the norm of dL/dscores.

    The same random draws as the lesson's `score_gradient_norms` (queries, keys, values,
    then the fixed direction g, from `np.random.default_rng(seed)`), with the gradient
    of `L = sum(softmax(scores) @ v * g)` written out: for weights `w` and `a = v @ g`,
    `dL/dscore_j = w_j (a_j - sum_i w_i a_i)`. Keys are drawn in chunks (the same
    stream) so that a wide `d_k` needs little memory.
    """
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d_k))  # (n, d_k): one query each
    scores = np.empty((n, n_keys))
    for start in range(0, n, 250):
        k = rng.standard_normal((min(250, n - start), n_keys, d_k))  # (chunk, S, d_k)
        scores[start : start + len(k)] = np.einsum("nsd,nd->ns", k, q[start : start + len(k)]) * scale
    v = rng.standard_normal((n, n_keys, value_dim))  # (n, S, d_v)
    g = rng.standard_normal((n, value_dim))  # (n, d_v): dL/doutput
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)  # (n, S)
    a = np.einsum("nsv,nv->ns", v, g)  # (n, S): dL/dw
    gradient = w * (a - np.sum(w * a, axis=-1, keepdims=True))  # (n, S): dL/dscores
    return np.linalg.norm(gradient, axis=-1)  # (n,)


_SOLUTION_05_5 = """\
# In the lesson, with score_gradient_norms from section 1.3:
d_ks = list(range(128, 513, 16))  # 16 apart, around the crossing of the table
medians = [np.median(score_gradient_norms(d_k, scale=1.0)) for d_k in d_ks]
d_k_first = next(d_k for d_k, m in zip(d_ks, medians) if m < 1e-2)
answer = (d_ks, medians, d_k_first)
check("05.5", answer)"""


def _read_curve(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise AnswerError("the answer should be a tuple of 3 items: (d_ks, medians, d_k_first)")
    d_ks, medians = as_array(answer[0], "d_ks"), as_array(answer[1], "medians")
    if d_ks.ndim != 1 or medians.shape != d_ks.shape:
        raise AnswerError("d_ks and medians should be two lists of the same length, one median per d_k")
    if len(d_ks) < 2:
        raise AnswerError("measure the median at several d_k (a curve), not at one")
    if not np.array_equal(d_ks, np.round(d_ks)) or d_ks.min() < 1 or d_ks.max() > MAX_D_K:
        raise AnswerError(f"d_ks should be whole numbers from 1 to {MAX_D_K}")
    if np.any(np.diff(d_ks) <= 0):
        raise AnswerError("d_ks should increase: sort your grid (and its medians with it)")
    if not np.all(np.isfinite(medians)) or np.any(medians < 0):
        raise AnswerError("medians should be finite and non-negative: they are norms of gradients")
    return d_ks.astype(int), medians.astype(float), as_number(answer[2], "d_k_first")


def _check_gradient_curve(answer):
    d_ks, medians, d_k_first = _read_curve(answer)
    first = first_below(d_ks, medians, LEVEL)
    if first is None:
        return ("your medians never fall below 1e-2: measure the unscaled scores (scale=1.0), "
                "and extend the grid to larger d_k")
    if first == d_ks[0]:
        return ("your medians are below 1e-2 already at your smallest d_k: start the grid lower, "
                "so that it shows where the crossing happens")
    if d_k_first != first:
        return "that is not where your curve first falls below 1e-2: give the first d_k of your grid whose median is below it"
    before = int(d_ks[list(d_ks).index(first) - 1])
    if first - before > SPACING:
        return (f"your grid is too coarse there: the d_k before your crossing is {first - before} "
                f"below it; measure points at most {SPACING} apart around the crossing")
    for d_k in (before, first):
        mine = float(medians[list(d_ks).index(d_k)])
        again = float(np.median(score_gradient_norms_numpy(d_k, 1.0)))
        if not again / FACTOR <= mine <= again * FACTOR:
            return (f"your median at d_k={d_k} is more than {FACTOR} times away from a fresh "
                    "measurement of the lesson's setup: measure the unscaled scores (scale=1.0) "
                    "and take the median of `score_gradient_norms` over the queries, not the mean")
    return None


register(
    Exercise(
        key="05.5",
        question=(
            "Experiment: in the table of section 1.3 the median gradient reaching the "
            "unscaled scores falls below 1e-2 between two widths of the grid. Locate it: "
            "measure `np.median(score_gradient_norms(d_k, scale=1.0))` on a finer grid of "
            f"d_k (at most {SPACING} apart around the crossing) and give "
            "`(d_ks, medians, d_k_first)`: your grid, your medians, and the smallest d_k of "
            "your grid whose median is below 1e-2. The checker re-measures the two points "
            "around your crossing."
        ),
        checker=_check_gradient_curve,
        solution=_SOLUTION_05_5,
        hint=(
            "The table shows the median just above 1e-2 at one width and far below it at "
            "the next: measure every 16 between the widths on either side, e.g. "
            "`range(128, 513, 16)`, and take the first d_k whose median is below 1e-2."
        ),
    )
)
