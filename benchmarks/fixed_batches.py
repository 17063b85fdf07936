"""One batch repeated, for timing `fit` without an input pipeline."""


def repeated(batch):
    """`batch` (a tuple of arrays), endlessly: a `tf.data.Dataset` where TensorFlow is
    installed, else a generator of the batch converted once to the backend's tensors.

    The tf.data form has autotuning off: with it on, tf.data's autotuning thread held the end
    of some short `fit` calls until a fixed time after their start (10.23 s on a 2-core CPU,
    2026-12-05), which made the timed medians whole fractions of that span. The generator
    serves machines without TensorFlow (the lent GPU machine); its tensors are made on the
    backend's default device (the GPU there), as the plain PyTorch step's crops are. On a GPU
    machine with TensorFlow installed, the tf.data form copies the batch to the GPU each step.
    """
    try:
        import tensorflow as tf
    except ImportError:
        return _generator(batch)
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensors(batch).repeat().with_options(options)


def _generator(batch):
    import keras

    tensors = keras.tree.map_structure(keras.ops.convert_to_tensor, batch)
    while True:
        yield tensors
