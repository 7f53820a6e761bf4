"""Exercises of lesson 11, "The Vision Transformer".

11.1  cut images into patch vectors, row by row (function);
11.2  count the parameters of the ViT's input: patch embedding, class token, positions
      (function), for 1-D and 2-D positions;
11.3  train the lesson's ViT with 2-D positions on the same budget (experiment: the
      checker re-measures the learner's model on the test set);
11.4  the rollout check without the residual term (experiment: the checker re-measures
      it with the committed ViT).

Notation as in the lesson: images `(B, H, W, C)`, patch size `p`, `N = (H/p)(W/p)`
patches, width `D`.
"""

import numpy as np

from course_lib.exercises import AnswerError, Case, Exercise, as_number, register

# 11.1 ------------------------------------------------------------------------------


def _patchify(images, patch_size):
    # (B, H, W, C) -> (B, H/p, p, W/p, p, C) -> (B, H/p, W/p, p, p, C) -> (B, N, p*p*C)
    b, h, w, c = images.shape
    p = patch_size
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def _images(shape, seed):
    return np.random.default_rng(seed).integers(0, 10, size=shape).astype("float64")


def _no_transpose(images, patch_size):
    b, h, w, c = images.shape
    return images.reshape(b, (h // patch_size) * (w // patch_size), patch_size * patch_size * c)


def _column_by_column(images, patch_size):
    return _patchify(images.transpose(0, 2, 1, 3), patch_size).reshape(
        images.shape[0], -1, patch_size, patch_size, images.shape[3]).transpose(0, 1, 3, 2, 4).reshape(
        images.shape[0], -1, patch_size * patch_size * images.shape[3])


register(
    Exercise(
        key="11.1",
        question=(
            "Write `my_patchify(images, patch_size)` in numpy: images `(B, H, W, C)` -> patch vectors "
            "`(B, N, p*p*C)`, the patches read row by row (left to right, then top to bottom), each "
            "flattened in (row, column, channel) order, as `PatchEmbedding` reads them before its "
            "kernel. One reshape is not enough."
        ),
        cases=(
            Case("one 4 x 4 grey image, patch 2 (a 2 x 2 grid)", _patchify(_images((1, 4, 4, 1), 0), 2),
                 args=(_images((1, 4, 4, 1), 0), 2)),
            Case("two 6 x 4 images with 3 channels, patch 2 (a 3 x 2 grid, not square)",
                 _patchify(_images((2, 6, 4, 3), 1), 2), args=(_images((2, 6, 4, 3), 1), 2)),
            Case("one 28 x 28 grey image, patch 7 (the lesson's grid)", _patchify(_images((1, 28, 28, 1), 2), 7),
                 args=(_images((1, 28, 28, 1), 2), 7)),
        ),
        solution=_patchify,
        hint=(
            "Split each image axis in two: `(B, H/p, p, W/p, p, C)`. The patch's row and column "
            "indices must come before the pixel indices inside a patch: move the axes with "
            "`transpose` before the last reshape."
        ),
        mistakes=(
            ("a single reshape mixes pixels of neighbouring patches: split H and W into "
             "(grid, pixel) axes and transpose first", _no_transpose),
            ("your patches are read column by column (top to bottom first): read them row by row",
             _column_by_column),
        ),
    )
)


# 11.2 ------------------------------------------------------------------------------


def _input_params(height, width, channels, patch_size, embed_dim, positions):
    # The patch embedding's kernel (p*p*C, D) and bias (D,); the class token (D,);
    # 1-D positions: one vector per token (N + 1 of them); 2-D: rows + cols + 1 (the class token's).
    rows, cols = height // patch_size, width // patch_size
    embedding = patch_size * patch_size * channels * embed_dim + embed_dim
    vectors = rows * cols + 1 if positions == "1d" else rows + cols + 1
    return embedding + embed_dim + vectors * embed_dim


def _short_by(vectors):
    def count(height, width, channels, patch_size, embed_dim, positions):
        return _input_params(height, width, channels, patch_size, embed_dim, positions) - vectors * embed_dim

    return count


def _2d_as_1d(height, width, channels, patch_size, embed_dim, positions):
    return _input_params(height, width, channels, patch_size, embed_dim, "1d")


register(
    Exercise(
        key="11.2",
        question=(
            "Write `my_input_params(height, width, channels, patch_size, embed_dim, positions)`: the "
            "number of weights of the ViT's input, `PatchEmbedding(patch_size, embed_dim)`, "
            "`ClassToken()` and `PatchPositionEmbedding(grid, mode=positions)`, for `positions` "
            "`'1d'` or `'2d'`."
        ),
        cases=(
            Case("28 x 28 x 1, patch 7, D = 64, 1-D positions (the lesson's ViT)",
                 _input_params(28, 28, 1, 7, 64, "1d"), args=(28, 28, 1, 7, 64, "1d")),
            Case("28 x 28 x 1, patch 4, D = 64, 1-D positions", _input_params(28, 28, 1, 4, 64, "1d"),
                 args=(28, 28, 1, 4, 64, "1d")),
            Case("32 x 16 x 3, patch 4, D = 8, 2-D positions (an 8 x 4 grid)", _input_params(32, 16, 3, 4, 8, "2d"),
                 args=(32, 16, 3, 4, 8, "2d")),
            Case("224 x 224 x 3, patch 16, D = 768, 1-D positions (ViT-Base)",
                 _input_params(224, 224, 3, 16, 768, "1d"), args=(224, 224, 3, 16, 768, "1d")),
        ),
        solution=_input_params,
        hint=(
            "Three layers: a kernel (p*p*C, D) plus a bias (D,); one token (D,); and D numbers per "
            "position vector. How many position vectors: one per token with 1-D positions, one per row, "
            "one per column and one for the class token with 2-D positions."
        ),
        mistakes=(
            ("you are short by D weights: the patch embedding's bias, the class token itself, or the class "
             "token's own position vector is missing", _short_by(1)),
            ("you are short by 2 * D weights: two of the patch embedding's bias, the class token and the class "
             "token's position vector are missing", _short_by(2)),
            ("2-D positions are one vector per row and one per column (plus the class token's), not one per "
             "patch", _2d_as_1d),
        ),
    )
)


# 11.3 ------------------------------------------------------------------------------


def _test_accuracy(model, count=None):
    from course_lib.datasets import load_fashion_mnist
    from course_lib.train_vision import accuracy, scaled

    _, _, (x_test, y_test) = load_fashion_mnist()
    count = len(x_test) if count is None else count
    return accuracy(model, scaled(x_test[:count]), y_test[:count])


def _check_2d_positions(answer):
    import keras

    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise AnswerError("give a tuple of 2 items: (model, test_accuracy)")
    model, reported = answer
    if not isinstance(model, keras.Model):
        return "the first item should be your trained model (a keras.Model from `build_vit`)"
    try:
        positions = model.get_layer("positions")
    except ValueError:
        return "your model has no layer named 'positions': build it with `build_vit(...)`"
    if getattr(positions, "mode", None) != "2d":
        return "your model's positions are not 2-D: build it with `build_vit(..., positions='2d')`"
    reported = as_number(reported, "the test accuracy (the second item)")
    if not 0 <= reported <= 1:
        return "give the accuracy as a fraction between 0 and 1, not a percentage"
    measured = _test_accuracy(model)
    if measured < 0.5:
        return "your model's test accuracy is close to chance: train it (`fit`) before you report it"
    if abs(measured - reported) > 0.002:
        return ("that is not your model's accuracy on the 10,000 test images: measure it with "
                "`accuracy(model, x_test, y_test)`")
    return None


register(
    Exercise(
        key="11.3",
        question=(
            "Do 2-D positions help at this budget? Build the lesson's live ViT again with "
            "`positions='2d'`, train it with `train_for_seconds` on the same budget, and answer "
            "`(model, test_accuracy)`. Compare with the 1-D ViT of the table. The checker re-measures "
            "your model on the test set."
        ),
        checker=_check_2d_positions,
        solution=(
            "keras.utils.set_random_seed(0)\n"
            "vit_2d = build_vit(**LIVE_VIT, positions='2d')\n"
            "compile_for_lesson(vit_2d)\n"
            "train_for_seconds(vit_2d, x_train, y_train, BUDGET_SECONDS)\n"
            "answer = (vit_2d, accuracy(vit_2d, x_test, y_test))\n"
            "\n"
            "With 16 patches, 2-D positions have 9 vectors instead of 17; in a short run they start\n"
            "from the grid that 1-D positions must first learn, and the difference is small\n"
            "(one run and one seed cannot tell it from noise)."
        ),
        hint=(
            "Copy the cell that trains the live ViT; change only `positions`. `accuracy(model, x_test, "
            "y_test)` gives the number to report."
        ),
    )
)


# 11.4 ------------------------------------------------------------------------------

CHECK_IMAGES = 500  # the first test images, as in the lesson's rollout check


def _mean_mass(residual_weight, count=CHECK_IMAGES):
    from course_lib.datasets import load_fashion_mnist
    from course_lib.train_vision import load_trained_vit, scaled
    from course_lib.vision import rollout_check

    model, _ = load_trained_vit()
    _, _, (x_test, _) = load_fashion_mnist()
    return float(rollout_check(model, scaled(x_test[:count]), residual_weight)["mass"].mean())


def _check_no_residual(answer):
    value = as_number(answer, "the mean mass")
    if not 0 <= value <= 1:
        return "a share of a map that sums to 1 lies between 0 and 1"
    if abs(value - _mean_mass(0.0)) <= 2e-3:
        return None
    if abs(value - _mean_mass(0.5)) <= 2e-3:
        return "that is the lesson's value, with residual_weight=0.5: set it to 0.0"
    return ("that is not the mean mass on the garment of the committed ViT's rollout with "
            "residual_weight=0.0 on the first 500 test images")


register(
    Exercise(
        key="11.4",
        question=(
            "Does the rollout check hold without the residual term? Run `rollout_check` on the "
            "longer-trained ViT and the first 500 test images with `residual_weight=0.0` (the raw "
            "attention products), and answer the mean of its `'mass'`. Is it still above the uniform "
            "share? The checker re-measures it."
        ),
        checker=_check_no_residual,
        solution=(
            "check0 = rollout_check(trained_vit, x_test[:500], residual_weight=0.0)\n"
            "answer = check0['mass'].mean()\n"
            "\n"
            "Without the identity each layer's map enters the product undiluted, the first layer's\n"
            "too, whose class token favours background patches (the lesson's per-layer table); for\n"
            "the committed ViT the mass falls below the uniform share."
        ),
        hint="The lesson's cell computes `rollout_check(trained_vit, x_check)`; add `residual_weight=0.0`.",
    )
)
