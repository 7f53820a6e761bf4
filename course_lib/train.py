"""Train the course's longer-trained translation models (lessons 04 and 09).

    python -m course_lib.train translation --model {rnn,transformer} --minutes M
        [--seed S] [--out DIR] [--tiny]

What one run does:

1. Data: the training sentences of `load_de_en_pairs()` plus the dictionary's word and
   phrase entries (`load_de_en_lexicon()`, which leaves out every line that holds a
   validation or test sentence). Every epoch is all the training sentences once and a
   fresh draw of `lexicon_ratio` times as many lexicon pairs (2 for the RNN: lexicon
   pairs are short, so about half the tokens of an epoch come from each, and the whole
   lexicon is seen over about ten epochs; 1 for the Transformer). Ids from the course's vocabulary,
   `course_lib.translation.translation_vectorizer()`, cut at 63 pieces per side.
2. Batches (`token_batches`): each pair goes to the smallest width of `WIDTHS` that
   holds it; a batch of width `w` has `tokens_per_batch // w` pairs, so every batch
   holds about the same number of tokens and there are only `len(WIDTHS)` shapes (a
   compiled training step is traced once per shape, not once per batch).
3. Training: teacher forcing, cross-entropy with label smoothing 0.1 over the real
   target tokens, Adam with a linear warm-up then an inverse-square-root decay of the
   learning rate (`WarmupInverseSqrt`), gradients clipped to a global norm of 1.0 (the
   RNN needs it; it does not hurt the Transformer). The budget is wall-clock minutes.
4. Every `eval_minutes`: greedy translations of a fixed, seeded subset of 500
   validation sentences, scored with chrF (sacrebleu). The best weights are kept (and
   written, so an interrupted run still leaves a model); at the end the average of
   the last `average` evaluated checkpoints is scored too, and the better one kept.
5. The kept weights are rounded to float16 and saved with their metadata
   (`course_lib.pretrained.save_translation_model`), after the scores the lessons
   re-measure: chrF on the first 100 sentences of the validation subset, and corpus
   BLEU and chrF on the whole test split, next to copying the English source.

`--tiny` runs the whole pipeline in seconds (a few hundred pairs, a tiny model), for
the tests. Nothing here prints except `main`.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

from course_lib.checks import check_choice, check_positive_int, message
from course_lib.tokens import END, PAD, START

WIDTHS = (8, 12, 16, 24, 32, 48, 64)  # the padded lengths of training batches
MAX_PIECES = WIDTHS[-1] - 1  # pieces kept per side (the target gets START or END too)
VALIDATION_SUBSET, CHECK_SUBSET = 500, 100  # sentences scored during training, and re-measured on load

DEFAULTS = {
    "transformer": {
        # Sized for a shared 2-core CPU: width 192 (4.3M parameters) made 24 steps a minute there;
        # these settings made the committed model (about 40 steps of 3,000 tokens a minute, one core).
        "model": {"kind": "transformer", "sequence_length": WIDTHS[-1], "num_layers": 3, "width": 128,
                  "num_heads": 4, "intermediate_dim": 512, "dropout": 0.1, "normalize_first": True,
                  "share_embeddings": True},
        "learning_rate": 2e-3, "warmup_steps": 400, "tokens_per_batch": 3000, "average": 5, "lexicon_ratio": 1.0,
        "jit_compile": "auto",  # XLA on TensorFlow: ~20 s per batch shape to compile, then faster
    },
    "rnn": {
        # combine_activation "linear": with tanh, Luong attention locked onto the last source piece
        # (weight 1.000 after 7 minutes) and the decoder read the source through one vector.
        "model": {"kind": "rnn", "embedding_dim": 128, "units": 256, "attention": "luong", "bidirectional": True,
                  "combine_activation": "linear"},
        "learning_rate": 2e-3, "warmup_steps": 300, "tokens_per_batch": 2000, "average": 3, "lexicon_ratio": 2.0,
        "jit_compile": False,  # XLA compiles a GRU loop for minutes per shape
    },
}
TINY_MODELS = {
    "transformer": {"num_layers": 1, "width": 32, "num_heads": 2, "intermediate_dim": 64},
    "rnn": {"embedding_dim": 16, "units": 32},
}


def token_batches(sources, targets, tokens_per_batch, rng, widths=WIDTHS):
    """Teacher-forcing batches of about `tokens_per_batch` tokens, of few shapes.

    Pair `i` goes to the smallest width `w` of `widths` with
    `max(len(sources[i]), len(targets[i]) + 1) <= w`; the pairs of a width are shuffled
    and cut into batches of `max(1, tokens_per_batch // w)` pairs, the last one filled up
    with other pairs of the same width, so each width gives one shape. The batches come
    in random order.

    Args:
        sources, targets: lists of id lists (no START, END or padding), each at most
            `widths[-1] - 1` long.
        tokens_per_batch: the padded source tokens per batch (as many target tokens).
        rng: a `numpy.random.Generator`.
        widths: increasing padded lengths. Defaults to `WIDTHS`.

    Returns:
        A list of `(source (b, w), target_in (b, w), target_out (b, w))` int32 arrays:
        `target_in = [START, y...]`, `target_out = [y..., END]`, padded with PAD.

    Example:

    >>> batches = token_batches([[5, 6], [7], [8, 9, 10]], [[4], [4, 5], [6]], 16, np.random.default_rng(0))
    >>> [b[0].shape for b in batches]  # 3 pairs of width 8, 16 // 8 = 2 a batch: the last one filled up
    [(2, 8), (2, 8)]
    >>> source, target_in, target_out = token_batches([[5, 6]], [[4, 7]], 8, np.random.default_rng(0))[0]
    >>> source.tolist(), target_in.tolist(), target_out.tolist()
    ([[5, 6, 0, 0, 0, 0, 0, 0]], [[1, 4, 7, 0, 0, 0, 0, 0]], [[4, 7, 2, 0, 0, 0, 0, 0]])
    """
    tokens_per_batch = check_positive_int(tokens_per_batch, "tokens_per_batch")
    needed = np.array([max(len(s), len(t) + 1) for s, t in zip(sources, targets)])
    if needed.size and needed.max() > widths[-1]:
        raise ValueError(message("sources", f"pairs of at most {widths[-1] - 1} ids per side", int(needed.max())))
    bucket = np.searchsorted(np.asarray(widths), needed)  # index of the smallest width that fits
    batches = []
    for b, width in enumerate(widths):
        rows = np.flatnonzero(bucket == b)
        if rows.size == 0:
            continue
        rng.shuffle(rows)
        size = max(1, tokens_per_batch // width)
        if rows.size % size:  # fill the last batch with other pairs of this width: one shape
            rows = np.concatenate([rows, rng.choice(rows, size - rows.size % size)])
        for start in range(0, rows.size, size):
            chosen = rows[start : start + size]
            source, target_in, target_out = (np.full((size, width), PAD, "int32") for _ in range(3))
            for k, i in enumerate(chosen):
                source[k, : len(sources[i])] = sources[i]
                target_in[k, : len(targets[i]) + 1] = [START, *targets[i]]
                target_out[k, : len(targets[i]) + 1] = [*targets[i], END]
            batches.append((source, target_in, target_out))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _keras_pieces():
    """The loss and the schedule (Keras imported here, once the backend is chosen)."""
    import keras
    from keras import ops

    class LabelSmoothedCrossEntropy(keras.losses.Loss):
        """`(1 - e) * (-log p[y]) + e * mean_v(-log p[v])` per real target token."""

        def __init__(self, smoothing=0.1, name="label_smoothed_cross_entropy"):
            super().__init__(name=name)
            self.smoothing = smoothing

        def call(self, y_true, y_pred):
            log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)  # (B, T, V)
            y_true = ops.cast(y_true, "int32")
            nll = -ops.take_along_axis(log_p, y_true[..., None], axis=-1)[..., 0]  # (B, T)
            loss = (1.0 - self.smoothing) * nll - self.smoothing * ops.mean(log_p, axis=-1)
            return loss * ops.cast(ops.not_equal(y_true, PAD), "float32")  # padding counts 0

    class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
        """`peak * min(step / warmup, sqrt(warmup / step))` (Vaswani et al., 2017)."""

        def __init__(self, peak, warmup_steps, offset=0):
            self.peak, self.warmup_steps, self.offset = peak, warmup_steps, offset

        def __call__(self, step):
            step = ops.cast(step, "float32") + 1.0 + self.offset
            return self.peak * ops.minimum(step / self.warmup_steps, ops.sqrt(self.warmup_steps / step))

        def get_config(self):
            return {"peak": self.peak, "warmup_steps": self.warmup_steps, "offset": self.offset}

    return LabelSmoothedCrossEntropy, WarmupInverseSqrt


def label_smoothed_cross_entropy(smoothing=0.1):
    """The training loss, a `keras.losses.Loss`: per real target token,
    `(1 - smoothing) * (-log p[y]) + smoothing * mean_v(-log p[v])` (cross-entropy
    against the one-hot target mixed with the uniform distribution, as Keras's
    `CategoricalCrossentropy(label_smoothing=smoothing)`); padded targets count 0.
    Takes integer targets `(B, T)` and logits `(B, T, V)`."""
    return _keras_pieces()[0](smoothing)


def warmup_inverse_sqrt(peak, warmup_steps, offset=0):
    """The learning-rate schedule, a `keras.optimizers.schedules.LearningRateSchedule`:
    `peak * min(step / warmup_steps, sqrt(warmup_steps / step))` (Vaswani et al., 2017,
    with the peak given directly), steps counted from 1 and shifted by `offset`."""
    return _keras_pieces()[1](peak, warmup_steps, offset)


def _encode_all(vectorizer, sentences):
    return [vectorizer.token_ids(s)[:MAX_PIECES] for s in sentences]


def score(model, vectorizer, english, german, batch_size=250, beam_width=None, length_penalty=0.6):
    """Corpus BLEU and chrF of greedy translations of `english` against `german` (or
    of beam-search ones with `beam_width`, `batch_size * beam_width` beams at once)."""
    from course_lib.translation import corpus_scores, translate

    sources = vectorizer.encode(english, sequence_length=WIDTHS[-1])
    sources[:, MAX_PIECES:] = PAD  # the width the model was trained on
    texts = translate(model, sources, vectorizer, max_length=WIDTHS[-1], batch_size=batch_size,
                      source_width=WIDTHS[-1], beam_width=beam_width, length_penalty=length_penalty)[0]
    return {name: round(value, 2) for name, value in corpus_scores(texts, german).items()}


def _versions():
    import keras
    import sacrebleu
    import sentencepiece

    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                "backend": backend, "sentencepiece": sentencepiece.__version__, "sacrebleu": sacrebleu.__version__}
    if backend in ("tensorflow", "jax"):
        versions[backend] = __import__(backend).__version__
    return versions


def train_translation(kind, minutes, seed=0, out=None, tiny=False, eval_minutes=None, log=None, command=None,
                      init=None, **overrides):
    """Train a translation model for `minutes` of wall-clock time and save it (see the
    module's docstring). `overrides` replace entries of `DEFAULTS[kind]` (`lexicon_ratio`,
    `learning_rate`, `warmup_steps`, `tokens_per_batch`, `average`, `label_smoothing`)
    or of its model config (`width`, `units`, `dropout`, ...); `log(text)` receives the
    progress lines, `command` (a list of str) is recorded. `init`: a folder with a saved
    model of the same config (finished or not) to go on training from; the learning-rate
    schedule goes on from its steps. Returns the metadata."""
    import keras

    from course_lib.datasets import load_de_en_lexicon, load_de_en_pairs
    from course_lib.pretrained import build_translation_model, round_to_float16, save_translation_model
    from course_lib.translation import VOCABULARY_SIZE, corpus_scores, translation_vectorizer

    kind = check_choice(kind, "kind", tuple(DEFAULTS))
    log = log or (lambda text: None)
    started, cpu_started = time.time(), time.process_time()
    settings = {"label_smoothing": 0.1, "vocabulary_size": VOCABULARY_SIZE,
                **{k: v for k, v in DEFAULTS[kind].items() if k != "model"}}
    config = {**DEFAULTS[kind]["model"], **(TINY_MODELS[kind] if tiny else {})}
    for name, value in overrides.items():
        if value is None:
            continue
        if name in settings:
            settings[name] = value
        elif name in config:
            config[name] = value
        else:
            raise ValueError(message(name, f"a setting of {sorted(settings)} or of the model config {sorted(config)}", value))
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)

    (en_train, de_train), (en_val, de_val), (en_test, de_test) = load_de_en_pairs()
    lexicon_en, lexicon_de = load_de_en_lexicon()
    vectorizer = translation_vectorizer(settings["vocabulary_size"])
    validation = np.sort(np.random.default_rng(12345).choice(len(en_val), VALIDATION_SUBSET, replace=False))
    test = np.arange(len(en_test))
    if tiny:  # a few hundred pairs: seconds
        keep = rng.choice(len(en_train), 300, replace=False)
        en_train, de_train = [en_train[i] for i in keep], [de_train[i] for i in keep]
        pick = rng.choice(len(lexicon_en), 600, replace=False)
        lexicon_en, lexicon_de = [lexicon_en[i] for i in pick], [lexicon_de[i] for i in pick]
        validation, test = validation[:20], test[:20]
    check = validation[:CHECK_SUBSET // 10 if tiny else CHECK_SUBSET]
    sentences = (_encode_all(vectorizer, en_train), _encode_all(vectorizer, de_train))
    lexicon = (_encode_all(vectorizer, lexicon_en), _encode_all(vectorizer, lexicon_de))
    lexicon_order, lexicon_next = rng.permutation(len(lexicon[0])), 0
    config["vocabulary_size"] = vectorizer.vocabulary_size()
    model = build_translation_model(config)
    initialized = None
    if init is not None:  # go on from an earlier run of the same config
        from course_lib.pretrained import load_translation_model

        previous, _, earlier = load_translation_model(kind, directory=init)
        same_weights = dict(earlier["model"])
        if "dropout" in config:
            same_weights["dropout"] = config["dropout"]  # dropout has no weights: it may change
        if same_weights != config:
            raise ValueError(message("init", f"a model of the config {config}", earlier["model"]))
        model.set_weights(previous.get_weights())
        best_entry = max(earlier["validation"]["history"], key=lambda entry: entry["chrF"])
        initialized = {"directory": str(init), "command": earlier.get("command"), "steps": best_entry["step"],
                       "train_seconds": earlier.get("train_seconds", round(60 * best_entry["minutes"], 1)),
                       "validation_chrF": best_entry["chrF"],
                       "initialized_from": earlier.get("initialized_from")}  # the chain of runs, oldest last
    Loss, Schedule = _keras_pieces()
    model.compile(
        optimizer=keras.optimizers.Adam(Schedule(settings["learning_rate"], settings["warmup_steps"],
                                                 0 if initialized is None else initialized["steps"]),
                                        beta_2=0.98, epsilon=1e-9, global_clipnorm=1.0),
        loss=Loss(settings["label_smoothing"]), jit_compile=settings["jit_compile"] if not tiny else False,
    )
    model.optimizer.build(model.trainable_variables)  # before the first step, so TensorFlow traces it once
    log(f"{kind}: {model.count_params():,} parameters, {len(sentences[0]):,} sentence pairs, "
        f"{len(lexicon[0]):,} lexicon pairs, vocabulary {vectorizer.fingerprint()}")

    def validation_scores():
        return score(model, vectorizer, [en_val[i] for i in validation], [de_val[i] for i in validation])

    budget = minutes * 60.0
    eval_every = 60.0 * (eval_minutes if eval_minutes is not None else max(minutes / 15, 0.05))
    history, kept, best = [], [], {"chrF": -1.0}
    step = epoch = tokens = lexicon_seen = 0
    train_started = time.time()
    next_eval, losses, done = train_started + eval_every, [], False
    while not done:
        epoch += 1
        count = min(len(lexicon[0]), int(round(settings["lexicon_ratio"] * len(sentences[0]))))
        if lexicon_next + count > len(lexicon_order):  # a new pass over the lexicon
            lexicon_order, lexicon_next = rng.permutation(len(lexicon[0])), 0
        drawn = lexicon_order[lexicon_next : lexicon_next + count]
        lexicon_next, lexicon_seen = lexicon_next + count, lexicon_seen + count
        src = sentences[0] + [lexicon[0][i] for i in drawn]
        tgt = sentences[1] + [lexicon[1][i] for i in drawn]
        for source, target_in, target_out in token_batches(src, tgt, settings["tokens_per_batch"], rng):
            losses.append(float(model.train_on_batch((source, target_in), target_out)))
            step += 1
            tokens += int(np.sum(source != PAD) + np.sum(target_out != PAD))
            now = time.time()
            done = now - train_started >= budget or (tiny and step >= 30)
            if now >= next_eval or done:
                scores = validation_scores()
                entry = {"minutes": round((time.time() - train_started) / 60, 2), "step": step, "epoch": epoch,
                         "loss": round(float(np.mean(losses)), 4), **scores}
                history.append(entry)
                losses = []
                kept = (kept + [model.get_weights()])[-settings["average"]:]
                if scores["chrF"] > best["chrF"]:
                    best = {**entry, "weights": kept[-1]}
                    if out is not None and not tiny:  # an interrupted run still leaves its best model
                        save_translation_model(best["weights"], {"finished": False, "model": config,
                                               "command": command, "initialized_from": initialized,
                                               "vocabulary": {"size": config["vocabulary_size"],
                                                              "fingerprint": vectorizer.fingerprint()},
                                               "validation": {"history": history}}, out, kind)
                log(f"step {step} epoch {epoch} {entry['minutes']} min loss {entry['loss']} "
                    f"validation BLEU {scores['BLEU']} chrF {scores['chrF']}")
                next_eval = time.time() + eval_every
            if done:
                break
    train_seconds = time.time() - train_started

    chosen, averaged = "best", None
    if len(kept) > 1:
        model.set_weights([np.mean(ws, axis=0) for ws in zip(*kept)])
        averaged = {"checkpoints": len(kept), **validation_scores()}
        chosen = "average" if averaged["chrF"] > best["chrF"] else "best"
        log(f"average of the last {len(kept)} checkpoints: validation chrF {averaged['chrF']}")
    final = model.get_weights() if chosen == "average" else best["weights"]
    model.set_weights(round_to_float16(final))
    check_scores = score(model, vectorizer, [en_val[i] for i in check], [de_val[i] for i in check])
    test_started = time.time()
    test_scores = score(model, vectorizer, [en_test[i] for i in test], [de_test[i] for i in test])
    test_seconds = time.time() - test_started
    copy = corpus_scores([en_test[i] for i in test], [de_test[i] for i in test])
    log(f"test BLEU {test_scores['BLEU']} chrF {test_scores['chrF']} ({len(test)} sentences, "
        f"{test_seconds:.0f} s); copying the source: chrF {copy['chrF']:.2f}")

    metadata = {
        "finished": True,
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1), "train_seconds": round(train_seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": _versions(),
        "vocabulary": {"function": "course_lib.translation.translation_vectorizer",
                       "size": config["vocabulary_size"], "fingerprint": vectorizer.fingerprint()},
        "model": config, "parameters": int(model.count_params()),
        "initialized_from": initialized,
        "training": {"seed": seed, "minutes": minutes, "tiny": tiny, "steps": step, "epochs": epoch,
                     "tokens": tokens, "sentence_pairs": len(sentences[0]), "lexicon_pairs": len(lexicon[0]),
                     "lexicon_pairs_drawn": lexicon_seen, "widths": list(WIDTHS), "optimizer":
                     "Adam(beta_2=0.98, epsilon=1e-9, global_clipnorm=1.0), warm-up then inverse sqrt", **settings},
        "validation": {"subset": {"seed": 12345, "size": int(len(validation))}, "history": history,
                       "best": {k: v for k, v in best.items() if k != "weights"}, "average": averaged,
                       "chosen": chosen},
        "check": {"split": "validation", "indices": [int(i) for i in check], **check_scores},
        "test": {"sentences": int(len(test)), "decode_seconds": round(test_seconds, 1), **test_scores,
                 "copy_source": {k: round(v, 2) for k, v in copy.items()}},
    }
    if out is not None:
        save_translation_model(model.get_weights(), metadata, out, kind)
    return metadata


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="task", required=True)
    translation = commands.add_parser("translation", help="an English-German translation model")
    translation.add_argument("--model", choices=sorted(DEFAULTS), required=True)
    translation.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    translation.add_argument("--seed", type=int, default=0)
    translation.add_argument("--out", default=None, help="folder for translation_<model>.npz/.json")
    translation.add_argument("--tiny", action="store_true", help="a few hundred pairs and a tiny model (tests)")
    translation.add_argument("--eval-minutes", type=float, default=None)
    translation.add_argument("--init", default=None, help="go on training the model saved in this folder")
    for name, kind in (("lexicon-ratio", float), ("learning-rate", float), ("warmup-steps", int),
                       ("tokens-per-batch", int), ("average", int), ("label-smoothing", float),
                       ("vocabulary-size", int), ("width", int), ("num-layers", int), ("intermediate-dim", int),
                       ("units", int), ("embedding-dim", int), ("dropout", float), ("attention", str),
                       ("combine-activation", str)):
        translation.add_argument(f"--{name}", type=kind, default=None)
    args = vars(parser.parse_args(argv))
    args.pop("task")
    kind = args.pop("model")
    command = ["python", "-m", "course_lib.train", *(sys.argv[1:] if argv is None else argv)]
    metadata = train_translation(kind, log=lambda text: print(text, flush=True), command=command, **args)
    print(json.dumps({k: metadata[k] for k in ("wall_seconds", "cpu_seconds", "test")}), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
