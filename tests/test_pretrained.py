"""course_lib.pretrained: the committed translation models load into today's architecture
and translate as well as their metadata says; a changed vocabulary or architecture is refused."""

import json
import shutil

import numpy as np
import pytest

from course_lib import pretrained
from course_lib.pretrained import build_translation_model, load_translation_model, read_metadata
from tests.helpers import raises_naming

KINDS = ["rnn", "transformer"]  # the committed models


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_weights_give_the_recorded_validation_score(kind):
    from course_lib.datasets import load_de_en_pairs
    from course_lib.train import score

    model, vectorizer, metadata = load_translation_model(kind)
    assert metadata["finished"] and not metadata["training"]["tiny"]
    assert model.count_params() == metadata["parameters"]
    _, (en_val, de_val), _ = load_de_en_pairs()
    check = metadata["check"]["indices"]
    assert len(check) == 100
    scores = score(model, vectorizer, [en_val[i] for i in check], [de_val[i] for i in check])
    # The same weights on another CPU may flip a few greedy choices: a small tolerance.
    assert scores["chrF"] == pytest.approx(metadata["check"]["chrF"], abs=1.0)
    assert scores["BLEU"] == pytest.approx(metadata["check"]["BLEU"], abs=1.5)


def test_the_shipped_rnn_attends_along_the_source_not_to_its_last_piece():
    """Attention that collapsed onto one column reads the source through one encoder
    output, lesson 03's bottleneck: a GRU trained with a tanh combine layer put its
    largest weight on the last source piece at 99.7% of its steps. Lesson 04's
    alignment section relies on the shipped model doing better."""
    from course_lib.datasets import load_de_en_pairs
    from course_lib.tokens import END, PAD
    from course_lib.train import MAX_PIECES, WIDTHS
    from course_lib.translation import translate

    model, vectorizer, metadata = load_translation_model("rnn")
    _, (en_val, _), _ = load_de_en_pairs()
    sources = vectorizer.encode([en_val[i] for i in metadata["check"]["indices"]], sequence_length=WIDTHS[-1])
    sources[:, MAX_PIECES:] = PAD
    _, tokens, weights = translate(model, sources, vectorizer, max_length=WIDTHS[-1], batch_size=100,
                                   source_width=WIDTHS[-1])
    on_last = []
    for source, generated, sentence_weights in zip(sources, tokens, weights):
        length, ids = int(np.sum(source != PAD)), list(generated)
        steps = ids.index(END) if END in ids else len(ids)
        on_last.extend(np.argmax(sentence_weights[:steps, :length], axis=1) == length - 1)
    assert len(on_last) > 500 and np.mean(on_last) < 0.5, np.mean(on_last)


def test_the_beam_search_results_were_measured_on_the_shipped_transformer():
    """benchmarks/beam_search.py's results (read by lesson 09) belong to today's weights:
    the file's hash, and its greedy row is the trainer's own test score (the same
    scoring function on the same sentences), so new weights without a new run fail here."""
    import hashlib

    report = json.loads((pretrained.WEIGHTS_DIR / "translation_beam.json").read_text(encoding="utf-8"))
    weights = (pretrained.WEIGHTS_DIR / "translation_transformer.npz").read_bytes()
    assert report["weights_sha256"] == hashlib.sha256(weights).hexdigest(), "rerun benchmarks/beam_search.py"
    test = read_metadata("transformer")["test"]
    assert report["test_sentences"] == test["sentences"]
    greedy, *beams = report["results"]
    assert greedy["decoding"] == "greedy" and beams and all(row["beam_width"] > 1 for row in beams)
    assert greedy["chrF"] == pytest.approx(test["chrF"], abs=0.3) and greedy["BLEU"] == pytest.approx(test["BLEU"], abs=0.3)


@pytest.mark.parametrize("kind", KINDS)
def test_the_metadata_records_how_the_weights_were_made(kind):
    metadata = read_metadata(kind)
    assert metadata["command"][:5] == ["python", "-m", "course_lib.train", "translation", "--model"]
    assert metadata["command"][5] == kind
    assert metadata["wall_seconds"] > 60 and metadata["cpu_seconds"] > 60
    assert {"platform", "cpu_count"} <= set(metadata["machine"])
    assert {"keras", "backend"} <= set(metadata["versions"])
    assert metadata["test"]["sentences"] == 1972
    assert metadata["test"]["chrF"] > metadata["test"]["copy_source"]["chrF"]
    size = sum(path.stat().st_size for path in pretrained.WEIGHTS_DIR.glob(f"translation_{kind}.*"))
    assert size < 12e6  # a few MB


@pytest.fixture
def copied(tmp_path):
    """The committed rnn model, copied so that a test can spoil it."""
    for suffix in (".npz", ".json"):
        shutil.copy(pretrained.WEIGHTS_DIR / f"translation_rnn{suffix}", tmp_path)
    return tmp_path


def _edit_metadata(directory, edit):
    path = directory / "translation_rnn.json"
    metadata = json.loads(path.read_text())
    edit(metadata)
    path.write_text(json.dumps(metadata))


def test_another_vocabulary_fingerprint_is_refused_with_an_explanation(copied):
    _edit_metadata(copied, lambda m: m["vocabulary"].update(fingerprint="0123456789abcdef"))
    with pytest.raises(ValueError, match="fingerprint 0123456789abcdef.*token ids would mean other pieces"):
        load_translation_model("rnn", directory=copied)


def test_weights_that_do_not_fit_the_architecture_are_refused(copied):
    _edit_metadata(copied, lambda m: m["model"].update(units=m["model"]["units"] // 2))
    with pytest.raises(ValueError, match="do not fit the architecture"):
        load_translation_model("rnn", directory=copied)


def test_a_missing_model_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m course_lib.train translation --model rnn"):
        load_translation_model("rnn", directory=tmp_path)


def test_float16_rounding_is_what_is_saved(tmp_path):
    weights = [np.array([0.1, 1 / 3], dtype="float32")]
    pretrained.save_translation_model(weights, {"x": 1}, tmp_path, "rnn")
    with np.load(tmp_path / "translation_rnn.npz") as stored:
        saved = stored["w000"]
    assert saved.dtype == np.float16
    np.testing.assert_array_equal(saved.astype("float32"), pretrained.round_to_float16(weights)[0])


@pytest.mark.parametrize(
    "config, exception, name",
    [
        pytest.param({"kind": "lstm", "vocabulary_size": 10}, ValueError, "config['kind']", id="kind"),
        pytest.param({"kind": "rnn", "units": 4}, ValueError, "config", id="no-vocabulary"),
        pytest.param(["rnn"], TypeError, "config", id="not-a-dict"),
    ],
)
def test_bad_configs_are_refused_by_name(config, exception, name):
    with raises_naming(exception, name):
        build_translation_model(config)


def test_kind_is_checked():
    with raises_naming(ValueError, "kind"):
        read_metadata("gru")
