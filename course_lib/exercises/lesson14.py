"""Exercises of lesson 14, "Review: attention in interview questions".

One self-check per question of the review, drawn from the lessons' own results:

14.1  what the attention output is (multiple choice);
14.2  which words' erasure changed lesson 12's predictions most (multiple choice);
14.3  the shape of the attention weights (multiple choice);
14.4  what one head explained in lesson 08 (a number, R^2);
14.5  why hard attention needs REINFORCE or the Gumbel-softmax (multiple choice);
14.6  where cross-attention's queries, keys and values come from (multiple choice);
14.7  where the gradient through lesson 10's GRU falls below 1/1000 (a distance);
14.8  attention's time per step against the GRU's in lesson 10 (multiple choice);
14.9  attention pooling against the TF-IDF baseline in lesson 12 (multiple choice);
14.10 what subtracting the maximum does to the softmax (multiple choice);
14.11 the variance of q.k for d_k = 16, 64, 256, unscaled and scaled (experiment: the
      learner measures it, the checker tests the bands);
14.12 a causal mask for 6 positions (experiment: the checker runs a leak test with
      `course_lib.attention.scaled_dot_product_attention`);
14.13 how many times less peak memory chunked attention needed in lesson 13 (a number);
14.14 what a key/value cache stores (multiple choice);
14.15 which positions kept lesson 07's order task at twice the training length
      (multiple choice).

A multiple-choice answer is one letter, in any case, with spaces around it or not. A wrong
letter gets the message of that distractor: the pairs `(message, wrong_letter)` are the
exercise's `mistakes`, which the choice checker reads. (A one-letter expected value cannot
be a plain value exercise: the course's leak detector would find that letter in almost any
message, so the letter is checked by a checker and never printed.)
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_array, register

LETTERS = "abcd"


def _read_letter(answer):
    if not isinstance(answer, str):
        raise AnswerError("give one letter (a, b, c or d) as a string")
    letter = answer.strip().lower().rstrip(").")
    if letter not in LETTERS or len(letter) != 1:
        raise AnswerError("give one letter: a, b, c or d")
    return letter


def _choice(key, question, options, answer, mistakes, hint, explanation):
    """Register a multiple-choice exercise: `options` are four texts (a-d), `answer` the right
    letter, `mistakes` a message for each wrong letter, as pairs (message, letter)."""
    if sorted([answer] + [wrong for _, wrong in mistakes]) != list(LETTERS):
        raise ValueError(f"Every wrong letter needs a message. Received: key={key!r}")
    text = question + "\n" + "\n".join(f"  {letter}) {option}" for letter, option in zip(LETTERS, options))
    messages = {wrong: message for message, wrong in mistakes}

    def checker(reply):
        letter = _read_letter(reply)
        return None if letter == answer else messages[letter]

    return register(Exercise(key=key, question=text, checker=checker, mistakes=tuple(mistakes), hint=hint,
                             solution=f"{answer}) {options[LETTERS.index(answer)]}\n\n{explanation}",
                             answer_is_function=False))


# 14.1 -------------------------------------------------------------------------------

_choice(
    "14.1",
    "For one query, what is the output of attention?",
    ["the value of the key with the highest score",
     "a weighted average of the values, with weights the softmax of the query's scores against the keys",
     "a weighted average of the keys, with weights the softmax of the scores",
     "the query, scaled by the sum of its scores"],
    "b",
    [("that is hard attention (lesson 06): soft attention averages every value, with weights that sum to 1",
      "a"),
     ("the keys only give the scores: what is averaged is the values", "c"),
     ("the query is only compared with the keys; nothing of it is in the output but the weights it chose",
      "d")],
    hint="Lesson 01's three steps: scoring, weighting, aggregation. What is aggregated?",
    explanation="Scores q.k_j, softmax over the keys (positive, sum 1), then sum_j w_j v_j (lesson 01).",
)

# 14.2 -------------------------------------------------------------------------------

_choice(
    "14.2",
    "Lesson 12 erased words from 400 snippets, one word at a time (k = 1). Whose removal lowered the "
    "predicted class's probability the most, for both attention models?",
    ["the most-attended word", "a random word", "the word with the largest gradient-times-input",
     "all three about the same"],
    "c",
    [("the most-attended word mattered more than a random one, but not most: attention is not the best "
      "explanation of the prediction here", "a"),
     ("a random word changed the prediction least of the three", "b"),
     ("they differed by a factor of several: see lesson 12's erasure curves", "d")],
    hint="Lesson 12, section 8, 'Is attention an explanation? Erasure, not pictures': the table at k = 1.",
    explanation="Gradient times input: 0.141 and 0.158 at k = 1, against 0.041 and 0.080 for the most-attended "
                "word and 0.005 and 0.006 for a random one (lesson 12, section 8).",
)

# 14.3 -------------------------------------------------------------------------------

_choice(
    "14.3",
    "Queries Q have shape (T, d_k), keys K (S, d_k), values V (S, d_v). What is the shape of the attention "
    "weights softmax(Q K^T / sqrt(d_k))?",
    ["(T, d_v)", "(T, S)", "(S, T)", "(d_k, d_k)"],
    "b",
    [("(T, d_v) is the output, weights @ V: the weights have one entry per query and key", "a"),
     ("that is transposed: one row per query, and the softmax runs along each row, over the keys", "c"),
     ("Q K^T contracts the d_k axis: what is left is one score per query and key", "d")],
    hint="One score per (query, key) pair; the softmax runs over the keys.",
    explanation="(T, S): row i holds query i's weights over the S keys and sums to 1 (lesson 05).",
)

# 14.4 -------------------------------------------------------------------------------


def _one_head_r2():
    # Lesson 08, 'Trained heads: one head against two and four, at equal width': the test R^2 of
    # one head (d_model = 16) on y_t = x_{t-1} - x_{t-2}, for seeds 0, 1, 2 = 0.493, 0.435, 0.493.
    return 0.493


register(
    Exercise(
        key="14.4",
        question=(
            "Lesson 08 trained multi-head attention at equal width (d_model = 16) on y_t = x_{t-1} - x_{t-2}, "
            "over three seeds. What share of the test variance (R^2) did ONE head explain, at best? Two "
            "decimals are enough."
        ),
        cases=(Case("one head, the best of three seeds", _one_head_r2()),),
        solution=_one_head_r2,
        answer_is_function=False,
        rtol=0.0,
        atol=0.008,  # 0.49, 0.493 or 0.5 pass
        hint="Lesson 08, section 'Trained heads: one head against two and four, at equal width'. One softmax "
             "row can read x_{t-1} or x_{t-2}, not subtract them.",
        mistakes=(
            ("that is what two and four heads reached; one head cannot give the minus sign", 1.0),
            ("that is the worst of the three seeds; the question asks for the best", 0.435),
            ("that is a percentage: give R^2 as a fraction of 1", 49.3),
        ),
    )
)

# 14.5 -------------------------------------------------------------------------------

_choice(
    "14.5",
    "Why does hard attention (lesson 06) need REINFORCE or the straight-through Gumbel-softmax?",
    ["picking one location by sampling has no gradient with respect to the scores",
     "hard attention is slower at inference than soft attention",
     "hard attention has more weights than soft attention",
     "the softmax overflows when only one location is read"],
    "a",
    [("it is faster at inference: it encodes one cell of 9 (lesson 06's multiply-adds)", "b"),
     ("the weights are the same; what differs is how the location is chosen and trained", "c"),
     ("the max-shift of lesson 01 keeps the softmax finite in both: the problem is the gradient", "d")],
    hint="Sampling a location is a discrete choice: what does back-propagation need from it?",
    explanation="A sampled one-hot choice is not differentiable; REINFORCE estimates the gradient without bias "
                "but with noise (a baseline divided its variance by 65.6), the Gumbel-softmax with bias and "
                "little noise (lesson 06, section 1).",
)

# 14.6 -------------------------------------------------------------------------------

_choice(
    "14.6",
    "In a Transformer decoder's cross-attention (lesson 09), where do the queries, keys and values come from?",
    ["all three from the decoder's own tokens",
     "queries from the decoder, keys and values from the encoder's outputs",
     "queries from the encoder, keys and values from the decoder",
     "keys from the decoder, queries and values from the encoder"],
    "b",
    [("that is the decoder's self-attention; cross-attention reads the source", "a"),
     ("the other way round: the target position asks (query), the source positions answer", "c"),
     ("keys and values come in pairs from the same positions: those that are read", "d")],
    hint="Who asks the question (one target position), and what is read (the source)?",
    explanation="Each target position's query is matched against the encoder outputs' keys and averages their "
                "values (lesson 09, section 5; lesson 03's decoder reads the encoder the same way).",
)

# 14.7 -------------------------------------------------------------------------------


def _gru_below_thousandth():
    # Lesson 10, 'The gradient that reaches position T-1-k': "GRU: first k below 1/1000 of k = 0: 12".
    return 12


register(
    Exercise(
        key="14.7",
        question=(
            "Lesson 10 measured the gradient that reaches the token k positions before the end, through an "
            "untrained GRU. From which distance k on is it below 1/1000 of its value at k = 0?"
        ),
        cases=(Case("the GRU, at initialisation", _gru_below_thousandth()),),
        solution=_gru_below_thousandth,
        answer_is_function=False,
        hint="Lesson 10, section 2, 'The gradient that reaches position T-1-k': the line after the table.",
        mistakes=(
            ("at that distance the gradient is already down to about 1e-14; it fell below 1/1000 much earlier", 64),
            ("that is where the recall task's GRU was at chance after 2 epochs (section 3), not the gradient", 16),
        ),
    )
)

# 14.8 -------------------------------------------------------------------------------

_choice(
    "14.8",
    "In lesson 10 (batch 32, equal parameter counts), how did self-attention's time per training step compare "
    "with the GRU's as the sequence length T grew?",
    ["attention was faster at every length",
     "attention was slower at short lengths and faster at long ones",
     "attention was faster at short lengths and slower from T = 256 on",
     "the same at every length"],
    "c",
    [("not at every length: attention's work grows as T^2, the GRU's as T", "a"),
     ("the other way round: the n^2 scores cost most at long lengths, the GRU's sequential steps at short ones",
      "b"),
     ("their times grew at different rates (exponents fitted in lesson 10, section 1)", "d")],
    hint="Lesson 10, section 1, 'Time per training step against sequence length': the crossover line.",
    explanation="0.67 of the GRU's time at T = 64, 4.08 times it at T = 1024, the crossover near T = 165; time "
                "grows as T^1.86 against T^1.01 (lesson 10, section 1). Attention wins on parallelism and "
                "path length, not on work per token at long lengths.",
)

# 14.9 -------------------------------------------------------------------------------

_choice(
    "14.9",
    "Lesson 12 classified the sentiment of film-review snippets. Did attention pooling (embeddings learned "
    "from nothing) beat TF-IDF with logistic regression on the test set?",
    ["yes, by several points", "no, it was just below the baseline", "no, it stayed at the majority class",
     "it was not compared"],
    "b",
    [("the gap went the other way, and was small: see lesson 12's table", "a"),
     ("it learnt far more than the majority class; only the bag-of-words baseline stayed ahead", "c"),
     ("lesson 12, section 5, puts both in one table", "d")],
    hint="Lesson 12, section 5, 'The table'.",
    explanation="0.7914 against 0.7953: 0.4 points short; the goal (80% and above the baseline) was not reached "
                "(lesson 12, sections 5 and 9).",
)

# 14.10 ------------------------------------------------------------------------------

_choice(
    "14.10",
    "What does subtracting the largest score from every score, before the exponential, do to the softmax "
    "weights?",
    ["nothing: the weights are the same, and exp no longer overflows",
     "it makes the weights uniform",
     "it makes the weights sharper (closer to one-hot)",
     "the weights no longer sum to 1"],
    "a",
    [("uniform weights come from a scale of 0 (lesson 01's 'The scale'), not from a shift", "b"),
     ("sharpness comes from multiplying the scores; a shift by one constant cancels in the ratio", "c"),
     ("the normalisation still divides by the sum: exp(s - m) / sum exp(s - m) sums to 1", "d")],
    hint="exp(s_i - m) / sum_j exp(s_j - m): what happens to exp(-m)?",
    explanation="exp(-m) cancels between numerator and denominator; the largest exponent is then exp(0) = 1 "
                "(lesson 01, 'The naive softmax overflows').",
)

# 14.11 ------------------------------------------------------------------------------

DIMS_1411 = (16, 64, 256)


def _variance_problem(values, dims, target):
    """Which d_k's variance is outside 15% of `target(d_k)`, or None."""
    for d, v in zip(dims, values):
        if not 0.85 * target(d) <= v <= 1.15 * target(d):
            return d
    return None


