"""The set-up of `course.py`: the Debian data step never stops it and runs once; the lock
pins every requirement on every supported platform; `course.py test` runs what the README
says (TensorFlow: everything; JAX: the unit tests and docstring examples)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course)

posix_only = pytest.mark.skipif(os.name == "nt", reason="fake commands are shell scripts")


# --- the Debian data step -------------------------------------------------------------

def _fake_commands(folder, apt_exit_code):
    """Put a fake `apt-get` (logging its arguments, exiting with `apt_exit_code`) and a
    pass-through `sudo` first on PATH; return the log file."""
    folder.mkdir()
    log = folder / "apt-get.log"
    (folder / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexit {apt_exit_code}\n')
    (folder / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for name in ("apt-get", "sudo"):
        (folder / name).chmod(0o755)
    return log


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """course.py pointed at a temporary .venv and at data folders that do not exist."""
    monkeypatch.setattr(course, "VENV", tmp_path / "venv")
    monkeypatch.setattr(course, "STAMP", tmp_path / "venv" / ".course-setup-stamp")
    monkeypatch.setattr(course, "DEBIAN_DATA", {
        "dataset-fashion-mnist": tmp_path / "absent" / "fashion-mnist",
        "trans-de-en": tmp_path / "absent" / "de-en",
    })
    return tmp_path


@posix_only
def test_failing_apt_get_prints_what_is_missing_and_does_not_raise(sandbox, monkeypatch, capsys):
    log = _fake_commands(sandbox / "bin", apt_exit_code=100)
    monkeypatch.setenv("PATH", f"{sandbox / 'bin'}{os.pathsep}{os.environ['PATH']}")
    course.install_debian_data()
    out = capsys.readouterr().out
    assert log.read_text().startswith("update"), "the fake apt-get was not called"
    assert "Could not install the Debian packages dataset-fashion-mnist trans-de-en" in out
    assert "will download the data instead" in out


@posix_only
def test_missing_sudo_does_not_raise(sandbox, monkeypatch, capsys):
    """Not root and no sudo: the step reports and the set-up goes on."""
    log = _fake_commands(sandbox / "bin", apt_exit_code=0)
    (sandbox / "bin" / "sudo").unlink()
    monkeypatch.setenv("PATH", str(sandbox / "bin"))
    monkeypatch.setattr(course, "as_root", lambda command: ["sudo"] + command)
    course.install_debian_data()
    assert "Could not install the Debian packages" in capsys.readouterr().out
    assert not log.exists()


@posix_only
def test_present_data_calls_no_apt_get(sandbox, monkeypatch):
    log = _fake_commands(sandbox / "bin", apt_exit_code=0)
    monkeypatch.setenv("PATH", f"{sandbox / 'bin'}{os.pathsep}{os.environ['PATH']}")
    for path in course.DEBIAN_DATA.values():
        path.mkdir(parents=True)
    course.install_debian_data()
    assert not log.exists()


@posix_only
def test_setup_goes_on_after_a_failed_data_step_and_runs_it_once(sandbox, monkeypatch, capsys):
    log = _fake_commands(sandbox / "bin", apt_exit_code=100)
    monkeypatch.setenv("PATH", f"{sandbox / 'bin'}{os.pathsep}{os.environ['PATH']}")
    steps = []

    def fake_create_venv():
        steps.append("venv")
        course.venv_python().parent.mkdir(parents=True)
        course.venv_python().write_text("")

    monkeypatch.setattr(course, "create_venv", fake_create_venv)
    monkeypatch.setattr(course, "install_requirements", lambda: steps.append("requirements"))
    course.setup()
    assert steps == ["venv", "requirements"]
    assert course.STAMP.read_text() == course.setup_fingerprint()
    assert "will download the data instead" in capsys.readouterr().out
    course.setup()  # up to date: nothing runs again, apt-get included
    assert steps == ["venv", "requirements"]
    assert log.read_text().count("update") == 1


# --- the lock --------------------------------------------------------------------------

def _requirements(path):
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    lines = (line.split(" #")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def _environment(python, system, machine):
    sys_platform = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}[system]
    return {
        "python_version": python, "python_full_version": f"{python}.0",
        "sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
        "os_name": "nt" if system == "Windows" else "posix",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
    }


PLATFORMS = [("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "arm64"), ("Windows", "AMD64")]
ENVIRONMENTS = [
    pytest.param(_environment(python, system, machine), id=f"{system}-{machine}-py{python}")
    for system, machine in PLATFORMS
    for python in ("3.10", "3.11", "3.12", "3.13")
]


def _applies(requirement, environment):
    return requirement.marker is None or requirement.marker.evaluate(environment)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_lock_pins_every_requirement_once_within_its_range(environment):
    """Catches a requirements.txt edit without a refresh of the lock (README, "The lock")."""
    pins = [pin for pin in _requirements(course.LOCK) if _applies(pin, environment)]
    for pin in pins:
        assert len(pin.specifier) == 1 and next(iter(pin.specifier)).operator == "==", pin
    for requirement in _requirements(course.REQUIREMENTS):
        if not _applies(requirement, environment):
            continue
        matching = [pin for pin in pins if pin.name == requirement.name]
        assert len(matching) == 1, f"{requirement.name}: {len(matching)} pins apply"
        version = next(iter(matching[0].specifier)).version
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_tensorflow_per_platform(environment):
    names = [r.name for r in _requirements(course.REQUIREMENTS) if _applies(r, environment)]
    assert sum(name in ("tensorflow", "tensorflow-cpu") for name in names) == 1, names


def test_no_deps_packages_are_pinned():
    for line in course.DATA_ONLY + course.NO_DEPS:
        requirement = Requirement(line)
        assert [spec.operator for spec in requirement.specifier] == ["=="], line


def test_readme_gives_the_command_that_made_the_lock():
    header = course.LOCK.read_text(encoding="utf-8").splitlines()[:3]
    command = next(line.lstrip("# ").strip() for line in header if "uv pip compile" in line)
    assert command in (ROOT / "README.md").read_text(encoding="utf-8")


def test_setup_refuses_an_unsupported_python(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 14, 0, "final", 0))
    with pytest.raises(SystemExit, match="Python 3.10 to 3.13"):
        course.setup()


# --- what `course.py test` runs ----------------------------------------------------------

def test_full_test_runs_tensorflow_then_jax():
    (tf_name, tf_backend, tf_args), (jax_name, jax_backend, jax_args) = course.planned_runs([])
    assert (tf_name, tf_backend, jax_name, jax_backend) == ("TensorFlow", "tensorflow", "JAX", "jax")
    for path in ("tests", "notebooks", "course_lib", "--nbval", "--doctest-modules"):
        assert path in tf_args
    for path in ("tests", "course_lib", "--doctest-modules"):
        assert path in jax_args
    assert "notebooks" not in jax_args and "--nbval" not in jax_args
    ignored = {arg.split("=", 1)[1] for arg in jax_args if arg.startswith("--ignore=")}
    assert ignored == {"tests/test_notebook_hygiene.py", "tests/test_course_command.py",
                       "tests/test_setup.py", "tests/test_book_and_slides.py", "tests/test_datasets.py"}
    for path in ignored:
        assert (ROOT / path).exists(), path


def test_named_paths_run_alone_on_the_default_backend():
    [(name, backend, args)] = course.planned_runs(["tests/test_viz.py"])
    assert backend is None and args[-1] == "tests/test_viz.py"
    assert not {"tests", "notebooks", "course_lib"} & set(args)
    assert course.course_env(backend)["KERAS_BACKEND"] == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_run_sets_its_backend_whatever_the_caller_set(backend, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert course.course_env(backend)["KERAS_BACKEND"] == backend


# --- the book and the slides -------------------------------------------------------------

def test_web_assets_without_npm_say_what_to_install(monkeypatch, tmp_path):
    (tmp_path / "package-lock.json").write_text("{}")
    monkeypatch.setattr(course, "WEB", tmp_path)
    monkeypatch.setattr(course.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="need npm.*Node.js"):
        course.install_web_assets()


def test_web_assets_are_pinned():
    import json

    package = json.loads((course.WEB / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((course.WEB / "package-lock.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["reveal.js"].startswith("5."), "nbconvert's template needs reveal.js 5"
    assert package["dependencies"]["mathjax"].startswith("3."), "Sphinx 7 and the slides' template use MathJax 3"
    for name, version in package["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name

