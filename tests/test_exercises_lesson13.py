"""Lesson 13's exercises: 13.1 (the bytes of a key/value cache, checked against real cache
tensors), 13.2 (one online-softmax step, checked by folding blocks into the softmax) and
13.3 (the chunk size, re-measured by the checker). The reference passes in any valid
form, typical wrong answers get specific feedback, the expected answer is never shown.
The generic tests in tests/test_exercises.py cover the cases and declared mistakes too."""

import keras
import numpy as np
import pytest

from course_lib import exercises
from course_lib.attention import softmax
from course_lib.efficient import kv_cache_bytes
from course_lib.exercises import lesson13

CORRECT = ("correct", "your answer passes the check.")


# 13.1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(2, 256, 4, 16, 4), (1, 1, 1, 8, 2), (3, 7, 2, 5, 8)])
def test_13_1_reference_counts_the_bytes_of_real_caches(args):
    layers, length, heads, head_dim, size = args
    caches = [np.zeros((1, 2, length, heads, head_dim), f"float{8 * size}") for _ in range(layers)]
    assert lesson13._cache_bytes(*args) == sum(c.nbytes for c in caches)
    assert lesson13._cache_bytes(*args) == kv_cache_bytes(layers, length, heads, head_dim,
                                                          dtype=f"float{8 * size}")


@pytest.mark.parametrize("wrong, says", [
    pytest.param(lambda n, t, h, d, b: n * t * h * d * b, "values are cached too", id="keys-only"),
    pytest.param(lambda n, t, h, d, b: n * 2 * t * h * d, "bytes per number", id="numbers"),
    pytest.param(lambda n, t, h, d, b: 2 * t * h * d * b, "number of layers", id="one-layer"),
])
def test_13_1_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("13.1", wrong)
    assert status == "wrong" and says in message, message
    assert str(lesson13._cache_bytes(2, 256, 4, 16, 4)) not in message


def test_13_1_accepts_numpy_integers():
    assert exercises.evaluate("13.1", lambda *a: np.int64(lesson13._cache_bytes(*a)))[0] == "correct"


# 13.2 ---------------------------------------------------------------------------------


def test_13_2_reference_folded_over_blocks_is_the_softmax_average():
    rng = np.random.default_rng(0)
    scores = 10 * rng.normal(size=12)
    values = np.concatenate([rng.normal(size=(12, 3)), np.ones((12, 1))], axis=1)  # the last column: ones
    m, acc = -np.inf, np.zeros(4)
    for start in range(0, 12, 5):
        m, acc = lesson13._online_update(m, acc, scores[start:start + 5], values[start:start + 5])
    np.testing.assert_allclose(acc[:-1] / acc[-1], softmax(scores) @ values[:, :-1], atol=1e-12)


def test_13_2_accepts_lists():
    def as_lists(*args):
        m, acc = lesson13._online_update(*args)
        return [float(m), list(acc)]

    assert exercises.evaluate("13.2", as_lists)[0] == "correct"


@pytest.mark.parametrize("wrong, says", [
    pytest.param(lesson13._no_rescaling, "must be rescaled", id="no-rescaling"),
    pytest.param(lesson13._rescaled_the_wrong_way, "other way", id="wrong-way"),
    pytest.param(lesson13._block_max_only, "every block so far", id="block-max"),
])
def test_13_2_names_the_mistake(wrong, says):
    status, message = exercises.evaluate("13.2", wrong)
    assert status == "wrong" and says in message, message


def test_13_2_overflow_is_caught():
    def naive(m, acc, scores, values):  # no maximum subtracted
        return max(m, max(scores)), acc + np.exp(np.asarray(scores, float)) @ values

    assert exercises.evaluate("13.2", naive)[0] == "wrong"


# 13.3 ---------------------------------------------------------------------------------

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's allocator")


_MEASURED = """
import numpy as np
from course_lib import exercises
from course_lib.exercises import lesson13
sizes = [2 ** i for i in range(3, 11)]
plain, peaks = lesson13._peaks(sizes)
largest = max(c for c, p in zip(sizes, peaks) if p <= plain / 8)
assert exercises.evaluate("13.3", largest)[0] == "correct", exercises.evaluate("13.3", largest)
assert exercises.evaluate("13.3", np.int64(largest))[0] == "correct"
status, message = exercises.evaluate("13.3", largest * 2)
assert status == "wrong" and "smaller chunk" in message, message
status, message = exercises.evaluate("13.3", largest // 2)
assert status == "wrong" and "largest power of two" in message and str(largest) not in message, message
print("ok")
"""


@tensorflow_only
def test_13_3_without_allocator_statistics_the_checker_says_so():
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        assert "cannot measure" in exercises.evaluate("13.3", 64)[1]


@tensorflow_only
def test_13_3_the_measured_largest_size_passes_and_its_neighbours_do_not():
    """In a fresh process with TensorFlow's BFC allocator on CPU (its statistics)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", _MEASURED], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("answer, says", [(100, "power of two"), (0, "positive integer"), (2.5, "positive integer"),
                                          ("large", "chunk size")])
def test_13_3_reads_the_answer(answer, says):
    status, message = exercises.evaluate("13.3", answer)
    assert status == "wrong" and says in message, message
