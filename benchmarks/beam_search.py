"""Greedy decoding against beam search, for the course's longer-trained Transformer.

Loads the shipped Transformer (`course_lib/weights/translation_transformer.npz`),
translates the whole test split once per decoding set-up, side by side in one run,
with the trainer's own scoring function (`course_lib.train.score`: the same sources,
widths and batches as the test score the trainer recorded), and writes corpus BLEU,
chrF and the seconds each set-up took to `course_lib/weights/translation_beam.json`
(read by lesson 09), with the SHA-256 of the weights it measured.

    .venv/bin/python benchmarks/beam_search.py --beams 2 4 --length-penalty 0.6

Greedy decoding always runs first (the reference row). Run it alone on the machine:
a beam of k decodes k times as many sequences as greedy decoding (about 7 minutes for
greedy, 2 and 4 beams on the 1,972 test sentences on a 2-core CPU).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from course_lib.datasets import load_de_en_pairs  # noqa: E402
from course_lib.pretrained import WEIGHTS_DIR, load_translation_model  # noqa: E402
from course_lib.train import score  # noqa: E402

RESULTS = WEIGHTS_DIR / "translation_beam.json"
BATCH_SENTENCES = 100  # sentences per batch with a beam: 100 x 4 beams = 400 sequences at once


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beams", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--length-penalty", type=float, default=0.6)
    parser.add_argument("--sentences", type=int, default=None, help="only the first N test sentences (a smoke run)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    started = time.time()
    _, _, (en_test, de_test) = load_de_en_pairs()
    en_test, de_test = en_test[: args.sentences], de_test[: args.sentences]
    model, vectorizer, metadata = load_translation_model("transformer")
    rows = []
    for beam_width in [None, *args.beams]:
        start = time.perf_counter()
        scores = score(model, vectorizer, en_test, de_test, batch_size=250 if beam_width is None else BATCH_SENTENCES,
                       beam_width=beam_width, length_penalty=args.length_penalty)
        seconds = time.perf_counter() - start
        rows.append({"decoding": "greedy" if beam_width is None else f"beam {beam_width}",
                     "beam_width": beam_width or 1, "length_penalty": None if beam_width is None else args.length_penalty,
                     **scores, "seconds": round(seconds, 1)})
        print(f"{rows[-1]['decoding']:>8}: BLEU {scores['BLEU']:5.2f} chrF {scores['chrF']:5.2f} ({seconds:.0f} s)",
              flush=True)
    report = {
        "command": ["python", "benchmarks/beam_search.py", *(sys.argv[1:] if argv is None else argv)],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"keras": keras.__version__, "backend": keras.backend.backend()},
        "weights_sha256": sha256(WEIGHTS_DIR / "translation_transformer.npz"),
        "trainer_test_score": {k: metadata["test"][k] for k in ("BLEU", "chrF")},
        "test_sentences": len(en_test), "results": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
