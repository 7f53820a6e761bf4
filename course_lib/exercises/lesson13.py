"""Exercises of lesson 13, "Efficient attention and scale".

13.1  the bytes of a decoder's key/value cache, with grouped-query attention (function);
13.2  one step of the online softmax: fold a block of scores into the running maximum,
      sum and weighted sum (function);
13.3  the largest power-of-two chunk size whose peak memory stays within 1/8 of plain
      attention's at n = 4096 (experiment: the checker re-measures the learner's size).

Notation as in the lesson: `n` sequence length, `m` running maximum, `l` running sum of
exponentials, `acc` running weighted sum of the values, `C` the chunk size.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_number, register

# 13.1 ------------------------------------------------------------------------------


def _cache_bytes(num_layers, length, num_key_value_heads, head_dim, bytes_per_number):
    # Per layer a cache (batch 1, 2, length, heads, head_dim): keys and values of every position.
    return num_layers * 2 * length * num_key_value_heads * head_dim * bytes_per_number


register(
    Exercise(
        key="13.1",
        question=(
            "Write `my_cache_bytes(num_layers, length, num_key_value_heads, head_dim, bytes_per_number)`: "
            "the bytes of the key/value caches of a decoder with `num_layers` layers, after `length` "
            "positions, for one sequence (batch 1). With grouped-query attention only the key/value heads "
            "are cached."
        ),
        cases=(
            Case("3 layers, 256 positions, 4 heads of 16, float32", _cache_bytes(3, 256, 4, 16, 4),
                 args=(3, 256, 4, 16, 4)),
            Case("one layer, one position, multi-query (1 head) of 8, float16", _cache_bytes(1, 1, 1, 8, 2),
                 args=(1, 1, 1, 8, 2)),
            Case("32 layers, 32,768 positions, 8 key/value heads of 128, float16",
                 _cache_bytes(32, 32768, 8, 128, 2), args=(32, 32768, 8, 128, 2)),
        ),
        solution=_cache_bytes,
        hint=("Each layer keeps two tensors (keys and values) of shape (length, num_key_value_heads, head_dim); "
              "multiply the numbers they hold by the bytes of one number."),
        mistakes=(
            ("counted only the keys: the values are cached too (a factor 2)",
             lambda n, t, h, d, b: n * t * h * d * b),
            ("forgot the bytes per number: the result should be bytes, not numbers",
             lambda n, t, h, d, b: n * 2 * t * h * d),
            ("every layer has its own cache: multiply by the number of layers",
             lambda n, t, h, d, b: 2 * t * h * d * b),
        ),
    )
)


# 13.2 ------------------------------------------------------------------------------


def _online_update(m, acc, scores, values):
    scores, values = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    m_new = max(m, float(np.max(scores)))
    correction = np.exp(m - m_new)  # what was summed under the old maximum, rescaled
    p = np.exp(scores - m_new)  # (C,): this block's weights, relative to the new maximum
    return m_new, correction * np.asarray(acc, dtype=float) + p @ values


def _no_rescaling(m, acc, scores, values):
    scores, values = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    m_new = max(m, float(np.max(scores)))
    return m_new, np.asarray(acc, dtype=float) + np.exp(scores - m_new) @ values


def _block_max_only(m, acc, scores, values):
    scores, values = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    block = float(np.max(scores))
    return block, np.exp(m - block) * np.asarray(acc, dtype=float) + np.exp(scores - block) @ values


def _rescaled_the_wrong_way(m, acc, scores, values):
    scores, values = np.asarray(scores, dtype=float), np.asarray(values, dtype=float)
    m_new = max(m, float(np.max(scores)))
    return m_new, np.exp(m_new - m) * np.asarray(acc, dtype=float) + np.exp(scores - m_new) @ values


# Values with a last column of ones: the last entry of `acc` is the running sum of the weights.
_V2 = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [2.0, 2.0, 1.0]]
register(
    Exercise(
        key="13.2",
        question=(
            "Write `my_online_update(m, acc, scores, values)`, one step of the online softmax for one query: "
            "`m` is the running maximum of the scores so far (a float), `acc` the running sum of "
            "exp(score - m) * value over the keys so far (an array (dv,)); `scores` is a new block of scores "
            "(C,) and `values` its values (C, dv). Return the new `(m, acc)`. The lesson's values carry a last "
            "column of ones, so `acc[-1]` is the running sum of the weights and, after the last block, "
            "`acc[:-1] / acc[-1]` is the attention output."
        ),
        cases=(
            Case("a block whose scores are all below the running maximum",
                 _online_update(2.5, [0.5, 1.0, 1.5], [0.0, 1.0, 2.0], _V2),
                 args=(2.5, np.array([0.5, 1.0, 1.5]), np.array([0.0, 1.0, 2.0]), np.array(_V2))),
            Case("a block with a new, larger maximum (the old sum must be rescaled)",
                 _online_update(0.0, [1.0, 1.0, 2.0], [1.0, 4.0, 2.0], _V2),
                 args=(0.0, np.array([1.0, 1.0, 2.0]), np.array([1.0, 4.0, 2.0]), np.array(_V2))),
            Case("large scores (exp of them would overflow)",
                 _online_update(500.0, [2.0, 0.0, 1.0], [900.0, 800.0, 1000.0], _V2),
                 args=(500.0, np.array([2.0, 0.0, 1.0]), np.array([900.0, 800.0, 1000.0]), np.array(_V2))),
        ),
        solution=_online_update,
        parts=("m", "acc"),
        rtol=1e-6,
        hint=("The new maximum is max(m, max(scores)). `acc` was summed relative to the old maximum: multiply it "
              "by exp(m_old - m_new) before adding the new block's exp(scores - m_new) @ values."),
        mistakes=(
            ("when the maximum grows, the old acc must be rescaled by exp(m_old - m_new) before the new block "
             "is added", _no_rescaling),
            ("the running maximum is the maximum over every block so far, not this block's alone",
             _block_max_only),
            ("the rescaling goes the other way: exp(m_old - m_new), at most 1, shrinks what was summed under the "
             "smaller old maximum", _rescaled_the_wrong_way),
        ),
    )
)


# 13.3 ------------------------------------------------------------------------------

N_133, D_133, LIMIT_133 = 4096, 64, 1 / 8


def _peaks(chunk_sizes):
    """Peak bytes of plain attention and of chunked attention at each chunk size, n = 4096, d = 64."""
    import tensorflow as tf

    from course_lib.attention import scaled_dot_product_attention
    from course_lib.efficient import chunked_attention, peak_memory

    rng = np.random.default_rng(0)
    q, k, v = (tf.constant(rng.normal(size=(1, N_133, D_133)).astype("float32")) for _ in range(3))
    _, plain = peak_memory(lambda: scaled_dot_product_attention(q, k, v)[0])
    return plain, [peak_memory(lambda: chunked_attention(q, k, v, chunk_size=c))[1] for c in chunk_sizes]


def _check_chunk_size(answer):
    size = as_number(answer, "the chunk size")
    if size != int(size) or size < 1:
        raise AnswerError("give the chunk size as a positive integer")
    size = int(size)
    if size & (size - 1):
        return "give a power of two (1, 2, 4, ..., 4096)"
    try:
        plain, (peak, doubled) = _peaks([size, 2 * size])
    except RuntimeError as error:
        return f"the checker cannot measure memory here: {error}"
    if peak > LIMIT_133 * plain:
        return (f"at chunk_size={size} the chunked attention's peak is {plain / peak:.1f} times smaller than "
                "plain attention's, not 8: try a smaller chunk")
    if size < N_133 and doubled <= LIMIT_133 * plain:
        return ("twice your chunk size also stays within 1/8 of plain attention's peak: the question asks "
                "for the largest power of two that does")
    return None


register(
    Exercise(
        key="13.3",
        question=(
            "Measure it: at n = 4096 and d = 64 (batch 1, no mask, the lesson's `q4`, `k4`, `v4`), what is the "
            "largest power-of-two `chunk_size` for which `chunked_attention`'s peak memory (`peak_memory`) is "
            "at most 1/8 of `scaled_dot_product_attention`'s? Answer the chunk size; the checker re-measures "
            "it and its double."
        ),
        checker=_check_chunk_size,
        solution=(
            "_, plain = peak_memory(lambda: scaled_dot_product_attention(q4, k4, v4)[0])\n"
            "for c in [16, 32, 64, 128, 256, 512]:\n"
            "    _, peak = peak_memory(lambda: chunked_attention(q4, k4, v4, chunk_size=c))\n"
            "    print(c, plain / peak)\n"
            "answer = the largest c whose ratio is at least 8\n"
            "\n"
            "The chunked peak grows about linearly with the chunk size (a few (n, C) blocks of\n"
            "scores and weights), plus what does not depend on C (q, k, v, the output)."
        ),
        hint="Loop over chunk sizes 16, 32, ..., 512 and print plain_peak / chunked_peak for each.",
    )
)
