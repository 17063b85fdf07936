"""Features of a frozen encoder, or of raw pixels, for kNN and linear evaluation."""

import sys

import keras
import numpy as np

from swav_keras.data.image_batches import ImageBatches
from swav_keras.data.image_files import ImageFiles
from swav_keras.validation import check_int


def extract_features(encoder, data, batch_size=256, verbose="auto"):
    """Runs a frozen encoder over a dataset once and returns its features and labels.

    kNN and linear evaluation work on features, so that an encoder (SwAV-trained or randomly
    initialised) and raw pixels (`pixel_features`) are scored by the same functions. The
    encoder runs in inference mode (`training=False`: BatchNorm uses its moving statistics),
    with Keras's progress bar when `verbose`. Images are passed as they are: the encoder holds
    its own normalisation (pixel values 0-255 in).

    `data` may be:
    - a NumPy array of images `[N, ...]` (no labels);
    - a tuple `(images, labels)` of arrays with the same length;
    - in either, an `ImageFiles` instead of the images (`load_arrays(folder, lazy=True)`):
      its files are read batch by batch, by two threads ahead of the encoder;
    - a `tf.data.Dataset` of `(image, label)` pairs or of images alone, unbatched (it is
      batched here by `batch_size`) or already batched (its batches are used as they are).
      Batched or not is read from the rank of its images against the encoder's input rank.
      The dataset is read once, in a single pass, so its labels stay aligned with the
      features even when it reshuffles at every iteration.

    Args:
        encoder: a `keras.Model` mapping a batch of images to features `[B, D]`.
        data: the images, as listed above.
        batch_size: positive int, images per forward pass (ignored for a batched dataset).
            Defaults to `256`.
        verbose: `"auto"`, 0, 1 or 2, as in `Model.predict`. Defaults to `"auto"`.

    Returns:
        A tuple `(features, labels)`: float32 array `[N, D]`, and the labels as a NumPy array
        `[N]` (`[N, 1]` labels are flattened), or `None` when the data has no labels.

    Example:

    ```python
    import keras
    from swav_keras.evaluation import extract_features

    encoder = keras.saving.load_model("encoder.keras")
    train_x, train_y = extract_features(encoder, (images, labels))
    ```
    """
    check_encoder(encoder)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    verbose = check_verbose(verbose)
    if _is_dataset(data):
        features, labels = _predict_dataset(encoder, data, batch_size, verbose)
    else:
        images, labels = _split(data)
        if isinstance(images, ImageFiles):
            served = ImageBatches(images, min(batch_size, len(images)), shuffle=False,
                                  drop_remainder=False, workers=2)
            features = encoder.predict(served, verbose=verbose)
        else:
            features = encoder.predict(images, batch_size=batch_size, verbose=verbose)
        _check_output(features)
    return np.asarray(features, dtype="float32"), labels


