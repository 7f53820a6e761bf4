"""Exercises of lesson 09, "The Transformer".

09.1  count the weights of a Transformer encoder block (function);
09.2  the label-smoothed cross-entropy by hand, in numpy (function);
09.3  run the warm-up and normalisation experiment at another peak learning rate and say
      which variant ends lowest (experiment: the checker reads the learner's curves).

Notation as in the lesson: `C` width, `N` heads, `F` the feed-forward network's hidden
width, `V` vocabulary size, `epsilon` the smoothing.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, as_number, register

# 09.1 ------------------------------------------------------------------------------


def _encoder_params(width, num_heads, intermediate_dim, attention=4, biases=True, norms=2):
    # Multi-head attention with key_dim = width // num_heads: four projections C -> C (the
    # heads together are C wide), each with a kernel and a bias; the feed-forward network
    # C -> F -> C; and two layer normalisations, each a gain and a bias of C.
    inner = (width // num_heads) * num_heads
    bias = 1 if biases else 0
    mha = (attention - 1) * (width * inner + bias * inner) + inner * width + bias * width
    ffn = width * intermediate_dim + bias * intermediate_dim + intermediate_dim * width + bias * width
    return mha + ffn + norms * 2 * width


register(
    Exercise(
        key="09.1",
        question=(
            "Write `my_encoder_params(width, num_heads, intermediate_dim)`: the number of weights of "
            "`TransformerEncoderBlock(intermediate_dim, num_heads)` on inputs of `width` features "
            "(key_dim = width // num_heads, biases on, two layer normalisations)."
        ),
        cases=(
            Case("width=16, 4 heads, F=64 (the lesson's block)", _encoder_params(16, 4, 64), args=(16, 4, 64)),
            Case("width=128, 4 heads, F=512 (the trained model's blocks)", _encoder_params(128, 4, 512),
                 args=(128, 4, 512)),
            Case("width=24, 3 heads, F=40 (F not a multiple of the width)", _encoder_params(24, 3, 40),
                 args=(24, 3, 40)),
        ),
        solution=_encoder_params,
        hint=(
            "Three parts: multi-head attention (query, key, value and output projections, each C x C "
            "plus a bias of C: lesson 08 showed the count does not depend on the number of heads), the "
            "feed-forward network (C x F plus F, then F x C plus C) and two layer normalisations (a gain "
            "and a bias of C each). `block.count_params()` on a built block tells you whether you are right."
        ),
        mistakes=(
            ("forgot the layer normalisations' gains and biases (2 x 2C)",
             lambda w, n, f: _encoder_params(w, n, f, norms=0)),
            ("counted one layer normalisation: the block has one after each of its two sublayers",
             lambda w, n, f: _encoder_params(w, n, f, norms=1)),
            ("forgot the biases of the dense layers", lambda w, n, f: _encoder_params(w, n, f, biases=False)),
            ("counted three attention projections: the output projection is a fourth",
             lambda w, n, f: _encoder_params(w, n, f, attention=3)),
        ),
    )
)

# 09.2 ------------------------------------------------------------------------------


def _log_softmax(logits):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _smoothed_loss(logits, targets, smoothing, spread=None, mask=True, keep=True):
    log_p = _log_softmax(logits)  # (B, T, V)
    targets = np.asarray(targets)
    nll = -np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]  # (B, T)
    vocab = log_p.shape[-1]
    if spread == "others":  # the smoothing mass over the V - 1 wrong ids only
        others = -(log_p.sum(axis=-1) + nll) / (vocab - 1)
        loss = (1 - smoothing) * nll + smoothing * others
    else:
        loss = (1 - smoothing if keep else 1.0) * nll - smoothing * log_p.mean(axis=-1)
    return loss * (targets != 0) if mask else loss


def _reference_loss(logits, targets, smoothing):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)  # stable: the largest logit becomes 0
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (B, T, V)
    targets = np.asarray(targets)
    nll = -np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]  # -log p[y], (B, T)
    loss = (1 - smoothing) * nll - smoothing * log_p.mean(axis=-1)
    return loss * (targets != 0)  # padding counts 0


def _loss_case(seed, shape, smoothing, description):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    targets = rng.integers(1, shape[-1], size=shape[:-1])
    targets[..., -1] = 0  # the last position of every sequence is padding
    return Case(description, _smoothed_loss(logits, targets, smoothing), args=(logits, targets, smoothing))


register(
    Exercise(
        key="09.2",
        question=(
            "Write `my_smoothed_loss(logits, targets, smoothing)` in numpy: `logits` (B, T, V), integer "
            "`targets` (B, T) with 0 = padding; return the per-token loss (B, T), "
            "`-(1 - smoothing) * log p[y] - smoothing * mean over all V ids of log p[v]`, with "
            "`p = softmax(logits)` over the last axis, and 0 at padded positions."
        ),
        cases=(
            _loss_case(0, (2, 3, 5), 0.1, "2 sentences of 3 tokens, V = 5, smoothing 0.1"),
            _loss_case(1, (1, 4, 9), 0.0, "smoothing 0: plain cross-entropy"),
            _loss_case(2, (3, 2, 4), 0.5, "smoothing 0.5"),
        ),
        solution=_reference_loss,
        rtol=1e-4,
        atol=1e-6,
        hint=(
            "Compute `log_p = logits - logsumexp(logits)` stably (subtract the maximum first), pick "
            "`log_p[..., y]` with `np.take_along_axis`, average `log_p` over the last axis, mix the two, "
            "and multiply by `targets != 0`."
        ),
        mistakes=(
            ("the padded positions must count 0: multiply by `targets != 0`",
             lambda lo, ta, s: _smoothed_loss(lo, ta, s, mask=False)),
            ("the right id's term is weighted by (1 - smoothing), not 1",
             lambda lo, ta, s: _smoothed_loss(lo, ta, s, keep=False)),
            ("the smoothing is spread over all V ids (the right one included), not over the V - 1 others",
             lambda lo, ta, s: _smoothed_loss(lo, ta, s, spread="others")),
        ),
    )
)

# 09.3 ------------------------------------------------------------------------------

VARIANTS = (("post-norm", "no warm-up"), ("post-norm", "warm-up"), ("pre-norm", "no warm-up"),
            ("pre-norm", "warm-up"))
LESSON_PEAK = 1e-2


def _final(curve):
    return float(np.mean(curve[-10:]))


def _check_warmup(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        raise AnswerError("give a tuple of 3 items: (peak, curves, lowest)")
    peak, curves, lowest = answer
    peak = as_number(peak, "the peak learning rate (the first item)")
    if not 1e-5 <= peak <= 1.0:
        return "the peak learning rate should be a rate Adam can use, between 1e-5 and 1"
    if np.isclose(peak, LESSON_PEAK):
        return "run the experiment at another peak learning rate than the lesson's 1e-2"
    if not isinstance(curves, dict) or set(curves) != set(VARIANTS):
        return ("the curves should be a dict with the lesson's four keys, (norm, warm-up) pairs such as "
                "('post-norm', 'no warm-up'), as `curves` is in section 2")
    arrays = {name: as_array(curve, f"the curve of {name}") for name, curve in curves.items()}
    for name, curve in arrays.items():
        if curve.ndim != 1 or curve.size < 20:
            return f"the curve of {name} should be the losses of every step, as `ablation_run` returns them"
        if not np.all(np.isfinite(curve)):
            return f"the curve of {name} holds NaN or infinity: a diverged run ends higher than any finite loss"
    if len({a.size for a in arrays.values()}) != 1:
        return "the four curves should have the same number of steps"
    if isinstance(lowest, list):
        lowest = tuple(lowest)
    if lowest not in VARIANTS:
        return "name the lowest variant as one of the four keys, e.g. ('pre-norm', 'warm-up')"
    finals = {name: _final(curve) for name, curve in arrays.items()}
    if finals[lowest] > min(finals.values()) + 1e-9:
        return (f"in your curves, {lowest} does not end lowest (compare the mean of the last 10 steps of each "
                f"curve)")
    return None


register(
    Exercise(
        key="09.3",
        question=(
            "Run section 2's experiment at another peak learning rate of your choice (for example 3e-3 or "
            "3e-2): `curves = {name: ablation_run(*setting, peak=PEAK) for name, setting in VARIANTS.items()}`. "
            "Which variant ends lowest (mean loss over the last 10 steps)? Answer `(PEAK, curves, lowest)`, "
            "with `lowest` one of the four keys. The checker reads your curves. Does the lesson's story "
            "(post-norm needs warm-up, pre-norm does not) hold at your rate?"
        ),
        checker=_check_warmup,
        solution=(
            "PEAK = 3e-3\n"
            "curves = {name: ablation_run(*setting, peak=PEAK) for name, setting in VARIANTS.items()}\n"
            "lowest = min(curves, key=lambda name: curves[name][-10:].mean())\n"
            "answer = (PEAK, curves, lowest)\n"
            "\n"
            "At a lower peak rate the four runs move closer together: warm-up matters most when the\n"
            "rate is high, and post-norm is the placement that needs it."
        ),
        hint="`min(curves, key=lambda name: curves[name][-10:].mean())` names the variant that ends lowest.",
    )
)
