"""Reading a learner's answer and saying what is wrong with it, without the answer.

`read` puts an answer into the form of the expected value (a list, tuple, numpy array
or tensor for an array; a numpy scalar for a number; a string in any case, spaces
stripped) or raises `AnswerError` about its form (type, shape). `close` compares within
tolerances. `describe` says how a readable answer differs from the expected value with
generic checks that never print that value: NaN or inf, negative entries, slices that
should sum to 1, a constant factor, a transpose, the right values in the wrong places,
which entries are wrong and the size of the error.
"""

import numpy as np


class AnswerError(ValueError):
    """An answer that cannot be read as what the exercise asks for; the message says why."""


def kind(x):
    """A few words on what `x` is ("a string", "an array of shape (2, 3)"), for messages."""
    if x is None:
        return "None"
    if isinstance(x, (bool, np.bool_)):
        return "a bool"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, (int, float, np.number)):
        return "a number"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)} item{'s' * (len(x) != 1)}"
    if getattr(x, "shape", None) is not None:
        return f"an array of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def as_array(x, what="the answer"):
    """`x` (a list, tuple, numpy array or tensor of numbers) as a numpy array."""
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise AnswerError(f"{what} should be numbers, not {kind(x)}")
    try:
        array = np.asarray(x)
    except (TypeError, ValueError):
        raise AnswerError(f"{what} cannot be read as an array (rows of different lengths?)") from None
    if array.dtype.kind not in "biuf":
        holding = " holding other things than numbers" if isinstance(x, (list, tuple)) else ""
        raise AnswerError(f"{what} should be numbers, not {kind(x)}{holding}")
    return array


def as_number(x, what="the answer"):
    """`x` (a Python or numpy number, or a 0-d array or tensor) as a float."""
    if x is None or isinstance(x, (bool, np.bool_, str)):
        raise AnswerError(f"{what} should be a number, not {kind(x)}")
    array = as_array(x, what)
    if array.shape != () or array.dtype.kind == "b":
        raise AnswerError(f"{what} should be a single number, not {kind(x)}")
    return float(array)


def first_below(xs, ys, level):
    """The first `x` whose `y` is below `level` (curves measured in an experiment), or None."""
    below = np.flatnonzero(np.asarray(ys, dtype=float) < level)
    return np.asarray(xs)[below[0]].item() if below.size else None


def _is_parts(expected, parts):
    return bool(parts) or isinstance(expected, (tuple, list)) and not all(np.isscalar(e) for e in expected)


def read(expected, received, what, parts=()):
    """`received` in the form of `expected`, or an `AnswerError` about its form."""
    if received is None:
        raise AnswerError(f"{what} is None: is a `return` missing?")
    if isinstance(expected, str):
        if not isinstance(received, str):
            raise AnswerError(f"{what} should be a string, not {kind(received)}")
        return received.strip().lower()
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(received, (bool, np.bool_)):
            raise AnswerError(f"{what} should be True or False, not {kind(received)}")
        return bool(received)
    if _is_parts(expected, parts):
        names = parts or [f"item {i}" for i in range(len(expected))]
        if isinstance(received, np.ndarray) and received.ndim:
            received = list(received)
        if not isinstance(received, (tuple, list)) or len(received) != len(expected):
            items = f"{len(expected)} items ({', '.join(names)})"
            raise AnswerError(f"{what} should be a tuple of {items}, not {kind(received)}")
        return tuple(read(e, r, n) for e, r, n in zip(expected, received, names))
    if np.ndim(expected) == 0:
        value = as_number(received, what)
        if isinstance(expected, (int, np.integer)):
            if not value.is_integer():
                raise AnswerError(f"{what} should be a whole number, not one with a fractional part")
            return int(value)
        return value
    expected, array = np.asarray(expected), as_array(received, what)
    if array.shape != expected.shape:
        if array.ndim == expected.ndim == 1:
            text = f"{what} has {array.shape[0]} entries, expected {expected.shape[0]}"
        else:
            text = f"{what} has shape {array.shape}, expected shape {expected.shape}"
        if array.ndim > 1 and sorted(array.shape) == sorted(expected.shape):
            text += ": the right sizes in another order; check the order of the axes"
        raise AnswerError(text)
    if expected.dtype.kind == "b":
        if not np.isin(array, (0, 1)).all():
            raise AnswerError(f"{what} should hold True/False values (a boolean mask)")
        return array.astype(bool)
    if expected.dtype.kind in "iu":
        if not np.array_equal(array, np.round(array)):
            raise AnswerError(f"{what} should hold whole numbers (ids, indices or counts)")
        return array.astype(np.int64)
    return array.astype(float)


def close(expected, received, rtol, atol):
    """Whether `received`, already `read` into the form of `expected`, is close to it."""
    if isinstance(expected, str):
        return received == expected.strip().lower()
    if isinstance(received, tuple):
        pairs = zip(expected, received)
        return len(received) == len(expected) and all(close(e, r, rtol, atol) for e, r in pairs)
    expected = np.asarray(expected)
    if np.shape(received) != expected.shape:
        return False
    if expected.dtype.kind in "biu":
        return bool(np.array_equal(received, expected))
    return bool(np.allclose(received, expected, rtol=rtol, atol=atol, equal_nan=True))


