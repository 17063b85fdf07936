"""SwAV's multi-crop augmentation as a Keras layer: any backend, any device, no tf.data."""

import keras
from keras import ops

from swav_keras import backends
from swav_keras.augmentation.colour_distortion import colour_distortion
from swav_keras.augmentation.resized_crops import random_resized_crops
from swav_keras.augmentation.stateless_seeds import moved_key
from swav_keras.multicrop_arguments import (
    ARGUMENT_NAMES,
    check_multicrop_arguments,
    colour_arguments,
)


class _ReplicaSeeds(keras.random.SeedGenerator):
    """A layer's `SeedGenerator` as one replica sees it: the same state, its own keys.

    `keras.random` draws from a `SeedGenerator` by calling `next()`. Under `tf.distribute`
    every replica advances its own identical copy of the state, so the replicas would draw the
    same numbers (the same crop boxes for different images). This view moves each seed's key by
    the replica's index. It creates no variable: `state` is the generator's own.
    """

    def __init__(self, generator, replica):  # no super().__init__(): no state of its own
        self.name, self.backend, self.state = generator.name, generator.backend, generator.state
        self.generator, self.replica = generator, replica

    def next(self, ordered=True):
        return moved_key(self.generator.next(ordered), self.replica)


def _seeds_of_this_replica(generator):
    """`generator` on replica 0 (one device, JAX, torch); a `_ReplicaSeeds` view elsewhere."""
    replica = backends.active().replica_index()
    if isinstance(replica, int) and replica == 0:
        return generator
    return _ReplicaSeeds(generator, replica)


