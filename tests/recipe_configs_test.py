"""The named pretraining configurations state only what they change."""

import ast
import dataclasses
import inspect

import pytest

from recipes import configs


def _named_configurations():
    """`(name, base, {field: literal})` for each `NAME = PretrainConfig(...)` or `.replace(...)`."""
    for node in ast.parse(inspect.getsource(configs)).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        if isinstance(call.func, ast.Name) and call.func.id == "PretrainConfig":
            base = configs.PretrainConfig()
        elif isinstance(call.func, ast.Attribute) and call.func.attr == "replace":
            base = getattr(configs, call.func.value.id)
        else:
            continue
        yield node.targets[0].id, base, {k.arg: ast.literal_eval(k.value) for k in call.keywords}


NAMED = list(_named_configurations())


def test_every_named_configuration_is_read():
    assert {name for name, _, _ in NAMED} == {
        name for name in vars(configs) if isinstance(getattr(configs, name),
                                                     configs.PretrainConfig)}


@pytest.mark.parametrize("name, base, changes", NAMED, ids=[n for n, _, _ in NAMED])
def test_a_configuration_restates_no_value_of_its_base(name, base, changes):
    restated = {k: v for k, v in changes.items() if getattr(base, k) == v}
    assert not restated, f"{name} restates what its base already holds: {restated}"


def test_defaults_are_the_librarys():
    from swav_keras import SwAV
    from swav_keras.layers import MultiCropAugmentation

    defaults = configs.PretrainConfig()
    assert defaults.epsilon == inspect.signature(SwAV).parameters["epsilon"].default
    assert defaults.min_scales == (
        inspect.signature(MultiCropAugmentation).parameters["min_scales"].default)


def test_flags_give_one_or_several_prototype_heads_and_typed_tuples():
    from recipes.pretrain import field_value

    fields = {f.name: f for f in dataclasses.fields(configs.PretrainConfig)}
    defaults = configs.get_config("fashion_mnist")
    assert field_value(fields["num_prototypes"], ["300"], defaults) == 300
    assert field_value(fields["num_prototypes"], ["30", "20", "10"], defaults) == (30, 20, 10)
    assert field_value(fields["min_scales"], ["0.5", "0.1"], defaults) == (0.5, 0.1)
    assert field_value(fields["num_crops"], ["2", "6"], defaults) == (2, 6)


def test_several_prototype_heads_reach_the_model():
    from recipes.builders import build_encoder, build_model
    from swav_keras.data.sources import ImageSourceInfo

    config = configs.get_config("fashion_mnist", width=4, num_prototypes=(12, 6))
    info = ImageSourceInfo("arrays", "train", 64, 10, (12, 12, 1), (73.0,), (90.0,))
    model = build_model(config, build_encoder(config, info), steps_per_epoch=5)
    assert model.num_prototypes == (12, 6)
