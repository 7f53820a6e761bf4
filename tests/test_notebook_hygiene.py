"""Committed notebooks must be clean: executed top to bottom in a fresh `python3`
kernel, with no error or stderr output, and listed in the README's lesson map."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_cells(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return notebook, [c for c in notebook["cells"] if c["cell_type"] == "code"]


def test_there_are_lessons():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_name_is_numbered(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_executed_top_to_bottom_in_fresh_kernel(path):
    _, cells = code_cells(path)
    counts = [c["execution_count"] for c in cells if "".join(c["source"]).strip()]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_error_or_stderr_outputs(path):
    _, cells = code_cells(path)
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"code cell {index} stores an error"
            assert output.get("name") != "stderr", f"code cell {index} stores stderr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_kernel_is_python3(path):
    notebook, _ = code_cells(path)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_listed_in_readme_lesson_map(path):
    assert f"notebooks/{path.name}" in README, f"{path.name} is missing from README.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_cell_sets_backend_before_importing_keras(path):
    _, cells = code_cells(path)
    first = "".join(cells[0]["source"])
    assert "KERAS_BACKEND" in first and "TF_CPP_MIN_LOG_LEVEL" in first
    assert first.index("KERAS_BACKEND") < first.index("import keras")
    assert "set_random_seed" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_machine_paths_in_outputs(path):
    _, cells = code_cells(path)
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"(/root/|/home/\w+/|/work/|C:\\\\Users)", text), (
                f"code cell {index} output shows a machine path"
            )
