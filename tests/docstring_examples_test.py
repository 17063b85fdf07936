"""Every example in a docstring of `swav_keras` runs, under each backend.

`>>>` examples run as doctests, each module's in a namespace of their own (nothing imported for
them). ```python examples run as a user pastes them after building the objects a docstring
example may take from its context: `CONTEXT` lists them, and nothing else is given (the module's
own names are not): every other name the example imports itself. `fit` is cut to two steps.
"""

import doctest
import importlib
import inspect
import os
import pkgutil

import keras
import pytest
from examples import python_blocks, short_fit, undo_determinism
from image_folders import write_folder

import swav_keras

# The names a ```python example may use without defining them, as a user's session would hold.
CONTEXT = (
    "model", "encoder", "dataset", "images", "labels", "test_images", "test_labels",
)


def public_modules():
    names = [swav_keras.__name__]
    for info in pkgutil.walk_packages(swav_keras.__path__, "swav_keras."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def docstrings(module):
    """`(qualified name, docstring)` of the module and of what it defines, methods included."""
    found = [(module.__name__, module.__doc__ or "")]
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        found.append((f"{module.__name__}.{name}", inspect.getdoc(value) or ""))
        if inspect.isclass(value):
            for member, attribute in sorted(vars(value).items()):
                if not member.startswith("_") and callable(attribute):
                    found.append((f"{module.__name__}.{name}.{member}",
                                  inspect.getdoc(attribute) or ""))
    return found


def fenced_examples():
    examples = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name, doc in docstrings(module):
            for i, block in enumerate(python_blocks(doc)):
                examples.append(pytest.param(block, id=f"{name}[{i}]"))
    return examples


@pytest.mark.parametrize("module_name", public_modules())
def test_doctests(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # verbose=False: by default doctest reads `-v` from sys.argv and reports every success.
    runner = doctest.DocTestRunner(verbose=False,
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(module, globs={}):
        runner.run(test, out=report.append)
    assert not report, "".join(report)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """Small versions of the objects in `CONTEXT`, and an `encoder.keras` in the folder."""
    from swav_keras.backbones import SmallResNet
    from swav_keras.data import MultiCrop, load_fashion_mnist, multicrop_dataset

    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    images, labels = images[:256], labels[:256]
    crops = MultiCrop((2, 2), (28, 14), (0.3, 0.08), (1.0, 0.3), saturation=0, hue=0,
                      grayscale_probability=0, blur_probability=0)
    encoder = SmallResNet(width=8, input_shape=(None, None, 1))
    model = swav_keras.SwAV(encoder, projection_dim=16, hidden_dim=32, num_prototypes=10)
    model.compile(optimizer="sgd")
    dataset = multicrop_dataset(images, crops, batch_size=32, seed=0)
    model(next(iter(dataset))[0])  # built, as a user's trained model is
    folder = tmp_path_factory.mktemp("context")
    encoder.save(folder / "encoder.keras")
    write_folder(folder / "home" / "imagenette2" / "train", [(20, 24)] * 256)
    return folder, {
        "model": model, "encoder": encoder, "images": images, "labels": labels,
        "test_images": test_images[:100], "test_labels": test_labels[:100],
        "dataset": dataset,
    }


def test_context_builds_every_object_it_names(context):
    assert set(context[1]) == set(CONTEXT)


@pytest.mark.parametrize("example", fenced_examples())
def test_fenced_examples(example, context, monkeypatch):
    folder, objects = context
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(folder / "home"))
    short_fit(monkeypatch)
    namespace = {name: objects[name] for name in CONTEXT}
    keras.utils.set_random_seed(0)
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    try:
        exec(compile(example, "<example>", "exec"), namespace)
    finally:
        undo_determinism()  # `swav_keras.enable_determinism`'s example
