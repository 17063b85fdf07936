"""Saves `model.encoder` as `.keras` at the end of every epoch, atomically."""

import os

import keras


@keras.saving.register_keras_serializable(package="swav_keras")
class EncoderCheckpoint(keras.callbacks.Callback):
    """Writes the encoder of a SwAV model to `filepath` after each epoch.

    The encoder is what self-supervised pretraining is for; saving it alone gives a `.keras`
    file that loads under any backend without this project's training code (only its
    registered layers, if the encoder uses any). The file is written to a temporary name and
    then renamed over `filepath`, so an interruption never leaves a truncated encoder behind.

    Args:
        filepath: path of the `.keras` file to write.

    Example:

    ```python
    from swav_keras.callbacks import EncoderCheckpoint

    model.fit(dataset, epochs=10, callbacks=[EncoderCheckpoint("run/encoder.keras")])
    ```
    """

    def __init__(self, filepath):
        super().__init__()
        filepath = os.fspath(filepath)
        if not filepath.endswith(".keras"):
            raise ValueError(
                f"`filepath` must end with `.keras`; received filepath={filepath!r}."
            )
        self.filepath = filepath

    def on_epoch_end(self, epoch, logs=None):
        from swav_keras import backends

        # Only one process saves: on multi-host JAX it works on a copy held by this process.
        with backends.active().process_local(self.model.encoder) as (encoder,):
            save_encoder(encoder, self.filepath)

    def get_config(self):
        return {"filepath": self.filepath}


def save_encoder(encoder, filepath):
    """Saves `encoder` to `filepath` through a temporary file and an atomic rename.

    `SyncBatchNormalization` layers are saved as plain `keras.layers.BatchNormalization`
    (same weights; they differ only when training on several replicas), and `Im2colConv2D`,
    `NativeConv2D` and `NativeBatchNormalization` as plain Keras layers (same weights and
    function), so the file loads with Keras alone.

    Args:
        encoder: a functional `keras.Model`, e.g. `SwAV.encoder`.
        filepath: the `.keras` file written; its folder is made if missing.

    Example:

    >>> import os, tempfile
    >>> import keras
    >>> from swav_keras.backbones import SmallResNet
    >>> from swav_keras.callbacks import save_encoder
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.keras")
    >>> save_encoder(SmallResNet(4, (None, None, 1)), path)
    >>> keras.models.load_model(path).output_shape
    (None, 32)
    """
    from swav_keras.layers import native_layers
    from swav_keras.layers.im2col_conv2d import Im2colConv2D, to_conv2d
    from swav_keras.layers.native_conversion import to_keras_layers
    from swav_keras.layers.sync_batch_normalization import (
        SyncBatchNormalization,
        to_batch_normalization,
    )

    if any(isinstance(layer, SyncBatchNormalization) for layer in encoder.layers):
        encoder = to_batch_normalization(encoder)
    if any(isinstance(layer, Im2colConv2D) for layer in encoder.layers):
        encoder = to_conv2d(encoder)
    native = (native_layers.Conv2D, native_layers.BatchNormalization, native_layers.MaxPooling2D)
    if any(isinstance(layer, native) for layer in encoder.layers):
        encoder = to_keras_layers(encoder)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{os.path.basename(filepath)}.{os.getpid()}.tmp.keras")
    encoder.save(temporary)
    os.replace(temporary, filepath)