def _check_variances(answer):
    try:
        unscaled, scaled = answer
    except (TypeError, ValueError):
        raise AnswerError("give a pair (unscaled, scaled), each 3 variances for d_k = 16, 64, 256") from None
    unscaled, scaled = as_array(unscaled, "the unscaled variances"), as_array(scaled, "the scaled variances")
    for array, name in ((unscaled, "unscaled"), (scaled, "scaled")):
        if array.shape != (3,):
            raise AnswerError(f"the {name} variances should be 3 numbers (d_k = 16, 64, 256), not shape {array.shape}")
        if (array <= 0).any():
            return f"a variance is never negative or zero: check the {name} ones"
    if np.allclose(unscaled, scaled, rtol=0.02):
        return "the two lists are the same: divide q.k by sqrt(d_k) for the scaled one only"
    if _variance_problem(unscaled, DIMS_1411, lambda d: 1.0) is None:
        return "your unscaled variances do not grow with d_k: were they divided by sqrt(d_k) too?"
    if np.all(np.diff(unscaled) > 0) and np.allclose(unscaled ** 2 / np.array(DIMS_1411), 1, rtol=0.3):
        return ("your unscaled numbers grow like sqrt(d_k): that is the standard deviation of q.k; "
                "the question asks for the variance")
    wrong = _variance_problem(unscaled, DIMS_1411, float)
    if wrong is not None:
        return (f"your unscaled variance at d_k = {wrong} is not what independent unit-variance entries give: "
                "draw q and k from a standard normal, take many pairs (thousands)")
    if np.allclose(scaled * np.array(DIMS_1411), 1, rtol=0.15):
        return "your scaled variances shrink with d_k: divide q.k by sqrt(d_k), not by d_k"
    if np.allclose(scaled, np.sqrt(DIMS_1411), rtol=0.15):
        return ("your scaled variances still grow like sqrt(d_k): divide q.k itself by sqrt(d_k) "
                "(its variance then shrinks by d_k)")
    wrong = _variance_problem(scaled, DIMS_1411, lambda d: 1.0)
    if wrong is not None:
        return f"your scaled variance at d_k = {wrong} is not what lesson 05's scaling gives: check the division"
    return None


