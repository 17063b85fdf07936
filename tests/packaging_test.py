"""The wheel holds every package, and no top-level `backends` module."""

import os

import tomllib

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
