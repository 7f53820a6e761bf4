"""Key/value cache: multi-head attention that decodes one token at a time (lessons 09, 13).

A decoder that generates token `t` needs the keys and values of positions `0..t`.
Recomputing them from the whole prefix at every step costs O(t) projections per step,
O(L^2) for a sequence of length `L`. The keys and values of the positions already done
never change (under a causal mask nothing earlier depends on what comes later), so they
are kept in a cache `(B, 2, L, N, H)` (keys at `[:, 0]`, values at `[:, 1]`) and each
step projects only its own token and writes it in at its position.

`CachedMultiHeadAttention` is the course's `MultiHeadAttention` with that cache, a
drop-in for `keras_hub.layers.CachedMultiHeadAttention` (same arguments, call, weights
and outputs). `TransformerDecoderBlock` (course_lib.transformer) uses it for its
self-attention and cross-attention.

Shape letters: `B` batch size, `T` query length (1 when decoding), `S` key/value
length, `L` cache length, `N` heads, `H` key_dim, `Hv` value_dim, `C` the output width.
"""

import keras
from keras import ops

from course_lib.checks import check_shape_rank, message
from course_lib.masks import combine_masks
from course_lib.multihead import MultiHeadAttention


@keras.saving.register_keras_serializable(package="course_lib")
class CachedMultiHeadAttention(MultiHeadAttention):
    """Multi-head attention with a key/value cache, for autoregressive decoding.

    Three modes, as in keras-hub:

    * `cache=None`: plain multi-head attention (`MultiHeadAttention`).
    * `cache` and `cache_update_index=i`: the projections of `key` and `value`,
      `(B, T, N, H)`, are written into the cache at positions `i .. i + T - 1`; the
      query attends over the whole updated cache (mask the positions not written yet
      with `attention_mask`), and the updated cache is returned.
    * `cache` and `cache_update_index=None`: the cache *is* the keys and values
      (`key` and `value` are ignored); for cross-attention, whose keys and values (the
      encoder's outputs) are the same at every step.

    Differences from keras-hub's: without a cache, a mask attached to `value` (or
    `key`) by `Embedding(mask_zero=True)` hides the padded keys (keras-hub's layer
    ignores such masks; its `TransformerDecoder` applies them itself); queries are
    never masked. Other arguments are those of `MultiHeadAttention`; there is no
    `use_causal_mask` (with a cache, the causal mask depends on the index: pass it as
    `attention_mask`).

    Call arguments:
        query: tensor `(batch_size, T, dim_q)`.
        value: tensor `(batch_size, S, dim_v)` (with a cache and an index, the `T`
            new positions).
        key: optional tensor like `value`; `None` means `value`.
        value_mask, key_mask: optional boolean `(batch_size, S)`, filled by Keras
            from the masks attached to `value` and `key`; used only without a cache.
        attention_mask: optional boolean `(batch_size, T, S or L)`, True = may attend.
        cache: optional tensor `(batch_size, 2, L, num_heads, key_dim)`.
        cache_update_index: int or scalar int tensor, where the new keys and values go.
        return_attention_scores: also return the weights `(batch_size, N, T, S or L)`.
        training: whether dropout is active.

    Returns:
        `output (batch_size, T, C)`, or `(output, scores)`, `(output, cache)` or
        `(output, scores, cache)`, as in keras-hub.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    >>> layer = CachedMultiHeadAttention(num_heads=2, key_dim=4)
    >>> full = layer(x, x, attention_mask=np.tril(np.ones((1, 3, 3), bool)))  # causal
    >>> cache = np.zeros((1, 2, 3, 2, 4), "float32")  # (batch, keys and values, L, N, H)
    >>> for t in range(3):  # token t sees the cache positions 0..t
    ...     seen = (np.arange(3) <= t).reshape(1, 1, 3)
    ...     step, cache = layer(x[:, t:t + 1], x[:, t:t + 1], attention_mask=seen, cache=cache,
    ...                         cache_update_index=t)
    ...     assert np.allclose(step[:, 0], full[:, t], atol=1e-5)
    """

    def call(self, query, value, key=None, value_mask=None, key_mask=None, attention_mask=None, cache=None,
             cache_update_index=None, return_attention_scores=False, training=None):
        key = value if key is None else key
        self._check_inputs(query, value, key)
        if cache is not None:
            check_shape_rank(cache.shape, "cache", 5, "(batch_size, 2, L, num_heads, key_dim)")
        query_heads = self._query_dense(query)  # (B, T, N, H)
        if cache is None:
            if cache_update_index is not None:
                raise ValueError(message("cache_update_index", "None when `cache` is None", cache_update_index))
            key_heads, value_heads = self._key_dense(key), self._value_dense(value)  # (B, S, N, H), (B, S, N, Hv)
            padding = [None if m is None else ops.expand_dims(m, 1) for m in (value_mask, key_mask)]  # (B, 1, S)
            attention_mask = combine_masks(*padding, attention_mask)
        else:
            key_heads, value_heads = cache[:, 0], cache[:, 1]  # (B, L, N, H) each
            if cache_update_index is not None:  # write the new positions in, then attend over all L
                start = [0, cache_update_index, 0, 0]
                key_heads = ops.slice_update(key_heads, start, self._key_dense(key))  # (B, L, N, H)
                value_heads = ops.slice_update(value_heads, start, self._value_dense(value))  # (B, L, N, H)
                cache = ops.stack([key_heads, value_heads], axis=1)  # (B, 2, L, N, H)
        heads, scores = self._compute_attention(query_heads, key_heads, value_heads, attention_mask, training,
                                                return_attention_scores)  # (B, T, N, Hv), (B, N, T, S or L)
        output = self._output_dense(heads)  # (B, T, C)
        outputs = (output,) + ((scores,) if return_attention_scores else ()) + (() if cache is None else (cache,))
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_spec(self, query, value, key=None, cache=None, return_attention_scores=False, **kwargs):
        output, scores = super().compute_output_spec(query, value, key, return_attention_scores=True)
        if cache is not None:
            b, t = query.shape[:2]
            scores = keras.KerasTensor((b, self.num_heads, t, cache.shape[2]), dtype=self.compute_dtype)
        outputs = (output,) + ((scores,) if return_attention_scores else ())
        outputs += () if cache is None else (keras.KerasTensor(cache.shape, dtype=self.compute_dtype),)
        return outputs[0] if len(outputs) == 1 else outputs
