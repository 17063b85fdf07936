"""An image folder as tf.data: decoded in the graph, a bad file named and replaced."""

import re

import numpy as np

from swav_keras.data import image_checks


def _decode_error(path):
    """TensorFlow's own reason for not decoding the file at `path` (eagerly, once)."""
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        # "{{function_node ...}} Invalid PNG data, size 134 [Op:DecodeImage] name:" -> the middle
        message = re.sub(r"\{\{[^}]*\}\}\s*", "", str(error)).split(" [Op:")[0].strip()
        return f"TensorFlow cannot decode it ({message.splitlines()[0][:200]})"
    return "TensorFlow could not decode it"


def folder_dataset(paths, labels, image_size, channels, strict_images=False):
    """`(image float32 [H, W, C], label int64)` of each file, as
    `keras.utils.image_dataset_from_directory(shuffle=False)` decodes and resizes them.

    A file that cannot be decoded (its header looked right: `image_checks.checked_files`
    has left out the others) must neither stop the run with TensorFlow's anonymous
    `Invalid PNG data` nor shorten the epoch. The design: each element carries its file
    number; decoding errors drop the element (`ignore_errors`); a `scan` remembers the last
    number seen, so a jump names the files skipped (`image_checks.report`, through a
    `py_function` that runs only then: warned and counted, or with `strict_images` an
    error naming the file at once); the stream is repeated and cut at `len(paths)`, so the
    first good images fill the places of bad ones and every epoch has its full count.

    Args:
        paths: the image files, a non-empty list.
        labels: their int labels.
        image_size: `(height, width)` every image is resized to (bilinear).
        channels: 1, 3 or 4, the channels decoded to.
        strict_images: raise on the first undecodable file. Defaults to `False`: skip it.

    Returns:
        An unbatched `tf.data.Dataset` of `len(paths)` elements.
    """
    import tensorflow as tf

    count = len(paths)
    names = list(paths)

    def decode(number, path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                                   expand_animations=False)
        image = tf.image.resize(image, image_size)
        image.set_shape((*image_size, channels))
        return number, image, label

    def report(first, end):
        for number in range(int(first), int(end)):
            path = names[number % count]
            image_checks.report(path, _decode_error(path), strict_images)
        return np.int64(0)

    def remember(last, element):
        return element[0], (last, *element)

    def name_skipped(last, number, image, label):
        # Files last+1 .. number-1 were skipped; past the end the stream starts again at 0.
        end = tf.where(number > last, number, number + count)
        done = tf.cond(end > last + 1,
                       lambda: tf.py_function(report, [last + 1, end], tf.int64),
                       lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([done]):
            return tf.identity(image), label

    numbered = tf.data.Dataset.from_tensor_slices(
        (np.arange(count, dtype=np.int64), names, np.asarray(labels, np.int64)))
    decoded = numbered.map(decode, tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return (decoded.repeat().scan(tf.constant(-1, tf.int64), remember)
            .map(name_skipped).take(count)
            .apply(tf.data.experimental.assert_cardinality(count)))
