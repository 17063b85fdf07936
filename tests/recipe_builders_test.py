"""Tests of `recipes/builders.py`: what a configuration builds, and its refusals."""

import keras
import numpy as np
import pytest

from recipes import configs
from recipes.builders import (
    build_encoder,
    build_model,
    build_optimizer,
    check_training_fields,
)
from swav_keras.data.sources import ImageSourceInfo
from swav_keras.optimizers import LARS

INFO = ImageSourceInfo("arrays", "train", 64, 10, (12, 12, 1), (73.0,), (90.0,))


def small(**overrides):
    return configs.get_config("fashion_mnist", width=4, **overrides)


def test_encoder_takes_any_size_with_the_dataset_channels():
    encoder = build_encoder(small(), INFO)
    features = encoder(np.zeros((2, 12, 12, 1), "float32"))
    assert tuple(encoder.inputs[0].shape) == (None, None, None, 1)
    assert tuple(features.shape) == (2, 32)
    assert build_encoder(small(stages=3), INFO).output_shape == (None, 16)
    with pytest.raises(ValueError) as info:
        build_encoder(small(backbone="vgg"), INFO)
    assert str(info.value) == (
        "`backbone` must be 'small_resnet', 'resnet50' or 'vit'; received backbone='vgg'."
    )


def test_vit_config_builds_a_vit_for_the_first_crop_size():
    config = configs.get_config("fashion_mnist_vit", width=8, depth=1, num_heads=2,
                                crop_sizes=(12, 8))
    encoder = build_encoder(config, INFO)
    assert encoder.name == "vision_transformer" and encoder.output_shape == (None, 8)
    assert encoder.get_layer("position_embedding").grid_size == (3, 3)  # 12 / patch 4
    for size in (12, 8):
        assert tuple(encoder(np.zeros((2, size, size, 1), "float32")).shape) == (2, 8)
    vit_s = configs.get_config("imagenet_vit_s16")
    assert (vit_s.patch_size, vit_s.width, vit_s.depth, vit_s.num_heads) == (16, 384, 12, 6)
    assert (vit_s.num_crops, vit_s.crop_sizes, vit_s.optimizer) == ((2, 6), (224, 96), "adamw")
    check_training_fields(vit_s)


@pytest.mark.parametrize("name, changes, message", [
    ("fashion_mnist", {"patch_size": 7},
     "`patch_size` applies to the ViT only; received patch_size=7 with "
     "backbone='small_resnet'."),
    ("fashion_mnist", {"vit_pooling": "mean"},
     "`vit_pooling` applies to the ViT only; received vit_pooling='mean' with "
     "backbone='small_resnet'."),
    ("fashion_mnist_vit", {"crop_sizes": (28, 14)},
     "`crop_sizes` must be multiples of `patch_size` with backbone='vit'; received "
     "crop_sizes=(28, 14), patch_size=4."),
    ("fashion_mnist_vit", {"num_heads": 5},
     "`width` must be a multiple of `num_heads`; received width=64, num_heads=5."),
    ("fashion_mnist_vit", {"vit_pooling": "avg"},
     "`vit_pooling` must be one of ('token', 'mean'); received vit_pooling='avg'."),
    ("fashion_mnist_vit", {"pooling": "grid"},
     "`pooling` applies to the small ResNet only; received pooling='grid' with "
     "backbone='vit'."),
])
def test_vit_fields_are_checked_before_training(name, changes, message):
    with pytest.raises(ValueError) as info:
        check_training_fields(configs.get_config(name, **changes))
    assert str(info.value) == message
    check_training_fields(configs.get_config(name))  # the configuration itself passes


@pytest.mark.parametrize("name, kind", [("lars", LARS), ("sgd", keras.optimizers.SGD),
                                         ("adamw", keras.optimizers.AdamW)])
