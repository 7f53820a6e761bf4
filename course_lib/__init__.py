"""course_lib: the layers and helpers built, one lesson at a time, in the attention course.

Modules (one concept each): `attention` (the three steps and scaled dot-product
attention), `viz` (attention heatmaps), `datasets` (every data set of the course),
`exercises` (auto-checked exercises), and the Keras layers gathered in `layers`.

Importing `course_lib` itself imports neither Keras nor TensorFlow, so a notebook can
set `KERAS_BACKEND` first.
"""

__version__ = "0.1.0"
