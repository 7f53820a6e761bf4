"""The longer-trained translation models that ship with the course (lessons 04 and 09).

A lesson has four minutes; a model that really translates needs hours of a CPU. So
`python -m course_lib.train translation --model {rnn,transformer} ...`
(`course_lib.train`) trains one, and saves it here, in `course_lib/weights/`:

* `translation_<kind>.npz`: the weights, rounded to float16 (half the size; the
  scores recorded are those of the rounded weights), in `model.get_weights()` order;
* `translation_<kind>.json`: the metadata: the exact command, wall and CPU seconds,
  the machine, the date, the Keras and backend versions, the vocabulary's size and
  fingerprint, the model config, what the training data was, every validation score
  during training, and the test scores at the end.

`load_translation_model(kind)` rebuilds the architecture from the metadata's config
(`build_translation_model`), loads the weights, and rebuilds the vocabulary with
`course_lib.translation.translation_vectorizer`: if its fingerprint differs from the
one the model was trained with (a changed vocabulary function, another dictionary
version), the ids would mean other pieces, and loading stops with an error that says so.
"""

import json
from pathlib import Path

import numpy as np

from course_lib.checks import check_choice, message

KINDS = ("rnn", "transformer")
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def build_translation_model(config):
    """The untrained model of a config, as the metadata stores it.

    Args:
        config: a dict with `"kind"`: `"rnn"` (then the arguments of
            `course_lib.seq2seq.build_seq2seq`: `vocabulary_size`, `embedding_dim`,
            `units`, `attention`, and optionally `cell`, `bidirectional`,
            `combine_activation`) or `"transformer"` (the arguments of
            `course_lib.transformer_model.build_transformer`: `vocabulary_size`,
            `sequence_length`, `num_layers`, `width`, `num_heads`, `intermediate_dim`,
            `dropout`, `normalize_first`, `share_embeddings`). One vocabulary serves
            both languages.

    Returns:
        A built `keras.Model` `[source, target_in] -> logits`.

    Example:

    >>> model = build_translation_model({"kind": "rnn", "vocabulary_size": 20, "embedding_dim": 4,
    ...                                  "units": 6, "attention": "luong"})
    >>> model.name, model.count_params()
    ('rnn_translation', 846)
    """
    if not isinstance(config, dict):
        raise TypeError(message("config", "a dict", config))
    config = dict(config)
    kind = check_choice(config.pop("kind", None), "config['kind']", KINDS)
    if "vocabulary_size" not in config:
        raise ValueError(message("config", "a dict with a 'vocabulary_size'", config))
    size = config.pop("vocabulary_size")
    if kind == "rnn":
        from course_lib.seq2seq import build_seq2seq

        return build_seq2seq(size, size, name="rnn_translation", **config)
    from course_lib.transformer_model import build_transformer

    return build_transformer(size, size, name="transformer_translation", **config)


def save_translation_model(weights, metadata, directory, kind):
    """Write `weights` (a list of arrays, `model.get_weights()` order) as float16 and
    `metadata` as JSON: `translation_<kind>.npz` and `.json` in `directory`.

    Round the model's weights first (`round_to_float16`) and measure after it, so that
    the scores recorded are those `load_translation_model` gives back. Returns the paths.
    """
    kind = check_choice(kind, "kind", KINDS)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path, metadata_path = directory / f"translation_{kind}.npz", directory / f"translation_{kind}.json"
    arrays = {f"w{i:03d}": np.asarray(w).astype("float16") for i, w in enumerate(weights)}
    np.savez_compressed(weights_path, **arrays)
    metadata_path.write_text(json.dumps(metadata, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return weights_path, metadata_path


def round_to_float16(weights):
    """The arrays rounded to float16 and back to float32 (what is saved and loaded)."""
    return [np.asarray(w).astype("float16").astype("float32") for w in weights]


def read_metadata(kind, directory=None):
    """The metadata dict of `translation_<kind>.json` (in `directory`, by default the
    committed `course_lib/weights/`).

    Example:

    >>> sorted(read_metadata("rnn")["model"])
    ['attention', 'bidirectional', 'combine_activation', 'embedding_dim', 'kind', 'units', 'vocabulary_size']
    """
    kind = check_choice(kind, "kind", KINDS)
    path = Path(WEIGHTS_DIR if directory is None else directory) / f"translation_{kind}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No trained {kind} translation model at {path}. Train one with "
            f"`python -m course_lib.train translation --model {kind} --minutes 30 --out {path.parent}`."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_translation_model(kind, directory=None):
    """A trained translation model, its vocabulary and its metadata.

    Args:
        kind: `"rnn"` (a `build_seq2seq` GRU encoder-decoder with attention) or
            `"transformer"` (a `build_transformer` model).
        directory: where `translation_<kind>.npz` and `.json` are. Defaults to `None`
            (the weights committed with the course, `course_lib/weights/`).

    Returns:
        `(model, vectorizer, metadata)`: the `keras.Model` with its weights, the
        `SubwordVectorizer` of both languages (`translation_vectorizer`), and the
        metadata dict (`metadata["test"]` holds the test scores recorded after training).

    Raises:
        FileNotFoundError: no such model in `directory` (the message says how to train one).
        ValueError: the vocabulary rebuilt today is not the one the model was trained
            with (another fingerprint), or the weights do not fit the architecture.

    Example:

    >>> model, vectorizer, metadata = load_translation_model("rnn")
    >>> vectorizer.fingerprint() == metadata["vocabulary"]["fingerprint"]
    True
    """
    from course_lib.translation import translation_vectorizer

    metadata = read_metadata(kind, directory)
    path = Path(WEIGHTS_DIR if directory is None else directory) / f"translation_{kind}.npz"
    vocabulary = metadata["vocabulary"]
    vectorizer = translation_vectorizer(vocabulary["size"])
    if vectorizer.fingerprint() != vocabulary["fingerprint"]:
        raise ValueError(
            f"The {kind} model in {path.parent} was trained with the vocabulary of fingerprint "
            f"{vocabulary['fingerprint']}, but `translation_vectorizer({vocabulary['size']})` gives "
            f"{vectorizer.fingerprint()} today: the token ids would mean other pieces. Retrain it "
            f"(`{' '.join(metadata.get('command', ['python', '-m', 'course_lib.train', 'translation']))}`), "
            "or use the dictionary version and course_lib version it was trained with."
        )
    model = build_translation_model(metadata["model"])
    with np.load(path) as stored:
        weights = [stored[name].astype("float32") for name in sorted(stored.files)]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if [w.shape for w in weights] != expected:
        raise ValueError(
            f"The weights in {path} do not fit the architecture of its config {metadata['model']}: "
            f"{len(weights)} arrays against {len(expected)} expected (the layers changed since training?)."
        )
    model.set_weights(weights)
    return model, vectorizer, metadata
