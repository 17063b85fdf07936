"""SwAV's multi-crop augmentation in tf.data, on the same math as the model's layer.

Each image gives `sum(num_crops)` views: for every resolution group, random resized crops
(torchvision's `RandomResizedCrop`), horizontal flips, colour jitter, grayscale and Gaussian
blur, each drawn independently per crop. The boxes, flips and colour work are
`swav_keras.augmentation`'s `keras.ops` functions, the ones `MultiCropAugmentation` runs
inside the model, computed here by Keras's TensorFlow backend whatever the active backend (as
Keras's own preprocessing layers in tf.data). Only the reading of the boxes' pixels differs:
`tf.image.crop_and_resize` (a gather, whose cost grows with the crops, not the image, and which
takes images of any size) at the coordinates the layer's interpolation matrices use. Randomness is
stateless, seeded per batch: a seed gives the same crops whatever the parallelism.

Values stay in raw pixel scale: images of 0..255 (uint8 or float) give float32 crops of 0..255.
Mean/std normalisation belongs in the encoder, so a saved encoder takes raw pixels.

Reference: Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020 (facebookresearch/swav, `src/multicropdataset.py`).
"""

import keras
import tensorflow as tf

from swav_keras.augmentation import colour_distortion, crop_boxes
from swav_keras.augmentation.backend_ops import tensorflow_ops, uniform
from swav_keras.augmentation.stateless_seeds import StatelessSeeds
from swav_keras.multicrop_arguments import (
    ARGUMENT_NAMES,
    check_multicrop_arguments,
    colour_arguments,
)
from swav_keras.validation import check_int

_AUTOTUNE = tf.data.AUTOTUNE


@keras.saving.register_keras_serializable(package="swav_keras")
class MultiCrop:
    """SwAV's multi-crop augmentation of a batch of images.

    Use it to turn a batch of raw images `[B, H, W, C]` into the `V = sum(num_crops)` views
    SwAV trains on, high-resolution groups first, in the order given. Every crop of every image
    draws its own box, flip, jitter factors and order, grayscale and blur, as the original
    torchvision pipeline does image by image, but vectorised over the batch. One- and
    three-channel images are accepted; one-channel images skip saturation, hue and grayscale.
    Input is raw pixels (uint8, or float in 0..255) and so is the float32 output: normalise in
    the encoder. Call it on a batch (arrays or tensors, eagerly or inside `tf.data`), or use
    `multicrop_dataset` to build the training input of `fit`.

    Deviations from the reference, kept for speed: resizing is bilinear without antialiasing
    (half-pixel centres, as torchvision), and the blur is a Gaussian truncated at 3 sigma with
    reflect padding (PIL's `GaussianBlur(radius=sigma)` in the original).

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
        grayscale_probability: probability that an RGB crop is turned to gray (kept as three
            channels). Defaults to `0.2`.
        blur_probability: probability that a crop is blurred. Defaults to `0.5`.
        blur_sigma: `(low, high)` range of the blur's standard deviation, in pixels.
            Defaults to `(0.1, 2.0)`.
        flip: whether crops are flipped horizontally with probability 0.5. Defaults to `True`.
        seed: int seed of the calls made without an explicit seed (then every call with the
            same batch gives the same crops), or `None` for fresh randomness at every call.
            `multicrop_dataset` also takes it as its default seed. Defaults to `None`.

    Example:

    ```python
    from swav_keras.data import MultiCrop

    multicrop = MultiCrop(num_crops=(2, 4), crop_sizes=(28, 14), min_scales=(0.3, 0.08),
                          max_scales=(1.0, 0.3), saturation=0.0, hue=0.0, blur_probability=0.0)
    crops = multicrop(images, seed=[0, 1])  # 6 float32 tensors, 0..255
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
    ):
        checked = check_multicrop_arguments(
            num_crops, crop_sizes, min_scales, max_scales, jitter_strength, brightness,
            contrast, saturation, hue, jitter_probability, grayscale_probability,
            blur_probability, blur_sigma, flip, seed,
        )
        for name, value in checked.items():
            setattr(self, name, value)

    @property
    def num_views(self):
        """The number of crops per image, `sum(num_crops)`."""
        return sum(self.num_crops)

    def __call__(self, images, seed=None):
        """Returns the `num_views` crops of a batch, float32 `[B, size, size, C]` in 0..255.

        Args:
            images: `[B, H, W, C]` raw pixels (uint8, or float in 0..255), C = 1 or 3.
            seed: shape-`[2]` int seed of this batch (stateless ops). Defaults to `None`: the
                constructor's `seed`, else fresh randomness.
        """
        crop_seed, colour_seed = tf.unstack(tf.random.experimental.stateless_split(
            self._seed(seed), 2))
        return self.distort(self.crop(images, crop_seed), colour_seed)

    def crop(self, images, seed):
        """Random resized crops and flips: one float32 `[n * B, s, s, C]` in [0, 1] per group.

        The crop `v` of a group of `n` holds images `v * B .. (v + 1) * B - 1`. This is the
        geometric half of `__call__`; `multicrop_dataset` runs it per image before batching
        when images differ in size.
        """
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "`images` must be a batch [batch, height, width, channels] with 1 or 3 "
                f"channels; received images.shape={tuple(images.shape)}."
            )
        seeds = tf.random.experimental.stateless_split(seed, len(self.num_crops))
        groups = []
        padded = _edge_padded(images)
        with tensorflow_ops():
            for g, (n, size) in enumerate(zip(self.num_crops, self.crop_sizes, strict=True)):
                scale = (self.min_scales[g], self.max_scales[g])
                crops = _resized_crops(padded, n, size, scale, StatelessSeeds(seeds[g]),
                                       self.flip)
                groups.append(crops * (1.0 / 255.0))
        return tuple(groups)

    def distort(self, groups, seed):
        """Colour jitter, grayscale and blur of `crop`'s groups; returns the crops in 0..255."""
        seeds = tf.random.experimental.stateless_split(seed, len(self.num_crops))
        crops = []
        with tensorflow_ops():
            for g, x in enumerate(groups):
                x = colour_distortion(x, StatelessSeeds(seeds[g]), **colour_arguments(self))
                size = self.crop_sizes[g]
                x = tf.reshape(x * 255.0, [self.num_crops[g], -1, size, size, x.shape[-1]])
                crops.extend(tf.unstack(x, num=self.num_crops[g], axis=0))
        return tuple(crops)

    def _seed(self, seed):
        if seed is not None:
            return tf.cast(tf.convert_to_tensor(seed), tf.int64)
        if self.seed is not None:
            return tf.constant([self.seed, 0], tf.int64)
        return tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)

    def get_config(self):
        return {name: getattr(self, name) for name in ARGUMENT_NAMES}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"MultiCrop({args})"