def encode(encoder, images, batch_size=256):
    """Features of `images` from direct calls of `encoder` in inference mode.

    `extract_features` runs `predict`, which under a multi-worker strategy is a collective
    that every worker must join. Work that one process does alone during or after training
    (the kNN monitor, pictures) calls the encoder directly instead, `batch_size` images at a
    time, with BatchNorm in inference mode.

    Args:
        encoder: a `keras.Model` mapping a batch of images to features `[B, D]`.
        images: array `[N, ...]` of images as the encoder takes them (raw pixels for this
            project's encoders), or an `ImageFiles` (read `batch_size` files at a time);
            cast to float32.
        batch_size: positive int, images per call. Defaults to `256`.

    Returns:
        A float32 NumPy array `[N, D]`.

    Example:

    ```python
    from swav_keras.evaluation import encode

    features = encode(model.encoder, test_images[:1000])
    ```
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(images, ImageFiles):  # files are read a batch at a time below
        images = check_images("images", images)
    features = [
        keras.ops.convert_to_numpy(
            encoder(images[start : start + batch_size].astype("float32"), training=False)
        )
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(features).astype("float32")


def pixel_features(data):
    """Flattened raw pixels as features: the baseline any learned encoder should beat.

    Each image `[H, W, C]` becomes a float32 vector of its `H * W * C` pixel values, kept on
    their 0-255 scale (kNN compares cosine similarities, and `linear_probe` standardises
    features, so the scale does not matter). Equivalent to `images.reshape(len(images), -1)`.

    Args:
        data: a NumPy array of images, an `(images, labels)` tuple, or a `tf.data.Dataset`
            of `(image, label)` pairs or of images; dataset elements of rank 4 are read as
            batches `[B, H, W, C]`, lower ranks as single images.

    Returns:
        A tuple `(features, labels)`: float32 array `[N, H * W * C]` and the labels (or
        `None`), as `extract_features` returns them.

    Example:

    >>> import numpy as np
    >>> from swav_keras.evaluation import pixel_features
    >>> features, labels = pixel_features((np.zeros((5, 28, 28, 1)), np.arange(5)))
    >>> features.shape, labels.shape
    ((5, 784), (5,))
    """
    if _is_dataset(data):
        spec = data.element_spec
        has_labels = isinstance(spec, tuple)
        if len((spec[0] if has_labels else spec).shape) < 4:  # single images, not batches
            data = data.batch(1024)
        batches = list(data.as_numpy_iterator())
        if not batches:
            raise ValueError("`data` must hold at least one image; received an empty dataset.")
        if has_labels:
            data = tuple(np.concatenate([batch[i] for batch in batches]) for i in (0, 1))
        else:
            data = np.concatenate(batches)
    images, labels = _split(data)
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype("float32"), labels


# --------------------------------------------------------------------------- shared checks


def check_encoder(encoder):
    """Returns `encoder` if it is a `keras.Model`; a TypeError naming its type otherwise."""
    if not isinstance(encoder, keras.Model):
        raise TypeError(
            f"`encoder` must be a keras.Model; received encoder of type {type(encoder).__name__}."
        )
    return encoder


def check_images(name, value):
    """Returns `value` as a NumPy array `[N, ...]` of N >= 1 images (any dtype, any shape)."""
    array = np.asarray(_to_numpy(value))
    if array.ndim < 2 or len(array) < 1:
        raise ValueError(
            f"`{name}` must be an array [N, ...] with N >= 1; received {name}.shape="
            f"{array.shape}."
        )
    return array


def check_features(name, value):
    """Returns `value` as a float32 `[N, D]` NumPy array with N >= 1, all finite."""
    array = np.asarray(_to_numpy(value), dtype="float32")
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array [N, D]; received {name}.shape={array.shape}."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"`{name}` must hold at least one row and one column; "
            f"received {name}.shape={array.shape}."
        )
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise ValueError(
            f"`{name}` must hold only finite values; "
            f"received {name}[{row}, {col}]={array[row, col]}."
        )
    return array


def check_labels(name, value, num_rows, rows_name, num_classes=None):
    """Returns `value` as an int64 `[N]` array of class ids in `[0, num_classes)`."""
    array = np.asarray(_to_numpy(value))
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be a 1-D array of integer class ids; "
            f"received {name}.shape={array.shape}."
        )
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must be a 1-D array of integer class ids; "
            f"received {name}.dtype={array.dtype}."
        )
    if len(array) != num_rows:
        raise ValueError(
            f"`{name}` must hold one label per row of `{rows_name}` ({num_rows}); "
            f"received len({name})={len(array)}."
        )
    array = array.astype("int64")
    negative = np.flatnonzero(array < 0)
    if len(negative):
        i = int(negative[0])
        raise ValueError(f"`{name}` must hold class ids >= 0; received {name}[{i}]={array[i]}.")
    if num_classes is not None:
        too_big = np.flatnonzero(array >= num_classes)
        if len(too_big):
            i = int(too_big[0])
            raise ValueError(
                f"`{name}` must hold class ids < num_classes ({num_classes}); "
                f"received {name}[{i}]={array[i]}."
            )
    return array


def check_verbose(verbose):
    """Returns `verbose` if it is one of Keras's `"auto"`, 0, 1 or 2."""
    if verbose == "auto" or (
        isinstance(verbose, int) and not isinstance(verbose, bool) and verbose in (0, 1, 2)
    ):
        return verbose
    raise ValueError(f'`verbose` must be "auto", 0, 1 or 2; received verbose={verbose!r}.')


