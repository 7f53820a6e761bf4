"""Hard attention: read one key's value instead of a weighted average of all (lesson 06).

Soft attention (every layer before this one) returns `weights @ value`, a weighted
average of every value: smooth in the scores, so backpropagation trains the score.
Hard attention samples **one** key `s ~ Categorical(weights)` and returns `value[s]`:
at inference only that one value has to be computed, but the choice is discrete and
has no derivative. Two ways to train the score anyway:

* `"reinforce"` (Williams, 1992; Mnih et al., 2014; Xu et al., 2015): the score-function
  estimator. The gradient of the expected loss is `E[(loss - b) * d log p(s) / d theta]`;
  `reinforce_loss` is the surrogate whose gradient is that estimate, with a baseline
  `b` that lowers its variance without biasing it.
* `"gumbel"` (Jang et al., 2017; Maddison et al., 2017): the straight-through
  Gumbel-softmax. `g_i = -log(-log(u_i))` with `u_i ~ Uniform(0, 1)` makes
  `argmax(log w_i + g_i)` a sample of `Categorical(w)`; the forward pass uses that
  one-hot sample, the backward pass the gradient of the soft sample
  `softmax((log w + g) / temperature)`. Low variance, but biased.

`HardAttention` is `LuongAttention` (its `"dot"`, `"general"` and `"concat"` scores,
on the single-head base `course_lib.attention.ScoredAttention`) with the weighted
average replaced by a sampled one-hot selection. At inference (`training` not true)
it is deterministic: it reads the value of the highest-scoring key.
"""

import keras
from keras import ops

from course_lib import checks
from course_lib.attention import masked_softmax
from course_lib.masks import compute_attention_mask
from course_lib.scoring import LuongAttention

ESTIMATORS = ("reinforce", "gumbel")
BASELINES = (None, "mean")


def _one_hot_argmax(x):
    """One-hot rows at the maximum of `x` along the last axis (first one on ties)."""
    return ops.one_hot(ops.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)  # (..., Tv)


@keras.saving.register_keras_serializable(package="course_lib")
class HardAttention(LuongAttention):
    """Hard (sampled) attention: each query reads the value of one key.

    1. Scores: those of `LuongAttention` (`score="dot"`, `"general"` or `"concat"`),
       shape `(batch_size, Tq, Tv)`.
    2. Weights: `weights = masked_softmax(scores, mask)`, the probability of reading
       each key (masks as in `ScoredAttention`).
    3. Selection, a one-hot row per query:
       * inference (`training` false or `None`): the key of the largest weight;
       * training, `estimator="reinforce"`: a sample `s ~ Categorical(weights)`;
         no gradient reaches the scores through the output: add `reinforce_loss`
         to the loss to train them;
       * training, `estimator="gumbel"`: the straight-through Gumbel-softmax
         sample: `one_hot(argmax(log w + g))` forward, the gradient of
         `softmax((log w + g) / temperature)` backward.
    4. `output = selection @ value`: one value row per query.

    Args:
        score: `"dot"`, `"general"` or `"concat"`, as in `LuongAttention`.
            Defaults to `"general"`.
        units: width of the `"concat"` score's hidden layer (only with it).
        scale: optional positive number multiplying the scores. Defaults to `None`.
        estimator: `"reinforce"` or `"gumbel"`: how the layer samples in training.
            Defaults to `"gumbel"`.
        temperature: positive number, the Gumbel-softmax temperature (its backward
            pass; lower is closer to the one-hot but noisier). Defaults to `1.0`.
        seed: optional integer seed of the sampling. Defaults to `None`.
        kernel_initializer: initializer of the score's weights.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        query, value, key, attention_mask, query_mask, value_mask, key_mask,
            use_causal_mask, training: as for `ScoredAttention`.
        return_attention_scores: if `True`, also return the weights (the
            probabilities of step 2). Defaults to `False`.
        return_selection: if `True`, also return the one-hot selection
            `(batch_size, Tq, Tv)` of step 3 (what `reinforce_loss` needs).
            Defaults to `False`.

    Returns:
        `output` `(batch_size, Tq, value_dim)`, then the weights if
        `return_attention_scores`, then the selection if `return_selection`.

    Example:

    >>> import numpy as np
    >>> query = np.array([[[1.0, 0.0]]], "float32")  # (batch_size=1, Tq=1, dim=2)
    >>> key = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # (1, Tv=2, dim)
    >>> value = np.array([[[1.0], [3.0]]], "float32")  # (1, Tv, 1)
    >>> layer = HardAttention("dot")
    >>> output, weights = layer(query, value, key=key, return_attention_scores=True)
    >>> print(np.round(ops.convert_to_numpy(weights), 3), ops.convert_to_numpy(output))
    [[[0.731 0.269]]] [[[1.]]]
    """

    def __init__(self, score="general", units=None, scale=None, estimator="gumbel", temperature=1.0,
                 seed=None, kernel_initializer="glorot_uniform", dropout=0.0, **kwargs):
        if checks.check_number(dropout, "dropout") != 0.0:
            raise ValueError(checks.message("dropout", "0 (hard attention drops no weights)", dropout))
        super().__init__(score=score, units=units, scale=scale, seed=seed,
                         kernel_initializer=kernel_initializer, **kwargs)
        self.estimator = checks.check_choice(estimator, "estimator", ESTIMATORS)
        self.temperature = checks.check_number(temperature, "temperature", minimum=0, min_inclusive=False)
        self.sample_generator = keras.random.SeedGenerator(self.seed)

    def select(self, weights, training=None):
        """The one-hot selection `(batch_size, Tq, Tv)` from the weights (step 3)."""
        if not training:
            return _one_hot_argmax(weights)
        tiny = ops.convert_to_tensor(1e-30, dtype=weights.dtype)
        logits = ops.log(ops.maximum(weights, tiny))  # masked keys: log(1e-30), never chosen
        if self.estimator == "reinforce":
            flat = ops.reshape(logits, (-1, logits.shape[-1]))  # (batch_size * Tq, Tv)
            sample = keras.random.categorical(flat, 1, seed=self.sample_generator)[:, 0]  # (batch_size * Tq,)
            selection = ops.one_hot(sample, logits.shape[-1], dtype=weights.dtype)
            return ops.stop_gradient(ops.reshape(selection, ops.shape(weights)))  # (batch_size, Tq, Tv)
        uniform = keras.random.uniform(ops.shape(weights), minval=1e-10, maxval=1.0, seed=self.sample_generator,
                                       dtype=weights.dtype)
        gumbel = -ops.log(-ops.log(uniform))  # (batch_size, Tq, Tv)
        soft = ops.softmax((logits + gumbel) / self.temperature, axis=-1)
        hard = _one_hot_argmax(soft)
        return hard + (soft - ops.stop_gradient(soft))  # forward: exactly hard; backward: soft's gradient

    def call(self, query, value, key=None, attention_mask=None, query_mask=None, value_mask=None,
             key_mask=None, use_causal_mask=False, return_attention_scores=False, return_selection=False,
             training=None):
        key = value if key is None else key
        self._check_shapes(query.shape, value.shape, key.shape)
        query, value, key = (ops.cast(x, self.compute_dtype) for x in (query, value, key))
        scores = self.compute_scores(query, key)  # (batch_size, Tq, Tv)
        mask = compute_attention_mask(
            query, value, query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
            attention_mask=attention_mask, use_causal_mask=use_causal_mask,
        )
        weights = masked_softmax(scores, mask)  # (batch_size, Tq, Tv)
        anything = ops.cast(ops.sum(weights, axis=-1, keepdims=True) > 0, weights.dtype)  # (batch_size, Tq, 1)
        selection = self.select(weights, training) * anything  # a row with nothing allowed reads nothing
        output = ops.matmul(selection, value)  # (batch_size, Tq, value_dim)
        results = (output,) + ((weights,) if return_attention_scores else ()) + (
            (selection,) if return_selection else ())
        return results if len(results) > 1 else output

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False,
                            return_selection=False, **kwargs):
        output = super().compute_output_spec(query, value, key, return_attention_scores=True)
        output, weights = output
        results = (output,) + ((weights,) if return_attention_scores else ()) + (
            (keras.KerasTensor(weights.shape, dtype=weights.dtype),) if return_selection else ())
        return results if len(results) > 1 else output

    def get_config(self):
        return {**super().get_config(), "estimator": self.estimator, "temperature": self.temperature}