register(
    Exercise(
        key="14.11",
        question=(
            "Run it: for d_k = 16, 64 and 256, draw 20,000 pairs of vectors q, k with independent standard-normal "
            "entries and measure the variance of q.k, unscaled and divided by sqrt(d_k). Answer the pair "
            "(unscaled, scaled), each a list of 3 variances in the order 16, 64, 256."
        ),
        checker=_check_variances,
        solution=(
            "rng = np.random.default_rng(0)\n"
            "unscaled, scaled = [], []\n"
            "for d_k in (16, 64, 256):\n"
            "    q, k = rng.normal(size=(2, 20_000, d_k))\n"
            "    dots = (q * k).sum(axis=1)\n"
            "    unscaled.append(dots.var())\n"
            "    scaled.append((dots / np.sqrt(d_k)).var())\n"
            "answer = (unscaled, scaled)\n"
            "\n"
            "q.k is a sum of d_k independent products of variance 1, so its variance is d_k;\n"
            "dividing by sqrt(d_k) divides the variance by d_k (lesson 05, section 1.1)."
        ),
        hint="`q, k = rng.normal(size=(2, 20_000, d_k))`, then `(q * k).sum(axis=1)` gives 20,000 dot products.",
    )
)

# 14.12 ------------------------------------------------------------------------------

