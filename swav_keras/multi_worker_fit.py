"""Lets Keras 3.15's TensorFlow trainer `fit` under `MultiWorkerMirroredStrategy`.

Keras 3.15.1's TensorFlow trainer cannot `fit` any model under
`tf.distribute.MultiWorkerMirroredStrategy`, not even a single `Dense` layer:

- before the first step it builds the model from `strategy.reduce("MEAN", first_batch)`, which
  that strategy refuses for a nested batch (a tuple of crops);
- after every step it reduces the logs with `strategy.reduce("MEAN", value, axis=0)`, which it
  refuses for the scalars that metrics are.

`MultiWorkerFit`, mixed into a `keras.Model`, gives the trainer one replica's share of the first
batch (the same shapes) and step logs with a leading axis of 1 (the same mean). Both go through
the active backend adapter (`first_replica_value`, `step_log_value`), which changes nothing
outside a multi-worker replica context and on JAX and PyTorch. Remove it once Keras reduces
these itself.
"""

import keras

from swav_keras import backends
from swav_keras.keras_internals import distribute_strategy


class MultiWorkerFit:
    """`keras.Model` mixin: `fit` works under `MultiWorkerMirroredStrategy` on Keras 3.15.

    Put it before `keras.Model` in the bases; it overrides the model's symbolic build from the
    first batch and `compute_metrics`, and changes nothing elsewhere.

    Example:

    ```python
    import keras
    from swav_keras.multi_worker_fit import MultiWorkerFit

    class MyModel(MultiWorkerFit, keras.Model):
        ...
    ```
    """

    # Overrides `keras_internals.SYMBOLIC_BUILD_HOOK` of Keras's trainer.
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and distribute_strategy(self) is not None:
            adapter = backends.active()
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(adapter.first_replica_value, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        return {name: backends.active().step_log_value(value) for name, value in logs.items()}
