"""Time course_lib's MultiHeadAttention against keras.layers.MultiHeadAttention.

    python benchmarks/bench_multihead.py            # tf.function-compiled calls
    python benchmarks/bench_multihead.py --eager    # eager calls as well
    python benchmarks/bench_multihead.py --lengths 64 128 --repeats 3

Self-attention at batch 32, width 128, 8 heads of key_dim 16, for each sequence
length: the forward pass, and the forward plus backward pass (gradients of the sum
of the outputs with respect to the input and every weight). Both layers hold the
same weights. Each measurement warms up first (tracing, allocation), then reports
the median of `--repeats` timed calls; ours and Keras's calls alternate so that a
change of load on the machine affects both alike. The table gives milliseconds
(medians of wall-clock time) and the ratio ours / Keras (below 1: ours is faster);
the "cpu" columns give the ratio of the CPU time the process used (summed over its
threads), which a busy machine inflates much less than wall-clock time.

Not part of the test suite: timings depend on the machine and on what else runs.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from course_lib.layers import MultiHeadAttention  # noqa: E402


def make_steps(layer, x, compiled):
    def forward():
        return layer(x, x)

    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, x))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    if compiled:
        return tf.function(forward), tf.function(forward_backward)
    return forward, forward_backward


def timed(step):
    """(wall-clock seconds, CPU seconds of this process) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = step()
    # Wait for the values, not only for the launch of the computation.
    for tensor in tf.nest.flatten(result):
        tensor.numpy()
    return time.perf_counter() - start, time.process_time() - start_cpu


def compare(step_ours, step_keras, warmup, repeats):
    for _ in range(warmup):
        timed(step_ours)
        timed(step_keras)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(timed(step_ours))
        theirs.append(timed(step_keras))
    wall_ours, wall_theirs = (statistics.median(w for w, _ in t) for t in (ours, theirs))
    cpu_ours, cpu_theirs = (statistics.median(c for _, c in t) for t in (ours, theirs))
    return 1000 * wall_ours, 1000 * wall_theirs, cpu_ours / cpu_theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--eager", action="store_true", help="also time eager calls")
    args = parser.parse_args()
    key_dim = args.width // args.heads

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"batch {args.batch}, width {args.width}, {args.heads} heads of key_dim {key_dim}, "
          f"self-attention, float32; median of {args.repeats} after {args.warmup} warm-up calls")
    modes = [("tf.function", True)] + ([("eager", False)] if args.eager else [])
    header = (f"{'mode':<12}{'length':>7}{'fwd ours':>11}{'fwd keras':>11}{'ratio':>7}{'cpu':>7}"
              f"{'f+b ours':>11}{'f+b keras':>11}{'ratio':>7}{'cpu':>7}")
    print(header)
    print("-" * len(header))
    for mode, compiled in modes:
        for length in args.lengths:
            keras.utils.set_random_seed(0)
            x = tf.constant(np.random.default_rng(0).normal(size=(args.batch, length, args.width)), tf.float32)
            theirs = keras.layers.MultiHeadAttention(args.heads, key_dim)
            ours = MultiHeadAttention(args.heads, key_dim)
            theirs(x, x)
            ours(x, x)
            ours.set_weights(theirs.get_weights())
            np.testing.assert_allclose(ours(x, x).numpy(), theirs(x, x).numpy(), atol=1e-4)
            fwd_ours, fb_ours = make_steps(ours, x, compiled)
            fwd_keras, fb_keras = make_steps(theirs, x, compiled)
            f_o, f_k, f_cpu = compare(fwd_ours, fwd_keras, args.warmup, args.repeats)
            b_o, b_k, b_cpu = compare(fb_ours, fb_keras, args.warmup, args.repeats)
            print(f"{mode:<12}{length:>7}{f_o:>9.1f}ms{f_k:>9.1f}ms{f_o / f_k:>7.2f}{f_cpu:>7.2f}"
                  f"{b_o:>9.1f}ms{b_k:>9.1f}ms{b_o / b_k:>7.2f}{b_cpu:>7.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
