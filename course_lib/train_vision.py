"""Train lesson 11's longer-trained Vision Transformer on Fashion-MNIST.

    python -m course_lib.train_vision [--epochs E] [--minutes M] [--seed S] [--out DIR] [--tiny]

A lesson has four minutes; a ViT that beats 88% on Fashion-MNIST needs about twenty
minutes of one CPU core. This script trains `course_lib.vision.build_vit` with the
configuration in `DEFAULTS`:

1. Data: the 50,000 training images of `load_fashion_mnist()`, scaled to [0, 1]; each
   epoch every image is shifted by a random whole number of pixels in `[-2, 2]` in
   each direction (zeros fill in; `random_shift`), the only augmentation.
2. Training: cross-entropy with label smoothing 0.1, AdamW (weight decay 0.05), a
   linear warm-up over the first epoch then a cosine decay to 0 at the last epoch
   (`keras.optimizers.schedules.CosineDecay`), batches of 128. `--minutes` is a
   safety limit: training stops at the end of the epoch that crosses it.
3. The weights are rounded to float16 (`course_lib.pretrained.round_to_float16`), and
   the rounded model is measured on the validation and test sets; `vit_fashion.npz`
   (the weights) and `vit_fashion.json` (the command, wall and CPU seconds, the
   machine, versions, the model config, every epoch's validation accuracy, the test
   accuracy) are written to `--out` (default `course_lib/weights/`).

`load_trained_vit()` rebuilds the model from the metadata with today's `build_vit`
and loads the weights. `--tiny` runs everything in seconds (for the tests).
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from course_lib.checks import check_positive_int, message

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NAME = "vit_fashion"
DEFAULTS = {
    "model": {"image_shape": [28, 28, 1], "num_classes": 10, "patch_size": 7, "width": 64, "num_layers": 4,
              "num_heads": 4, "intermediate_dim": 128, "dropout": 0.0, "positions": "1d"},
    "epochs": 21, "batch_size": 128, "learning_rate": 1.5e-3, "weight_decay": 0.05, "label_smoothing": 0.1,
    "max_shift": 2,
}
TINY = {"model": {"width": 16, "num_layers": 1, "num_heads": 2, "intermediate_dim": 32}, "images": 512}


def random_shift(images, max_shift, rng):
    """Each image `(B, H, W, C)` moved by its own random `(dy, dx)` in `[-max_shift, max_shift]`, zeros
    filling in."""
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, b))
    rows = dy[:, None] + np.arange(h)[None]  # (B, H)
    cols = dx[:, None] + np.arange(w)[None]  # (B, W)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def scaled(images):
    """uint8 images `(n, 28, 28)` as float32 `(n, 28, 28, 1)` in [0, 1]."""
    return (np.asarray(images, "float32") / 255.0)[..., None]


def compile_vit(model, steps, config, warmup_steps):
    import keras

    if warmup_steps:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, steps - warmup_steps), warmup_target=config["learning_rate"], warmup_steps=warmup_steps)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(config["learning_rate"], steps)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"]),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config["label_smoothing"]),
        metrics=["accuracy"])


def compile_classifier(model, learning_rate=1e-3, weight_decay=0.05):
    """The lesson's live training: AdamW at a constant rate, cross-entropy on logits."""
    import keras

    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def train_for_seconds(model, images, labels, seconds, batch_size=128):
    """Fit a compiled model for `seconds` of wall-clock time, stopping after the batch
    that crosses the budget; epochs are reshuffled. The clock starts after the first
    step, whose time is mostly tracing and compiling (`first_step_seconds`).

    Returns `{"seconds", "steps", "epochs", "first_step_seconds"}` (`epochs` counts the
    images seen, in epochs; `steps` includes the first)."""
    import keras

    state = {"steps": 0, "begin": time.perf_counter()}

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            state["steps"] += 1
            if state["steps"] == 1:
                state["start"] = time.perf_counter()
            if time.perf_counter() - state["start"] > seconds:
                self.model.stop_training = True

    while "start" not in state or time.perf_counter() - state["start"] <= seconds:
        model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0, shuffle=True, callbacks=[Budget()])
    return {"seconds": time.perf_counter() - state["start"], "steps": state["steps"],
            "epochs": state["steps"] * batch_size / len(images),
            "first_step_seconds": state["start"] - state["begin"]}


def accuracy(model, images, labels):
    """Test accuracy of a logits model on `(n, 28, 28, 1)` images."""
    predictions = model.predict(images, batch_size=500, verbose=0).argmax(axis=-1)
    return float(np.mean(predictions == np.asarray(labels)))


