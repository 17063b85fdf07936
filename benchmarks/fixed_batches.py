"""One batch repeated as a `tf.data.Dataset`, for timing `fit` without an input pipeline."""


def repeated(batch):
    """`batch` (a tuple of arrays) as an endless `tf.data.Dataset`, tf.data autotuning off.

    With autotuning on, tf.data's autotuning thread held the end of some short `fit` calls
    until a fixed time after their start (10.23 s on a 2-core CPU, 2026-12-05), which made
    the timed medians whole fractions of that span. Nothing here needs tuning: one element.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensors(batch).repeat().with_options(options)
