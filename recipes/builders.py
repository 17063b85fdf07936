"""The encoder, optimizer and SwAV model that a pretraining configuration describes."""


def check_training_fields(config, train_examples=None):
    """Checks the fields of `config` that shape training, before anything is built or written:
    `batch_size` and `epochs` (positive), `num_crops` and `crops_for_assign` (indices of those
    crops), `queue_length` (a multiple of `batch_size`), `precise_bn_examples` (>= 0), the
    backbone's (`check_backbone_fields`); and that `train_examples` (when given) fill a batch.
    """
    from swav_keras.swav_loss import check_crops_for_assign
    from swav_keras.validation import check_int, check_int_sequence

    batch_size = check_int("batch_size", config.batch_size, minimum=1)
    check_int("epochs", config.epochs, minimum=1)
    num_crops = check_int_sequence("num_crops", config.num_crops, minimum=1)
    check_crops_for_assign(config.crops_for_assign, sum(num_crops))
    check_int("queue_length", config.queue_length, minimum=0)
    if config.queue_length % batch_size:
        raise ValueError(
            "`queue_length` must be a multiple of `batch_size`; received "
            f"queue_length={config.queue_length}, batch_size={config.batch_size}."
        )
    check_int("precise_bn_examples", config.precise_bn_examples, minimum=0)
    if train_examples is not None:
        check_int("train_examples", train_examples, minimum=1)
        if train_examples < batch_size:
            raise ValueError(
                f"`train_examples` must be at least `batch_size`; received "
                f"train_examples={train_examples}, batch_size={batch_size}."
            )
    check_backbone_fields(config)


def check_backbone_fields(config):
    """Checks `config`'s `stages`, `pooling` and `grid_size`, which only the small ResNet
    takes, and that the smallest of its `crop_sizes` leaves the pooling a large enough map;
    and the ViT's fields (`check_vit_fields`)."""
    from swav_keras.backbones.small_resnet import check_pooling, check_stages, last_map_size
    from swav_keras.validation import check_int_sequence

    check_vit_fields(config)

    pooling, grid_size = check_pooling(config.pooling, config.grid_size)
    stages = check_stages(config.stages)
    checked = {"stages": stages, "pooling": pooling, "grid_size": grid_size}
    for field, default in (("stages", 4), ("pooling", "avg"), ("grid_size", 2)):
        value = checked[field]
        if value != default and config.backbone != "small_resnet":
            raise ValueError(
                f"`{field}` applies to the small ResNet only; received "
                f"{field}={value!r} with backbone={config.backbone!r}."
            )
    if pooling == "avg":
        return
    # The pooling layer would refuse the smallest crop's map at the first step; say it now.
    smallest = min(check_int_sequence("crop_sizes", config.crop_sizes, minimum=1))
    side = last_map_size(smallest, stages)
    needed = grid_size if pooling == "grid" else 2
    if side < needed:
        what, fix = f"grid_size={grid_size}", "a smaller `grid_size`, "
        if pooling == "corners":
            what, fix = "pooling='corners'", ""
        raise ValueError(
            f"{what} needs a last feature map of {needed}x{needed} or more, but the smallest "
            f"crop (crop_sizes={tuple(config.crop_sizes)!r}) gives {side}x{side} with "
            f"stages={stages}: use {fix}fewer `stages` or larger `crop_sizes`."
        )


VIT_FIELDS = {"patch_size": 16, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0,
              "vit_pooling": "token"}


def check_vit_fields(config):
    """Checks that the ViT's fields keep their defaults with another backbone and, with
    `backbone="vit"`, that they build a ViT and that every crop size is a multiple of
    `patch_size` (the encoder would ignore the pixels that do not fill a patch)."""
    from swav_keras.backbones.vision_transformer import VIT_POOLINGS
    from swav_keras.validation import check_float, check_int, check_int_sequence

    if config.backbone != "vit":
        for field, default in VIT_FIELDS.items():
            value = getattr(config, field)
            if value != default:
                raise ValueError(
                    f"`{field}` applies to the ViT only; received {field}={value!r} with "
                    f"backbone={config.backbone!r}."
                )
        return
    patch_size = check_int("patch_size", config.patch_size, minimum=1)
    check_int("depth", config.depth, minimum=1)
    num_heads = check_int("num_heads", config.num_heads, minimum=1)
    width = check_int("width", config.width, minimum=1)
    if width % num_heads:
        raise ValueError(
            f"`width` must be a multiple of `num_heads`; received width={width}, "
            f"num_heads={num_heads}."
        )
    check_float("mlp_ratio", config.mlp_ratio, positive=True)
    if config.vit_pooling not in VIT_POOLINGS:
        raise ValueError(
            f"`vit_pooling` must be one of {VIT_POOLINGS}; "
            f"received vit_pooling={config.vit_pooling!r}."
        )
    crop_sizes = check_int_sequence("crop_sizes", config.crop_sizes, minimum=1)
    if any(size % patch_size for size in crop_sizes):
        raise ValueError(
            f"`crop_sizes` must be multiples of `patch_size` with backbone='vit'; received "
            f"crop_sizes={tuple(config.crop_sizes)!r}, patch_size={patch_size}."
        )


