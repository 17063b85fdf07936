"""The encoder, optimizer and SwAV model that a pretraining configuration describes."""


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
    return VisionTransformer(  # "vit": the configuration has checked the name
        config.patch_size, config.width, config.depth, config.num_heads, config.mlp_ratio,
        image_size=config.crop_sizes[0], input_shape=shape, mean=info.mean, std=info.std,
        pooling=config.vit_pooling,
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
    return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)  # "adamw"


def build_model(config, encoder, steps_per_epoch, distribution=None, augmentation=None):
    """The SwAV model of `config`; under a `Distribution` of several replicas, with
    synchronised BatchNorm (`config.sync_batchnorm`); `augmentation` as `SwAV`'s."""
    from swav_keras import SwAV, backends
    from swav_keras.layers import to_sync_batch_normalization

    distribution = distribution or backends.ONE_DEVICE
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
