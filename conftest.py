"""pytest configuration shared by the unit tests and nbval.

TensorFlow's C++ log lines reach a notebook's stderr under Jupyter but not under
pytest, so stderr is never compared: it is added to every notebook collector's
`skip_compare`. The committed notebooks hold no stderr (tests/test_notebook_hygiene.py).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# No MPLBACKEND here: notebook kernels inherit this environment and must keep
# Jupyter's inline backend, or their figures would not be stored.


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
