"""The checks of a `PretrainConfig`, run once when it is made (`PretrainConfig.__post_init__`).

A configuration that exists is one the recipe can build: a bad flag is refused when the
configuration is made, before any data is read or any file written. Where the library owns a
value's rule (the small ResNet's `stages` and `pooling`, the ViT's shape, `crops_for_assign`),
its own check is called; what is checked here is what no single library argument can see:
fields of one backbone set with another, crop sizes against the backbone, the queue against
the batch.
"""

import dataclasses

from swav_keras.backbones.small_resnet import check_pooling, check_stages, last_map_size
from swav_keras.backbones.vision_transformer import VIT_POOLINGS, check_vit_shape
from swav_keras.swav_loss import check_crops_for_assign
from swav_keras.validation import check_int, check_int_sequence

BACKBONES = ("small_resnet", "resnet50", "vit")
OPTIMIZERS = ("lars", "sgd", "adamw")
RESNET_FIELDS = ("stages", "pooling", "grid_size")
VIT_FIELDS = ("patch_size", "depth", "num_heads", "mlp_ratio", "vit_pooling")


def check_config(config):
    """Raises `ValueError` naming the first field of `config` that cannot train."""
    batch_size = check_int("batch_size", config.batch_size, minimum=1)
    check_int("epochs", config.epochs, minimum=1)
    num_crops = check_int_sequence("num_crops", config.num_crops, minimum=1)
    crop_sizes = check_int_sequence("crop_sizes", config.crop_sizes, minimum=1)
    check_crops_for_assign(config.crops_for_assign, sum(num_crops))
    check_int("queue_length", config.queue_length, minimum=0)
    if config.queue_length % batch_size:
        raise ValueError(
            "`queue_length` must be a multiple of `batch_size`; received "
            f"queue_length={config.queue_length}, batch_size={batch_size}."
        )
    check_int("precise_bn_examples", config.precise_bn_examples, minimum=0)
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            "`optimizer` must be 'lars', 'sgd' or 'adamw'; "
            f"received optimizer={config.optimizer!r}."
        )
    if config.backbone not in BACKBONES:
        raise ValueError(
            "`backbone` must be 'small_resnet', 'resnet50' or 'vit'; "
            f"received backbone={config.backbone!r}."
        )
    # A field of the other backbone left at a changed value would be silently ignored.
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    foreign = {"small_resnet": VIT_FIELDS, "resnet50": VIT_FIELDS + RESNET_FIELDS,
               "vit": RESNET_FIELDS}[config.backbone]
    for field in foreign:
        value = getattr(config, field)
        if value != defaults[field]:
            owner = "the ViT" if field in VIT_FIELDS else "the small ResNet"
            raise ValueError(
                f"`{field}` applies to {owner} only; received {field}={value!r} with "
                f"backbone={config.backbone!r}."
            )
    if config.backbone == "vit":
        _check_vit(config, crop_sizes)
    elif config.backbone == "small_resnet":
        _check_small_resnet(config, crop_sizes)


def _check_small_resnet(config, crop_sizes):
    """The pooling needs a last feature map at least its grid on the smallest crop: the
    layer would refuse it at the first step; say it now."""
    pooling, grid_size = check_pooling(config.pooling, config.grid_size)
    stages = check_stages(config.stages)
    if pooling == "avg":
        return
    side = last_map_size(min(crop_sizes), stages)
    needed = grid_size if pooling == "grid" else 2
    if side < needed:
        what, fix = f"grid_size={grid_size}", "a smaller `grid_size`, "
        if pooling == "corners":
            what, fix = "pooling='corners'", ""
        raise ValueError(
            f"{what} needs a last feature map of {needed}x{needed} or more, but the smallest "
            f"crop (crop_sizes={tuple(crop_sizes)!r}) gives {side}x{side} with "
            f"stages={stages}: use {fix}fewer `stages` or larger `crop_sizes`."
        )


def _check_vit(config, crop_sizes):
    """The ViT's own shape rules, then every crop a whole number of patches (the encoder
    would ignore the pixels that do not fill a patch)."""
    patch_size, *_ = check_vit_shape(config.patch_size, config.width, config.depth,
                                     config.num_heads, config.mlp_ratio)
    if config.vit_pooling not in VIT_POOLINGS:
        raise ValueError(
            f"`vit_pooling` must be one of {VIT_POOLINGS}; "
            f"received vit_pooling={config.vit_pooling!r}."
        )
    if any(size % patch_size for size in crop_sizes):
        raise ValueError(
            f"`crop_sizes` must be multiples of `patch_size` with backbone='vit'; received "
            f"crop_sizes={tuple(crop_sizes)!r}, patch_size={patch_size}."
        )