def selection_log_prob(weights, selection):
    """`log p(s)` of each selected key: `log(sum(selection * weights))`, shape
    `(batch_size, Tq)`; rows that select nothing (fully masked) give 0."""
    picked = ops.sum(ops.stop_gradient(selection) * weights, axis=-1)  # (batch_size, Tq)
    return ops.where(picked > 0, ops.log(ops.maximum(picked, 1e-30)), ops.zeros_like(picked))


def reinforce_loss(losses, weights, selection, baseline="mean"):
    """The REINFORCE surrogate: its gradient is the score-function estimate.

    `mean_i((loss_i - b_i) * log p(s_i))`, with `loss_i - b_i` held constant
    (no gradient), summed over the queries of each example. Adding it to the task's
    loss trains the score: a selection that gave a loss below the baseline is made
    more likely.

    Args:
        losses: per-example losses `(batch_size,)` (the negative reward).
        weights: the probabilities `(batch_size, Tq, Tv)` from `HardAttention`
            (`return_attention_scores=True`).
        selection: the one-hot selection `(batch_size, Tq, Tv)`
            (`return_selection=True`).
        baseline: `None` (no baseline: `b = 0`), `"mean"` (the mean loss of the
            *other* examples of the batch, leave-one-out, which keeps the estimate
            unbiased) or a number or tensor `(batch_size,)` (for example a moving
            average, or a learned value). Defaults to `"mean"`.

    Returns:
        A scalar tensor.
    """
    losses = ops.stop_gradient(ops.convert_to_tensor(losses, dtype=weights.dtype))
    checks.check_shape_rank(losses.shape, "losses", 1, "(batch_size,)")
    if baseline is None:
        advantage = losses
    elif isinstance(baseline, str):
        checks.check_choice(baseline, "baseline", BASELINES)
        n = ops.cast(ops.shape(losses)[0], losses.dtype)
        advantage = losses - (ops.sum(losses) - losses) / ops.maximum(n - 1, 1)  # leave-one-out
    else:
        if checks.is_number(baseline):
            baseline = checks.check_number(baseline, "baseline")
        advantage = losses - ops.stop_gradient(ops.cast(baseline, losses.dtype))
    log_prob = ops.sum(selection_log_prob(weights, selection), axis=-1)  # (batch_size,)
    return ops.mean(advantage * log_prob)
