"""Efficient attention: the online softmax over blocks of keys, and what lesson 13 measures with.

Plain attention builds the `(T, S)` matrix of scores, then of weights: time and memory
grow as `T * S`, `n^2` for self-attention over `n` positions. `chunked_attention`
computes the same output without ever holding it: the keys and values are read in
blocks of `chunk_size`, and for every query a running maximum `m`, a running sum `l`
and a running weighted sum `acc` of the values are updated block by block (the
"online softmax" of Milakov and Gimelshein, 2018, the idea behind FlashAttention, Dao
et al., 2022). For block `j` with scores `s_j` (`(..., T, C)`):

    m' = max(m, max(s_j))               the new running maximum (per query)
    c  = exp(m - m')                    rescales what was summed under the old maximum
    p  = exp(s_j - m')                  this block's unnormalised weights
    l' = c * l + sum(p)
    acc' = c * acc + p @ v_j

and at the end `output = acc / l`. Only `(T, C)` scores are alive at a time.

Also here, the helpers the lesson measures with: `peak_memory` (TensorFlow's
allocator statistics on CPU), `median_seconds`, and `recompute_next_token_logits`,
the decoding step that recomputes the whole prefix (to set against the cached step of
`course_lib.transformer_model.next_token_function`).

Shape letters: `T` queries, `S` keys and values, `C` the chunk size, `d` the query and
key width, `dv` the value width.
"""

import math
import statistics
import time

import keras
import numpy as np
from keras import ops

from course_lib import checks
from course_lib.attention import check_query_key_value
from course_lib.masks import as_bool_mask


def chunked_attention(query, key, value, mask=None, chunk_size=128):
    """Scaled dot-product attention computed over blocks of keys (online softmax).

    The output of `course_lib.attention.scaled_dot_product_attention(query, key,
    value, mask)` (within float rounding, 1e-5 in float32) for any `chunk_size >= 1`,
    with at most `(..., T, chunk_size)` scores held at a time instead of `(..., T, S)`.
    The same inputs and mask convention (`True`/1 = may attend); a query that may
    attend to nothing gets a zero output, never NaN. Returns the output only (the
    weights are what it avoids storing). A forward computation: written for
    inference and for measuring, not as a training kernel (its loop over blocks runs in
    Python, once per block).

    Args:
        query: tensor `(..., T, d)`.
        key: tensor `(..., S, d)`.
        value: tensor `(..., S, dv)`.
        mask: optional boolean or 0/1 tensor broadcastable to `(..., T, S)`.
            Defaults to `None`.
        chunk_size: keys per block, a positive integer. Defaults to `128`.

    Returns:
        The output, a tensor `(..., T, dv)` in the dtype of `query` (floatx for
        integer inputs).

    Example:

    >>> import numpy as np
    >>> from course_lib.attention import scaled_dot_product_attention
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.normal(size=(2, 5, 4)).astype("float32") for _ in range(3))
    >>> causal = np.tril(np.ones((5, 5), bool))
    >>> plain, _ = scaled_dot_product_attention(q, k, v, mask=causal)
    >>> bool(np.allclose(chunked_attention(q, k, v, mask=causal, chunk_size=2), plain, atol=1e-5))
    True
    """
    chunk_size = checks.check_positive_int(chunk_size, "chunk_size")
    query, key, value, received = check_query_key_value(query, key, value)
    d, length = query.shape[-1], key.shape[-2]
    if not d or length is None:
        raise ValueError(f"The width d and the length S must be known. Received: {received}")
    query = ops.convert_to_tensor(query)
    if not keras.backend.is_float_dtype(query.dtype):
        query = ops.cast(query, keras.config.floatx())
    key, value = ops.cast(key, query.dtype), ops.cast(value, query.dtype)
    mask = as_bool_mask(mask, "mask")
    if mask is not None and len(mask.shape) < 2:
        mask = ops.reshape(mask, (1,) * (2 - len(mask.shape)) + tuple(mask.shape))  # (S,) -> (1, S)
    query = query * ops.cast(1.0 / math.sqrt(d), query.dtype)  # scale once, not per block

    running_max = running_sum = acc = None
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        k, v = key[..., start:stop, :], value[..., start:stop, :]  # (..., C, d), (..., C, dv)
        scores = ops.matmul(query, ops.swapaxes(k, -1, -2))  # (..., T, C)
        allowed = None
        if mask is not None:
            allowed = mask if mask.shape[-1] == 1 else mask[..., start:stop]  # broadcastable to (..., T, C)
            scores = ops.where(allowed, scores, -math.inf)
        block_max = ops.max(scores, axis=-1, keepdims=True)  # (..., T, 1)
        new_max = block_max if running_max is None else ops.maximum(running_max, block_max)
        # A query with nothing allowed so far has max -inf: shift by 0 there (exp(-inf) = 0, no NaN).
        shift = ops.where(ops.isfinite(new_max), new_max, ops.zeros_like(new_max))  # (..., T, 1)
        weights = ops.exp(scores - shift)  # (..., T, C), exactly 0 where masked
        block_sum = ops.sum(weights, axis=-1, keepdims=True)  # (..., T, 1)
        block_acc = ops.matmul(weights, v)  # (..., T, dv)
        if running_max is None:
            running_sum, acc = block_sum, block_acc
        else:
            correction = ops.exp(running_max - shift)  # (..., T, 1): old maximum -> new maximum
            running_sum = correction * running_sum + block_sum
            acc = correction * acc + block_acc
        running_max = new_max
    seen = running_sum > 0  # (..., T, 1): False for a query that may attend to nothing
    return ops.where(seen, acc / ops.where(seen, running_sum, ops.ones_like(running_sum)), ops.zeros_like(acc))