def matches(expected, received, rtol=1e-5, atol=1e-8):
    """Whether `received` is `expected` in any valid form, within the tolerances."""
    try:
        return close(expected, read(expected, received, "the answer"), rtol, atol)
    except (AnswerError, TypeError, ValueError):
        return False


def _index(mask):
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    return first[0] if len(first) == 1 else first


def _band(expected, received):
    error = np.max(np.abs(received - expected)) / max(np.max(np.abs(expected)), 1e-12)
    if error >= 1:
        return "the error is larger than the expected value itself"
    size = "less than 1%" if error < 0.01 else "1% to 10%" if error < 0.1 else "10% to 100%"
    rounding = " (rounded too early?)" if error < 0.01 and np.asarray(expected).dtype.kind == "f" else ""
    return f"the error is {size} of the expected size{rounding}"


def _slices(axis, ndim):
    if ndim == 1:
        return "its entries"
    return ("its columns", "its rows")[axis] if ndim == 2 else f"its slices along axis {axis}"


def _sums(e, r, atol):
    def summing(a):  # the axes along which every slice of `a` sums to 1
        tolerance = [max(1e-5, atol * n) for n in a.shape]
        return [k for k in range(a.ndim) if a.shape[k] > 1 and np.allclose(a.sum(axis=k), 1, atol=tolerance[k])]

    wanted = summing(e)
    if not wanted or set(wanted) & set(summing(r)):
        return None
    others = summing(r)
    if others:
        return f"sums to 1 along the wrong axis: {_slices(others[0], r.ndim)} sum to 1, not {_slices(wanted[0], r.ndim)}"
    return "does not sum to 1" if e.ndim == 1 else f"does not sum to 1: {_slices(wanted[0], e.ndim)} should each sum to 1"


def _findings(e, r, atol):
    if np.isnan(r).any() and not np.isnan(e).any():
        yield "contains NaN (a 0/0 or inf - inf somewhere)"
    if np.isinf(r).any() and not np.isinf(e).any():
        yield "contains inf (an overflow)"
    if (e >= 0).all() and (r < -1e-9).any():
        yield "has negative entries where there can be none" if e.ndim else "is negative, which it cannot be"
    if e.ndim == 0 or e.dtype.kind == "b":
        return
    if e.dtype.kind == "f":
        yield _sums(e, r, atol)
        factor = np.vdot(r, e) / np.vdot(e, e) if np.count_nonzero(e) > 1 else 1.0
        if not np.isclose(factor, 1) and np.allclose(r, factor * e, rtol=1e-4, atol=1e-9):
            yield "has the wrong sign" if np.isclose(factor, -1) else (
                "is off by a constant factor: every entry is scaled by the same number "
                "(a missing scale or normalisation?)")
    if e.ndim > 1 and e.shape[-1] == e.shape[-2] and np.allclose(r, np.swapaxes(e, -1, -2)):
        yield "is transposed (its last two axes are swapped)"
    if e.size > 1 and np.allclose(np.sort(r, axis=None), np.sort(e, axis=None)):
        yield "has the right values in the wrong places"


def describe(expected, received, rtol, atol, what, parts=()):
    """What is wrong with `received` (readable, not close to `expected`)."""
    if isinstance(received, tuple):
        names = parts or [f"item {i}" for i in range(len(expected))]
        for e, r, name in zip(expected, received, names):
            if not close(e, r, rtol, atol):
                return describe(e, r, rtol, atol, name)
        return f"{what} is not right"
    if isinstance(received, str):
        return f"{what} is not the right one"
    e, r = np.asarray(expected), np.asarray(received)
    if e.dtype.kind == "b":
        if e.ndim > 1 and e.shape[-1] == e.shape[-2] and np.array_equal(r, np.swapaxes(e, -1, -2)):
            return f"{what} is transposed (its last two axes are swapped)"
        extra, missing = int((r & ~e).sum()), int((~r & e).sum())
        return (f"{what} has {extra} entries True that should be False and {missing} False that should be True "
                f"(the first wrong one at index {_index(r != e)})")
    found = next((text for text in _findings(e, r.astype(float), atol) if text), None)
    if found:
        return f"{what} {found}"
    if e.ndim == 0:
        return f"{what} is not right: {_band(e, r)}"
    wrong = ~np.isclose(r, e, rtol=rtol, atol=atol)
    band = "" if e.dtype.kind in "iu" else f"; {_band(e, r)}"
    count = f"{wrong.sum()} of {e.size} entries {'is' if wrong.sum() == 1 else 'are'} wrong"
    return f"{what}: {count}, the first at index {_index(wrong)}{band}"


def compare(expected, received, rtol=1e-5, atol=1e-8, what="the answer"):
    """`None` if `received` matches `expected`, else what is wrong, without the expected value."""
    try:
        received = read(expected, received, what)
    except AnswerError as problem:
        return str(problem)
    return None if close(expected, received, rtol, atol) else describe(expected, received, rtol, atol, what)


def show(x, limit=100):
    """`x` on one line for a message: a small array in full, a large one by its shape."""
    if isinstance(x, np.ndarray):
        text = " ".join(np.array2string(x, precision=4, separator=", ", suppress_small=True).split())
        return text if x.size <= 20 and (limit is None or len(text) <= limit) else f"an array of shape {x.shape}"
    text = " ".join(repr(x).split())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."
