"""Tests of `recipes/config_checks.py`: a configuration that cannot train is refused when made."""

import pytest

from recipes import configs


@pytest.mark.parametrize("name, changes, message", [
    ("fashion_mnist", {"batch_size": 0},
     "`batch_size` must be a positive integer; received batch_size=0."),
    ("fashion_mnist", {"epochs": 0}, "`epochs` must be a positive integer; received epochs=0."),
    ("fashion_mnist", {"num_crops": (2, 0)},
     "`num_crops` must hold integers >= 1; received num_crops=(2, 0)."),
    ("fashion_mnist", {"num_crops": (2, 2), "crops_for_assign": (0, 7)},
     "`crops_for_assign` must hold crop indices in [0, 3] for 4 crops; received "
     "crops_for_assign=(0, 7)."),
    ("fashion_mnist", {"batch_size": 8, "queue_length": 12},
     "`queue_length` must be a multiple of `batch_size`; received queue_length=12, "
     "batch_size=8."),
    ("fashion_mnist", {"precise_bn_examples": -1},
     "`precise_bn_examples` must be an integer >= 0; received precise_bn_examples=-1."),
    ("fashion_mnist", {"optimizer": "adam"},
     "`optimizer` must be 'lars', 'sgd' or 'adamw'; received optimizer='adam'."),
    ("fashion_mnist", {"backbone": "vgg"},
     "`backbone` must be 'small_resnet', 'resnet50' or 'vit'; received backbone='vgg'."),
    ("fashion_mnist", {"patch_size": 7},
     "`patch_size` applies to the ViT only; received patch_size=7 with "
     "backbone='small_resnet'."),
    ("fashion_mnist", {"vit_pooling": "mean"},
     "`vit_pooling` applies to the ViT only; received vit_pooling='mean' with "
     "backbone='small_resnet'."),
    ("fashion_mnist", {"backbone": "resnet50", "depth": 3},
     "`depth` applies to the ViT only; received depth=3 with backbone='resnet50'."),
    ("fashion_mnist_vit", {"crop_sizes": (28, 14)},
     "`crop_sizes` must be multiples of `patch_size` with backbone='vit'; received "
     "crop_sizes=(28, 14), patch_size=4."),
    ("fashion_mnist_vit", {"num_heads": 5},
     "`width` must be a multiple of `num_heads`; received width=64, num_heads=5."),
    ("fashion_mnist_vit", {"depth": 0}, "`depth` must be a positive integer; received depth=0."),
    ("fashion_mnist_vit", {"vit_pooling": "avg"},
     "`vit_pooling` must be one of ('token', 'mean'); received vit_pooling='avg'."),
    ("fashion_mnist_vit", {"pooling": "grid"},
     "`pooling` applies to the small ResNet only; received pooling='grid' with "
     "backbone='vit'."),
])
def test_a_field_that_cannot_train_is_refused_by_name(name, changes, message):
    with pytest.raises(ValueError) as info:
        configs.get_config(name, **changes)
    assert str(info.value) == message
    configs.get_config(name)  # the named configuration itself passes


def test_every_named_configuration_passes_and_a_replace_is_checked_again():
    for name, config in configs.CONFIGS.items():
        assert config == configs.get_config(name)
    with pytest.raises(ValueError, match="`epochs` must be a positive integer"):
        configs.get_config("cifar10").replace(epochs=-1)