@keras.saving.register_keras_serializable(package="swav_keras")
class MultiCropAugmentation(keras.layers.Layer):
    """Turns a batch of raw images into SwAV's multi-crop views, inside the model.

    The same augmentation as `swav_keras.data.MultiCrop` (same arguments, same functions of
    `swav_keras.augmentation`: per crop random resized crop, flip, colour jitter in random
    order, grayscale and blur), in the model instead of tf.data. Give it to
    `swav_keras.SwAV(augmentation=...)` and `fit` takes batches of raw images: the crops are
    then made in the compiled training step, on the accelerator, under TensorFlow, JAX or
    PyTorch, and TensorFlow need not be installed (feed the images with
    `swav_keras.data.ImageBatches`, or arrays). Use it when the host's CPUs would starve a GPU
    or TPU, or without TensorFlow; on a CPU-only machine the tf.data `MultiCrop` overlaps the
    augmentation with the training step instead.

    The layer is random whatever `training` says (the views are SwAV's input, at evaluation
    too), draws from its own `keras.random.SeedGenerator`, and computes in float32 under any
    dtype policy. Under `tf.distribute` each replica moves the generator's seeds by its index,
    so replicas draw different crops (replica 0 draws what one device would). Input:
    `[B, H, W, C]` raw pixels (uint8, or float in 0..255), C = 1 or 3, one size per batch.
    Output: a tuple of `sum(num_crops)` float32 `[B, s, s, C]` in 0..255, high-resolution
    groups first. Deviations from the original: bilinear resize without
    antialiasing; Gaussian blur truncated at 3 sigma with reflect padding.

    Args:
        num_crops: crops per resolution group. Defaults to `(2, 6)`.
        crop_sizes: output side, in pixels, per group. Defaults to `(224, 96)`.
        min_scales: smallest crop area, as a fraction of the image, per group.
            Defaults to `(0.14, 0.05)`.
        max_scales: largest crop area fraction per group. Defaults to `(1.0, 0.14)`.
        jitter_strength: multiplies the four jitter amounts. Defaults to `1.0`.
        brightness: brightness factor drawn in `[max(0, 1 - b), 1 + b]`, b = brightness x
            strength (0 disables it). Defaults to `0.8`.
        contrast: contrast amount, as `brightness`. Defaults to `0.8`.
        saturation: saturation amount, as `brightness` (RGB only). Defaults to `0.8`.
        hue: hue shift drawn in `[-h, h]`, h = hue x strength <= 0.5 (RGB only).
            Defaults to `0.2`.
        jitter_probability: probability that a crop is colour-jittered. Defaults to `0.8`.
        grayscale_probability: probability that an RGB crop turns gray. Defaults to `0.2`.
        blur_probability: probability that a crop is blurred. Defaults to `0.5`.
        blur_sigma: `(low, high)` range of the blur's standard deviation, in pixels.
            Defaults to `(0.1, 2.0)`.
        flip: whether crops are flipped horizontally with probability 0.5. Defaults to `True`.
        seed: int seed of the layer's `SeedGenerator` (the same seed gives the same sequence
            of crops), or `None` for a random one. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, ...); `dtype` defaults to
            `"float32"`.

    Example:

    ```python
    import swav_keras

    augmentation = swav_keras.layers.MultiCropAugmentation(
        num_crops=(2, 4), crop_sizes=(28, 14), min_scales=(0.3, 0.08), max_scales=(1.0, 0.3),
        saturation=0.0, hue=0.0, grayscale_probability=0.0, seed=0)
    model = swav_keras.SwAV(encoder, num_prototypes=128, augmentation=augmentation)
    model.compile(optimizer="sgd")
    model.fit(swav_keras.data.ImageBatches(images, batch_size=256, seed=0), epochs=10)
    ```

    Reference:
        Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
        Assignments", NeurIPS 2020, section 3.2 (multi-crop).
    """

    def __init__(
        self,
        num_crops=(2, 6),
        crop_sizes=(224, 96),
        min_scales=(0.14, 0.05),
        max_scales=(1.0, 0.14),
        jitter_strength=1.0,
        brightness=0.8,
        contrast=0.8,
        saturation=0.8,
        hue=0.2,
        jitter_probability=0.8,
        grayscale_probability=0.2,
        blur_probability=0.5,
        blur_sigma=(0.1, 2.0),
        flip=True,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        checked = check_multicrop_arguments(
            num_crops, crop_sizes, min_scales, max_scales, jitter_strength, brightness,
            contrast, saturation, hue, jitter_probability, grayscale_probability,
            blur_probability, blur_sigma, flip, seed,
        )
        for name, value in checked.items():
            setattr(self, name, value)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        self.built = True  # no weights: only the generator's state, created above

    @property
    def num_views(self):
        """The number of crops per image, `sum(num_crops)`."""
        return sum(self.num_crops)

    def call(self, images):
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[-1] not in (1, 3) or None in shape[1:3]:
            raise ValueError(
                "`images` must be a batch [batch, height, width, channels] of known height and "
                f"width with 1 or 3 channels; received images.shape={shape}."
            )
        channels = shape[-1]
        seeds = _seeds_of_this_replica(self.seed_generator)
        crops = []
        for g, (n, size) in enumerate(zip(self.num_crops, self.crop_sizes, strict=True)):
            scale = (self.min_scales[g], self.max_scales[g])
            x = random_resized_crops(images, n, size, scale, seeds, self.flip)
            batch = ops.shape(x)[1]
            x = ops.reshape(x * (1.0 / 255.0), (n * batch, size, size, channels))
            x = colour_distortion(x, seeds, **colour_arguments(self))
            x = ops.reshape(x * 255.0, (n, batch, size, size, channels))
            crops.extend(x[v] for v in range(n))
        return tuple(crops)

    def compute_output_shape(self, input_shape):
        batch, channels = input_shape[0], input_shape[-1]
        return tuple(
            (batch, size, size, channels)
            for n, size in zip(self.num_crops, self.crop_sizes, strict=True)
            for _ in range(n)
        )

    def save_own_variables(self, store):
        """Saves the generator's state with the weights, so a resumed run draws new crops."""
        store["seed_generator_state"] = keras.ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        """Restores the generator's state where the saved weights hold it."""
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in ARGUMENT_NAMES})
        return config