T_1412 = 6


def _attend(x, mask):
    from course_lib.attention import scaled_dot_product_attention

    out, _ = scaled_dot_product_attention(x, x, x, mask=mask[None])
    return np.asarray(out)[0]


def _check_causal_mask(answer):
    mask = as_array(answer, "the mask")
    if mask.shape != (T_1412, T_1412):
        raise AnswerError(f"the mask should have shape ({T_1412}, {T_1412}): one row per query, one column per key")
    if not np.isin(mask, (0, 1)).all():
        raise AnswerError("the mask should hold True/False (or 1/0) values")
    mask = mask.astype(bool)
    past = np.tril(np.ones((T_1412, T_1412), bool))  # key j <= query i
    if np.array_equal(mask, ~past) or np.array_equal(mask, past.T):
        return ("the mask looks inverted (True where a query must not look): in Keras and course_lib, "
                "True means 'may attend'")
    if not mask.any(axis=1).all():
        return f"query {int(np.flatnonzero(~mask.any(axis=1))[0])} may attend to nothing: every query sees itself"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, T_1412, 4)).astype("float32")
    before = _attend(x, mask)
    for changed in range(1, T_1412):  # change token `changed`: no earlier output may move
        y = x.copy()
        y[0, changed] += 10.0
        moved = np.abs(_attend(y, mask) - before).max(axis=-1)[:changed]
        if (moved > 0).any():
            query = int(np.flatnonzero(moved > 0)[0])
            return (f"leak test failed: changing token {changed} changed the output at position {query}, "
                    "which comes before it")
    if np.array_equal(mask, past):
        return None
    if np.array_equal(mask, np.eye(T_1412, dtype=bool)):
        return "no leak, but each query sees only itself: a causal mask lets it see every earlier token too"
    query, key = (int(i) for i in np.argwhere(~mask & past)[0])
    return f"no leak, but query {query} may not attend to key {key}, which is in its past: nothing earlier is hidden"


