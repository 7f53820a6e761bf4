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


def pytest_report_header(config):
    """Say which backend this run uses: `course.py test` runs on TensorFlow, then JAX."""
    return f"keras backend: {os.environ['KERAS_BACKEND']}"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


_notebook_seconds = {}


def pytest_runtest_logreport(report):
    """Add up the time of each notebook's cells (setup, call and teardown)."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Print how long each lesson took to execute, for the README's lesson map."""
    if _notebook_seconds:
        terminalreporter.section("notebook execution times")
        for path, seconds in sorted(_notebook_seconds.items()):
            terminalreporter.write_line(f"{path:<60} {seconds:6.0f} s")