# --------------------------------------------------------------------------- helpers


def _to_numpy(value):
    """A NumPy view of an array or a backend tensor (no copy of a NumPy array)."""
    return value if isinstance(value, np.ndarray) else keras.ops.convert_to_numpy(value)


def _is_dataset(data):
    tf = sys.modules.get("tensorflow")  # a tf.data.Dataset means TensorFlow is imported.
    return tf is not None and isinstance(data, tf.data.Dataset)


def _split(data):
    """`(images, labels)` of an array or a tuple, with the labels checked and flattened."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(
                "`data` must be an (images, labels) tuple of two arrays; "
                f"received a tuple of length {len(data)}."
            )
        images, labels = data
    elif hasattr(data, "shape") and hasattr(data, "__len__"):
        images, labels = data, None
    else:
        raise TypeError(
            "`data` must be a NumPy array of images, an (images, labels) tuple or a "
            f"tf.data.Dataset; received data of type {type(data).__name__}."
        )
    if not isinstance(images, ImageFiles):
        images = _to_numpy(images)
    if np.ndim(images) < 2:
        raise ValueError(
            f"`images` must be an array [N, ...] of at least 2 dimensions; "
            f"received images.shape={np.shape(images)}."
        )
    if labels is not None:
        labels = np.asarray(_to_numpy(labels))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.reshape(-1)
        if len(labels) != len(images):
            raise ValueError(
                f"`labels` must hold one label per image ({len(images)}); "
                f"received len(labels)={len(labels)}."
            )
    return images, labels


def _check_output(features):
    if not hasattr(features, "shape") or len(features.shape) != 2:
        shape = getattr(features, "shape", type(features).__name__)
        raise ValueError(
            "`encoder` must return one 2-D feature array [batch, D]; "
            f"received an output of shape {shape}."
        )


def _predict_dataset(encoder, dataset, batch_size, verbose):
    spec = dataset.element_spec
    has_labels = isinstance(spec, tuple)
    if has_labels and len(spec) != 2:
        raise ValueError(
            "`data` must be a tf.data.Dataset of (image, label) pairs or of images; "
            f"received a dataset of {len(spec)}-tuples."
        )
    image_rank = len((spec[0] if has_labels else spec).shape)
    input_rank = len(encoder.inputs[0].shape) if getattr(encoder, "inputs", None) else 4
    if image_rank == input_rank - 1:
        dataset = dataset.batch(batch_size)
    elif image_rank != input_rank:
        raise ValueError(
            f"`data` must yield images of rank {input_rank - 1} (unbatched) or {input_rank} "
            f"(batched) for this encoder; received images of rank {image_rank}."
        )
    num_batches = int(dataset.cardinality())
    progbar = None
    if verbose:
        target = num_batches if num_batches > 0 else None
        progbar = keras.utils.Progbar(target, verbose=1 if verbose == "auto" else verbose)
    features, labels = [], []
    for step, element in enumerate(dataset.as_numpy_iterator()):
        images, batch_labels = element if has_labels else (element, None)
        output = encoder.predict_on_batch(images)
        _check_output(output)
        features.append(np.asarray(output, dtype="float32"))
        labels.append(batch_labels)
        if progbar is not None:
            progbar.update(step + 1)
    if not features:
        raise ValueError("`data` must hold at least one image; received an empty dataset.")
    labels = np.concatenate(labels) if has_labels else None
    if labels is not None and labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    return np.concatenate(features), labels
