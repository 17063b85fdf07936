"""Shuffled, full batches of an image array for `fit`, without TensorFlow."""

import keras
import numpy as np

from swav_keras.data.image_files import ImageFiles
from swav_keras.validation import check_int


class ImageBatches(keras.utils.PyDataset):
    """Batches of raw images, reshuffled every epoch, for `SwAV(augmentation=...)`.

    The TensorFlow-free input of SwAV: a `keras.utils.PyDataset` (read by `fit` on every
    backend) that serves full batches of an in-memory image array, in a new order at each
    epoch, leaving the crops to `swav_keras.layers.MultiCropAugmentation` inside the model.
    `images` may also be an `ImageFiles` (`load_arrays(folder, lazy=True)`): each batch is
    then read from disk when served, and `workers=N` decodes N batches ahead in threads while
    the model trains. The last incomplete batch is dropped, since SwAV's Sinkhorn and queue
    want a constant batch size (`drop_remainder=False` keeps it, for features of every image).
    The order of epoch `e` depends only on `seed` and `e`, so a run resumed at an epoch
    boundary, or inside one after `set_epoch(e, skip)`, sees the batches it would have seen.

    Args:
        images: array `[N, H, W, C]` or `[N, H, W]` (a channel axis is added), raw pixels,
            or an `ImageFiles`.
        batch_size: positive int, images per batch, at most `N`.
        shuffle: whether to reshuffle at every epoch. Defaults to `True`.
        seed: int >= 0 seeding the orders, or `None` for fresh ones. Defaults to `None`.
        drop_remainder: whether to leave out the last batch when it is not full.
            Defaults to `True`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, `use_multiprocessing`,
            `max_queue_size`).

    Example:

    ```python
    from swav_keras.data import ImageBatches, load_fashion_mnist

    images, _ = load_fashion_mnist()
    batches = ImageBatches(images, batch_size=256, seed=0)  # the `x` of `SwAV.fit`
    print(len(batches))  # 234 batches per epoch
    ```
    """

    def __init__(self, images, batch_size, shuffle=True, seed=None, drop_remainder=True,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(images, ImageFiles):
            images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "`images` must be an array [N, height, width] or [N, height, width, channels] "
                f"with 1 or 3 channels; received images.shape={images.shape}."
            )
        self.images = images
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        if self.batch_size > len(images):
            raise ValueError(
                f"`batch_size` must be at most the number of images ({len(images)}); "
                f"received batch_size={batch_size}."
            )
        if not isinstance(shuffle, bool):
            raise TypeError(f"`shuffle` must be a bool; received shuffle={shuffle!r}.")
        self.shuffle = shuffle
        if not isinstance(drop_remainder, bool):
            raise TypeError(
                f"`drop_remainder` must be a bool; received drop_remainder={drop_remainder!r}.")
        self.drop_remainder = drop_remainder
        self.seed = None if seed is None else check_int("seed", seed, minimum=0)
        self._entropy = np.random.SeedSequence(self.seed).entropy
        self.epoch = 0
        self.skip = 0
        self._begun = False
        self._order = self._new_order()

    def _new_order(self):
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self._entropy, self.epoch]).permutation(len(self.images))

    def set_epoch(self, epoch, skip=0):
        """Serves the order of `epoch`, from its batch `skip` on (a resumed run's position).

        Args:
            epoch: int >= 0, the epoch whose order is served.
            skip: int >= 0, batches of that epoch already trained on; they are left out
                until the next epoch. Defaults to `0`.
        """
        self.epoch = check_int("epoch", epoch, minimum=0)
        full = self._batches_per_epoch()
        self.skip = check_int("skip", skip, minimum=0)
        if self.skip >= full:
            raise ValueError(
                f"`skip` must be less than the {full} batches of an epoch; received "
                f"skip={skip}."
            )
        self._begun = False
        self._order = self._new_order()

    def _batches_per_epoch(self):
        whole, rest = divmod(len(self.images), self.batch_size)
        return whole + (1 if rest and not self.drop_remainder else 0)

    def __len__(self):
        return self._batches_per_epoch() - self.skip

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)}).")
        index += self.skip
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.images[rows]

    def on_epoch_begin(self):
        self._begun = True

    def on_epoch_end(self):
        # `fit` also calls this once before its first epoch (Keras 3.15's `EpochIterator.reset`):
        # only an epoch that began moves the order on, so the first epoch of a `fit` serves the
        # epoch and skip set last, and a resumed run sees the batches it would have seen.
        if self._begun:
            self.set_epoch(self.epoch + 1)