def train(epochs=None, minutes=25.0, seed=0, out=WEIGHTS_DIR, tiny=False, command=None, on_epoch=None,
          init=None, learning_rate=None, warmup_epochs=1):
    """Train, round, measure and save; returns the metadata written (`on_epoch(record)` is
    called after each epoch, if given). `init`: a directory with a model saved by this
    script to start from (its metadata is kept under `"init"`, so the whole chain of runs
    is recorded)."""
    import keras

    from course_lib.datasets import load_fashion_mnist
    from course_lib.pretrained import round_to_float16
    from course_lib.vision import build_vit

    config = json.loads(json.dumps(DEFAULTS))
    if tiny:
        config["model"].update(TINY["model"])
    if learning_rate is not None:
        config["learning_rate"] = learning_rate
    config["warmup_epochs"] = warmup_epochs
    config["epochs"] = check_positive_int(epochs if epochs is not None else (1 if tiny else config["epochs"]),
                                          "epochs")
    start_wall, start_cpu = time.time(), time.process_time()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_fashion_mnist()
    if tiny:
        x_train, y_train = x_train[:TINY["images"]], y_train[:TINY["images"]]
        x_val, y_val, x_test, y_test = x_val[:256], y_val[:256], x_test[:256], y_test[:256]
    x_train, x_val, x_test = scaled(x_train), scaled(x_val), scaled(x_test)
    targets = keras.utils.to_categorical(y_train, 10)
    previous = None
    if init is not None:
        model, previous = load_trained_vit(init)
        config["model"] = previous["model"]
    else:
        model = build_vit(**config["model"])
    steps_per_epoch = -(-len(x_train) // config["batch_size"])
    compile_vit(model, steps_per_epoch * config["epochs"], config, warmup_steps=steps_per_epoch * warmup_epochs)
    history = []
    for epoch in range(config["epochs"]):
        shifted = random_shift(x_train, config["max_shift"], rng)
        fit = model.fit(shifted, targets, batch_size=config["batch_size"], epochs=1, verbose=0, shuffle=True)
        history.append({"epoch": epoch + 1, "seconds": round(time.time() - start_wall, 1),
                        "loss": round(float(fit.history["loss"][-1]), 4),
                        "val_accuracy": round(accuracy(model, x_val, y_val), 4)})
        if on_epoch is not None:
            on_epoch(history[-1])
        if time.time() - start_wall > 60 * minutes:
            break
    train_seconds = time.time() - start_wall
    model.set_weights(round_to_float16(model.get_weights()))
    metadata = {
        "finished": len(history) == config["epochs"],
        "command": command or ["python", "-m", "course_lib.train_vision"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.time() - start_wall, 1),
        "cpu_seconds": round(time.process_time() - start_cpu, 1),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                     "backend": keras.backend.backend()},
        "training": {**{k: v for k, v in config.items() if k != "model"}, "seed": seed, "tiny": tiny,
                     "train_images": len(x_train)},
        "model": config["model"],
        "parameters": model.count_params(),
        "history": history,
        "validation": {"images": len(x_val), "accuracy": accuracy(model, x_val, y_val)},
        "test": {"images": len(x_test), "accuracy": accuracy(model, x_test, y_test)},
        "init": previous,
        "total_train_seconds": round(train_seconds + (0.0 if previous is None else previous.get(
            "total_train_seconds", previous["train_seconds"])), 1),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"{NAME}.npz", **{f"w{i:03d}": w.astype("float16")
                                                for i, w in enumerate(model.get_weights())})
    (out / f"{NAME}.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return metadata


def load_trained_vit(directory=None):
    """The longer-trained ViT and its metadata: `(model, metadata)`.

    The model is rebuilt with today's `course_lib.vision.build_vit` from the metadata's
    config; weights that no longer fit the architecture raise a `ValueError`."""
    from course_lib.vision import build_vit

    directory = Path(WEIGHTS_DIR if directory is None else directory)
    path = directory / f"{NAME}.json"
    if not path.is_file():
        raise FileNotFoundError(f"No trained ViT at {path}. Train one with "
                                f"`python -m course_lib.train_vision --out {directory}`.")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    model = build_vit(**metadata["model"])
    with np.load(directory / f"{NAME}.npz") as stored:
        weights = [stored[name].astype("float32") for name in sorted(stored.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(message("directory", f"weights that fit build_vit(**{metadata['model']})",
                                 str(directory)) + f" ({len(weights)} arrays against {len(expected)} expected)")
    model.set_weights(weights)
    return model, metadata


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course_lib.train_vision", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(WEIGHTS_DIR))
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--init", default=None, help="start from the model saved in this directory")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    args = parser.parse_args(argv)
    command = ["python", "-m", "course_lib.train_vision", *(sys.argv[1:] if argv is None else argv)]
    metadata = train(args.epochs, args.minutes, args.seed, args.out, args.tiny, command, init=args.init,
                     learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs,
                     on_epoch=lambda record: print(json.dumps(record), flush=True))
    print(json.dumps({k: metadata[k] for k in ("train_seconds", "parameters", "validation", "test")}))


if __name__ == "__main__":
    main()
