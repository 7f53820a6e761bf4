"""Attention masks: which keys each query may attend to (`keras.ops`).

Every mask of the course follows Keras's convention: a boolean tensor in which `True`
means "this query may attend to this key" and `False` means "never". Masks combine
by logical AND, with broadcasting:

* a padding mask over the queries, `(batch, T)`, becomes `(batch, T, 1)`;
* a padding mask over the values (or keys), `(batch, S)`, becomes `(batch, 1, S)`;
* a causal mask is `(T, S)`, used as `(1, T, S)`;
* an explicit attention mask is `(batch, T, S)` (or anything broadcastable to it).

`compute_attention_mask` applies exactly this rule, the one of
`keras.layers.MultiHeadAttention`; every attention layer of the course calls it,
so the rule lives in one place. `attention.masked_softmax` then gives the masked
positions a weight of exactly 0.

Shapes follow Keras: `T` is the number of queries, `S` the number of keys/values.
"""

import numpy as np
from keras import ops


def _rank(x):
    return len(x.shape)


def _static_value(x):
    """`x` as a numpy array when its value is known now (numpy, eager tensor), else `None`."""
    if isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(x)
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:  # a symbolic tensor: its value is only known when the graph runs
        return None


def _check_length(value, name, allow_none=False):
    """A sequence length: a non-negative Python int, or a scalar integer tensor."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an integer length, not a bool. Received: {name}={value!r}")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ValueError(f"`{name}` must be non-negative. Received: {name}={value}")
        return int(value)
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 0 or "int" not in str(getattr(value, "dtype", "")):
        raise TypeError(
            f"`{name}` must be a non-negative integer or a scalar integer tensor. "
            f"Received: {name}={value!r}"
        )
    static = _static_value(value)
    if static is not None and static < 0:
        raise ValueError(f"`{name}` must be non-negative. Received: {name}={int(static)}")
    return value


def padding_mask(token_ids, pad_id=0):
    """Mask of the real (non-padding) tokens of a batch of token ids.

    The same mask as `keras.layers.Embedding(..., mask_zero=True)` computes when
    `pad_id=0`: `mask[b, s] = token_ids[b, s] != pad_id`.

    Args:
        token_ids: integer tensor of shape `(batch_size, S)`.
        pad_id: the id used for padding. Defaults to `0`.

    Returns:
        A boolean tensor of shape `(batch_size, S)`, `True` at real tokens.
    """
    if isinstance(pad_id, (bool, np.bool_)) or not isinstance(pad_id, (int, np.integer)):
        raise TypeError(f"`pad_id` must be an integer. Received: pad_id={pad_id!r}")
    token_ids = ops.convert_to_tensor(token_ids)
    if _rank(token_ids) != 2:
        raise ValueError(
            "`token_ids` must have shape (batch_size, S). "
            f"Received: token_ids with shape {tuple(token_ids.shape)}"
        )
    return ops.not_equal(token_ids, ops.cast(pad_id, token_ids.dtype))


def padding_mask_from_lengths(lengths, max_length):
    """Mask of the first `lengths[b]` positions of each sequence of a padded batch.

    `mask[b, s] = s < lengths[b]`.

    Args:
        lengths: integer tensor of shape `(batch_size,)`, each in `[0, max_length]`.
        max_length: the padded length `S`, a non-negative integer.

    Returns:
        A boolean tensor of shape `(batch_size, max_length)`.
    """
    max_length = _check_length(max_length, "max_length")
    lengths = ops.convert_to_tensor(lengths)
    if _rank(lengths) != 1:
        raise ValueError(
            "`lengths` must have shape (batch_size,). "
            f"Received: lengths with shape {tuple(lengths.shape)}"
        )
    if "int" not in str(lengths.dtype):
        raise TypeError(f"`lengths` must hold integers. Received: lengths with dtype {lengths.dtype}")
    static = _static_value(lengths)
    if static is not None and static.size:
        if static.min() < 0:
            raise ValueError(f"`lengths` must be non-negative. Received: lengths={static.tolist()}")
        if isinstance(max_length, int) and static.max() > max_length:
            raise ValueError(
                f"`lengths` must be at most `max_length`={max_length}. "
                f"Received: lengths={static.tolist()}"
            )
    positions = ops.arange(max_length, dtype=lengths.dtype)  # (S,)
    # (1, S) < (batch_size, 1) -> (batch_size, S)
    return ops.less(ops.expand_dims(positions, 0), ops.expand_dims(lengths, 1))


def causal_mask(query_length, key_length=None):
    """Lower-triangular mask: query `i` may attend to keys `0..i` only.

    `mask[i, j] = i >= j`, exactly the mask of Keras's `MultiHeadAttention`
    (`use_causal_mask=True`) and of `keras.ops.dot_product_attention(is_causal=True)`.
    When `S != T` the triangle still starts at the top-left corner: query `i`
    sees keys `0..i` (with `S > T`, the last `S - T` keys are seen by no query).

    Args:
        query_length: `T`, a non-negative integer (or scalar integer tensor).
        key_length: `S`. `None` means `S = T`. Defaults to `None`.

    Returns:
        A boolean tensor of shape `(T, S)`.
    """
    query_length = _check_length(query_length, "query_length")
    key_length = _check_length(key_length, "key_length", allow_none=True)
    if key_length is None:
        key_length = query_length
    rows = ops.arange(query_length, dtype="int32")  # (T,)
    cols = ops.arange(key_length, dtype="int32")  # (S,)
    # (T, 1) >= (1, S) -> (T, S)
    return ops.greater_equal(ops.expand_dims(rows, 1), ops.expand_dims(cols, 0))


def combine_masks(*masks):
    """Logical AND of any number of masks, with broadcasting; `None` entries are skipped.

    Args:
        *masks: boolean (or 0/1) tensors with broadcast-compatible shapes, or `None`.

    Returns:
        The boolean AND of the masks given, or `None` if every mask is `None`.
    """
    combined = None
    for index, mask in enumerate(masks):
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        if combined is not None:
            _check_broadcastable(combined.shape, mask.shape, f"masks[{index}]")
        combined = mask if combined is None else ops.logical_and(combined, mask)
    return combined


def _check_broadcastable(shape_a, shape_b, name):
    for a, b in zip(reversed(tuple(shape_a)), reversed(tuple(shape_b))):
        if a is not None and b is not None and a != b and 1 not in (a, b):
            raise ValueError(
                f"`{name}` cannot be broadcast with the masks before it. Received: "
                f"{name} with shape {tuple(shape_b)}, masks before it with shape "
                f"{tuple(shape_a)}"
            )


def _check_mask_rank(mask, name, rank, shape_text):
    if mask is not None and _rank(mask) != rank:
        raise ValueError(
            f"`{name}` must have shape {shape_text}. Received: {name} with shape "
            f"{tuple(mask.shape)}"
        )


def compute_attention_mask(
    query,
    value,
    query_mask=None,
    value_mask=None,
    key_mask=None,
    attention_mask=None,
    use_causal_mask=False,
):
    """The attention mask of shape `(batch_size, T, S)` from every source of masking.

    The rule of `keras.layers.MultiHeadAttention` (its `_compute_attention_mask`):

    1. `query_mask` `(B, T)` -> `(B, T, 1)`: a padded query attends to nothing;
    2. `value_mask` `(B, S)` -> `(B, 1, S)`: no query attends to a padded value;
    3. `key_mask` `(B, S)` -> `(B, 1, S)`: the same for keys;
    4. `use_causal_mask=True` -> `causal_mask(T, S)` as `(1, T, S)`;
    5. `attention_mask` `(B, T, S)` as given;

    all ANDed together with broadcasting (`True` = may attend). Masks left as `None`
    play no part; if all are `None` (and no causal mask), the result is `None`.

    Args:
        query: tensor of shape `(batch_size, T, ...)` (only its length is used).
        value: tensor of shape `(batch_size, S, ...)` (only its length is used).
        query_mask: optional boolean tensor of shape `(batch_size, T)`.
        value_mask: optional boolean tensor of shape `(batch_size, S)`.
        key_mask: optional boolean tensor of shape `(batch_size, S)`.
        attention_mask: optional boolean tensor broadcastable to `(batch_size, T, S)`.
        use_causal_mask: whether query `i` may only attend to keys `0..i`.
            Defaults to `False`.

    Returns:
        A boolean tensor broadcastable to `(batch_size, T, S)` (shape `(1, T, S)` when
        the causal mask is the only source), or `None`.
    """
    if not isinstance(use_causal_mask, (bool, np.bool_)):
        raise TypeError(
            f"`use_causal_mask` must be a bool. Received: use_causal_mask={use_causal_mask!r}"
        )
    for name, tensor in (("query", query), ("value", value)):
        if _rank(tensor) < 2:
            raise ValueError(
                f"`{name}` must have shape (batch_size, length, ...). "
                f"Received: {name} with shape {tuple(tensor.shape)}"
            )
    _check_mask_rank(query_mask, "query_mask", 2, "(batch_size, T)")
    _check_mask_rank(value_mask, "value_mask", 2, "(batch_size, S)")
    _check_mask_rank(key_mask, "key_mask", 2, "(batch_size, S)")
    if attention_mask is not None and not 2 <= _rank(attention_mask) <= 3:
        raise ValueError(
            "`attention_mask` must have shape (batch_size, T, S) or (T, S). "
            f"Received: attention_mask with shape {tuple(attention_mask.shape)}"
        )
    t, s = query.shape[1], value.shape[1]
    for name, mask, axis, length, letter in (
        ("query_mask", query_mask, 1, t, "T"),
        ("value_mask", value_mask, 1, s, "S"),
        ("key_mask", key_mask, 1, s, "S"),
    ):
        if mask is not None and None not in (mask.shape[axis], length) and mask.shape[axis] != length:
            raise ValueError(
                f"`{name}` must have length {letter}={length} on axis {axis}. "
                f"Received: {name} with shape {tuple(mask.shape)}"
            )

    if attention_mask is not None:
        for axis, length, letter in ((-2, t, "T"), (-1, s, "S")):
            size = attention_mask.shape[axis]
            if None not in (size, length) and size not in (1, length):
                raise ValueError(
                    f"`attention_mask` must have shape (batch_size, T, S) with T={t} and "
                    f"S={s} (or 1 on a broadcast axis). Received: attention_mask with "
                    f"shape {tuple(attention_mask.shape)}"
                )

    masks = []
    if query_mask is not None:
        masks.append(ops.expand_dims(ops.cast(query_mask, "bool"), -1))  # (B, T, 1)
    if value_mask is not None:
        masks.append(ops.expand_dims(ops.cast(value_mask, "bool"), -2))  # (B, 1, S)
    if key_mask is not None:
        masks.append(ops.expand_dims(ops.cast(key_mask, "bool"), -2))  # (B, 1, S)
    if use_causal_mask:
        t_now = t if t is not None else ops.shape(query)[1]
        s_now = s if s is not None else ops.shape(value)[1]
        for name, tensor, length in (("query", query, t_now), ("value", value, s_now)):
            if length is None:  # a symbolic `keras.Input` of unknown length
                raise ValueError(
                    f"The length of `{name}` must be known to build the causal mask; "
                    "call this function inside a layer's `call()`, where it is. "
                    f"Received: {name} with shape {tuple(tensor.shape)}"
                )
        masks.append(ops.expand_dims(causal_mask(t_now, s_now), 0))  # (1, T, S)
    if attention_mask is not None:
        masks.append(attention_mask)
    return combine_masks(*masks)
