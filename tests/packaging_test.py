"""The wheel holds every package, and no top-level `backends` module."""

import os

import tomllib
from no_tensorflow import other_backend, run_without_tensorflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setuptools():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    listed = set(_setuptools()["packages"])
    found = {"swav_keras.backends"}
    for folder, _, names in os.walk(os.path.join(ROOT, "swav_keras")):
        if "__init__.py" in names:
            found.add(os.path.relpath(folder, ROOT).replace(os.sep, "."))
    assert listed == found


def test_backends_install_under_the_package():
    setuptools = _setuptools()
    assert setuptools["package-dir"] == {"swav_keras.backends": "backends"}
    assert "backends" not in setuptools["packages"]


SUBPACKAGES = ("augmentation", "backbones", "backends", "callbacks", "data", "evaluation",
               "layers", "optimizers", "visualization")


def test_import_gives_every_subpackage_without_tensorflow():
    # Lazily where needed: reaching each one still imports no TensorFlow under JAX or torch.
    import keras

    out = run_without_tensorflow(f"""
        import sys
        import swav_keras
        for name in {SUBPACKAGES!r}:
            module = getattr(swav_keras, name)
            assert module.__name__ == "swav_keras." + name, module
        assert set({SUBPACKAGES!r}) <= set(dir(swav_keras)) and set(swav_keras.__all__) <= set(
            dir(swav_keras))
        print(swav_keras.optimizers.LARS.__name__, "tensorflow" in sys.modules)
        try:
            swav_keras.no_such_thing
        except AttributeError as error:
            print(error)
    """, other_backend(keras.backend.backend()))
    assert out.splitlines() == [
        "LARS False", "module 'swav_keras' has no attribute 'no_such_thing'"
    ]
