"""Argument checks: one message format and fixed exception types for all of course_lib.

Every public function and layer of the course checks its arguments with these
helpers, so that the same mistake gets the same error wherever it is made:

* a value of the wrong type raises `TypeError`;
* a value of the right type but outside its range raises `ValueError`;
* the message reads "`name` must be <what is expected>. Received: name=<value>"
  (for an array or a tensor: "Received: name with shape (...) and dtype ...").

numpy scalars (`np.int64(2)`, `np.float32(0.1)`) are accepted wherever Python
numbers are; `True` and `False` are never accepted as numbers. Each check returns
the value as a plain Python `int`, `float` or `bool`, so that `get_config()` stays
JSON-friendly.

>>> check_int(np.int64(3), "num_heads", minimum=1)
3
>>> check_int(2.5, "num_heads", minimum=1)
Traceback (most recent call last):
    ...
TypeError: `num_heads` must be an integer >= 1. Received: num_heads=2.5
>>> check_rate(1.5, "dropout")
Traceback (most recent call last):
    ...
ValueError: `dropout` must be a number in [0, 1). Received: dropout=1.5
"""

import math
import numbers

import numpy as np


def describe(value):
    """How a received value is shown in an error message: arrays and tensors by
    shape and dtype, everything else by `repr` (cut at 80 characters)."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (numbers.Number, np.generic)):
        return f" with shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"
    text = repr(value)
    return "=" + (text if len(text) <= 80 else text[:77] + "...")


def message(name, expected, value):
    """The course's error message: "`name` must be expected. Received: name=value"."""
    return f"`{name}` must be {expected}. Received: {name}{describe(value)}"


def is_int(value):
    """True for Python and numpy integers, False for `bool` and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """True for Python and numpy real numbers, False for `bool` and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _range_text(minimum, maximum, min_inclusive=True, max_inclusive=True):
    if minimum is not None and maximum is not None:
        left, right = "[" if min_inclusive else "(", "]" if max_inclusive else ")"
        return f" in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f" {'>=' if min_inclusive else '>'} {minimum}"
    if maximum is not None:
        return f" {'<=' if max_inclusive else '<'} {maximum}"
    return ""


def _check_range(value, name, expected, minimum, maximum, min_inclusive, max_inclusive):
    too_small = minimum is not None and (value < minimum if min_inclusive else value <= minimum)
    too_large = maximum is not None and (value > maximum if max_inclusive else value >= maximum)
    if too_small or too_large:
        raise ValueError(message(name, expected, value))


def check_int(value, name, minimum=None, maximum=None, allow_none=False):
    """`value` as a Python `int` within `[minimum, maximum]` (either bound optional).

    `None` is returned as is when `allow_none`. Raises `TypeError` for anything that
    is not an integer (a float such as `2.0` or `2.5`, a bool, a string) and
    `ValueError` for an integer out of range.
    """
    if value is None and allow_none:
        return None
    expected = "an integer" + _range_text(minimum, maximum) + (" or None" if allow_none else "")
    if not is_int(value):
        raise TypeError(message(name, expected, value))
    value = int(value)
    _check_range(value, name, expected, minimum, maximum, True, True)
    return value


def check_positive_int(value, name, allow_none=False):
    """`value` as a Python `int` >= 1 (see `check_int`)."""
    return check_int(value, name, minimum=1, allow_none=allow_none)


def check_number(
    value,
    name,
    minimum=None,
    maximum=None,
    min_inclusive=True,
    max_inclusive=True,
    allow_none=False,
):
    """`value` as a finite Python `float` within the given bounds.

    Raises `TypeError` for a non-number (bools included) and `ValueError` for NaN,
    an infinity, or a number out of range.
    """
    if value is None and allow_none:
        return None
    expected = (
        "a finite number"
        + _range_text(minimum, maximum, min_inclusive, max_inclusive)
        + (" or None" if allow_none else "")
    )
    if not is_number(value):
        raise TypeError(message(name, expected, value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(message(name, expected, value))
    _check_range(value, name, expected, minimum, maximum, min_inclusive, max_inclusive)
    return value


def check_rate(value, name="dropout"):
    """A dropout rate: a Python `float` in `[0, 1)`."""
    if not is_number(value):
        raise TypeError(message(name, "a number in [0, 1)", value))
    value = float(value)
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise ValueError(message(name, "a number in [0, 1)", value))
    return value


def check_bool(value, name):
    """`value` as a Python `bool`; only `True`, `False` and numpy bools are accepted
    (not `0`, `1` or the string `"False"`, which is true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(message(name, "True or False", value))
    return bool(value)


def check_choice(value, name, choices):
    """The element of `choices` that `value` names, else a `ValueError` listing them.

    Strings match strings (a numpy string too), integers match integers, and `None`
    matches `None`; `True` never matches `1`.
    """
    for choice in choices:
        if value is choice:
            return choice
        if isinstance(value, str) and isinstance(choice, str) and value == choice:
            return choice
        if is_int(value) and is_int(choice) and value == choice:
            return choice
    raise ValueError(message(name, f"one of {tuple(choices)}", value))


def check_seed(value, name="seed"):
    """A random seed: `None` or an integer >= 0."""
    return check_int(value, name, minimum=0, allow_none=True)


def check_shape_rank(shape, name, ranks, layout):
    """`shape` as a tuple if it has one of the ranks `ranks` (an int or a tuple of
    ints), else a `ValueError` such as "`query` must have shape (batch_size, T, dim).
    Received: query with shape (2, 3)"."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    shape = tuple(shape)
    if len(shape) not in ranks:
        raise ValueError(f"`{name}` must have shape {layout}. Received: {name} with shape {shape}")
    return shape


def check_activation(value, name="activation"):
    """The name of a Keras activation (`"relu"`, `"tanh"`, `"linear"`, ...) as a `str`.

    Raises `TypeError` for anything but a string (a function would not survive
    `get_config` as JSON) and `ValueError` for a name Keras does not know.
    """
    expected = "the name of a Keras activation, such as 'relu', 'tanh' or 'linear'"
    if not isinstance(value, str):
        raise TypeError(message(name, expected, value))
    import keras  # here only: importing this module imports no backend

    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(message(name, expected, value)) from None
    return str(value)


def check_array_like(value, name):
    """`value` itself if it is an array or a tensor (it has a `shape` and a `dtype`),
    else `value` as a numpy array (a number, a bool or a nested list of them).

    Raises `TypeError` for `None`, strings, ragged lists and anything else that is
    not numbers or bools (complex numbers included), naming the argument.
    """
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    expected = "an array or a tensor of numbers (or a nested list of them)"
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(message(name, expected, value))
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists
        raise TypeError(message(name, expected, value)) from error
    if array.dtype != bool and (not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array)):
        raise TypeError(message(name, expected, value))
    return array