def test_optimizer_warms_up_then_decays_to_the_final_rate(name, kind):
    config = small(optimizer=name, epochs=4, base_learning_rate=2.0, final_learning_rate=0.02,
                   warmup_epochs=1.0, warmup_start_learning_rate=0.5)
    optimizer = build_optimizer(config, steps_per_epoch=10)  # 40 steps, 10 of warm-up
    assert isinstance(optimizer, kind)
    schedule = optimizer._learning_rate
    rate = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 5, 10, 25, 40)]
    np.testing.assert_allclose(rate[:3], [0.5, 1.25, 2.0], rtol=1e-5)
    # Cosine from 2.0 to 0.02 over the 30 steps after the warm-up.
    np.testing.assert_allclose(rate[3], 0.02 + (2.0 - 0.02) * 0.5 * (1 + np.cos(np.pi / 2)),
                               rtol=1e-5)
    np.testing.assert_allclose(rate[4], 0.02, rtol=1e-5)


def test_bad_optimizer_is_refused():
    with pytest.raises(ValueError) as info:
        build_optimizer(small(optimizer="adam"), steps_per_epoch=10)
    assert str(info.value) == (
        "`optimizer` must be 'lars', 'sgd' or 'adamw'; received optimizer='adam'."
    )


def test_model_counts_the_queue_start_in_steps():
    config = small(batch_size=8, queue_length=16, queue_start_epoch=3,
                   freeze_prototypes_steps=7, num_prototypes=12, hidden_layers=2)
    model = build_model(config, build_encoder(config, INFO), steps_per_epoch=5)
    assert model.queue_start_step == 15
    assert model.projection_head.hidden_layers == 2
    assert model.queue_length == 16
    assert model.freeze_prototypes_steps == 7
    assert model.num_prototypes == 12
    assert not model.sync_batchnorm  # one replica: plain BatchNorm whatever the config
    with pytest.raises(ValueError) as info:
        build_model(small(batch_size=8, queue_length=12), build_encoder(config, INFO), 5)
    assert str(info.value) == (
        "`queue_length` must be a multiple of `batch_size`; received queue_length=12, "
        "batch_size=8."
    )


@pytest.mark.parametrize("changes, train_examples, message", [
    ({"batch_size": 0}, None, "`batch_size` must be a positive integer; received batch_size=0."),
    ({"batch_size": -4}, None,
     "`batch_size` must be a positive integer; received batch_size=-4."),
    ({"epochs": -1}, None, "`epochs` must be a positive integer; received epochs=-1."),
    ({"epochs": 0}, None, "`epochs` must be a positive integer; received epochs=0."),
    ({}, 0, "`train_examples` must be a positive integer; received train_examples=0."),
    ({}, -5, "`train_examples` must be a positive integer; received train_examples=-5."),
    ({"batch_size": 64}, 10,
     "`train_examples` must be at least `batch_size`; received train_examples=10, "
     "batch_size=64."),
    ({"num_crops": (2, 2), "crops_for_assign": (0, 7)}, None,
     "`crops_for_assign` must hold crop indices in [0, 3] for 4 crops; received "
     "crops_for_assign=(0, 7)."),
    ({"num_crops": (2, 0)}, None,
     "`num_crops` must hold integers >= 1; received num_crops=(2, 0)."),
    ({"batch_size": 8, "queue_length": 12}, None,
     "`queue_length` must be a multiple of `batch_size`; received queue_length=12, "
     "batch_size=8."),
    ({"precise_bn_examples": -1}, None,
     "`precise_bn_examples` must be an integer >= 0; received precise_bn_examples=-1."),
])
def test_training_fields_are_checked_by_name(changes, train_examples, message):
    with pytest.raises(ValueError) as info:
        check_training_fields(small(**changes), train_examples)
    assert str(info.value) == message
    check_training_fields(small(), 128)  # the defaults pass


@pytest.mark.parametrize("name, excluded", [
    ("imagenet_resnet50_800ep", False), ("imagenet_resnet50_bs256", False),
    ("fashion_mnist", True), ("cifar10", True),
])
def test_paper_configs_adapt_every_parameter_as_the_original(name, excluded):
    optimizer = build_optimizer(configs.get_config(name), steps_per_epoch=10)
    assert isinstance(optimizer, LARS) and optimizer.exclude_bias_and_norm is excluded
