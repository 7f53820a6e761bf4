"""The shape of the package: `course_lib.layers` lists every layer, each layer is
registered for saving, and the dependencies go one way (no model module imports the
data module; no module reaches a layer through the `course_lib.layers` facade).

The layers are found by importing every module of the package, so a layer added to a
new module is checked without changing this test.
"""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import keras
import pytest

import course_lib
from course_lib import layers

MODULES = sorted(info.name for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."))


def defined_layers():
    """Every public `keras.layers.Layer` subclass defined in a course_lib module."""
    found = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, keras.layers.Layer)
                and value.__module__ == module_name
                and not name.startswith("_")
            ):
                found[name] = value
    return found


LAYERS = defined_layers()


def test_the_package_defines_the_layers_of_the_lessons():
    assert {"AdditiveAttention", "RNNEncoder", "AttentionDecoder", "MultiHeadAttention"} <= set(LAYERS)


def test_layers_lists_every_layer_of_the_package_and_nothing_else():
    assert sorted(layers.__all__) == sorted(LAYERS)
    assert dir(layers) == layers.__all__


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layer_is_the_same_class_through_the_facade_and_registered(name):
    cls = LAYERS[name]
    assert getattr(layers, name) is cls
    assert keras.saving.get_registered_name(cls) == f"course_lib>{name}"
    assert keras.saving.get_registered_object(f"course_lib>{name}") is cls


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchLayer"):
        layers.NoSuchLayer  # noqa: B018


def imported_modules(module_name):
    """The course_lib modules that `module_name`'s source imports (anywhere in it)."""
    path = Path(importlib.import_module(module_name).__file__)
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in imported if name.startswith("course_lib")}


LIBRARY = [name for name in MODULES if not name.startswith("course_lib.exercises")]
# A task's pipeline and the scripts that train and load its models read the data on
# purpose (the translation vocabulary is learned from the training sentences); the
# layers and model builders they use must not.
TASKS = {"course_lib.datasets", "course_lib.translation", "course_lib.train", "course_lib.pretrained",
         "course_lib.train_vision"}


def test_the_modules_that_read_data_are_tasks_not_models():
    for module_name in TASKS - {"course_lib.datasets"}:
        assert not any(
            inspect.isclass(value) and issubclass(value, keras.layers.Layer)
            for value in vars(importlib.import_module(module_name)).values()
        ), module_name


@pytest.mark.parametrize("module_name", [m for m in LIBRARY if m not in TASKS])
def test_no_library_module_depends_on_the_data_module(module_name):
    assert "course_lib.datasets" not in imported_modules(module_name)


@pytest.mark.parametrize("module_name", [m for m in MODULES if m != "course_lib.layers"])
def test_no_module_reaches_a_layer_through_the_facade(module_name):
    assert "course_lib.layers" not in imported_modules(module_name)
