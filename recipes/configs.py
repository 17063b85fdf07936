"""Named SwAV pretraining configurations: every value the recipe uses, in one dataclass.

`recipes/pretrain.py --config=<name>` starts from one of `CONFIGS` and lets any field be
overridden by a flag of the same name (`--epochs=5 --num_prototypes=300`). The ImageNet
configurations carry the values of the original scripts (facebookresearch/swav,
`scripts/swav_800ep_pretrain.sh` and the batch-256 variant in its README), translated to one
global batch: per-GPU batch x number of GPUs.

The library's signatures hold the defaults: a field that a `swav_keras` argument sets takes that
argument's default (`_defaults_of`), and a named configuration states only what it changes.
"""

import dataclasses
import inspect

from recipes.config_checks import check_config
from swav_keras import SwAV
from swav_keras.backbones import SmallResNet, VisionTransformer
from swav_keras.layers import MultiCropAugmentation
from swav_keras.optimizers import LARS


def _defaults_of(function):
    """`function`'s argument defaults by name: where the library writes them, once."""
    parameters = inspect.signature(function).parameters.items()
    return {name: p.default for name, p in parameters if p.default is not p.empty}


_CROPS, _RESNET, _VIT, _SWAV, _LARS = map(
    _defaults_of, (MultiCropAugmentation, SmallResNet, VisionTransformer, SwAV, LARS))


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Everything a SwAV pretraining run is made of.

    Data:
        dataset: `"fashion_mnist"` (offline idx reader), a tfds name (`"cifar10"`,
            `"imagenet2012"`...) or a folder of images (one subfolder per class).
        image_size: resize source images to this side before cropping (0: keep).
    Multi-crop (`swav_keras.data.MultiCrop`): `num_crops`, `crop_sizes`, `min_scales`,
        `max_scales` (one entry per resolution group, high resolution first), `jitter_strength`,
        `brightness`, `contrast`, `saturation`, `hue`, `jitter_probability`,
        `grayscale_probability`, `blur_probability`, `flip`.
    Model (`swav_keras.SwAV`): `backbone` (`"small_resnet"`, `"resnet50"` or `"vit"`),
        `width`, `stages`, `pooling` and `grid_size` (small ResNet only: `"avg"`, `"corners"` or
        `"grid"` with `grid_size` cells a side), `patch_size`, `depth`, `num_heads`,
        `mlp_ratio` and `vit_pooling` (ViT only, `swav_keras.backbones.VisionTransformer`:
        `width` is its token width; position embeddings learned for the first crop size),
        `projection_dim`, `hidden_dim`, `hidden_layers`, `num_prototypes` (an int, or a
        tuple: one prototype head per entry), `temperature`, `epsilon`, `sinkhorn_iterations`,
        `crops_for_assign`, `queue_length`, `queue_start_epoch`, `freeze_prototypes_steps`.
    Optimisation: `optimizer` (`"lars"`, `"sgd"` or `"adamw"`), `base_learning_rate`,
        `final_learning_rate`, `warmup_epochs`, `warmup_start_learning_rate`, `weight_decay`,
        `lars_exclude_bias_and_norm` (`LARS(exclude_bias_and_norm=...)`), `momentum`,
        `epochs`, `batch_size` (global, over all replicas).
    Systems: `sync_batchnorm` (synchronised BatchNorm across replicas), `mixed_precision`
        (`""`, `"mixed_float16"` or `"mixed_bfloat16"`), `reinitialize_unused_prototypes`,
        `augment_in_model` (make the crops inside the training step with
        `swav_keras.layers.MultiCropAugmentation`; tf.data then only shuffles and batches, or
        `ImageBatches` serves arrays read without TensorFlow: Fashion-MNIST, and image
        folders where TensorFlow is not installed).
    After pretraining: `precise_bn_examples` (0: off; N: before `encoder.keras` is written
        for the last time, its BatchNorm statistics are recomputed on the first N training
        images, uncropped; see `swav_keras.evaluation.precise_batch_norm`).
    Evaluation done by the main job after pretraining: `knn_k`, `knn_temperature`,
        `linear_epochs`; during pretraining: `knn_monitor_examples` (0: off; N: after every
        epoch, the kNN top-1 of the encoder with the first N training images as memory and
        the first N test images as queries, logged as `knn_majority` / `knn_weighted`; see
        `swav_keras.callbacks.KNNMonitor`).
    """

    # Data.
    dataset: str = "fashion_mnist"
    image_size: int = 0
    # Multi-crop augmentation.
    num_crops: tuple = _CROPS["num_crops"]
    crop_sizes: tuple = _CROPS["crop_sizes"]
    min_scales: tuple = _CROPS["min_scales"]
    max_scales: tuple = _CROPS["max_scales"]
    jitter_strength: float = _CROPS["jitter_strength"]
    brightness: float = _CROPS["brightness"]
    contrast: float = _CROPS["contrast"]
    saturation: float = _CROPS["saturation"]
    hue: float = _CROPS["hue"]
    jitter_probability: float = _CROPS["jitter_probability"]
    grayscale_probability: float = _CROPS["grayscale_probability"]
    blur_probability: float = _CROPS["blur_probability"]
    flip: bool = _CROPS["flip"]
    # Model.
    backbone: str = "resnet50"
    width: int = _RESNET["width"]
    stages: int = _RESNET["stages"]
    pooling: str = _RESNET["pooling"]
    grid_size: int = _RESNET["grid_size"]
    patch_size: int = _VIT["patch_size"]
    depth: int = _VIT["depth"]
    num_heads: int = _VIT["num_heads"]
    mlp_ratio: float = _VIT["mlp_ratio"]
    vit_pooling: str = _VIT["pooling"]
    projection_dim: int = _SWAV["projection_dim"]
    hidden_dim: int = _SWAV["hidden_dim"]
    hidden_layers: int = _SWAV["hidden_layers"]
    num_prototypes: int | tuple = _SWAV["num_prototypes"]
    temperature: float = _SWAV["temperature"]
    epsilon: float = _SWAV["epsilon"]
    sinkhorn_iterations: int = _SWAV["sinkhorn_iterations"]
    crops_for_assign: tuple = _SWAV["crops_for_assign"]
    queue_length: int = _SWAV["queue_length"]
    queue_start_epoch: int = 0
    freeze_prototypes_steps: int = 313  # the original's first epoch at batch 4096
    # Optimisation.
    optimizer: str = "lars"
    base_learning_rate: float = 4.8
    final_learning_rate: float = 0.0048
    warmup_epochs: float = 10.0
    warmup_start_learning_rate: float = 0.3
    weight_decay: float = _LARS["weight_decay"]
    lars_exclude_bias_and_norm: bool = _LARS["exclude_bias_and_norm"]
    momentum: float = _LARS["momentum"]
    epochs: int = 800
    batch_size: int = 4096
    # Systems.
    sync_batchnorm: bool = True
    mixed_precision: str = "mixed_float16"
    reinitialize_unused_prototypes: bool = False
    augment_in_model: bool = False
    # After pretraining.
    precise_bn_examples: int = 0
    # Evaluation run by the main job.
    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_epochs: int = 100
    knn_monitor_examples: int = 0

    def __post_init__(self):
        check_config(self)  # once, here: every configuration that exists can train

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# The original's ImageNet run: 64 GPUs x 64 images, 800 epochs (75.3% linear top-1). Its
# LARC adapts every parameter, biases and BatchNorm's included, with weight decay.
IMAGENET_RESNET50_800EP = PretrainConfig(
    dataset="imagenet2012", lars_exclude_bias_and_norm=False
)

# The original's small-batch ImageNet run: 4 GPUs x 64 images with a queue (README, bs 256).
IMAGENET_RESNET50_BS256 = IMAGENET_RESNET50_800EP.replace(
    batch_size=256,
    epochs=200,
    base_learning_rate=0.6,
    final_learning_rate=0.0006,
    warmup_epochs=0.0,
    warmup_start_learning_rate=0.0,
    queue_length=3840,
    queue_start_epoch=15,
    freeze_prototypes_steps=5005,
)

# CIFAR-10 with the small ResNet (solo-learn-style settings, one GPU).
CIFAR10 = PretrainConfig(
    dataset="cifar10",
    num_crops=(2, 4),
    crop_sizes=(32, 16),
    min_scales=(0.3, 0.08),
    max_scales=(1.0, 0.3),
    blur_probability=0.0,
    backbone="small_resnet",
    queue_length=3840,
    queue_start_epoch=50,
    freeze_prototypes_steps=390,
    base_learning_rate=0.6,
    final_learning_rate=0.0006,
    warmup_start_learning_rate=0.0,
    epochs=400,
    batch_size=256,
    sync_batchnorm=False,
    mixed_precision="",
)

# The CPU default (the README's main job): Fashion-MNIST, the reference workload of
# ../shared/WORKLOAD.md (small ResNet width 16, 2x28 + 4x14 crops, K = 128), with batch 128 and
# 10 epochs, about half an hour on 2 CPU cores (its figures: benchmarks/RESULTS.md).
FASHION_MNIST = PretrainConfig(
    num_crops=(2, 4),
    crop_sizes=(28, 14),
    min_scales=(0.3, 0.08),
    max_scales=(1.0, 0.3),
    brightness=0.4,
    contrast=0.4,
    saturation=0.0,
    hue=0.0,
    grayscale_probability=0.0,
    blur_probability=0.0,
    backbone="small_resnet",
    width=16,
    projection_dim=64,
    hidden_dim=512,
    num_prototypes=128,
    freeze_prototypes_steps=0,
    # Chosen on 3-epoch proxies (docs/TUNING.md: base_learning_rate, batch_size).
    base_learning_rate=3.0,
    final_learning_rate=0.003,
    warmup_epochs=1.0,
    warmup_start_learning_rate=0.0,
    epochs=10,
    batch_size=128,
    sync_batchnorm=False,
    mixed_precision="",
    linear_epochs=30,
)

# Fashion-MNIST with a small ViT in place of the small ResNet: 4x4 patches, 64-wide tokens,
# 6 blocks of 4 heads (0.3M parameters). The small crops are 16 pixels (a 4x4 patch grid),
# not 14, so that no pixel falls outside a patch. AdamW, as ViTs are trained (DeiT, DINO,
# MoCo v3: LARS or SGD train them worse), with DINO's weight decay. Not tuned.
FASHION_MNIST_VIT = FASHION_MNIST.replace(
    crop_sizes=(28, 16),
    backbone="vit",
    width=64,
    patch_size=4,
    depth=6,
    num_heads=4,
    optimizer="adamw",
    base_learning_rate=1e-3,
    final_learning_rate=1e-5,
    weight_decay=0.04,
)

# ImageNet with ViT-S/16 (21.7M parameters), documented, not run here: SwAV's multi-crop
# (2x224 + 6x96; 14x14 and 6x6 patch grids) with DINO's ViT-S/16 optimisation: AdamW (LARS
# is the ResNet's; MoCo v3 and DINO train ViTs with AdamW), batch 1024, learning rate
# 0.0005 x 1024 / 256 = 0.002 after 10 warm-up epochs, cosine to 1e-6, weight decay 0.04
# (DINO raises it to 0.4 over training and clips gradients at 3.0; neither is a field here),
# 300 epochs; the prototypes frozen for the first epoch (1251 steps) as in the original.
IMAGENET_VIT_S16 = IMAGENET_RESNET50_800EP.replace(
    backbone="vit",
    width=384,
    optimizer="adamw",
    batch_size=1024,
    epochs=300,
    base_learning_rate=0.002,
    final_learning_rate=1e-6,
    warmup_start_learning_rate=0.0,
    weight_decay=0.04,
    freeze_prototypes_steps=1251,
)

CONFIGS = {
    "fashion_mnist": FASHION_MNIST,
    "fashion_mnist_vit": FASHION_MNIST_VIT,
    "cifar10": CIFAR10,
    "imagenet_resnet50_800ep": IMAGENET_RESNET50_800EP,
    "imagenet_resnet50_bs256": IMAGENET_RESNET50_BS256,
    "imagenet_vit_s16": IMAGENET_VIT_S16,
}


# What a knob does, in a line, for its flag's help; what changing it measured is in
# docs/TUNING.md, one section per field of TUNED_FIELDS.
TUNED_FIELDS = (
    "num_crops", "min_scales", "brightness", "epochs", "pooling", "grid_size", "batch_size",
    "base_learning_rate", "lars_exclude_bias_and_norm", "width", "stages", "hidden_layers",
    "num_prototypes", "epsilon", "queue_length", "freeze_prototypes_steps", "mixed_precision",
    "augment_in_model", "precise_bn_examples", "knn_monitor_examples",
)
FIELD_ADVICE = {
    "num_crops": "Crops per image in each resolution group (high resolution first).",
    "min_scales": "Smallest crop area (fraction of the image) per group; `max_scales` the "
    "largest.",
    "brightness": "Colour-jitter strength, like `contrast`, `saturation` and `hue` (scaled "
    "by `jitter_strength`).",
    "epochs": "Training epochs; the warm-up + cosine learning-rate schedule spans them.",
    "pooling": "Small ResNet features from its last map: 'avg', 'corners' (four corner "
    "windows) or 'grid' (`grid_size` cells a side).",
    "grid_size": "Cells a side with `pooling='grid'`: grid_size**2 times the features.",
    "batch_size": "Images per step, global over all replicas.",
    "base_learning_rate": "Peak learning rate after warm-up.",
    "lars_exclude_bias_and_norm": "LARS only: plain momentum SGD, no weight decay, for biases "
    "and normalisation parameters (false: as LARC).",
    "width": "Small ResNet: stage widths w, 2w, 4w, 8w (8 x width features with four stages); "
    "ViT: the token width.",
    "patch_size": "ViT only: side of its square patches in pixels (crop sizes must be "
    "multiples of it).",
    "depth": "ViT only: transformer blocks.",
    "num_heads": "ViT only: attention heads per block (`width` must be a multiple of it).",
    "mlp_ratio": "ViT only: hidden units of each block's MLP per token channel.",
    "vit_pooling": "ViT only: 'token' (a learned class token) or 'mean' (mean of the patch "
    "tokens) becomes the features.",
    "stages": "Small ResNet only: keep its first 1-4 stages (2**(stages-1) x width "
    "features).",
    "hidden_layers": "Hidden Linear-BatchNorm-ReLU blocks of the projection head (1: the "
    "original's).",
    "num_prototypes": "K, the number of prototypes; several values train one head each.",
    "epsilon": "Entropy regularisation of the Sinkhorn codes (lower: sharper codes).",
    "queue_length": "Features of earlier batches that join Sinkhorn's assignment (0: none).",
    "freeze_prototypes_steps": "Steps at the start during which the prototypes do not move.",
    "mixed_precision": "Keras dtype policy of the step: '' (float32), 'mixed_bfloat16' or "
    "'mixed_float16' (Sinkhorn stays in float32).",
    "augment_in_model": "Make the crops inside the compiled training step "
    "(`MultiCropAugmentation`) instead of in the input pipeline.",
    "precise_bn_examples": "Recompute the encoder's BatchNorm statistics on the first N plain "
    "training images after training (PreciseBN; 0: off).",
    "knn_monitor_examples": "kNN top-1 after every epoch on the first N training and N test "
    "images (0: off).",
}


def get_config(name, **overrides):
    """The named configuration with `overrides` applied (unknown names are errors)."""
    if name not in CONFIGS:
        raise ValueError(f"`config` must be one of {sorted(CONFIGS)}; received config={name!r}.")
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"Unknown configuration fields {unknown}; known: {sorted(fields)}.")
    return CONFIGS[name].replace(**overrides)