def _edge_padded(images):
    """`images` with one replicated pixel around: `_resized_crops` reads there what the layer's
    clamped coordinates read (sample coordinates reach half a pixel past the image)."""
    return tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")


def _resized_crops(padded, num_crops, size, scale, seed_generator, flip):
    """`random_resized_crops`'s crops, `[num_crops * B, size, size, C]`, by `crop_and_resize`.

    The same draws in the same order (boxes, then flips), and sample k of a box reads
    coordinate `start + (k + 0.5) * length / size - 0.5`, clamped to the image, as there;
    images may have any size. `padded`: the images after `_edge_padded`. Crop `v` of image
    `b` is row `v * B + b`.
    """
    batch = tf.shape(padded)[0]
    h_img = tf.cast(tf.shape(padded)[1] - 2, tf.float32)
    w_img = tf.cast(tf.shape(padded)[2] - 2, tf.float32)
    boxes = crop_boxes(num_crops * batch, h_img, w_img, scale, seed_generator)
    top, left, h, w = tf.unstack(boxes, axis=1)
    y1, y2 = top + 0.5 * h / size + 0.5, top + h - 0.5 * h / size + 0.5
    x1, x2 = left + 0.5 * w / size + 0.5, left + w - 0.5 * w / size + 0.5
    if flip:  # swapping the box's horizontal ends flips the crop, at no cost
        flipped = uniform((num_crops * batch,), seed_generator) < 0.5
        x1, x2 = tf.where(flipped, x2, x1), tf.where(flipped, x1, x2)
    normalised = tf.stack([y1 / (h_img + 1), x1 / (w_img + 1), y2 / (h_img + 1),
                           x2 / (w_img + 1)], axis=1)
    indices = tf.tile(tf.range(batch), [num_crops])
    return tf.image.crop_and_resize(padded, normalised, indices, [size, size])


