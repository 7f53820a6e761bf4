"""Lesson 04's three decoders over several seeds: does attention's lead hold?

Trains the lesson's three models (no attention, additive, Luong) with the lesson's
budget (the constants below are those of the lesson's budget cell, which checks that
they agree with the results file) once per seed, translates the whole test split with
each, and scores it with corpus BLEU and chrF. A seed sets the initial weights, the
dropout-free training's batch order (`LengthBucketedBatches(seed=...)`) and nothing else.

    .venv/bin/python benchmarks/translation_seeds.py --seeds 0 1 2

writes `course_lib/weights/translation_seeds.json` (read by lesson 04) and prints a
table. Run it alone on the machine (it trains 3 x len(seeds) models: 468 s for three
seeds on a 2-core CPU, the lesson's budget of two epochs on the 7,251 pairs of at most
12 pieces).
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from course_lib.batching import LengthBucketedBatches  # noqa: E402
from course_lib.datasets import load_de_en_pairs  # noqa: E402
from course_lib.seq2seq import build_seq2seq  # noqa: E402
from course_lib.translation import corpus_scores, translate, translation_vectorizer  # noqa: E402

# The lesson's budget (notebooks/04_translation_with_attention.ipynb, "The budget").
SETTINGS = {"max_pieces": 12, "embedding_dim": 64, "units": 128, "batch_size": 64, "epochs": 2,
            "learning_rate": 3e-3, "clipnorm": 1.0, "max_length": 48}
DECODERS = {"no attention": None, "additive": "additive", "Luong": "luong"}
RESULTS = Path(__file__).resolve().parent.parent / "course_lib" / "weights" / "translation_seeds.json"


def short_pairs(vectorizer, english, german, max_pieces):
    """The pairs whose two sides have at most `max_pieces` pieces."""
    kept = [(e, g) for e, g in zip(english, german)
            if len(vectorizer.token_ids(e)) <= max_pieces and len(vectorizer.token_ids(g)) <= max_pieces]
    return [e for e, _ in kept], [g for _, g in kept]


def train_one(attention, seed, vectorizer, x_train, y_train, settings):
    """One of the lesson's models, trained with its budget; seconds per epoch as measured."""
    keras.utils.set_random_seed(seed)
    size = vectorizer.vocabulary_size()
    model = build_seq2seq(size, size, settings["embedding_dim"], settings["units"], attention=attention,
                          combine_activation="linear")
    model.compile(optimizer=keras.optimizers.Adam(settings["learning_rate"], clipnorm=settings["clipnorm"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(LengthBucketedBatches(x_train, y_train, settings["batch_size"], seed=seed),
              epochs=settings["epochs"], verbose=0, callbacks=[EpochTimer()])
    return model, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    started, cpu_started = time.time(), time.process_time()
    (en_train, de_train), _, (en_test, de_test) = load_de_en_pairs()
    vectorizer = translation_vectorizer()
    en_short, de_short = short_pairs(vectorizer, en_train, de_train, SETTINGS["max_pieces"])
    x_train = vectorizer.encode(en_short, sequence_length=SETTINGS["max_pieces"])
    y_in, y_out = vectorizer.target_pair(de_short, sequence_length=SETTINGS["max_pieces"] + 1)
    y_train = np.concatenate([y_in[:, :1], y_out], axis=1)  # [START, w..., END, PAD...]
    x_test = vectorizer.encode(en_test)
    results = {}
    for seed in args.seeds:
        results[str(seed)] = {}
        for name, attention in DECODERS.items():
            model, seconds = train_one(attention, seed, vectorizer, x_train, y_train, SETTINGS)
            start = time.perf_counter()
            texts = translate(model, x_test, vectorizer, max_length=SETTINGS["max_length"])[0]
            translate_seconds = time.perf_counter() - start
            scores = {k: round(v, 2) for k, v in corpus_scores(texts, de_test).items()}
            results[str(seed)][name] = {**scores, "seconds_per_epoch": round(float(np.median(seconds)), 1),
                                        "translate_seconds": round(translate_seconds, 1)}
            print(f"seed {seed} {name:>12}: BLEU {scores['BLEU']:5.2f} chrF {scores['chrF']:5.2f} "
                  f"({np.median(seconds):.1f} s per epoch, test split translated in {translate_seconds:.1f} s)",
                  flush=True)
    copy = {k: round(v, 2) for k, v in corpus_scores(en_test, de_test).items()}
    report = {
        "command": ["python", "benchmarks/translation_seeds.py", *(sys.argv[1:] if argv is None else argv)],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1), "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"keras": keras.__version__, "backend": keras.backend.backend()},
        "vocabulary": {"size": vectorizer.vocabulary_size(), "fingerprint": vectorizer.fingerprint()},
        "settings": SETTINGS, "training_pairs": len(en_short), "test_sentences": len(en_test),
        "copy_source": copy, "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\ncopying the source: BLEU {copy['BLEU']:.2f} chrF {copy['chrF']:.2f}")
    print(f"{'decoder':>12}  " + "  ".join(f"chrF s{seed}" for seed in args.seeds) + "   mean   min")
    for name in DECODERS:
        values = [results[str(seed)][name]["chrF"] for seed in args.seeds]
        print(f"{name:>12}  " + "  ".join(f"{v:8.2f}" for v in values) + f"  {np.mean(values):5.2f} {min(values):5.2f}")
    gaps = [max(results[str(s)]["additive"]["chrF"], results[str(s)]["Luong"]["chrF"])
            - results[str(s)]["no attention"]["chrF"] for s in args.seeds]
    print("best attention decoder minus no attention, chrF, per seed:", [round(g, 2) for g in gaps])
    print(f"wall {report['wall_seconds']} s, cpu {report['cpu_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
