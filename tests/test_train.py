"""course_lib.train: token-bucketed batches, the loss and schedule, and the whole script on a tiny budget."""

import json

import numpy as np
import pytest
from keras import ops

from course_lib import train
from course_lib.pretrained import load_translation_model
from course_lib.tokens import END, PAD, START
from tests.helpers import raises_naming, to_numpy


def _pairs(count, rng, longest=40):
    lengths = rng.integers(1, longest, size=(count, 2))
    return [list(rng.integers(4, 50, n)) for n in lengths[:, 0]], [list(rng.integers(4, 50, n)) for n in lengths[:, 1]]


def test_token_batches_hold_every_pair_in_few_shapes_of_about_the_same_size():
    rng = np.random.default_rng(0)
    sources, targets = _pairs(500, rng)
    batches = train.token_batches(sources, targets, tokens_per_batch=400, rng=rng)
    shapes = {b[0].shape for b in batches}
    assert len(shapes) <= len(train.WIDTHS)
    assert all(b[0].shape == b[1].shape == b[2].shape for b in batches)
    assert all(rows * width <= 400 for rows, width in shapes)  # never more tokens than asked
    assert all(rows * width > 400 - width for rows, width in shapes)  # nor a row fewer than fits
    seen = {(tuple(s[s != PAD]), tuple(t[t != PAD])) for b in batches for s, t in zip(b[0], b[2])}
    assert seen == {(tuple(s), tuple(t) + (END,)) for s, t in zip(sources, targets)}


def test_token_batches_are_teacher_forcing_pairs_in_the_smallest_width_that_fits():
    sources, targets = [[5] * 9, [6] * 3], [[7] * 2, [8] * 7]  # widths needed: 9 and 7 + END = 8
    batches = train.token_batches(sources, targets, tokens_per_batch=12, rng=np.random.default_rng(0))
    by_width = {b[0].shape[1]: b for b in batches}
    assert sorted(by_width) == [8, 12] and all(len(b[0]) == 12 // w for w, b in by_width.items())
    source, target_in, target_out = by_width[8]
    np.testing.assert_array_equal(source[0], [6, 6, 6, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(target_in[0], [START] + [8] * 7)
    np.testing.assert_array_equal(target_out[0], [8] * 7 + [END])


def test_token_batches_refuse_pairs_longer_than_the_widest_shape():
    with raises_naming(ValueError, "sources"):
        train.token_batches([[5] * 70], [[6]], tokens_per_batch=100, rng=np.random.default_rng(0))


def test_the_label_smoothed_loss_is_cross_entropy_mixed_with_the_uniform_and_ignores_padding():
    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 2, 0], [4, 0, 0]])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = labels != PAD
    nll = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    expected = (0.9 * nll - 0.1 * log_p.mean(-1))[real].mean()
    got = float(to_numpy(train.label_smoothed_cross_entropy(0.1)(labels, logits)))
    # Keras divides by all positions when no mask is attached: rescale to the mean over real tokens.
    assert got * real.size / real.sum() == pytest.approx(expected, rel=1e-5)
    plain = float(to_numpy(train.label_smoothed_cross_entropy(0.0)(labels, logits))) * real.size / real.sum()
    assert plain == pytest.approx(nll[real].mean(), rel=1e-5)


def test_the_schedule_warms_up_linearly_then_decays_as_one_over_the_square_root():
    schedule = train.warmup_inverse_sqrt(1e-3, warmup_steps=100)
    rates = {step: float(to_numpy(schedule(ops.convert_to_tensor(step - 1)))) for step in (1, 50, 100, 400)}
    assert rates[1] == pytest.approx(1e-5)
    assert rates[50] == pytest.approx(5e-4)
    assert rates[100] == pytest.approx(1e-3)
    assert rates[400] == pytest.approx(5e-4)  # sqrt(100 / 400) = 1/2


@pytest.mark.parametrize("kind", ["rnn", "transformer"])
def test_the_script_trains_saves_and_the_saved_model_loads_with_its_scores(kind, tmp_path, capsys):
    assert train.main(["translation", "--model", kind, "--minutes", "0.2", "--tiny", "--out", str(tmp_path)]) == 0
    assert "test BLEU" in capsys.readouterr().out
    metadata = json.loads((tmp_path / f"translation_{kind}.json").read_text())
    assert metadata["finished"] and metadata["command"][:4] == ["python", "-m", "course_lib.train", "translation"]
    for key in ("wall_seconds", "cpu_seconds", "machine", "versions", "vocabulary", "model", "validation", "test"):
        assert key in metadata, key
    assert metadata["training"]["steps"] >= 1 and metadata["validation"]["history"]
    assert set(metadata["test"]) >= {"BLEU", "chrF", "copy_source"}
    model, vectorizer, loaded = load_translation_model(kind, directory=tmp_path)
    assert loaded == metadata and vectorizer.fingerprint() == metadata["vocabulary"]["fingerprint"]
    assert model.count_params() == metadata["parameters"]
    from course_lib.datasets import load_de_en_pairs

    _, (en_val, de_val), _ = load_de_en_pairs()
    check = metadata["check"]["indices"]
    scores = train.score(model, vectorizer, [en_val[i] for i in check], [de_val[i] for i in check])
    assert scores["chrF"] == pytest.approx(metadata["check"]["chrF"], abs=0.5)


def test_an_unknown_setting_is_refused_by_name():
    with raises_naming(ValueError, "heads"):
        train.train_translation("rnn", minutes=0.01, tiny=True, heads=3)


def test_a_run_can_go_on_from_a_saved_model_of_the_same_config(tmp_path):
    first = train.train_translation("rnn", minutes=0.05, tiny=True, out=tmp_path / "first")
    second = train.train_translation("rnn", minutes=0.05, tiny=True, out=tmp_path / "second", init=tmp_path / "first")
    best = max(first["validation"]["history"], key=lambda entry: entry["chrF"])
    assert second["initialized_from"]["steps"] == best["step"]
    assert second["initialized_from"]["validation_chrF"] == best["chrF"]
    assert second["initialized_from"]["initialized_from"] is None  # the first run started from scratch
    with raises_naming(ValueError, "init"):
        train.train_translation("rnn", minutes=0.05, tiny=True, init=tmp_path / "first", units=48)



def test_a_transformer_may_go_on_with_another_dropout_but_not_another_width(tmp_path):
    first = train.train_translation("transformer", minutes=0.05, tiny=True, out=tmp_path / "first")
    stronger = train.train_translation("transformer", minutes=0.05, tiny=True, init=tmp_path / "first", dropout=0.3)
    assert stronger["model"]["dropout"] == 0.3 != first["model"]["dropout"]  # dropout has no weights: it may change
    with raises_naming(ValueError, "init"):
        train.train_translation("transformer", minutes=0.05, tiny=True, init=tmp_path / "first", width=48)