def _image_of(*element):
    """The image of a dataset element: an image, `(image, label, ...)` or `{"image": ...}`."""
    image = element[0]
    if isinstance(image, dict):
        image = image["image"]
    if image.shape.rank == 2:
        image = image[..., None]
    return image


def _seeds(seed):
    """An endless stream of shape-`[2]` seeds, different at every iteration of the dataset."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def multicrop_dataset(
    images,
    multicrop,
    batch_size,
    shuffle_buffer=10_000,
    seed=None,
    drop_remainder=True,
    repeat=False,
):
    """The training input of SwAV's `fit`: batches of `((crop_0, ..., crop_{V-1}),)`.

    Shuffles, batches, then applies `multicrop` to each batch with a stateless seed drawn from a
    seeded stream (one per batch, fresh at every epoch), and prefetches. Elements hold the crops
    in a 1-tuple because Keras reads a bare tuple as `(x, y, sample_weight)`. With a seed, the
    crops are the same at every run whatever the parallelism; epochs differ from each other.
    Images that differ in size (e.g. ImageNet from tfds) are cropped one by one before batching,
    the colour work still runs per batch. The work runs in tf.data, so this feeds `fit` on
    every backend.

    Args:
        images: a `tf.data.Dataset` of images `[H, W, C]` (or `[H, W]`), of `(image, label)`
            pairs (the label is dropped) or of dicts with an `"image"` key; or an array of
            images. Raw pixels, 0..255.
        multicrop: a `MultiCrop`.
        batch_size: positive int, images per batch.
        shuffle_buffer: int >= 0, size of the shuffle buffer (0: keep the order).
            Defaults to `10_000`.
        seed: int >= 0 seeding the shuffle and the crops, or `None` for `multicrop.seed`
            (fresh randomness when that is `None` too). Defaults to `None`.
        drop_remainder: whether to drop the last, smaller batch. SwAV wants constant batches.
            Defaults to `True`.
        repeat: whether to repeat the data endlessly (then pass `steps_per_epoch` to `fit`).
            Defaults to `False`.

    Returns:
        A `tf.data.Dataset` of `((crop_0, ..., crop_{V-1}),)`, float32 `[B, s, s, C]` in 0..255.

    Example:

    ```python
    from swav_keras.data import MultiCrop, load_fashion_mnist, multicrop_dataset

    images, _ = load_fashion_mnist()
    multicrop = MultiCrop((2, 4), (28, 14), (0.3, 0.08), (1.0, 0.3), saturation=0.0, hue=0.0,
                          jitter_strength=0.5, grayscale_probability=0.0, blur_probability=0.0)
    model.fit(multicrop_dataset(images, multicrop, batch_size=256, seed=0), epochs=10)
    ```
    """
    if not isinstance(multicrop, MultiCrop):
        raise TypeError(f"`multicrop` must be a MultiCrop; received multicrop={multicrop!r}.")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, minimum=0)
    seed = multicrop.seed if seed is None else check_int("seed", seed, minimum=0)
    if not isinstance(images, tf.data.Dataset):
        images = tf.data.Dataset.from_tensor_slices(images)
    images = images.map(_image_of)
    if shuffle_buffer:
        images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        images = images.repeat()
    height, width = images.element_spec.shape[:2]
    if height is not None and width is not None:
        batches = images.batch(batch_size, drop_remainder=drop_remainder)
        crops = tf.data.Dataset.zip(batches, _seeds(seed)).map(
            lambda x, s: (multicrop(x, seed=s),), num_parallel_calls=_AUTOTUNE
        )
    else:
        cropped = tf.data.Dataset.zip(images, _seeds(seed)).map(
            lambda x, s: multicrop.crop(x[None], s), num_parallel_calls=_AUTOTUNE
        )
        batches = cropped.batch(batch_size, drop_remainder=drop_remainder)
        colour_seed = None if seed is None else seed + 1
        crops = tf.data.Dataset.zip(batches, _seeds(colour_seed)).map(
            lambda groups, s: (multicrop.distort(_views_first(groups), s),),
            num_parallel_calls=_AUTOTUNE,
        )
    return crops.prefetch(_AUTOTUNE)


def _views_first(groups):
    """`[B, n, s, s, C]` groups of per-image crops -> `[n * B, s, s, C]`, view-major."""
    out = []
    for g in groups:
        g = tf.transpose(g, [1, 0, 2, 3, 4])
        out.append(tf.reshape(g, [-1] + g.shape[2:].as_list()))
    return tuple(out)