register(
    Exercise(
        key="14.12",
        question=(
            f"Build a causal mask for {T_1412} positions: a ({T_1412}, {T_1412}) boolean array, rows the queries, "
            "columns the keys, True = may attend (Keras's convention). The checker runs the leak test of lesson "
            "05 with `course_lib.attention.scaled_dot_product_attention`: it changes each token and checks that "
            "no earlier output moves, then that nothing earlier is hidden."
        ),
        checker=_check_causal_mask,
        solution=(
            "answer = np.tril(np.ones((6, 6), dtype=bool))   # or course_lib.masks.causal_mask(6)\n"
            "\n"
            "Query i may see keys 0..i: the lower triangle, diagonal included (lesson 05, section 2.2)."
        ),
        hint="Query i may see keys j <= i. Which numpy function keeps the lower triangle of a matrix?",
    )
)

# 14.13 ------------------------------------------------------------------------------


def _chunked_memory_ratio():
    # Lesson 13, section 2: "at n = 8192: 13.7 times less peak memory, at 1.29 times the time".
    return 13.7


register(
    Exercise(
        key="14.13",
        question=(
            "Lesson 13 measured plain and chunked attention (the online softmax, chunks of 128 keys) at "
            "n = 8192, d = 64. How many times less peak memory did chunked attention need? One decimal, or a "
            "whole number, is enough."
        ),
        cases=(Case("n = 8192, chunk size 128", _chunked_memory_ratio()),),
        solution=_chunked_memory_ratio,
        answer_is_function=False,
        rtol=0.03,  # 13.7 and 14 pass
        hint="Lesson 13, section 2, 'Chunked attention: the online softmax': the line 'at n = 8192: ...'.",
        mistakes=(
            ("that is the time ratio (chunked attention is a little slower), not the memory saving", 1.29),
            ("that is the log-log slope of plain attention's peak memory against n (section 1)", 1.78),
            ("that is the KV cache's speed-up at 256 tokens (section 3), not chunked attention's memory", 5.8),
        ),
    )
)

# 14.14 ------------------------------------------------------------------------------

_choice(
    "14.14",
    "What does the key/value cache of an autoregressive decoder store?",
    ["each layer's keys and values of every position generated so far",
     "the queries of every position generated so far",
     "the attention weights of the previous steps",
     "the logits of every token generated so far"],
    "a",
    [("a past query is never used again: only the new token asks; what it reads is the past keys and values",
      "b"),
     ("the new token's weights depend on its own query, so old weights cannot be reused", "c"),
     ("logits are an output; they are not what the next step's attention reads", "d")],
    hint="At step t, which tensors of steps 0..t-1 does the new token's attention need?",
    explanation="Keys and values, per layer (and per key/value head): the same tokens as recomputing everything, "
                "5.8 times faster at 256 tokens; 2 key/value heads for 8 query heads make it 4 times smaller "
                "(lesson 13, sections 3 and 4).",
)

# 14.15 ------------------------------------------------------------------------------

_choice(
    "14.15",
    "Lesson 07 trained self-attention on an order task at length 12 and tested it at length 24. Which kind "
    "of positions kept the highest accuracy at length 24?",
    ["learned positions", "sinusoidal positions", "rotary positions", "no positions at all"],
    "c",
    [("a learned table has no entry past its length: that model could not run at 24", "a"),
     ("sinusoidal positions ran at 24 but fell far from their length-12 accuracy", "b"),
     ("without positions self-attention is permutation equivariant: it stayed near chance at both lengths", "d")],
    hint="Lesson 07, section 5.4, 'Twice as long as any training sequence'.",
    explanation="Rotary 0.954 at length 24; sinusoidal 0.586; learned cannot run; none 0.528 at length 12 "
                "(lesson 07, sections 5.3-5.4).",
)
