"""Time course_lib's GroupedQueryAttention against keras.layers.GroupQueryAttention.

    python benchmarks/bench_grouped_query.py
    python benchmarks/bench_grouped_query.py --lengths 128 256 --repeats 3 --kv-heads 1 2

Self-attention at batch 32, width 128, 8 query heads of head_dim 16, for each number of
key/value heads and each sequence length: the forward pass, and the forward plus backward
pass. Both layers hold the same weights (checked first). The measuring (warm-up, median
of `--repeats`, ours and Keras's alternating, wall-clock and CPU-time ratios) is that of
benchmarks/bench_multihead.py, imported from it. Keras repeats the key/value heads
`g = 8 / kv_heads` times before attending; ours groups the query heads instead.

Not part of the test suite: timings depend on the machine and on what else runs.
"""

import argparse
import os
import platform
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_multihead import compare, make_steps  # noqa: E402

from course_lib.layers import GroupedQueryAttention  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--kv-heads", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    head_dim = args.width // args.heads

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"batch {args.batch}, width {args.width}, {args.heads} query heads of head_dim {head_dim}, "
          f"self-attention, float32, tf.function; median of {args.repeats} after {args.warmup} warm-up calls")
    header = (f"{'kv':>3}{'length':>7}{'fwd ours':>11}{'fwd keras':>11}{'ratio':>7}{'cpu':>7}"
              f"{'f+b ours':>11}{'f+b keras':>11}{'ratio':>7}{'cpu':>7}")
    print(header)
    print("-" * len(header))
    for kv in args.kv_heads:
        for length in args.lengths:
            keras.utils.set_random_seed(0)
            x = tf.constant(np.random.default_rng(0).normal(size=(args.batch, length, args.width)), tf.float32)
            theirs = keras.layers.GroupQueryAttention(head_dim, args.heads, kv)
            ours = GroupedQueryAttention(head_dim, args.heads, kv)
            theirs(x, x)
            ours(x, x)
            ours.set_weights(theirs.get_weights())
            np.testing.assert_allclose(ours(x, x).numpy(), theirs(x, x).numpy(), atol=1e-4)
            fwd_ours, fb_ours = make_steps(ours, x, True)
            fwd_keras, fb_keras = make_steps(theirs, x, True)
            f_o, f_k, f_cpu = compare(fwd_ours, fwd_keras, args.warmup, args.repeats)
            b_o, b_k, b_cpu = compare(fb_ours, fb_keras, args.warmup, args.repeats)
            print(f"{kv:>3}{length:>7}{f_o:>9.1f}ms{f_k:>9.1f}ms{f_o / f_k:>7.2f}{f_cpu:>7.2f}"
                  f"{b_o:>9.1f}ms{b_k:>9.1f}ms{b_o / b_k:>7.2f}{b_cpu:>7.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
