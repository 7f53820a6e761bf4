"""Attention masks: which keys each query may attend to (`keras.ops`).

Every mask of the course follows Keras's convention: a boolean tensor in which `True`
means "this query may attend to this key" and `False` means "never". Masks combine
by logical AND, with broadcasting:

* a padding mask over the queries, `(batch, T)`, becomes `(batch, T, 1)`;
* a padding mask over the values (or keys), `(batch, S)`, becomes `(batch, 1, S)`;
* a causal mask is `(T, S)`, used as `(1, T, S)` (`sliding_window_mask` limits it
  to the last `window` positions);
* an explicit attention mask is `(batch, T, S)` (or anything broadcastable to it).

Integer and float masks must hold only 0 and 1 (`as_bool_mask`): an additive mask
(0 / -inf) means the opposite and is refused with a hint, never silently cast.

`compute_attention_mask` applies exactly this rule, the one of
`keras.layers.MultiHeadAttention`; every attention layer of the course calls it,
so the rule lives in one place. `attention.masked_softmax` then gives the masked
positions a weight of exactly 0.

Shapes follow Keras: `T` is the number of queries, `S` the number of keys/values.
"""

import keras
import numpy as np
from keras import ops

from course_lib import checks


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


def _length(value, name):
    """A sequence length: an integer >= 0 (`checks.check_int`) or a scalar integer tensor."""
    if not hasattr(value, "shape") or isinstance(value, np.generic):
        return checks.check_int(value, name, minimum=0)
    if len(value.shape) != 0 or not keras.backend.is_int_dtype(value.dtype):
        raise TypeError(checks.message(name, "an integer >= 0 or a scalar integer tensor", value))
    static = _static_value(value)
    if static is not None and static < 0:
        raise ValueError(checks.message(name, "an integer >= 0", int(static)))
    return value


def as_bool_mask(mask, name="mask"):
    """A mask as a boolean tensor, in Keras's convention (`True` = may attend).

    Booleans are kept. Integer and float masks must hold only 0 and 1, as Keras
    documents (1 = may attend, 0 = may not); any other value (0.5, NaN, or the
    `-inf` of an additive mask, which means the opposite) raises a `ValueError` that
    says how to convert. Masks whose values are not known yet (symbolic tensors in a
    compiled function) are cast to bool. Lists are accepted.

    Args:
        mask: boolean, integer or float tensor (or nested list), or `None`.
        name: the argument's name in error messages. Defaults to `"mask"`.

    Returns:
        A boolean tensor of the shape of `mask`, or `None` for `None`.

    Example:

    >>> ops.convert_to_numpy(as_bool_mask([[1, 0, 1]])).tolist()
    [[True, False, True]]
    >>> as_bool_mask(np.array([[0.0, -np.inf]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: `mask` must be a boolean mask or hold only 0 and 1 ... holding -inf. ...
    """
    if mask is None:
        return None
    mask = checks.check_array_like(mask, name)
    if keras.backend.standardize_dtype(mask.dtype) != "bool":
        values = _static_value(mask)
        if values is not None and not np.all((values == 0) | (values == 1)):
            other = np.unique(values[~((values == 0) | (values == 1))])
            raise ValueError(
                checks.message(name, "a boolean mask or hold only 0 and 1 (1 = may attend, 0 = may not)", mask)
                + f", holding {', '.join(str(v) for v in other[:3])}. An additive mask (0 = may attend, "
                "-inf = may not) converts with `mask = additive_mask == 0`."
            )
    return ops.cast(mask, "bool")


def padding_mask(token_ids, pad_id=0):
    """Mask of the real (non-padding) tokens of a batch of token ids.

    The same mask as `keras.layers.Embedding(..., mask_zero=True)` computes when
    `pad_id=0`: `mask[b, s] = token_ids[b, s] != pad_id`.

    Args:
        token_ids: integer tensor of shape `(batch_size, S)`.
        pad_id: the id used for padding. Defaults to `0`.

    Returns:
        A boolean tensor of shape `(batch_size, S)`, `True` at real tokens.

    Example:

    >>> ops.convert_to_numpy(padding_mask([[5, 3, 0, 0], [7, 0, 0, 0]])).astype(int).tolist()
    [[1, 1, 0, 0], [1, 0, 0, 0]]
    """
    pad_id = checks.check_int(pad_id, "pad_id")
    token_ids = ops.convert_to_tensor(checks.check_array_like(token_ids, "token_ids"))
    checks.check_shape_rank(token_ids.shape, "token_ids", 2, "(batch_size, S)")
    dtype = keras.backend.standardize_dtype(token_ids.dtype)
    if keras.backend.is_int_dtype(dtype) and not np.iinfo(dtype).min <= pad_id <= np.iinfo(dtype).max:
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
        expected = f"an id that {dtype} token ids can hold, in [{low}, {high}]"
        raise ValueError(checks.message("pad_id", expected, pad_id))
    return ops.not_equal(token_ids, ops.cast(pad_id, token_ids.dtype))


