"""The pretraining recipe's inputs: raw-image batches from arrays, files or tf.data."""

import dataclasses
import os

from recipes.builders import build_multicrop


def tensorflow_available():
    """Whether TensorFlow can be imported (tf.data, TensorBoard)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def subset(images, index):
    """`images[index]`, still on disk when `images` is an `ImageFiles`."""
    return images.select(index) if hasattr(images, "select") else images[index]


def served_batches(images, batch_size, seed, epoch, skip=0):
    """`ImageBatches` of an array or `ImageFiles` from batch `skip` of `epoch` on.

    Files are decoded by threads (one per core, 2 to 8), batches ahead of the step.
    """
    from swav_keras.data import ImageBatches, ImageFiles

    workers = max(2, min(8, os.cpu_count() or 1)) if isinstance(images, ImageFiles) else 1
    served = ImageBatches(images, batch_size, seed=seed, workers=workers)
    served.set_epoch(epoch, skip)
    return served


def plain_batches(images):
    """Every image of an array, `ImageFiles` or unbatched `tf.data.Dataset`, in order, in
    batches of 256 (PreciseBN's input)."""
    from swav_keras.data import ImageBatches

    if hasattr(images, "batch"):  # tf.data
        return images.batch(256)
    return ImageBatches(images, min(256, len(images)), shuffle=False, drop_remainder=False)


def image_batches(images, batch_size, seed):
    """tf.data batches of raw images, reshuffled every epoch, for `augment_in_model`."""
    import tensorflow as tf

    images = images.map(lambda image, *_: image)
    if None in images.element_spec.shape[:2]:
        raise ValueError(
            "`augment_in_model` needs images of one size: set `image_size` (e.g. "
            f"--image_size=256); received images of shape {images.element_spec.shape}."
        )
    images = images.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    return images.batch(batch_size, drop_remainder=True).map(
        lambda x: (x,)).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class TrainingInput:
    """This process's training images and the batches `fit` reads from them, epoch by epoch.

    `images` is a NumPy array or an `ImageFiles` when `as_arrays` (served by `ImageBatches`,
    the crops made in the model), else an unbatched `tf.data.Dataset`; `batch_size` and
    `steps_per_epoch` are this process's.
    """

    config: object  # a `recipes.configs.PretrainConfig`
    images: object
    labels: object
    info: object
    as_arrays: bool
    batch_size: int
    steps_per_epoch: int
    seed: int

    @classmethod
    def load(cls, config, spread, data_dir, train_examples, seed, strict_images):
        from swav_keras import data

        # With the crops made in the model, Fashion-MNIST is read into memory by NumPy, and an
        # image folder where TensorFlow is not installed streams from disk (an `ImageFiles`,
        # read by Pillow), both served by `ImageBatches`: no TensorFlow needed. Everything
        # else streams through tf.data.
        as_arrays = config.augment_in_model and (config.dataset == "fashion_mnist" or (
            os.path.isdir(os.path.expanduser(config.dataset)) and not tensorflow_available()))
        labels = None
        if as_arrays:
            images, labels, info = data.load_arrays(
                config.dataset, "train", data_dir, config.image_size or None,
                take=train_examples, lazy=True, strict_images=strict_images)
        else:
            images, info = data.load_images(
                config.dataset, "train", data_dir, config.image_size or None,
                take=train_examples, strict_images=strict_images)
        batch_size, examples = config.batch_size, info.num_examples
        if spread.shards_input:  # torch.distributed: this process's share of every batch
            if batch_size % spread.process_count:
                raise ValueError(
                    f"`batch_size` ({batch_size}) must be a multiple of the "
                    f"{spread.process_count} processes."
                )
            batch_size //= spread.process_count
            examples //= spread.process_count
            if as_arrays:
                share = slice(spread.process_index, None, spread.process_count)
                images = subset(subset(images, share), slice(examples))
                labels = labels[share][:examples]
            else:
                images = images.shard(spread.process_count, spread.process_index).take(examples)
        steps_per_epoch = examples // batch_size
        if steps_per_epoch < 1:
            raise ValueError(
                f"`batch_size` must be at most the {info.num_examples} training images; "
                f"received batch_size={config.batch_size}."
            )
        return cls(config, images, labels, info, as_arrays, batch_size, steps_per_epoch, seed)

    def batches(self, epoch, skip=0):
        """Epoch `epoch`'s input from its batch `skip` on, made from `seed` and `epoch` alone:
        a resumed epoch gets the batches (and tf.data crops) it would have had."""
        import numpy as np

        from swav_keras import data

        if self.as_arrays:  # `ImageBatches`: the model makes the crops
            return served_batches(self.images, self.batch_size, self.seed, epoch, skip)
        # tf.data cannot seed a shuffle per epoch inside one pipeline: one pipeline per epoch.
        epoch_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0] >> 1)
        if self.config.augment_in_model:  # tf.data only shuffles and batches raw images
            dataset = image_batches(self.images, self.batch_size, epoch_seed)
        else:
            dataset = data.multicrop_dataset(self.images, build_multicrop(self.config),
                                             self.batch_size, seed=epoch_seed)
        return dataset.skip(skip) if skip else dataset