def build_encoder(config, info):
    """The backbone of `config` for images like `info`'s, its normalisation inside; a ViT
    learns its position embeddings for the first (largest) of `crop_sizes`."""
    from swav_keras.backbones import ResNet50, SmallResNet, VisionTransformer

    shape = (None, None, info.image_shape[-1])
    if config.backbone == "small_resnet":
        return SmallResNet(config.width, shape, mean=info.mean, std=info.std,
                           stages=config.stages, pooling=config.pooling,
                           grid_size=config.grid_size)
    if config.backbone == "resnet50":
        return ResNet50(shape, mean=info.mean, std=info.std)
    if config.backbone == "vit":
        check_vit_fields(config)
        return VisionTransformer(
            config.patch_size, config.width, config.depth, config.num_heads, config.mlp_ratio,
            image_size=config.crop_sizes[0], input_shape=shape, mean=info.mean, std=info.std,
            pooling=config.vit_pooling,
        )
    raise ValueError(
        "`backbone` must be 'small_resnet', 'resnet50' or 'vit'; "
        f"received backbone={config.backbone!r}."
    )


def build_multicrop(config, layer=False, seed=None):
    """The multi-crop augmentation of `config`: a tf.data `MultiCrop`, or with `layer` the
    `MultiCropAugmentation` layer that makes the same crops inside the model (seeded)."""
    if layer:
        from swav_keras.layers import MultiCropAugmentation as kind
    else:
        from swav_keras.data import MultiCrop as kind  # tf.data: imports TensorFlow

    return kind(
        config.num_crops, config.crop_sizes, config.min_scales, config.max_scales,
        config.jitter_strength, config.brightness, config.contrast, config.saturation,
        config.hue, config.jitter_probability, config.grayscale_probability,
        config.blur_probability, flip=config.flip, seed=seed if layer else None,
    )


def build_optimizer(config, steps_per_epoch):
    """The optimizer of `config` with its warm-up + cosine schedule over the whole run."""
    import keras

    from swav_keras.optimizers import LARS, warmup_cosine_decay

    total = config.epochs * steps_per_epoch
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), max(total - 1, 0))
    schedule = warmup_cosine_decay(
        config.base_learning_rate, config.final_learning_rate, total, warmup,
        config.warmup_start_learning_rate,
    )
    if config.optimizer == "lars":
        return LARS(schedule, momentum=config.momentum, weight_decay=config.weight_decay,
                    exclude_bias_and_norm=config.lars_exclude_bias_and_norm)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            schedule, momentum=config.momentum, weight_decay=config.weight_decay or None
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    raise ValueError(
        "`optimizer` must be 'lars', 'sgd' or 'adamw'; "
        f"received optimizer={config.optimizer!r}."
    )


def build_model(config, encoder, steps_per_epoch, distribution=None, augmentation=None):
    """The SwAV model of `config`; under a `Distribution` of several replicas, with
    synchronised BatchNorm (`config.sync_batchnorm`); `augmentation` as `SwAV`'s."""
    from swav_keras import SwAV, backends
    from swav_keras.layers import to_sync_batch_normalization

    distribution = distribution or backends.ONE_DEVICE
    if config.queue_length % config.batch_size:
        raise ValueError(
            "`queue_length` must be a multiple of `batch_size`; received "
            f"queue_length={config.queue_length}, batch_size={config.batch_size}."
        )
    sync = bool(config.sync_batchnorm and distribution.num_replicas > 1)
    if sync:
        encoder = to_sync_batch_normalization(encoder)
    return SwAV(
        encoder,
        projection_dim=config.projection_dim,
        hidden_dim=config.hidden_dim,
        hidden_layers=config.hidden_layers,
        num_prototypes=config.num_prototypes,
        temperature=config.temperature,
        epsilon=config.epsilon,
        sinkhorn_iterations=config.sinkhorn_iterations,
        crops_for_assign=config.crops_for_assign,
        queue_length=config.queue_length,
        queue_start_step=config.queue_start_epoch * steps_per_epoch,
        freeze_prototypes_steps=config.freeze_prototypes_steps,
        sync_batchnorm=sync,
        augmentation=augmentation,
    )
