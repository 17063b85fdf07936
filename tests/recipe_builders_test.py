"""Tests of `recipes/builders.py`: what a configuration builds, and its refusals."""

import keras
import numpy as np
import pytest

from recipes import configs
from recipes.builders import (
    build_encoder,
    build_model,
    build_optimizer,
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


@pytest.mark.parametrize("name, excluded", [
    ("imagenet_resnet50_800ep", False), ("imagenet_resnet50_bs256", False),
    ("fashion_mnist", True), ("cifar10", True),
])
def test_paper_configs_adapt_every_parameter_as_the_original(name, excluded):
    optimizer = build_optimizer(configs.get_config(name), steps_per_epoch=10)
    assert isinstance(optimizer, LARS) and optimizer.exclude_bias_and_norm is excluded
