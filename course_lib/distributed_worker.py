"""Data-parallel training on one machine, each run in its own process (lesson 13).

Devices must be set up before TensorFlow (or JAX) starts, and a multi-worker run needs
one process per worker, so every run here is a fresh Python process started by the
functions below, always with a timeout (a hung worker fails the caller, it does not
hang it). The same small model and data in every mode, so that the final weights can
be compared:

* `"mirrored"`: `tf.distribute.MirroredStrategy` over two logical CPU devices of one
  process, with `model.fit`: each global batch of 64 is split into two replica batches
  of 32, each replica computes its gradients, they are summed across replicas
  (all-reduce), and both copies of the weights take the same step. In the same
  process, the references on one device: `model.fit` (`reference`) and the custom
  loop below (`loop`, the reference of the multi-worker run).
* `"worker"`: one of two `tf.distribute.MultiWorkerMirroredStrategy` workers,
  processes on this machine that find each other through `TF_CONFIG` (localhost ports).
  Keras 3's `model.fit` fails under this strategy today (keras-team/keras#20585), so
  it trains with a custom loop: per replica, the loss is the sum over its 32 examples
  divided by the global batch 64, the Keras optimizer all-reduces (sums) the gradients
  across the workers, and every worker applies the same update.
* `"jax"`: Keras's own `keras.distribution.DataParallel` on two JAX host devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`), with `model.fit`, and the
  same fit without a distribution, in one process.

`run_all` starts them. Run as a script: `python -m course_lib.distributed_worker MODE OUTPUT.npz [--index I
--ports P0,P1]`; it writes the final weights (and the devices it saw) to `OUTPUT.npz`.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

GLOBAL_BATCH, EPOCHS, SAMPLES, FEATURES, LEARNING_RATE, SEED = 64, 3, 512, 16, 0.1, 0
MODES = ("mirrored", "worker", "jax")


def make_data():
    """The task: 512 points in 16 dimensions, label 1 where a fixed linear score is > 0."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=FEATURES) > 0).astype("float32")[:, None]
    return x, y


def make_model(keras):
    keras.utils.set_random_seed(SEED)  # the same initial weights in every process
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(1)])


def _loss(keras):
    return keras.losses.BinaryCrossentropy(from_logits=True)


def _fit(keras, model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=_loss(keras))
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


def _custom_loop(tf, keras, strategy, x, y):
    """Data-parallel SGD written out: each replica's loss is its examples' share of the global mean."""
    with strategy.scope():
        model = make_model(keras)
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
        per_example = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)

    def dataset_fn(context):
        replica_batch = context.get_per_replica_batch_size(GLOBAL_BATCH)
        start = context.input_pipeline_id * replica_batch  # this worker's slice of every global batch
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        return data.map(lambda xb, yb: (xb[start:start + replica_batch], yb[start:start + replica_batch]))

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(per_example(yb, model(xb, training=True))) / GLOBAL_BATCH
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # sums the gradients across replicas
        return loss

    @tf.function
    def step(xb, yb):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(xb, yb)), axis=None)

    losses = []
    for _ in range(EPOCHS):
        for xb, yb in strategy.distribute_datasets_from_function(dataset_fn):
            losses.append(float(step(xb, yb)))
    return [np.asarray(w) for w in model.get_weights()], losses


def main(argv):
    mode, output = argv[0], argv[1]
    if mode not in MODES:
        raise SystemExit(f"MODE must be one of {MODES}. Received: {mode!r}")
    options = dict(zip(argv[2::2], argv[3::2]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ["KERAS_BACKEND"] = "jax" if mode == "jax" else "tensorflow"
    if mode == "jax":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    if mode == "worker":
        ports = options["--ports"].split(",")
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                              "task": {"type": "worker", "index": int(options["--index"])}})
    x, y = make_data()
    result = {}
    if mode == "jax":
        import keras

        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        result["weights"] = _fit(keras, make_model(keras), x, y)
        keras.distribution.set_distribution(None)
        result["reference"] = _fit(keras, make_model(keras), x, y)
        result["devices"] = [str(d) for d in devices]
    else:
        import tensorflow as tf

        if mode == "mirrored":  # two logical devices on the one CPU, before TensorFlow starts
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras

        if mode == "worker":
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            result["weights"], result["losses"] = _custom_loop(tf, keras, strategy, x, y)
        else:
            strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
            with strategy.scope():
                result["weights"] = _fit(keras, make_model(keras), x, y)
            # The references, on one device (the default strategy): model.fit, and the custom loop.
            result["reference"] = _fit(keras, make_model(keras), x, y)
            result["loop"], result["losses"] = _custom_loop(tf, keras, tf.distribute.get_strategy(), x, y)
        result["replicas"] = strategy.num_replicas_in_sync
        result["devices"] = [d.name for d in tf.config.list_logical_devices("CPU")]
    arrays = {f"weight_{i}": w for i, w in enumerate(result.pop("weights"))}
    arrays.update({f"reference_{i}": w for i, w in enumerate(result.pop("reference", []))})
    if mode == "mirrored":
        arrays.update({f"loop_{i}": w for i, w in enumerate(result.pop("loop"))})
    np.savez(output, info=json.dumps(result), **arrays)