def peak_memory(function, device="CPU:0"):
    """Run `function()` and return `(its result, the peak bytes allocated meanwhile)`.

    The peak comes from TensorFlow's allocator statistics
    (`tf.config.experimental.reset_memory_stats`, then `get_memory_info(device)["peak"]`),
    which count every tensor TensorFlow allocates on `device`, intermediate ones
    included (Python's `tracemalloc` sees none of them). On CPU the default allocator
    keeps no statistics: TensorFlow must use its BFC allocator there, which the
    environment variable `TF_CPU_ALLOCATOR_USE_BFC=true` selects before the first
    tensor is made. Peak bytes are counted from the reset: tensors alive before it
    count only if they are freed and allocated again.

    Args:
        function: a function of no arguments.
        device: the device, e.g. `"CPU:0"` or `"GPU:0"`. Defaults to `"CPU:0"`.

    Returns:
        `(result, peak_bytes)`.

    Raises:
        RuntimeError: the backend is not TensorFlow, or the allocator keeps no statistics.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"peak_memory needs the TensorFlow backend. Received: {keras.backend.backend()}")
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats(device)
    except ValueError as error:
        raise RuntimeError(f"TensorFlow keeps no allocator statistics for {device} ({error}); on CPU set "
                           "TF_CPU_ALLOCATOR_USE_BFC=true before TensorFlow makes its first tensor") from error
    result = function()
    for tensor in tf.nest.flatten(result):  # wait for the values
        if hasattr(tensor, "numpy"):
            tensor.numpy()
    return result, tf.config.experimental.get_memory_info(device)["peak"]


def median_seconds(function, repeats=5, warmup=1):
    """The median wall-clock seconds of `repeats` calls of `function()`, after `warmup` calls.

    Results are converted to numpy (`keras.ops.convert_to_numpy`) inside the timing,
    so the time includes the computation, not only its launch.
    """
    repeats = checks.check_positive_int(repeats, "repeats")
    warmup = checks.check_int(warmup, "warmup", minimum=0)

    def call():
        keras.tree.map_structure(lambda x: ops.convert_to_numpy(x) if hasattr(x, "shape") else x, function())

    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def recompute_next_token_logits(model):
    """The decoding step without a cache: the whole model on the whole prefix, every step.

    Returns `next_token_logits(source_tokens, prefix)` -> logits `(batch_size,
    vocab_size)` of the last position, the kind of function
    `course_lib.decoding.greedy_decode` accepts. For a `build_transformer` model this
    runs the encoder and every decoder position again at each step: O(t^2) work for
    token `t` over the layers' attention, where the cached step does O(t). On TensorFlow
    it is one `tf.function` for all lengths (as the cached step is compiled), so the
    comparison is of the work done, not of Python overhead; on other backends it runs
    eagerly.

    Args:
        model: a `keras.Model` `[source, target_in] -> logits (batch_size, T, vocab_size)`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(checks.message("model", "a keras.Model [source, target_in] -> logits", model))

    def next_token_logits(source_tokens, prefix):
        return model([source_tokens, prefix], training=False)[:, -1]  # (B, V)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, None), tf.int32)
        compiled = tf.function(next_token_logits, input_signature=[spec, spec])
        return lambda source_tokens, prefix: compiled(ops.cast(source_tokens, "int32"), ops.cast(prefix, "int32"))
    return next_token_logits


def kv_cache_bytes(num_layers, length, num_key_value_heads, head_dim, batch_size=1, dtype="float32"):
    """Bytes of a decoder's key/value caches: `num_layers` caches `(batch_size, 2, length,
    num_key_value_heads, head_dim)`. The lesson checks it against real cache tensors.

    >>> kv_cache_bytes(num_layers=2, length=256, num_key_value_heads=8, head_dim=16)
    524288
    """
    values = [checks.check_positive_int(v, n) for v, n in ((num_layers, "num_layers"), (length, "length"),
              (num_key_value_heads, "num_key_value_heads"), (head_dim, "head_dim"), (batch_size, "batch_size"))]
    return math.prod(values) * 2 * np.dtype(keras.backend.standardize_dtype(dtype)).itemsize