def padding_mask_from_lengths(lengths, max_length):
    """Mask of the first `lengths[b]` positions of each sequence of a padded batch.

    `mask[b, s] = s < lengths[b]`.

    Args:
        lengths: integer tensor of shape `(batch_size,)`, each in `[0, max_length]`.
        max_length: the padded length `S`, a non-negative integer.

    Returns:
        A boolean tensor of shape `(batch_size, max_length)`.

    Example:

    >>> ops.convert_to_numpy(padding_mask_from_lengths([2, 0, 4], 4)).astype(int).tolist()
    [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    """
    max_length = _length(max_length, "max_length")
    lengths = ops.convert_to_tensor(checks.check_array_like(lengths, "lengths"))
    checks.check_shape_rank(lengths.shape, "lengths", 1, "(batch_size,)")
    if not keras.backend.is_int_dtype(lengths.dtype):
        raise TypeError(checks.message("lengths", "a tensor of integers", lengths))
    static = _static_value(lengths)
    if static is not None and static.size:
        if static.min() < 0:
            raise ValueError(f"`lengths` must be non-negative. Received: lengths={static.tolist()}")
        if isinstance(max_length, int) and static.max() > max_length:
            raise ValueError(
                f"`lengths` must be at most `max_length`={max_length}. "
                f"Received: lengths={static.tolist()}"
            )
    # int32 (int64 for 64-bit lengths): positions in an int8 arange would overflow.
    wide = "int64" if keras.backend.standardize_dtype(lengths.dtype) in ("int64", "uint32", "uint64") else "int32"
    lengths = ops.cast(lengths, wide)
    positions = ops.arange(max_length, dtype=wide)  # (S,)
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

    Example:

    >>> ops.convert_to_numpy(causal_mask(3)).astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    query_length = _length(query_length, "query_length")
    key_length = query_length if key_length is None else _length(key_length, "key_length")
    rows = ops.arange(query_length, dtype="int32")  # (T,)
    cols = ops.arange(key_length, dtype="int32")  # (S,)
    # (T, 1) >= (1, S) -> (T, S)
    return ops.greater_equal(ops.expand_dims(rows, 1), ops.expand_dims(cols, 0))


def sliding_window_mask(length, window):
    """Causal mask with a window: position `i` may attend to `i - window + 1 .. i`.

    `mask[i, j] = 0 <= i - j < window`: each position sees itself and the
    `window - 1` positions before it (lesson 13). `window >= length` gives
    `causal_mask(length)`; `window = 1` lets each position see only itself.

    Args:
        length: `T`, a non-negative integer (or scalar integer tensor).
        window: positive integer, how many positions each position sees.

    Returns:
        A boolean tensor of shape `(length, length)`.

    Example:

    >>> ops.convert_to_numpy(sliding_window_mask(4, 2)).astype(int).tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    length = _length(length, "length")
    window = checks.check_positive_int(window, "window")
    positions = ops.arange(length, dtype="int32")  # (T,)
    distance = ops.expand_dims(positions, 1) - ops.expand_dims(positions, 0)  # (T, 1) - (1, T) -> (T, T)
    return ops.logical_and(ops.greater_equal(distance, 0), ops.less(distance, window))


def combine_masks(*masks):
    """Logical AND of any number of masks, with broadcasting; `None` entries are skipped.

    Args:
        *masks: boolean (or 0/1) tensors with broadcast-compatible shapes, or `None`.

    Returns:
        The boolean AND of the masks given, or `None` if every mask is `None`.

    Example:

    >>> rows, cols = [[True], [False]], [[True, False, True]]  # (2, 1) and (1, 3)
    >>> ops.convert_to_numpy(combine_masks(rows, None, cols)).astype(int).tolist()
    [[1, 0, 1], [0, 0, 0]]
    """
    combined = None
    for index, mask in enumerate(masks):
        if mask is None:
            continue
        mask = as_bool_mask(mask, f"masks[{index}]")
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
        query_mask: optional boolean (or 0/1) tensor of shape `(batch_size, T)`;
            every mask goes through `as_bool_mask`.
        value_mask: optional boolean tensor of shape `(batch_size, S)`.
        key_mask: optional boolean tensor of shape `(batch_size, S)`.
        attention_mask: optional boolean tensor broadcastable to `(batch_size, T, S)`.
        use_causal_mask: whether query `i` may only attend to keys `0..i`.
            Defaults to `False`.

    Returns:
        A boolean tensor broadcastable to `(batch_size, T, S)` (shape `(1, T, S)` when
        the causal mask is the only source), or `None`.

    Example:

    >>> x = np.zeros((1, 3, 2))  # (batch_size=1, T=S=3, dim=2)
    >>> mask = compute_attention_mask(x, x, value_mask=[[True, True, False]], use_causal_mask=True)
    >>> ops.convert_to_numpy(mask).astype(int).tolist()
    [[[1, 0, 0], [1, 1, 0], [1, 1, 0]]]
    """
    use_causal_mask = checks.check_bool(use_causal_mask, "use_causal_mask")
    query, value = checks.check_array_like(query, "query"), checks.check_array_like(value, "value")
    for name, tensor in (("query", query), ("value", value)):
        if _rank(tensor) < 2:
            raise ValueError(checks.message(name, "a tensor of shape (batch_size, length, ...)", tensor))
    query_mask, value_mask, key_mask, attention_mask = (
        as_bool_mask(mask, name)
        for mask, name in zip(
            (query_mask, value_mask, key_mask, attention_mask),
            ("query_mask", "value_mask", "key_mask", "attention_mask"),
        )
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
        masks.append(ops.expand_dims(query_mask, -1))  # (B, T) -> (B, T, 1)
    if value_mask is not None:
        masks.append(ops.expand_dims(value_mask, -2))  # (B, S) -> (B, 1, S)
    if key_mask is not None:
        masks.append(ops.expand_dims(key_mask, -2))  # (B, S) -> (B, 1, S)
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