def _read(path):
    with np.load(path) as data:
        info = json.loads(str(data["info"]))
        info["weights"] = [data[f"weight_{i}"] for i in range(sum(k.startswith("weight_") for k in data))]
        for name in ("reference", "loop"):
            arrays = [data[f"{name}_{i}"] for i in range(sum(k.startswith(f"{name}_") for k in data))]
            if arrays:
                info[name] = arrays
    return info


def _command(mode, output, *extra):
    return [sys.executable, "-m", "course_lib.distributed_worker", mode, output, *extra]


def _wait(processes, timeout, errors):
    """Wait for every process, `timeout` seconds in all. As soon as one fails (its peer
    would wait for it forever) or the time is up, stop them all and raise, with the end
    of the failed one's stderr, read from its file in `errors` (one open binary file per
    process)."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [process.poll() for process in processes]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if all(code == 0 for code in codes):
            return
        if failed or time.monotonic() > deadline:
            for process in processes:
                process.kill()
                process.wait()
            if not failed:
                raise RuntimeError(f"a worker did not finish within timeout={timeout} s; all were stopped")
            errors[failed[0]].seek(0)
            text = errors[failed[0]].read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"a worker exited with code {codes[failed[0]]} (all were stopped):\n{text}")
        time.sleep(0.05)


def run_all(modes=("mirrored", "workers", "jax"), timeout=150):
    """Start every run of `modes` at once, each in fresh processes (`"workers"` is the two
    `MultiWorkerMirroredStrategy` workers, on free localhost ports), and wait at most
    `timeout` seconds for all of them (on a timeout, every process is stopped and a
    `RuntimeError` raised). Returns a dict: `"mirrored"` and `"jax"` give `weights` (a
    list of arrays), `devices`, `reference` (the same fit on one device), and for
    `"mirrored"` `replicas`, `loop` (the custom loop on one device) and its `losses`;
    `"workers"` gives a list of the two workers' results (`weights`, `losses`, `replicas`)."""
    known = ("mirrored", "workers", "jax")
    if isinstance(modes, str) or not set(modes) <= set(known):
        raise ValueError(f"`modes` must be a tuple of some of {known}. Received: modes={modes!r}")
    ports = ",".join(str(p) for p in free_ports(2))
    with tempfile.TemporaryDirectory() as folder:
        jobs = []  # (mode, output file, command)
        for mode in modes:
            if mode == "workers":
                jobs += [(mode, os.path.join(folder, f"worker_{i}.npz"), ("--index", str(i), "--ports", ports))
                         for i in range(2)]
            else:
                jobs.append((mode, os.path.join(folder, f"{mode}.npz"), ()))
        errors = [open(os.path.join(folder, f"stderr_{i}"), "w+b") for i in range(len(jobs))]
        try:  # stderr to files: a full pipe would block a process
            processes = [subprocess.Popen(_command("worker" if mode == "workers" else mode, output, *extra),
                                          stdout=subprocess.DEVNULL, stderr=error)
                         for (mode, output, extra), error in zip(jobs, errors)]
            _wait(processes, timeout, errors)
        finally:
            for error in errors:
                error.close()
        results = {}
        for mode, output, _ in jobs:
            if mode == "workers":
                results.setdefault(mode, []).append(_read(output))
            else:
                results[mode] = _read(output)
        return results


def free_ports(count):
    """`count` distinct localhost ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def max_difference(weights_a, weights_b):
    """The largest absolute difference between two lists of weight arrays."""
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(weights_a, weights_b))


if __name__ == "__main__":
    main(sys.argv[1:])
